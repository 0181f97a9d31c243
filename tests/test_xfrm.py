"""xfrm_user messages: every message type round-trips; malformed input gets the kernel's errno."""

from __future__ import annotations

import errno
import struct

import pytest

from pyipsec.errors import ConfigError, KeyApiError
from pyipsec.keyapi import xfrm_const as c
from pyipsec.keyapi.netlink import (
    NLA_F_NESTED,
    NLM_F_MULTI,
    NLMSG_DONE,
    NLMSG_ERROR,
    Done,
    NetlinkError,
    build_attr,
    build_nlmsg,
)
from pyipsec.keyapi.xfrm import (
    Attr,
    XfrmMessage,
    build_message,
    parse_message,
    parse_messages,
)
from pyipsec.keyapi.xfrm_layout import addr_str, family_of, xaddr
from pyipsec.keyapi.xfrm_structs import (
    AeventId,
    Algo,
    AlgoAead,
    AlgoAuth,
    EncapTmpl,
    LifetimeCur,
    Mark,
    ReplayState,
    ReplayStateEsn,
    SadHinfo,
    Selector,
    SpdInfo,
    UserAcquire,
    UserExpire,
    UserKmaddress,
    UserMapping,
    UserMigrate,
    UserOffload,
    UserPolexpire,
    UserpolicyDefault,
    UserpolicyId,
    UserpolicyInfo,
    UserpolicyType,
    UserReport,
    UsersaFlush,
    UsersaId,
    UsersaInfo,
    UserSecCtx,
    UserspiInfo,
    UserTmpl,
    XfrmId,
)

SEL = Selector(
    daddr=xaddr("203.0.113.0"),
    saddr=xaddr("198.51.100.0"),
    dport=443,
    dport_mask=0xFFFF,
    family=c.AF_INET,
    prefixlen_d=24,
    prefixlen_s=24,
    proto=6,
)
SA = UsersaInfo(
    sel=SEL,
    id=XfrmId(xaddr("192.0.2.2"), 0xC0FFEE01, c.IPPROTO_ESP),
    saddr=xaddr("192.0.2.1"),
    reqid=7,
    family=c.AF_INET,
    mode=c.XFRM_MODE_TUNNEL,
    flags=c.XFRM_STATE_ESN,
)
POLICY = UserpolicyInfo(sel=SEL, priority=100, index=0x1A9, dir=c.XFRM_POLICY_OUT)
TMPL = UserTmpl(
    id=XfrmId(xaddr("192.0.2.2"), 0, c.IPPROTO_ESP),
    family=c.AF_INET,
    saddr=xaddr("192.0.2.1"),
    reqid=7,
    mode=c.XFRM_MODE_TUNNEL,
)
SA_ID = UsersaId(xaddr("2001:db8::2"), 0x1234, c.AF_INET6, c.IPPROTO_ESP)

MESSAGES = [
    XfrmMessage(
        c.XFRM_MSG_NEWSA,
        SA,
        [Attr(c.XFRMA_ALG_AEAD, AlgoAead("rfc4106(gcm(aes))", bytes(range(20)), 128))],
    ),
    XfrmMessage(
        c.XFRM_MSG_UPDSA,
        SA,
        [
            Attr(c.XFRMA_ALG_CRYPT, Algo("cbc(aes)", bytes(16))),
            Attr(c.XFRMA_ALG_AUTH_TRUNC, AlgoAuth("hmac(sha256)", bytes(32), 128)),
            Attr(c.XFRMA_ENCAP, EncapTmpl(2, 4500, 4500, xaddr(None))),
            Attr(c.XFRMA_REPLAY_ESN_VAL, ReplayStateEsn(2, 1, 2, 3, 4, 64, (5, 6))),
            Attr(c.XFRMA_MARK, Mark(0x10, 0xFF)),
            Attr(c.XFRMA_IF_ID, 9),
            Attr(c.XFRMA_SET_MARK, 3),
            Attr(c.XFRMA_SET_MARK_MASK, 0xF),
            Attr(c.XFRMA_TFCPAD, 1400),
            Attr(c.XFRMA_SA_EXTRA_FLAGS, c.XFRM_SA_XFLAG_DONT_ENCAP_DSCP),
            Attr(c.XFRMA_OFFLOAD_DEV, UserOffload(3, c.XFRM_OFFLOAD_INBOUND)),
            Attr(c.XFRMA_SEC_CTX, UserSecCtx(1, 1, b"system_u:object_r:ipsec_spd_t")),
            Attr(c.XFRMA_COADDR, xaddr("2001:db8::9")),
            Attr(c.XFRMA_REPLAY_THRESH, 10),
            Attr(c.XFRMA_ETIMER_THRESH, 20),
        ],
        flags=5,
        seq=9,
        pid=1234,
    ),
    XfrmMessage(
        c.XFRM_MSG_NEWSA,
        SA,
        [Attr(c.XFRMA_ALG_AEAD, AlgoAead("rfc7539esp(chacha20,poly1305)", bytes(36), 128))],
    ),
    XfrmMessage(c.XFRM_MSG_DELSA, SA_ID, [Attr(c.XFRMA_SRCADDR, xaddr("2001:db8::1"))]),
    XfrmMessage(c.XFRM_MSG_GETSA, SA_ID),
    XfrmMessage(
        c.XFRM_MSG_NEWPOLICY,
        POLICY,
        [Attr(c.XFRMA_TMPL, [TMPL, TMPL]), Attr(c.XFRMA_POLICY_TYPE, UserpolicyType(0))],
    ),
    XfrmMessage(c.XFRM_MSG_UPDPOLICY, POLICY, [Attr(c.XFRMA_TMPL, [TMPL])]),
    XfrmMessage(
        c.XFRM_MSG_DELPOLICY, UserpolicyId(SEL, 0, c.XFRM_POLICY_IN), [Attr(c.XFRMA_POLICY, POLICY)]
    ),
    XfrmMessage(c.XFRM_MSG_GETPOLICY, UserpolicyId(SEL, 0x1A9, c.XFRM_POLICY_OUT)),
    XfrmMessage(c.XFRM_MSG_ALLOCSPI, UserspiInfo(SA, 0x100, 0xFFFF)),
    XfrmMessage(
        c.XFRM_MSG_ACQUIRE,
        UserAcquire(XfrmId(xaddr("192.0.2.2"), 0, 50), xaddr("192.0.2.1"), SEL, POLICY, 1, 2, 3, 4),
        [Attr(c.XFRMA_TMPL, [TMPL])],
    ),
    XfrmMessage(
        c.XFRM_MSG_EXPIRE, UserExpire(SA, 1), [Attr(c.XFRMA_LTIME_VAL, LifetimeCur(1, 2, 3, 4))]
    ),
    XfrmMessage(c.XFRM_MSG_POLEXPIRE, UserPolexpire(POLICY, 0)),
    XfrmMessage(c.XFRM_MSG_FLUSHSA, UsersaFlush(c.IPSEC_PROTO_ANY)),
    XfrmMessage(c.XFRM_MSG_FLUSHPOLICY, None, [Attr(c.XFRMA_POLICY_TYPE, UserpolicyType(1))]),
    XfrmMessage(
        c.XFRM_MSG_NEWAE,
        AeventId(SA_ID, xaddr("2001:db8::1"), c.XFRM_AE_RVAL, 7),
        [Attr(c.XFRMA_REPLAY_VAL, ReplayState(1, 2, 0xF)), Attr(c.XFRMA_LASTUSED, 2**40)],
    ),
    XfrmMessage(c.XFRM_MSG_GETAE, AeventId(SA_ID)),
    XfrmMessage(c.XFRM_MSG_REPORT, UserReport(50, SEL), [Attr(c.XFRMA_COADDR, xaddr("192.0.2.7"))]),
    XfrmMessage(
        c.XFRM_MSG_MIGRATE,
        UserpolicyId(SEL, 0, 1),
        [
            Attr(
                c.XFRMA_MIGRATE,
                [
                    UserMigrate(
                        xaddr("192.0.2.1"),
                        xaddr("192.0.2.2"),
                        xaddr("192.0.2.3"),
                        xaddr("192.0.2.4"),
                        50,
                        1,
                        0,
                        7,
                        2,
                        2,
                    )
                ],
            ),
            Attr(c.XFRMA_KMADDRESS, UserKmaddress(xaddr("192.0.2.3"), xaddr("192.0.2.4"), 0, 2)),
        ],
    ),
    XfrmMessage(
        c.XFRM_MSG_NEWSADINFO,
        0,
        [Attr(c.XFRMA_SAD_CNT, 3), Attr(c.XFRMA_SAD_HINFO, SadHinfo(8, 1024))],
    ),
    XfrmMessage(c.XFRM_MSG_GETSADINFO, 0xFFFFFFFF),
    XfrmMessage(c.XFRM_MSG_NEWSPDINFO, 0, [Attr(c.XFRMA_SPD_INFO, SpdInfo(1, 2, 3, 4, 5, 6))]),
    XfrmMessage(c.XFRM_MSG_GETSPDINFO, 0),
    XfrmMessage(
        c.XFRM_MSG_MAPPING,
        UserMapping(SA_ID, 7, xaddr("192.0.2.1"), xaddr("192.0.2.9"), 4500, 61000),
    ),
    XfrmMessage(c.XFRM_MSG_SETDEFAULT, UserpolicyDefault(1, 2, 1)),
    XfrmMessage(c.XFRM_MSG_GETDEFAULT, UserpolicyDefault()),
    XfrmMessage(NLMSG_ERROR, NetlinkError(-errno.ENOENT, bytes(16))),
    XfrmMessage(NLMSG_DONE, Done(0), flags=NLM_F_MULTI),
]


@pytest.mark.parametrize("msg", MESSAGES, ids=lambda m: m.name)
def test_round_trip(msg: XfrmMessage) -> None:
    raw = build_message(msg)
    assert len(raw) % 4 == 0
    assert struct.unpack_from("=H", raw, 4)[0] == msg.type
    back = parse_message(raw)
    assert back == msg
    assert build_message(back) == raw


def test_every_xfrm_message_type_is_covered() -> None:
    covered = {m.type for m in MESSAGES}
    assert set(c.MSG_NAMES) <= covered


def test_dump_buffer_parses_all_parts() -> None:
    parts = [
        XfrmMessage(c.XFRM_MSG_NEWPOLICY, POLICY, [Attr(c.XFRMA_TMPL, [TMPL])], NLM_F_MULTI, 5)
    ] * 3
    buf = b"".join(build_message(m) for m in parts) + build_message(
        XfrmMessage(NLMSG_DONE, Done(0), [], NLM_F_MULTI, 5)
    )
    out = parse_messages(buf)
    assert [m.type for m in out] == [c.XFRM_MSG_NEWPOLICY] * 3 + [NLMSG_DONE]
    assert out[0].templates() == [TMPL]


def test_body_without_attributes_keeps_kernel_length() -> None:
    # The kernel's nlmsg_put(sizeof(struct xfrm_usersa_flush)) gives nlmsg_len 17.
    raw = build_message(XfrmMessage(c.XFRM_MSG_FLUSHSA, UsersaFlush(50)))
    assert struct.unpack_from("=I", raw)[0] == 17
    assert parse_message(raw).body == UsersaFlush(50)


def test_ipv6_selector_addresses() -> None:
    sel = Selector(daddr=xaddr("2001:db8:1::"), family=c.AF_INET6, prefixlen_d=48)
    raw = build_message(XfrmMessage(c.XFRM_MSG_GETPOLICY, UserpolicyId(sel, 0, 1)))
    body = parse_message(raw).body
    assert isinstance(body, UserpolicyId)
    assert addr_str(body.sel.daddr, body.sel.family) == "2001:db8:1::"
    assert family_of("2001:db8::1") == c.AF_INET6
    assert addr_str(xaddr("192.0.2.5"), c.AF_INET) == "192.0.2.5"


def test_network_order_fields() -> None:
    raw = build_message(
        XfrmMessage(c.XFRM_MSG_GETSA, UsersaId(xaddr("192.0.2.2"), 0x01020304, 2, 50))
    )
    assert raw[16 + 16 : 16 + 20] == b"\x01\x02\x03\x04"
    sel_raw = build_message(XfrmMessage(c.XFRM_MSG_GETPOLICY, UserpolicyId(SEL, 0, 1)))
    assert sel_raw[16 + 32 : 16 + 34] == (443).to_bytes(2, "big")


def test_unknown_attribute_kept_raw_with_flags() -> None:
    extra = build_attr(200, b"\x01\x02\x03") + build_attr(
        c.XFRMA_IF_ID | NLA_F_NESTED, struct.pack("=I", 4)
    )
    raw = build_nlmsg(
        c.XFRM_MSG_GETSA,
        0,
        0,
        0,
        build_message(XfrmMessage(c.XFRM_MSG_GETSA, SA_ID))[16:40] + extra,
    )
    msg = parse_message(raw)
    assert msg.attrs == [Attr(200, b"\x01\x02\x03"), Attr(c.XFRMA_IF_ID, 4, NLA_F_NESTED)]
    assert build_message(msg) == raw


def test_duplicate_attribute_last_wins() -> None:
    msg = (
        XfrmMessage(c.XFRM_MSG_GETSA, SA_ID)
        .add(c.XFRMA_MARK, Mark(1, 1))
        .add(c.XFRMA_MARK, Mark(2, 2))
    )
    back = parse_message(build_message(msg))
    assert back.get(c.XFRMA_MARK) == Mark(2, 2)
    assert back.get_as(c.XFRMA_MARK, Mark) == Mark(2, 2)
    assert back.get_as(c.XFRMA_MARK, Algo) is None
    assert back.get(c.XFRMA_IF_ID) is None


def test_longer_fixed_attribute_accepted_like_the_kernel() -> None:
    payload = build_message(XfrmMessage(c.XFRM_MSG_GETSA, SA_ID))[16:40]
    raw = build_nlmsg(
        c.XFRM_MSG_GETSA, 0, 0, 0, payload + build_attr(c.XFRMA_MARK, struct.pack("=III", 1, 2, 3))
    )
    assert parse_message(raw).get(c.XFRMA_MARK) == Mark(1, 2)


def _with_attr(attr_type: int, data: bytes) -> bytes:
    body = build_message(XfrmMessage(c.XFRM_MSG_NEWSA, SA))[16:]
    return build_nlmsg(c.XFRM_MSG_NEWSA, 0, 0, 0, body + build_attr(attr_type, data))


@pytest.mark.parametrize(
    ("attr_type", "data", "code"),
    [
        (c.XFRMA_SA, bytes(100), errno.ERANGE),  # shorter than xfrm_usersa_info
        (c.XFRMA_MARK, bytes(4), errno.ERANGE),
        (c.XFRMA_IF_ID, bytes(2), errno.ERANGE),
        (c.XFRMA_ALG_CRYPT, bytes(60), errno.ERANGE),
        (c.XFRMA_ALG_AEAD, bytes(70), errno.ERANGE),
        (c.XFRMA_TMPL, bytes(10), errno.ERANGE),
        (c.XFRMA_TMPL, bytes(70), errno.EINVAL),  # partial second template
        # alg_key_len says 128 bits but only 8 key bytes follow (verify_one_alg).
        (
            c.XFRMA_ALG_CRYPT,
            b"cbc(aes)".ljust(64, b"\0") + struct.pack("=I", 128) + bytes(8),
            errno.EINVAL,
        ),
        (
            c.XFRMA_ALG_AEAD,
            b"x".ljust(64, b"\0") + struct.pack("=II", 160, 128) + bytes(19),
            errno.EINVAL,
        ),
        (
            c.XFRMA_ALG_AUTH_TRUNC,
            b"x".ljust(64, b"\0") + struct.pack("=II", 256, 128),
            errno.EINVAL,
        ),
        # bmp_len 129 words is above XFRMA_REPLAY_ESN_MAX / 32 (verify_replay).
        (c.XFRMA_REPLAY_ESN_VAL, struct.pack("=6I", 129, 0, 0, 0, 0, 0), errno.EINVAL),
        (c.XFRMA_REPLAY_ESN_VAL, struct.pack("=6I", 4, 0, 0, 0, 0, 0) + bytes(4), errno.EINVAL),
        # len must equal 8 + ctx_len (verify_sec_ctx_len).
        (c.XFRMA_SEC_CTX, struct.pack("=HHBBH", 12, 0, 1, 1, 5) + bytes(4), errno.EINVAL),
        (c.XFRMA_SEC_CTX, struct.pack("=HHBBH", 20, 0, 1, 1, 12) + bytes(4), errno.EINVAL),
    ],
)
def test_malformed_attributes_get_kernel_errno(attr_type: int, data: bytes, code: int) -> None:
    with pytest.raises(KeyApiError) as info:
        parse_message(_with_attr(attr_type, data))
    assert info.value.errno == code


def test_esn_head_alone_is_accepted() -> None:
    esn = parse_message(
        _with_attr(c.XFRMA_REPLAY_ESN_VAL, struct.pack("=6I", 4, 1, 2, 3, 4, 128))
    ).get(c.XFRMA_REPLAY_ESN_VAL)
    assert esn == ReplayStateEsn(4, 1, 2, 3, 4, 128, ())


@pytest.mark.parametrize(
    "raw",
    [
        build_nlmsg(c.XFRM_MSG_MAX + 1, 0, 0, 0, b""),  # type above XFRM_MSG_MAX
        build_nlmsg(c.XFRM_MSG_NEWSA, 0, 0, 0, bytes(223)),  # body shorter than usersa_info
        build_nlmsg(c.XFRM_MSG_GETSADINFO, 0, 0, 0, b"\0\0"),
        build_nlmsg(c.XFRM_MSG_GETSA, 0, 0, 0, bytes(24) + b"\x08\0"),  # truncated attribute
    ],
)
def test_malformed_messages_are_einval(raw: bytes) -> None:
    with pytest.raises(KeyApiError) as info:
        parse_message(raw)
    assert info.value.errno == errno.EINVAL


def test_parse_message_wants_exactly_one() -> None:
    one = build_message(XfrmMessage(c.XFRM_MSG_GETSA, SA_ID))
    with pytest.raises(KeyApiError):
        parse_message(one + one)
    with pytest.raises(KeyApiError):
        parse_message(b"")


@pytest.mark.parametrize(
    "msg",
    [
        XfrmMessage(c.XFRM_MSG_NEWSA, UsersaId()),  # wrong body struct
        XfrmMessage(c.XFRM_MSG_FLUSHPOLICY, UsersaFlush()),
        XfrmMessage(c.XFRM_MSG_GETSPDINFO, None),
        XfrmMessage(c.XFRM_MSG_MAX + 1, None),
        XfrmMessage(c.XFRM_MSG_GETSA, UsersaId(daddr=b"\xc0\0\x02\x01")),  # not 16 bytes
        XfrmMessage(c.XFRM_MSG_GETSA, UsersaId(spi=1 << 32)),
        XfrmMessage(c.XFRM_MSG_GETSA, UsersaId(family=-1)),
        XfrmMessage(c.XFRM_MSG_NEWSA, SA, [Attr(c.XFRMA_ALG_CRYPT, Algo("x" * 64, b""))]),
        XfrmMessage(
            c.XFRM_MSG_NEWSA, SA, [Attr(c.XFRMA_ALG_CRYPT, Algo("cbc(aes)", bytes(16), 64))]
        ),
        XfrmMessage(c.XFRM_MSG_NEWSA, SA, [Attr(c.XFRMA_ALG_CRYPT, AlgoAead("x", b""))]),
        XfrmMessage(c.XFRM_MSG_NEWSA, SA, [Attr(c.XFRMA_MARK, 5)]),
        XfrmMessage(c.XFRM_MSG_NEWSA, SA, [Attr(c.XFRMA_TMPL, [])]),
        XfrmMessage(c.XFRM_MSG_NEWSA, SA, [Attr(c.XFRMA_IF_ID, -1)]),
        XfrmMessage(
            c.XFRM_MSG_NEWSA, SA, [Attr(c.XFRMA_REPLAY_ESN_VAL, ReplayStateEsn(2, bmp=(1,)))]
        ),
        XfrmMessage(c.XFRM_MSG_NEWSA, SA, [Attr(250, 7)]),  # unknown attributes need bytes
        XfrmMessage(NLMSG_ERROR, Done()),
    ],
)
def test_impossible_messages_are_config_errors(msg: XfrmMessage) -> None:
    with pytest.raises(ConfigError):
        build_message(msg)


def test_keys_stay_out_of_repr() -> None:
    key = bytes.fromhex("00112233445566778899aabbccddeeff")
    for alg in (
        Algo("cbc(aes)", key),
        AlgoAuth("hmac(sha256)", key, 128),
        AlgoAead("rfc4106(gcm(aes))", key),
    ):
        assert key.hex() not in repr(alg)
        assert str(list(key)) not in repr(alg)
        assert "128" in repr(alg)


def test_bad_address_text_is_config_error() -> None:
    with pytest.raises(ConfigError):
        xaddr("192.0.2.300")
    with pytest.raises(ConfigError):
        addr_str(bytes(16), 0)

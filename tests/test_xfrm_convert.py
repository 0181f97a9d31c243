"""xfrm structs <-> SASpec/Policy/Template/Lifetime: round trips, port/mask ranges, refusals."""

from __future__ import annotations

import errno
import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyipsec.engine.lifetime import Lifetime
from pyipsec.engine.sad import SASpec
from pyipsec.engine.spd import Policy, Selector, Template
from pyipsec.errors import KeyApiError
from pyipsec.keyapi import xfrm_const as c
from pyipsec.keyapi.xfrm import XfrmMessage
from pyipsec.keyapi.xfrm_convert import (
    lifetimes_from_xfrm,
    lifetimes_to_xfrm,
    mask_to_range,
    policy_from_xfrm,
    policy_to_xfrm,
    range_to_masks,
    sa_message,
    selector_from_xfrm,
    selector_to_xfrm,
    spec_from_xfrm,
    template_from_xfrm,
    template_to_xfrm,
)
from pyipsec.keyapi.xfrm_layout import xaddr
from pyipsec.keyapi.xfrm_structs import (
    Algo,
    AlgoAead,
    AlgoAuth,
    EncapTmpl,
    ReplayStateEsn,
    UserpolicyInfo,
    UsersaInfo,
    UserTmpl,
    XfrmId,
)
from pyipsec.keyapi.xfrm_structs import Selector as XSelector


def _matches(port: int, value: int, mask: int) -> bool:
    # xfrm_selector_match's port test.
    return (port ^ value) & mask == 0


# -- ports --------------------------------------------------------------------------------


def test_mask_to_range_examples() -> None:
    assert mask_to_range(0, 0) is None
    assert mask_to_range(443, 0xFFFF) == (443, 443)
    assert mask_to_range(1024, 0xFC00) == (1024, 2047)
    # Bits of the port outside the mask are ignored by the kernel's match, and by us.
    assert mask_to_range(1030, 0xFC00) == (1024, 2047)


def test_mask_to_range_refuses_holey_masks() -> None:
    with pytest.raises(KeyApiError) as exc:
        mask_to_range(0x0100, 0x0F0F)
    assert exc.value.errno == errno.EINVAL
    assert "not a prefix mask" in str(exc.value)


@given(st.integers(0, 65535), st.integers(0, 16))
def test_mask_to_range_matches_exactly_the_kernel_ports(port: int, bits: int) -> None:
    mask = (0xFFFF << (16 - bits)) & 0xFFFF
    rng = mask_to_range(port, mask)
    lo, hi = rng if rng is not None else (0, 65535)
    for probe in {0, lo - 1, lo, hi, hi + 1, 65535, port}:
        if 0 <= probe <= 65535:
            assert (lo <= probe <= hi) == _matches(probe, port, mask)


@given(st.integers(0, 65535), st.integers(0, 65535))
def test_range_to_masks_covers_the_range_exactly(a: int, b: int) -> None:
    lo, hi = min(a, b), max(a, b)
    blocks = range_to_masks(lo, hi)
    covered = 0
    previous_end = lo - 1
    for port, mask in blocks:
        block = mask_to_range(port, mask)
        start, end = block if block is not None else (0, 65535)
        assert start == previous_end + 1  # contiguous, no overlap, in order
        previous_end = end
        covered += end - start + 1
    assert previous_end == hi
    assert covered == hi - lo + 1
    # The greedy split is minimal: at most two blocks per bit of the range size.
    assert len(blocks) <= 2 * 16


def test_range_to_masks_examples() -> None:
    assert range_to_masks(0, 65535) == [(0, 0)]
    assert range_to_masks(80, 80) == [(80, 0xFFFF)]
    assert range_to_masks(1024, 2047) == [(1024, 0xFC00)]
    assert range_to_masks(1000, 1003) == [(1000, 0xFFFC)]
    assert len(range_to_masks(1, 65534)) == 30


# -- selectors ------------------------------------------------------------------------------


def _xsel(**kw: object) -> XSelector:
    base: dict[str, object] = {
        "daddr": xaddr("203.0.113.0"),
        "saddr": xaddr("198.51.100.0"),
        "family": c.AF_INET,
        "prefixlen_d": 24,
        "prefixlen_s": 24,
    }
    base.update(kw)
    return XSelector(**base)  # type: ignore[arg-type]


def test_selector_round_trip_with_ports() -> None:
    xs = _xsel(proto=6, sport=1024, sport_mask=0xFC00, dport=443, dport_mask=0xFFFF)
    sel = selector_from_xfrm(xs)
    assert sel.src == ipaddress.ip_network("198.51.100.0/24")
    assert sel.sport == (1024, 2047) and sel.dport == (443, 443)
    assert selector_to_xfrm(sel) == xs


def test_selector_host_bits_are_masked_and_v6_works() -> None:
    xs = XSelector(
        daddr=xaddr("2001:db8:2::1"),
        saddr=xaddr("2001:db8:1::1"),
        family=c.AF_INET6,
        prefixlen_d=48,
        prefixlen_s=128,
    )
    sel = selector_from_xfrm(xs)
    assert sel.dst == ipaddress.ip_network("2001:db8:2::/48")
    assert sel.src == ipaddress.ip_network("2001:db8:1::1/128")


def test_selector_ports_with_proto_any_round_trip() -> None:
    # The kernel keeps ports whatever sel.proto is (0 = any): "ip xfrm policy add src
    # 192.0.2.41 dst 192.0.2.33 sport 21 dir out" with no proto. So do we, both ways.
    xs = _xsel(proto=0, sport=21, sport_mask=0xFFFF)
    sel = selector_from_xfrm(xs)
    assert sel.proto is None and sel.sport == (21, 21) and sel.dport is None
    assert selector_to_xfrm(sel) == xs
    zero = _xsel(proto=0, dport=0, dport_mask=0xFFF0)  # ports 0-15, so portless flows too
    assert selector_from_xfrm(zero).dport == (0, 15)
    assert selector_to_xfrm(selector_from_xfrm(zero)) == zero
    esp = _xsel(proto=50, sport=500, sport_mask=0xFFFF)
    assert selector_to_xfrm(selector_from_xfrm(esp)) == esp


def test_selector_icmp_type_code() -> None:
    sel = selector_from_xfrm(_xsel(proto=1, sport=8, sport_mask=0xFFFF))
    assert sel.sport == (8, 8) and sel.dport is None
    assert selector_to_xfrm(sel).sport == 8


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"family": 7}, errno.EINVAL),
        ({"prefixlen_d": 33}, errno.EINVAL),
        ({"proto": 47, "dport": 5, "dport_mask": 0xFFFF}, errno.EINVAL),
        ({"proto": 135, "sport": 1, "sport_mask": 0xFFFF}, errno.EINVAL),
        ({"proto": 0, "sport": 1, "sport_mask": 0x0F0F}, errno.EINVAL),
        ({"ifindex": 3}, errno.EOPNOTSUPP),
        ({"proto": 6, "dport": 5, "dport_mask": 0x00FF}, errno.EINVAL),
    ],
)
def test_selector_refusals(fields: dict[str, int], code: int) -> None:
    with pytest.raises(KeyApiError) as exc:
        selector_from_xfrm(_xsel(**fields))
    assert exc.value.errno == code


def test_unaligned_range_splits_into_several_policies() -> None:
    pol = Policy(
        "out",
        Selector("198.51.100.0/24", "203.0.113.0/24", 17, None, (1000, 1003)),
        "bypass",
        index=9,
    )
    assert len(policy_to_xfrm(pol)) == 1
    wide = Policy("out", Selector("198.51.100.0/24", None, 17, (5, 9), (1, 2)), "bypass")
    parts = policy_to_xfrm(wide)
    # 5-9 is 5/0xffff + 6-7 + 8-9: three sport blocks; 1-2 is 1 + 2: two dport blocks.
    assert len(parts) == 6
    back = {(selector_from_xfrm(i.sel).sport, selector_from_xfrm(i.sel).dport) for i, _ in parts}
    assert back == {(s, d) for s in ((5, 5), (6, 7), (8, 9)) for d in ((1, 1), (2, 2))}
    with pytest.raises(KeyApiError) as exc:
        selector_to_xfrm(wide.selector)
    assert "need 6 xfrm selectors" in str(exc.value)


# -- templates and policies -----------------------------------------------------------------


def test_template_round_trip_and_levels() -> None:
    t = Template("esp", "tunnel", "192.0.2.1", "192.0.2.2", reqid=7, level="use", spi=0x300)
    ut = template_to_xfrm(t, c.AF_INET)
    assert ut.optional == 1 and ut.id.spi == 0x300 and ut.mode == c.XFRM_MODE_TUNNEL
    assert template_from_xfrm(ut, c.AF_INET) == t
    uniq = Template("esp", "transport", level="unique")
    assert template_from_xfrm(template_to_xfrm(uniq, c.AF_INET), c.AF_INET) == uniq


def test_transport_template_addresses_are_dropped() -> None:
    ut = UserTmpl(id=XfrmId(xaddr("192.0.2.9"), 0, c.IPPROTO_ESP), family=c.AF_INET)
    t = template_from_xfrm(ut, c.AF_INET)
    assert t.mode == "transport" and t.src is None and t.dst is None


@pytest.mark.parametrize(
    ("tmpl", "code"),
    [
        (UserTmpl(id=XfrmId(proto=6)), errno.EINVAL),
        (UserTmpl(id=XfrmId(proto=50), mode=4), errno.EOPNOTSUPP),  # BEET
        (UserTmpl(id=XfrmId(proto=50), mode=9), errno.EINVAL),
        (UserTmpl(id=XfrmId(proto=50), optional=2), errno.EINVAL),
        (UserTmpl(id=XfrmId(proto=50), family=c.AF_INET6), errno.EINVAL),
    ],
)
def test_template_refusals(tmpl: UserTmpl, code: int) -> None:
    with pytest.raises(KeyApiError) as exc:
        template_from_xfrm(tmpl, c.AF_INET)
    assert exc.value.errno == code


def test_policy_actions() -> None:
    info = UserpolicyInfo(sel=_xsel(), dir=c.XFRM_POLICY_OUT, priority=3)
    tmpl = template_to_xfrm(Template("esp", "tunnel", "192.0.2.1", "192.0.2.2"), c.AF_INET)
    assert policy_from_xfrm(info, [tmpl]).action == "protect"
    assert policy_from_xfrm(info, []).action == "bypass"
    info.action = c.XFRM_POLICY_BLOCK
    blocked = policy_from_xfrm(info, [tmpl])
    assert blocked.action == "discard" and blocked.templates == ()


def test_policy_round_trip() -> None:
    pol = Policy(
        "fwd",
        Selector("198.51.100.0/24", "203.0.113.0/24", 6, (1024, 2047), 443),
        "protect",
        priority=42,
        templates=(Template("esp", "tunnel", "192.0.2.1", "192.0.2.2", reqid=3),),
        index=0x22,
    )
    [(info, tmpls)] = policy_to_xfrm(pol)
    assert policy_from_xfrm(info, tmpls) == pol


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"dir": 3}, "direction"),
        ({"action": 2}, "action"),
        ({"share": 4}, "share"),
        ({"index": 0x10}, "index"),  # low bits 0 (in), but dir is out
    ],
)
def test_verify_newpolicy_info(fields: dict[str, int], message: str) -> None:
    info = UserpolicyInfo(sel=_xsel(), dir=c.XFRM_POLICY_OUT)
    for name, value in fields.items():
        setattr(info, name, value)
    with pytest.raises(KeyApiError) as exc:
        policy_from_xfrm(info, [])
    assert exc.value.errno == errno.EINVAL and message in str(exc.value)


# -- lifetimes and SAs ----------------------------------------------------------------------


def test_lifetimes_round_trip() -> None:
    soft = Lifetime(bytes=1000, add_time=30)
    hard = Lifetime(packets=5, add_time=60, use_time=10)
    cfg = lifetimes_to_xfrm(soft, hard)
    assert cfg.hard_byte_limit == c.XFRM_INF and cfg.soft_use_expires_seconds == 0
    assert lifetimes_from_xfrm(cfg) == (soft, hard)
    # A fraction of a second rounds up: 0 would mean "never".
    assert lifetimes_to_xfrm(Lifetime(add_time=0.2), Lifetime()).soft_add_expires_seconds == 1


def _spec(**kw: object) -> SASpec:
    base: dict[str, object] = {
        "spi": 0x1234,
        "src": "192.0.2.1",
        "dst": "192.0.2.2",
        "enc": "aes256gcm16",
        "enc_key": bytes(range(36)),
        "reqid": 4,
    }
    base.update(kw)
    return SASpec(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "spec",
    [
        _spec(),
        _spec(enc="aes128", enc_key=bytes(16), integ="sha256", integ_key=bytes(32)),
        _spec(enc="chacha20poly1305", enc_key=bytes(36), esn=True, replay_window=1024),
        _spec(encap=(4500, 4500), mode="transport", tfc_pad=100, replay_window=64),
        _spec(soft=Lifetime(bytes=10**6), hard=Lifetime(add_time=3600)),
        _spec(dst="2001:db8::2", src="2001:db8::1", replay_window=0),
    ],
)
def test_spec_round_trip(spec: SASpec) -> None:
    msg = sa_message(spec)
    assert isinstance(msg.body, UsersaInfo)
    assert spec_from_xfrm(msg.body, msg) == spec


def test_spec_message_uses_kernel_names() -> None:
    msg = sa_message(_spec(enc="aes128", enc_key=bytes(16), integ="sha1", integ_key=bytes(20)))
    crypt = msg.get_as(c.XFRMA_ALG_CRYPT, Algo)
    auth = msg.get_as(c.XFRMA_ALG_AUTH_TRUNC, AlgoAuth)
    assert crypt is not None and crypt.name == "cbc(aes)" and crypt.key_len == 128
    assert auth is not None and auth.name == "hmac(sha1)" and auth.trunc_len == 96


def _sa(*attrs: tuple[int, object], **info: object) -> tuple[UsersaInfo, XfrmMessage]:
    body = UsersaInfo(
        id=XfrmId(xaddr("192.0.2.2"), 0x1000, c.IPPROTO_ESP),
        saddr=xaddr("192.0.2.1"),
        family=c.AF_INET,
        mode=c.XFRM_MODE_TUNNEL,
    )
    for name, value in info.items():
        setattr(body, name, value)
    msg = XfrmMessage(c.XFRM_MSG_NEWSA, body)
    for attr_type, value in attrs:
        msg.add(attr_type, value)  # type: ignore[arg-type]
    return body, msg


GCM = (c.XFRMA_ALG_AEAD, AlgoAead("rfc4106(gcm(aes))", bytes(20), 128))
CBC = (c.XFRMA_ALG_CRYPT, Algo("cbc(aes)", bytes(16)))


def test_plain_auth_uses_the_kernel_default_truncation() -> None:
    body, msg = _sa(CBC, (c.XFRMA_ALG_AUTH, Algo("hmac(sha1)", bytes(20))))
    assert spec_from_xfrm(body, msg).integ == "sha1"
    body, msg = _sa(CBC, (c.XFRMA_ALG_AUTH, Algo("hmac(sha256)", bytes(32))))
    with pytest.raises(KeyApiError) as exc:
        spec_from_xfrm(body, msg)
    assert "96 bits" in str(exc.value)


@pytest.mark.parametrize(
    ("attrs", "info", "code", "words"),
    [
        ((), {}, errno.EINVAL, "needs enc, auth or aead"),
        ((GCM, CBC), {}, errno.EINVAL, "aead cannot be combined"),
        ((GCM, (c.XFRMA_ALG_COMP, Algo("deflate"))), {}, errno.EINVAL, "compression"),
        ((GCM,), {"family": 3}, errno.EINVAL, "family"),
        ((GCM,), {"mode": 7}, errno.EINVAL, "mode"),
        ((GCM,), {"mode": c.XFRM_MODE_BEET}, errno.EOPNOTSUPP, "mode"),
        ((GCM,), {"flags": c.XFRM_STATE_ESN}, errno.EINVAL, "ESN"),
        (
            (GCM, (c.XFRMA_REPLAY_ESN_VAL, ReplayStateEsn(replay_window=32, bmp_len=1))),
            {"replay_window": 32},
            errno.EINVAL,
            "replay-window must be 0",
        ),
        (((c.XFRMA_ALG_AUTH, Algo("hmac(sha1)", bytes(20))),), {}, errno.EINVAL, "encryption"),
        (
            ((c.XFRMA_ALG_AEAD, AlgoAead("rfc4309(ccm(aes))", bytes(19), 128)),),
            {},
            errno.ENOSYS,
            "unknown",
        ),
        (
            ((c.XFRMA_ALG_AEAD, AlgoAead("rfc4106(gcm(aes))", bytes(20), 64)),),
            {},
            errno.EINVAL,
            "ICV",
        ),
        (((c.XFRMA_ALG_CRYPT, Algo("cbc(aes)", bytes(15))),), {}, errno.EINVAL, "120-bit"),
        (
            (GCM, (c.XFRMA_ENCAP, EncapTmpl(1, 4500, 4500))),
            {},
            errno.EOPNOTSUPP,
            "encapsulation",
        ),
        ((GCM,), {"id": XfrmId(xaddr("192.0.2.2"), 0x1000, 51)}, errno.EINVAL, "AH SA"),
        (
            ((c.XFRMA_ALG_AUTH, Algo("hmac(sha1)", bytes(20))),),
            {"id": XfrmId(xaddr("192.0.2.2"), 0x1000, 51)},
            errno.EPROTONOSUPPORT,
            "only ESP",
        ),
    ],
)
def test_verify_newsa_info(
    attrs: tuple[tuple[int, object], ...], info: dict[str, object], code: int, words: str
) -> None:
    body, msg = _sa(*attrs, **info)
    with pytest.raises(KeyApiError) as exc:
        spec_from_xfrm(body, msg)
    assert exc.value.errno == code
    assert words in str(exc.value)
    assert "00000000000000" not in str(exc.value)  # no key bytes in the message

"""Golden bytes: an independent encoder (ctypes Structures with the C compiler's own
alignment rules, mirroring <linux/xfrm.h> and <linux/netlink.h>) against our codec.

ctypes lays the structs out natively, so our explicit padding tables are checked against
the platform ABI rather than against themselves. Sizes are those of x86_64 (verified with
gcc and sizeof on <linux/xfrm.h> while writing the codec).
"""

from __future__ import annotations

import ctypes
import socket
from ctypes import c_int, c_uint8, c_uint16, c_uint32, c_uint64, sizeof
from typing import Any

import pytest

from pyipsec.keyapi import xfrm_const as c
from pyipsec.keyapi import xfrm_structs as s
from pyipsec.keyapi.netlink import NLM_F_ACK, NLM_F_REQUEST
from pyipsec.keyapi.xfrm import Attr, XfrmMessage, build_message, parse_message
from pyipsec.keyapi.xfrm_layout import xaddr


class XfrmAddress(ctypes.Union):
    _fields_ = [("a4", c_uint32), ("a6", c_uint32 * 4), ("raw", c_uint8 * 16)]


class Selector(ctypes.Structure):
    _fields_ = [
        ("daddr", XfrmAddress),
        ("saddr", XfrmAddress),
        ("dport", c_uint16),
        ("dport_mask", c_uint16),
        ("sport", c_uint16),
        ("sport_mask", c_uint16),
        ("family", c_uint16),
        ("prefixlen_d", c_uint8),
        ("prefixlen_s", c_uint8),
        ("proto", c_uint8),
        ("ifindex", c_int),
        ("user", c_uint32),
    ]


class XfrmIdC(ctypes.Structure):
    _fields_ = [("daddr", XfrmAddress), ("spi", c_uint32), ("proto", c_uint8)]


class LifetimeCfgC(ctypes.Structure):
    _fields_ = [(f"f{i}", c_uint64) for i in range(8)]


class LifetimeCurC(ctypes.Structure):
    _fields_ = [
        ("bytes", c_uint64),
        ("packets", c_uint64),
        ("add_time", c_uint64),
        ("use_time", c_uint64),
    ]


class StatsC(ctypes.Structure):
    _fields_ = [("replay_window", c_uint32), ("replay", c_uint32), ("integrity_failed", c_uint32)]


class UsersaInfoC(ctypes.Structure):
    _fields_ = [
        ("sel", Selector),
        ("id", XfrmIdC),
        ("saddr", XfrmAddress),
        ("lft", LifetimeCfgC),
        ("curlft", LifetimeCurC),
        ("stats", StatsC),
        ("seq", c_uint32),
        ("reqid", c_uint32),
        ("family", c_uint16),
        ("mode", c_uint8),
        ("replay_window", c_uint8),
        ("flags", c_uint8),
    ]


class UsersaIdC(ctypes.Structure):
    _fields_ = [("daddr", XfrmAddress), ("spi", c_uint32), ("family", c_uint16), ("proto", c_uint8)]


class UserpolicyInfoC(ctypes.Structure):
    _fields_ = [
        ("sel", Selector),
        ("lft", LifetimeCfgC),
        ("curlft", LifetimeCurC),
        ("priority", c_uint32),
        ("index", c_uint32),
        ("dir", c_uint8),
        ("action", c_uint8),
        ("flags", c_uint8),
        ("share", c_uint8),
    ]


class UserpolicyIdC(ctypes.Structure):
    _fields_ = [("sel", Selector), ("index", c_uint32), ("dir", c_uint8)]


class UserTmplC(ctypes.Structure):
    _fields_ = [
        ("id", XfrmIdC),
        ("family", c_uint16),
        ("saddr", XfrmAddress),
        ("reqid", c_uint32),
        ("mode", c_uint8),
        ("share", c_uint8),
        ("optional", c_uint8),
        ("aalgos", c_uint32),
        ("ealgos", c_uint32),
        ("calgos", c_uint32),
    ]


class UserspiInfoC(ctypes.Structure):
    _fields_ = [("info", UsersaInfoC), ("min", c_uint32), ("max", c_uint32)]


class UserAcquireC(ctypes.Structure):
    _fields_ = [
        ("id", XfrmIdC),
        ("saddr", XfrmAddress),
        ("sel", Selector),
        ("policy", UserpolicyInfoC),
        ("aalgos", c_uint32),
        ("ealgos", c_uint32),
        ("calgos", c_uint32),
        ("seq", c_uint32),
    ]


class UserExpireC(ctypes.Structure):
    _fields_ = [("state", UsersaInfoC), ("hard", c_uint8)]


class UserPolexpireC(ctypes.Structure):
    _fields_ = [("pol", UserpolicyInfoC), ("hard", c_uint8)]


class AeventIdC(ctypes.Structure):
    _fields_ = [
        ("sa_id", UsersaIdC),
        ("saddr", XfrmAddress),
        ("flags", c_uint32),
        ("reqid", c_uint32),
    ]


class UserReportC(ctypes.Structure):
    _fields_ = [("proto", c_uint8), ("sel", Selector)]


class UserMappingC(ctypes.Structure):
    _fields_ = [
        ("id", UsersaIdC),
        ("reqid", c_uint32),
        ("old_saddr", XfrmAddress),
        ("new_saddr", XfrmAddress),
        ("old_sport", c_uint16),
        ("new_sport", c_uint16),
    ]


class EncapTmplC(ctypes.Structure):
    _fields_ = [
        ("encap_type", c_uint16),
        ("encap_sport", c_uint16),
        ("encap_dport", c_uint16),
        ("encap_oa", XfrmAddress),
    ]


class UserKmaddressC(ctypes.Structure):
    _fields_ = [
        ("local", XfrmAddress),
        ("remote", XfrmAddress),
        ("reserved", c_uint32),
        ("family", c_uint16),
    ]


class UserMigrateC(ctypes.Structure):
    _fields_ = [
        ("old_daddr", XfrmAddress),
        ("old_saddr", XfrmAddress),
        ("new_daddr", XfrmAddress),
        ("new_saddr", XfrmAddress),
        ("proto", c_uint8),
        ("mode", c_uint8),
        ("reserved", c_uint16),
        ("reqid", c_uint32),
        ("old_family", c_uint16),
        ("new_family", c_uint16),
    ]


class UserOffloadC(ctypes.Structure):
    _fields_ = [("ifindex", c_int), ("flags", c_uint8)]


class MarkC(ctypes.Structure):
    _fields_ = [("v", c_uint32), ("m", c_uint32)]


class ReplayStateC(ctypes.Structure):
    _fields_ = [("oseq", c_uint32), ("seq", c_uint32), ("bitmap", c_uint32)]


class ReplayEsnC(ctypes.Structure):
    _fields_ = [
        (n, c_uint32) for n in ("bmp_len", "oseq", "seq", "oseq_hi", "seq_hi", "replay_window")
    ]


class AlgoC(ctypes.Structure):
    _fields_ = [("alg_name", ctypes.c_char * 64), ("alg_key_len", ctypes.c_uint)]


class AlgoAuthC(ctypes.Structure):
    _fields_ = [
        ("alg_name", ctypes.c_char * 64),
        ("alg_key_len", ctypes.c_uint),
        ("alg_trunc_len", ctypes.c_uint),
    ]


class AlgoAeadC(ctypes.Structure):
    _fields_ = [
        ("alg_name", ctypes.c_char * 64),
        ("alg_key_len", ctypes.c_uint),
        ("alg_icv_len", ctypes.c_uint),
    ]


class UserSecCtxC(ctypes.Structure):
    _fields_ = [
        ("len", c_uint16),
        ("exttype", c_uint16),
        ("ctx_alg", c_uint8),
        ("ctx_doi", c_uint8),
        ("ctx_len", c_uint16),
    ]


class UserpolicyTypeC(ctypes.Structure):
    _fields_ = [("type", c_uint8), ("reserved1", c_uint16), ("reserved2", c_uint8)]


class UsersaFlushC(ctypes.Structure):
    _fields_ = [("proto", c_uint8)]


class UserpolicyDefaultC(ctypes.Structure):
    _fields_ = [("in_", c_uint8), ("fwd", c_uint8), ("out", c_uint8)]


class NlMsgHdrC(ctypes.Structure):
    _fields_ = [
        ("len", c_uint32),
        ("type", c_uint16),
        ("flags", c_uint16),
        ("seq", c_uint32),
        ("pid", c_uint32),
    ]


class NlAttrC(ctypes.Structure):
    _fields_ = [("len", c_uint16), ("type", c_uint16)]


PAIRS: list[tuple[type[ctypes.Structure], Any, int]] = [
    (Selector, s.SELECTOR, 56),
    (XfrmIdC, s.XFRM_ID, 24),
    (LifetimeCfgC, s.LIFETIME_CFG, 64),
    (LifetimeCurC, s.LIFETIME_CUR, 32),
    (StatsC, s.STATS, 12),
    (UsersaInfoC, s.USERSA_INFO, 224),
    (UsersaIdC, s.USERSA_ID, 24),
    (AeventIdC, s.AEVENT_ID, 48),
    (UserspiInfoC, s.USERSPI_INFO, 232),
    (UserpolicyInfoC, s.USERPOLICY_INFO, 168),
    (UserpolicyIdC, s.USERPOLICY_ID, 64),
    (UserTmplC, s.USER_TMPL, 64),
    (UserAcquireC, s.USER_ACQUIRE, 280),
    (UserExpireC, s.USER_EXPIRE, 232),
    (UserPolexpireC, s.USER_POLEXPIRE, 176),
    (UsersaFlushC, s.USERSA_FLUSH, 1),
    (UserReportC, s.USER_REPORT, 60),
    (UserKmaddressC, s.USER_KMADDRESS, 40),
    (UserMigrateC, s.USER_MIGRATE, 76),
    (UserMappingC, s.USER_MAPPING, 64),
    (UserOffloadC, s.USER_OFFLOAD, 8),
    (EncapTmplC, s.ENCAP_TMPL, 24),
    (MarkC, s.MARK, 8),
    (ReplayStateC, s.REPLAY_STATE, 12),
    (ReplayEsnC, s.REPLAY_ESN_HEAD, 24),
    (AlgoC, s.ALGO_HEAD, 68),
    (AlgoAuthC, s.ALGO_AUTH_HEAD, 72),
    (AlgoAeadC, s.ALGO_AEAD_HEAD, 72),
    (UserSecCtxC, s.SEC_CTX_HEAD, 8),
    (UserpolicyTypeC, s.USERPOLICY_TYPE, 6),
    (UserpolicyDefaultC, s.USERPOLICY_DEFAULT, 3),
]


@pytest.mark.skipif(ctypes.sizeof(ctypes.c_void_p) != 8, reason="sizes are those of LP64 Linux")
@pytest.mark.parametrize(("ctype", "layout", "size"), PAIRS, ids=lambda p: getattr(p, "c_name", ""))
def test_struct_sizes(ctype: type[ctypes.Structure], layout: Any, size: int) -> None:
    assert sizeof(ctype) == size
    assert layout.size == size


# -- an independent message encoder -------------------------------------------------------


def _align(n: int) -> int:
    return (n + 3) & ~3


def c_addr(text: str | None) -> XfrmAddress:
    a = XfrmAddress()
    ctypes.memmove(a.raw, xaddr(text), 16)
    return a


def c_msg(
    msg_type: int, flags: int, seq: int, pid: int, body: bytes, attrs: list[tuple[int, bytes]]
) -> bytes:
    payload = body
    if attrs:
        payload += bytes(_align(len(body)) - len(body))
        for attr_type, data in attrs:
            hdr = NlAttrC(sizeof(NlAttrC) + len(data), attr_type)
            payload += bytes(hdr) + data + bytes(_align(len(data)) - len(data))
    hdr = NlMsgHdrC(sizeof(NlMsgHdrC) + len(payload), msg_type, flags, seq, pid)
    raw = bytes(hdr) + payload
    return raw + bytes(_align(len(raw)) - len(raw))


def c_selector() -> Selector:
    sel = Selector()
    sel.daddr = c_addr("203.0.113.0")
    sel.saddr = c_addr("198.51.100.0")
    sel.dport = socket.htons(443)
    sel.dport_mask = 0xFFFF
    sel.sport = socket.htons(1024)
    sel.sport_mask = socket.htons(0xFC00)
    sel.family = socket.AF_INET
    sel.prefixlen_d = 24
    sel.prefixlen_s = 25
    sel.proto = 6
    sel.ifindex = -3
    sel.user = 1000
    return sel


def py_selector() -> s.Selector:
    return s.Selector(
        daddr=xaddr("203.0.113.0"),
        saddr=xaddr("198.51.100.0"),
        dport=443,
        dport_mask=0xFFFF,
        sport=1024,
        sport_mask=0xFC00,
        family=socket.AF_INET,
        prefixlen_d=24,
        prefixlen_s=25,
        proto=6,
        ifindex=-3,
        user=1000,
    )


def c_lifetimes(info: Any) -> None:
    for i in range(8):
        setattr(info.lft, f"f{i}", (1 << 64) - 1 - i if i < 4 else 3600 + i)
    info.curlft.bytes, info.curlft.packets, info.curlft.add_time, info.curlft.use_time = 1, 2, 3, 4


def py_lifetimes() -> tuple[s.LifetimeCfg, s.LifetimeCur]:
    lft = s.LifetimeCfg(*[(1 << 64) - 1 - i if i < 4 else 3600 + i for i in range(8)])
    return lft, s.LifetimeCur(1, 2, 3, 4)


def key(n: int) -> bytes:
    return bytes((7 * i + 1) & 0xFF for i in range(n))


def test_newsa_with_aead_matches_ctypes() -> None:
    info = UsersaInfoC()
    info.sel = c_selector()
    info.id.daddr = c_addr("192.0.2.2")
    info.id.spi = socket.htonl(0xC0DE0001)
    info.id.proto = 50
    info.saddr = c_addr("192.0.2.1")
    c_lifetimes(info)
    info.stats.replay_window, info.stats.replay, info.stats.integrity_failed = 32, 5, 6
    info.seq, info.reqid, info.family, info.mode = 77, 9, socket.AF_INET, 1
    info.replay_window, info.flags = 0, c.XFRM_STATE_ESN | c.XFRM_STATE_NOECN
    aead = AlgoAeadC(b"rfc4106(gcm(aes))", 160, 128)
    esn = ReplayEsnC(2, 10, 11, 0, 1, 64)
    bmp = (c_uint32 * 2)(0xF0F0F0F0, 1)
    encap = EncapTmplC(2, socket.htons(4500), socket.htons(4501), c_addr("192.0.2.99"))
    golden = c_msg(
        c.XFRM_MSG_NEWSA,
        NLM_F_REQUEST | NLM_F_ACK,
        42,
        0,
        bytes(info),
        [
            (c.XFRMA_ALG_AEAD, bytes(aead) + key(20)),
            (c.XFRMA_REPLAY_ESN_VAL, bytes(esn) + bytes(bmp)),
            (c.XFRMA_ENCAP, bytes(encap)),
            (c.XFRMA_MARK, bytes(MarkC(0x42, 0xFF))),
            (c.XFRMA_IF_ID, bytes(c_uint32(12))),
        ],
    )
    lft, cur = py_lifetimes()
    ours = XfrmMessage(
        c.XFRM_MSG_NEWSA,
        s.UsersaInfo(
            sel=py_selector(),
            id=s.XfrmId(xaddr("192.0.2.2"), 0xC0DE0001, 50),
            saddr=xaddr("192.0.2.1"),
            lft=lft,
            curlft=cur,
            stats=s.Stats(32, 5, 6),
            seq=77,
            reqid=9,
            family=socket.AF_INET,
            mode=1,
            replay_window=0,
            flags=c.XFRM_STATE_ESN | c.XFRM_STATE_NOECN,
        ),
        [
            Attr(c.XFRMA_ALG_AEAD, s.AlgoAead("rfc4106(gcm(aes))", key(20), 128)),
            Attr(c.XFRMA_REPLAY_ESN_VAL, s.ReplayStateEsn(2, 10, 11, 0, 1, 64, (0xF0F0F0F0, 1))),
            Attr(c.XFRMA_ENCAP, s.EncapTmpl(2, 4500, 4501, xaddr("192.0.2.99"))),
            Attr(c.XFRMA_MARK, s.Mark(0x42, 0xFF)),
            Attr(c.XFRMA_IF_ID, 12),
        ],
        NLM_F_REQUEST | NLM_F_ACK,
        42,
        0,
    )
    assert build_message(ours) == golden
    assert parse_message(golden) == ours


def test_newsa_with_cbc_hmac_matches_ctypes() -> None:
    info = UsersaInfoC()
    info.id.daddr = c_addr("2001:db8::2")
    info.id.spi = socket.htonl(0x1234)
    info.id.proto = 50
    info.saddr = c_addr("2001:db8::1")
    info.family, info.mode, info.replay_window = socket.AF_INET6, 0, 32
    crypt = AlgoC(b"cbc(aes)", 256)
    auth = AlgoAuthC(b"hmac(sha256)", 256, 128)
    golden = c_msg(
        c.XFRM_MSG_UPDSA,
        1,
        1,
        0,
        bytes(info),
        [
            (c.XFRMA_ALG_CRYPT, bytes(crypt) + key(32)),
            (c.XFRMA_ALG_AUTH_TRUNC, bytes(auth) + key(32)),
        ],
    )
    ours = XfrmMessage(
        c.XFRM_MSG_UPDSA,
        s.UsersaInfo(
            id=s.XfrmId(xaddr("2001:db8::2"), 0x1234, 50),
            saddr=xaddr("2001:db8::1"),
            lft=s.LifetimeCfg(0, 0, 0, 0),
            family=socket.AF_INET6,
            mode=0,
            replay_window=32,
        ),
        [
            Attr(c.XFRMA_ALG_CRYPT, s.Algo("cbc(aes)", key(32))),
            Attr(c.XFRMA_ALG_AUTH_TRUNC, s.AlgoAuth("hmac(sha256)", key(32), 128)),
        ],
        1,
        1,
    )
    assert build_message(ours) == golden
    assert parse_message(golden) == ours


def c_tmpl(reqid: int) -> UserTmplC:
    t = UserTmplC()
    t.id.daddr = c_addr("192.0.2.2")
    t.id.spi = socket.htonl(0x99)
    t.id.proto = 50
    t.family = socket.AF_INET
    t.saddr = c_addr("192.0.2.1")
    t.reqid, t.mode, t.share, t.optional = reqid, 1, 3, 1
    t.aalgos, t.ealgos, t.calgos = 1, 2, 3
    return t


def py_tmpl(reqid: int) -> s.UserTmpl:
    return s.UserTmpl(
        s.XfrmId(xaddr("192.0.2.2"), 0x99, 50),
        socket.AF_INET,
        xaddr("192.0.2.1"),
        reqid,
        1,
        3,
        1,
        1,
        2,
        3,
    )


def c_policy() -> UserpolicyInfoC:
    p = UserpolicyInfoC()
    p.sel = c_selector()
    c_lifetimes(p)
    p.priority, p.index, p.dir, p.action, p.flags, p.share = 2000, 0x1B1, 2, 1, 3, 0
    return p


def py_policy() -> s.UserpolicyInfo:
    lft, cur = py_lifetimes()
    return s.UserpolicyInfo(py_selector(), lft, cur, 2000, 0x1B1, 2, 1, 3, 0)


def test_newpolicy_with_templates_matches_ctypes() -> None:
    golden = c_msg(
        c.XFRM_MSG_NEWPOLICY,
        5,
        3,
        0,
        bytes(c_policy()),
        [
            (c.XFRMA_TMPL, bytes(c_tmpl(1)) + bytes(c_tmpl(2))),
            (c.XFRMA_POLICY_TYPE, bytes(UserpolicyTypeC(1, 0, 0))),
            (c.XFRMA_SEC_CTX, bytes(UserSecCtxC(8 + 5, 0, 1, 1, 5)) + b"abcde"),
        ],
    )
    ours = XfrmMessage(
        c.XFRM_MSG_NEWPOLICY,
        py_policy(),
        [
            Attr(c.XFRMA_TMPL, [py_tmpl(1), py_tmpl(2)]),
            Attr(c.XFRMA_POLICY_TYPE, s.UserpolicyType(1)),
            Attr(c.XFRMA_SEC_CTX, s.UserSecCtx(1, 1, b"abcde")),
        ],
        5,
        3,
    )
    assert build_message(ours) == golden
    assert parse_message(golden) == ours


def test_acquire_matches_ctypes() -> None:
    acq = UserAcquireC()
    acq.id.daddr = c_addr("192.0.2.2")
    acq.id.proto = 50
    acq.saddr = c_addr("192.0.2.1")
    acq.sel = c_selector()
    acq.policy = c_policy()
    acq.aalgos, acq.ealgos, acq.calgos, acq.seq = 4, 5, 6, 0x77
    golden = c_msg(c.XFRM_MSG_ACQUIRE, 0, 0, 0, bytes(acq), [(c.XFRMA_TMPL, bytes(c_tmpl(4)))])
    ours = XfrmMessage(
        c.XFRM_MSG_ACQUIRE,
        s.UserAcquire(
            s.XfrmId(xaddr("192.0.2.2"), 0, 50),
            xaddr("192.0.2.1"),
            py_selector(),
            py_policy(),
            4,
            5,
            6,
            0x77,
        ),
        [Attr(c.XFRMA_TMPL, [py_tmpl(4)])],
    )
    assert build_message(ours) == golden
    assert parse_message(golden) == ours


def test_small_bodies_match_ctypes() -> None:
    said = UsersaIdC(c_addr("192.0.2.2"), socket.htonl(0xABCDEF01), socket.AF_INET, 50)
    expire = UserExpireC()
    expire.state.family, expire.state.reqid, expire.hard = socket.AF_INET, 3, 1
    polexp = UserPolexpireC(c_policy(), 1)
    report = UserReportC(50, c_selector())
    mapping = UserMappingC(
        said, 8, c_addr("192.0.2.1"), c_addr("192.0.2.55"), socket.htons(4500), socket.htons(34567)
    )
    aevent = AeventIdC(said, c_addr("192.0.2.1"), c.XFRM_AE_RVAL | c.XFRM_AE_CR, 4)
    upid = UserpolicyIdC(c_selector(), 0x1B1, 1)
    spi = UserspiInfoC()
    spi.info.family, spi.min, spi.max = socket.AF_INET, 0x100, 0x200
    migrate = UserMigrateC(
        c_addr("192.0.2.1"),
        c_addr("192.0.2.2"),
        c_addr("192.0.2.3"),
        c_addr("192.0.2.4"),
        50,
        1,
        0,
        7,
        2,
        2,
    )
    kma = UserKmaddressC(c_addr("192.0.2.3"), c_addr("192.0.2.4"), 0, 2)
    sa_id = s.UsersaId(xaddr("192.0.2.2"), 0xABCDEF01, socket.AF_INET, 50)
    cases = [
        (c.XFRM_MSG_GETSA, bytes(said), [], sa_id, []),
        (
            c.XFRM_MSG_EXPIRE,
            bytes(expire),
            [(c.XFRMA_LTIME_VAL, bytes(LifetimeCurC(1, 2, 3, 4)))],
            s.UserExpire(
                s.UsersaInfo(lft=s.LifetimeCfg(0, 0, 0, 0), family=socket.AF_INET, reqid=3), 1
            ),
            [Attr(c.XFRMA_LTIME_VAL, s.LifetimeCur(1, 2, 3, 4))],
        ),
        (c.XFRM_MSG_POLEXPIRE, bytes(polexp), [], s.UserPolexpire(py_policy(), 1), []),
        (c.XFRM_MSG_REPORT, bytes(report), [], s.UserReport(50, py_selector()), []),
        (
            c.XFRM_MSG_MAPPING,
            bytes(mapping),
            [],
            s.UserMapping(sa_id, 8, xaddr("192.0.2.1"), xaddr("192.0.2.55"), 4500, 34567),
            [],
        ),
        (
            c.XFRM_MSG_NEWAE,
            bytes(aevent),
            [(c.XFRMA_REPLAY_VAL, bytes(ReplayStateC(1, 2, 3)))],
            s.AeventId(sa_id, xaddr("192.0.2.1"), c.XFRM_AE_RVAL | c.XFRM_AE_CR, 4),
            [Attr(c.XFRMA_REPLAY_VAL, s.ReplayState(1, 2, 3))],
        ),
        (
            c.XFRM_MSG_DELPOLICY,
            bytes(upid),
            [(c.XFRMA_POLICY, bytes(c_policy()))],
            s.UserpolicyId(py_selector(), 0x1B1, 1),
            [Attr(c.XFRMA_POLICY, py_policy())],
        ),
        (
            c.XFRM_MSG_ALLOCSPI,
            bytes(spi),
            [],
            s.UserspiInfo(
                s.UsersaInfo(lft=s.LifetimeCfg(0, 0, 0, 0), family=socket.AF_INET), 0x100, 0x200
            ),
            [],
        ),
        (
            c.XFRM_MSG_MIGRATE,
            bytes(upid),
            [(c.XFRMA_MIGRATE, bytes(migrate)), (c.XFRMA_KMADDRESS, bytes(kma))],
            s.UserpolicyId(py_selector(), 0x1B1, 1),
            [
                Attr(
                    c.XFRMA_MIGRATE,
                    [
                        s.UserMigrate(
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
                Attr(
                    c.XFRMA_KMADDRESS, s.UserKmaddress(xaddr("192.0.2.3"), xaddr("192.0.2.4"), 0, 2)
                ),
            ],
        ),
        (c.XFRM_MSG_FLUSHSA, bytes(UsersaFlushC(255)), [], s.UsersaFlush(255), []),
        (
            c.XFRM_MSG_SETDEFAULT,
            bytes(UserpolicyDefaultC(1, 2, 1)),
            [],
            s.UserpolicyDefault(1, 2, 1),
            [],
        ),
        (
            c.XFRM_MSG_NEWSA,
            bytes(UsersaInfoC()),
            [(c.XFRMA_OFFLOAD_DEV, bytes(UserOffloadC(-1, 2)))],
            s.UsersaInfo(lft=s.LifetimeCfg(0, 0, 0, 0)),
            [Attr(c.XFRMA_OFFLOAD_DEV, s.UserOffload(-1, 2))],
        ),
    ]
    for msg_type, body, c_attrs, py_body, py_attrs in cases:
        golden = c_msg(msg_type, 0, 0, 0, body, c_attrs)
        ours = XfrmMessage(msg_type, py_body, py_attrs)
        assert build_message(ours) == golden, c.MSG_NAMES[msg_type]
        assert parse_message(golden) == ours, c.MSG_NAMES[msg_type]

"""xfrm_user netlink messages: ``parse_message`` / ``build_message`` and attribute codecs.

A message is an nlmsghdr, a fixed body struct chosen by the message type (see
``xfrm_msg_min`` in the kernel's net/xfrm/xfrm_user.c), padding to 4 bytes, then
netlink attributes. Struct layouts live in :mod:`xfrm_structs`, numbers in
:mod:`xfrm_const`.

Errors mirror the kernel's answers: a body shorter than its struct, or a message type
above ``XFRM_MSG_MAX``, is ``EINVAL`` (``xfrm_user_rcv_msg``/``nlmsg_parse``); an
attribute shorter than the size in the kernel's ``xfrma_policy`` table is ``ERANGE``
(``validate_nla``); an algorithm, ESN or security-context attribute whose own length
field overruns the attribute is ``EINVAL`` (``verify_*`` in xfrm_user.c).

Unknown attributes (types the codec does not know, e.g. added by a newer kernel) are
kept as raw bytes and written back unchanged, as the kernel itself ignores attribute
types above its ``XFRMA_MAX``. Attribute order and duplicates are preserved; readers
use the last occurrence, as ``nla_parse`` does. Fixed-size attributes longer than their
struct are accepted (the kernel reads only the struct) and rebuilt at their exact size.
"""

from __future__ import annotations

import builtins
import errno
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pyipsec.errors import ConfigError, KeyApiError
from pyipsec.keyapi import xfrm_const as c
from pyipsec.keyapi.netlink import (
    NLA_TYPE_MASK,
    NLMSG_DONE,
    NLMSG_ERROR,
    NLMSG_MIN_TYPE,
    Done,
    NetlinkError,
    build_attr,
    build_nlmsg,
    iter_attrs,
    nl_align,
    parse_done,
    parse_error,
    split_messages,
)
from pyipsec.keyapi.xfrm_layout import Layout
from pyipsec.keyapi.xfrm_structs import (
    ADDRESS_FILTER,
    AEVENT_ID,
    ALGO_AEAD_HEAD,
    ALGO_AUTH_HEAD,
    ALGO_HEAD,
    ENCAP_TMPL,
    LIFETIME_CUR,
    MARK,
    REPLAY_ESN_HEAD,
    REPLAY_STATE,
    SAD_HINFO,
    SEC_CTX_HEAD,
    SPD_HINFO,
    SPD_HTHRESH,
    SPD_INFO,
    USER_ACQUIRE,
    USER_EXPIRE,
    USER_KMADDRESS,
    USER_MAPPING,
    USER_MIGRATE,
    USER_OFFLOAD,
    USER_POLEXPIRE,
    USER_REPORT,
    USER_TMPL,
    USERPOLICY_DEFAULT,
    USERPOLICY_ID,
    USERPOLICY_INFO,
    USERPOLICY_TYPE,
    USERSA_FLUSH,
    USERSA_ID,
    USERSA_INFO,
    USERSPI_INFO,
    AddressFilter,
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
    SpdHinfo,
    SpdHthresh,
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
)

AttrValue = (
    Algo
    | AlgoAuth
    | AlgoAead
    | EncapTmpl
    | list[UserTmpl]
    | list[UserMigrate]
    | UsersaInfo
    | UserpolicyInfo
    | UserSecCtx
    | LifetimeCur
    | ReplayState
    | ReplayStateEsn
    | UserpolicyType
    | UserKmaddress
    | Mark
    | AddressFilter
    | UserOffload
    | SadHinfo
    | SpdInfo
    | SpdHinfo
    | SpdHthresh
    | int
    | bytes
)

Body = (
    UsersaInfo
    | UsersaId
    | UserpolicyInfo
    | UserpolicyId
    | UserspiInfo
    | UserAcquire
    | UserExpire
    | UserPolexpire
    | UsersaFlush
    | AeventId
    | UserReport
    | UserMapping
    | UserpolicyDefault
    | NetlinkError
    | Done
    | int
    | bytes
    | None
)

V = TypeVar("V")

_U8 = struct.Struct("=B")
_U32 = struct.Struct("=I")
_U64 = struct.Struct("=Q")
_U32_ARRAY = "={}I"


@dataclass(slots=True)
class Attr:
    """One netlink attribute: ``type`` without flag bits, decoded ``value``.

    ``flags`` keeps the NLA_F_NESTED / NLA_F_NET_BYTEORDER bits seen on the wire.
    """

    type: int
    value: AttrValue
    flags: int = 0


@dataclass(slots=True)
class XfrmMessage:
    """One xfrm_user netlink message."""

    type: int
    body: Body = None
    attrs: list[Attr] = field(default_factory=list)
    flags: int = 0
    seq: int = 0
    pid: int = 0

    @property
    def name(self) -> str:
        if self.type == NLMSG_ERROR:
            return "NLMSG_ERROR"
        if self.type == NLMSG_DONE:
            return "NLMSG_DONE"
        return c.MSG_NAMES.get(self.type, f"type {self.type}")

    def get(self, attr_type: int) -> AttrValue | None:
        """The value of the last attribute of ``attr_type`` (what the kernel would use)."""
        for attr in reversed(self.attrs):
            if attr.type == attr_type:
                return attr.value
        return None

    def get_as(self, attr_type: int, cls: builtins.type[V]) -> V | None:
        """Like :meth:`get`, typed: None when absent or not a ``cls``."""
        value = self.get(attr_type)
        return value if isinstance(value, cls) else None

    def templates(self) -> list[UserTmpl]:
        value = self.get(c.XFRMA_TMPL)
        return [t for t in value if isinstance(t, UserTmpl)] if isinstance(value, list) else []

    def add(self, attr_type: int, value: AttrValue) -> XfrmMessage:
        """Append an attribute; returns ``self`` so calls chain."""
        self.attrs.append(Attr(attr_type, value))
        return self


# -- attribute codecs ---------------------------------------------------------------------


def _erange(what: str) -> KeyApiError:
    return KeyApiError(errno.ERANGE, f"attribute {what} shorter than its struct")


def _einval(what: str) -> KeyApiError:
    return KeyApiError(errno.EINVAL, f"malformed xfrm message: {what}")


_Parse = Callable[[memoryview], AttrValue]
_Build = Callable[[Any], bytes]


def _fixed(layout: Layout[Any]) -> tuple[_Parse, _Build]:
    def parse(buf: memoryview) -> AttrValue:
        if len(buf) < layout.size:
            raise _erange(layout.c_name)
        value: AttrValue = layout.parse(buf)
        return value

    return parse, layout.build


def _scalar(st: struct.Struct, what: str) -> tuple[_Parse, _Build]:
    def parse(buf: memoryview) -> AttrValue:
        if len(buf) < st.size:
            raise _erange(what)
        value: int = st.unpack_from(buf, 0)[0]
        return value

    def build(value: Any) -> bytes:
        try:
            return st.pack(value)
        except struct.error:
            raise ConfigError(f"{what} value {value!r} out of range") from None

    return parse, build


def _parse_addr(buf: memoryview) -> AttrValue:
    if len(buf) < 16:
        raise _erange("xfrm_address_t")
    return bytes(buf[:16])


def _build_addr(value: Any) -> bytes:
    if not isinstance(value, bytes) or len(value) != 16:
        raise ConfigError("xfrm_address_t attribute must be 16 bytes (use xaddr())")
    return value


def _array(layout: Layout[Any]) -> tuple[_Parse, _Build]:
    def parse(buf: memoryview) -> AttrValue:
        if len(buf) < layout.size:
            raise _erange(layout.c_name)
        # The kernel ignores a partial trailing struct; we refuse it rather than drop it.
        if len(buf) % layout.size:
            raise _einval(f"{layout.c_name} array of {len(buf)} bytes")
        return [layout.parse(buf, off) for off in range(0, len(buf), layout.size)]

    def build(value: Any) -> bytes:
        if not isinstance(value, list) or not value:
            raise ConfigError(f"{layout.c_name} attribute needs a non-empty list")
        return b"".join(layout.build(item) for item in value)

    return parse, build


def _key_bytes(bits: int) -> int:
    return (bits + 7) // 8


def _check_key(name: str, key: bytes, bits: int) -> None:
    if not 0 <= bits <= 0xFFFFFFFF or len(key) != _key_bytes(bits):
        raise ConfigError(f"{name}: key length does not match its bit count")


def _parse_algo(buf: memoryview) -> AttrValue:
    if len(buf) < ALGO_HEAD.size:
        raise _erange("xfrm_algo")
    head = ALGO_HEAD.unpack_dict(buf)
    end = ALGO_HEAD.size + _key_bytes(head["key_len"])
    if len(buf) < end:  # verify_one_alg
        raise _einval("xfrm_algo key longer than the attribute")
    return Algo(head["name"], bytes(buf[ALGO_HEAD.size : end]), head["key_len"])


def _build_algo(value: Any) -> bytes:
    if not isinstance(value, Algo):
        raise ConfigError("XFRMA_ALG_CRYPT/AUTH/COMP needs an Algo")
    _check_key(value.name, value.key, value.bits)
    return ALGO_HEAD.build({"name": value.name, "key_len": value.bits}) + value.key


def _parse_algo_auth(buf: memoryview) -> AttrValue:
    if len(buf) < ALGO_AUTH_HEAD.size:
        raise _erange("xfrm_algo_auth")
    head = ALGO_AUTH_HEAD.unpack_dict(buf)
    end = ALGO_AUTH_HEAD.size + _key_bytes(head["key_len"])
    if len(buf) < end:  # verify_auth_trunc
        raise _einval("xfrm_algo_auth key longer than the attribute")
    key = bytes(buf[ALGO_AUTH_HEAD.size : end])
    return AlgoAuth(head["name"], key, head["trunc_len"], head["key_len"])


def _build_algo_auth(value: Any) -> bytes:
    if not isinstance(value, AlgoAuth):
        raise ConfigError("XFRMA_ALG_AUTH_TRUNC needs an AlgoAuth")
    _check_key(value.name, value.key, value.bits)
    head = {"name": value.name, "key_len": value.bits, "trunc_len": value.trunc_len}
    return ALGO_AUTH_HEAD.build(head) + value.key


def _parse_algo_aead(buf: memoryview) -> AttrValue:
    if len(buf) < ALGO_AEAD_HEAD.size:
        raise _erange("xfrm_algo_aead")
    head = ALGO_AEAD_HEAD.unpack_dict(buf)
    end = ALGO_AEAD_HEAD.size + _key_bytes(head["key_len"])
    if len(buf) < end:  # verify_aead
        raise _einval("xfrm_algo_aead key longer than the attribute")
    key = bytes(buf[ALGO_AEAD_HEAD.size : end])
    return AlgoAead(head["name"], key, head["icv_len"], head["key_len"])


def _build_algo_aead(value: Any) -> bytes:
    if not isinstance(value, AlgoAead):
        raise ConfigError("XFRMA_ALG_AEAD needs an AlgoAead")
    _check_key(value.name, value.key, value.bits)
    head = {"name": value.name, "key_len": value.bits, "icv_len": value.icv_len}
    return ALGO_AEAD_HEAD.build(head) + value.key


_ESN_MAX_WORDS = c.XFRMA_REPLAY_ESN_MAX // 32


def _parse_esn(buf: memoryview) -> AttrValue:
    if len(buf) < REPLAY_ESN_HEAD.size:
        raise _erange("xfrm_replay_state_esn")
    head = REPLAY_ESN_HEAD.unpack_dict(buf)
    words = head["bmp_len"]
    if words > _ESN_MAX_WORDS:  # verify_replay
        raise _einval("replay bitmap larger than XFRMA_REPLAY_ESN_MAX")
    need = REPLAY_ESN_HEAD.size + 4 * words
    if len(buf) < need:
        # The kernel accepts the bare head and zero-fills the bitmap (verify_replay).
        if len(buf) != REPLAY_ESN_HEAD.size:
            raise _einval("replay bitmap longer than the attribute")
        words = 0
    bmp = struct.unpack_from(_U32_ARRAY.format(words), buf, REPLAY_ESN_HEAD.size)
    return ReplayStateEsn(bmp=tuple(bmp), **head)


def _build_esn(value: Any) -> bytes:
    if not isinstance(value, ReplayStateEsn):
        raise ConfigError("XFRMA_REPLAY_ESN_VAL needs a ReplayStateEsn")
    if len(value.bmp) not in (0, value.bmp_len):
        raise ConfigError("ReplayStateEsn.bmp must hold bmp_len words (or none)")
    try:
        tail = struct.pack(_U32_ARRAY.format(len(value.bmp)), *value.bmp)
    except struct.error:
        raise ConfigError("ReplayStateEsn.bmp words must be 32-bit") from None
    return REPLAY_ESN_HEAD.build(value) + tail


def _parse_sec_ctx(buf: memoryview) -> AttrValue:
    if len(buf) < SEC_CTX_HEAD.size:
        raise _erange("xfrm_user_sec_ctx")
    head = SEC_CTX_HEAD.unpack_dict(buf)
    # verify_sec_ctx_len: len covers the head and the string, within the attribute.
    if head["len"] > len(buf) or head["len"] != SEC_CTX_HEAD.size + head["ctx_len"]:
        raise _einval("xfrm_user_sec_ctx lengths disagree")
    ctx = bytes(buf[SEC_CTX_HEAD.size : head["len"]])
    return UserSecCtx(head["ctx_alg"], head["ctx_doi"], ctx, head["exttype"])


def _build_sec_ctx(value: Any) -> bytes:
    if not isinstance(value, UserSecCtx):
        raise ConfigError("XFRMA_SEC_CTX needs a UserSecCtx")
    head = {
        "len": SEC_CTX_HEAD.size + len(value.ctx),
        "exttype": value.exttype,
        "ctx_alg": value.ctx_alg,
        "ctx_doi": value.ctx_doi,
        "ctx_len": len(value.ctx),
    }
    return SEC_CTX_HEAD.build(head) + value.ctx


_U32_CODEC = _scalar(_U32, "__u32")

# The XFRMA_* namespace: what each attribute holds (xfrma_policy in xfrm_user.c).
XFRMA_CODECS: dict[int, tuple[_Parse, _Build]] = {
    c.XFRMA_ALG_AUTH: (_parse_algo, _build_algo),
    c.XFRMA_ALG_CRYPT: (_parse_algo, _build_algo),
    c.XFRMA_ALG_COMP: (_parse_algo, _build_algo),
    c.XFRMA_ENCAP: _fixed(ENCAP_TMPL),
    c.XFRMA_TMPL: _array(USER_TMPL),
    c.XFRMA_SA: _fixed(USERSA_INFO),
    c.XFRMA_POLICY: _fixed(USERPOLICY_INFO),
    c.XFRMA_SEC_CTX: (_parse_sec_ctx, _build_sec_ctx),
    c.XFRMA_LTIME_VAL: _fixed(LIFETIME_CUR),
    c.XFRMA_REPLAY_VAL: _fixed(REPLAY_STATE),
    c.XFRMA_REPLAY_THRESH: _U32_CODEC,
    c.XFRMA_ETIMER_THRESH: _U32_CODEC,
    c.XFRMA_SRCADDR: (_parse_addr, _build_addr),
    c.XFRMA_COADDR: (_parse_addr, _build_addr),
    c.XFRMA_LASTUSED: _scalar(_U64, "__u64"),
    c.XFRMA_POLICY_TYPE: _fixed(USERPOLICY_TYPE),
    c.XFRMA_MIGRATE: _array(USER_MIGRATE),
    c.XFRMA_ALG_AEAD: (_parse_algo_aead, _build_algo_aead),
    c.XFRMA_KMADDRESS: _fixed(USER_KMADDRESS),
    c.XFRMA_ALG_AUTH_TRUNC: (_parse_algo_auth, _build_algo_auth),
    c.XFRMA_MARK: _fixed(MARK),
    c.XFRMA_TFCPAD: _U32_CODEC,
    c.XFRMA_REPLAY_ESN_VAL: (_parse_esn, _build_esn),
    c.XFRMA_SA_EXTRA_FLAGS: _U32_CODEC,
    c.XFRMA_PROTO: _scalar(_U8, "__u8"),
    c.XFRMA_ADDRESS_FILTER: _fixed(ADDRESS_FILTER),
    c.XFRMA_OFFLOAD_DEV: _fixed(USER_OFFLOAD),
    c.XFRMA_SET_MARK: _U32_CODEC,
    c.XFRMA_SET_MARK_MASK: _U32_CODEC,
    c.XFRMA_IF_ID: _U32_CODEC,
    c.XFRMA_MTIMER_THRESH: _U32_CODEC,
}

# NEWSADINFO / GETSADINFO use their own small namespace.
SAD_CODECS: dict[int, tuple[_Parse, _Build]] = {
    c.XFRMA_SAD_CNT: _U32_CODEC,
    c.XFRMA_SAD_HINFO: _fixed(SAD_HINFO),
}
# NEWSPDINFO / GETSPDINFO likewise.
SPD_CODECS: dict[int, tuple[_Parse, _Build]] = {
    c.XFRMA_SPD_INFO: _fixed(SPD_INFO),
    c.XFRMA_SPD_HINFO: _fixed(SPD_HINFO),
    c.XFRMA_SPD_IPV4_HTHRESH: _fixed(SPD_HTHRESH),
    c.XFRMA_SPD_IPV6_HTHRESH: _fixed(SPD_HTHRESH),
}


def _raw_parse(buf: memoryview) -> AttrValue:
    return bytes(buf)


def _raw_build(value: Any) -> bytes:
    if not isinstance(value, bytes | bytearray):
        raise ConfigError("an unknown attribute type needs raw bytes")
    return bytes(value)


_RAW = (_raw_parse, _raw_build)


# -- bodies -----------------------------------------------------------------------------

# Message type -> the struct at the start of its payload (None: no struct).
BODY_LAYOUTS: dict[int, Layout[Any] | None] = {
    c.XFRM_MSG_NEWSA: USERSA_INFO,
    c.XFRM_MSG_UPDSA: USERSA_INFO,
    c.XFRM_MSG_DELSA: USERSA_ID,
    c.XFRM_MSG_GETSA: USERSA_ID,
    c.XFRM_MSG_NEWPOLICY: USERPOLICY_INFO,
    c.XFRM_MSG_UPDPOLICY: USERPOLICY_INFO,
    c.XFRM_MSG_DELPOLICY: USERPOLICY_ID,
    c.XFRM_MSG_GETPOLICY: USERPOLICY_ID,
    c.XFRM_MSG_ALLOCSPI: USERSPI_INFO,
    c.XFRM_MSG_ACQUIRE: USER_ACQUIRE,
    c.XFRM_MSG_EXPIRE: USER_EXPIRE,
    c.XFRM_MSG_POLEXPIRE: USER_POLEXPIRE,
    c.XFRM_MSG_FLUSHSA: USERSA_FLUSH,
    c.XFRM_MSG_FLUSHPOLICY: None,
    c.XFRM_MSG_NEWAE: AEVENT_ID,
    c.XFRM_MSG_GETAE: AEVENT_ID,
    c.XFRM_MSG_REPORT: USER_REPORT,
    c.XFRM_MSG_MIGRATE: USERPOLICY_ID,
    c.XFRM_MSG_MAPPING: USER_MAPPING,
    c.XFRM_MSG_SETDEFAULT: USERPOLICY_DEFAULT,
    c.XFRM_MSG_GETDEFAULT: USERPOLICY_DEFAULT,
}
# These carry a bare __u32 of flags (the kernel's xfrm_msg_min is sizeof(u32)).
_FLAGS_BODY = frozenset(
    {c.XFRM_MSG_NEWSADINFO, c.XFRM_MSG_GETSADINFO, c.XFRM_MSG_NEWSPDINFO, c.XFRM_MSG_GETSPDINFO}
)


def _namespace(msg_type: int) -> dict[int, tuple[_Parse, _Build]]:
    if msg_type in (c.XFRM_MSG_NEWSADINFO, c.XFRM_MSG_GETSADINFO):
        return SAD_CODECS
    if msg_type in (c.XFRM_MSG_NEWSPDINFO, c.XFRM_MSG_GETSPDINFO):
        return SPD_CODECS
    return XFRMA_CODECS


def _parse_body(msg_type: int, payload: memoryview) -> tuple[Body, int]:
    """The body and the offset where attributes start."""
    if msg_type in _FLAGS_BODY:
        if len(payload) < 4:
            raise _einval(f"{c.MSG_NAMES[msg_type]} without its __u32 flags")
        flags: int = _U32.unpack_from(payload, 0)[0]
        return flags, 4
    layout = BODY_LAYOUTS[msg_type]
    if layout is None:
        return None, 0
    if len(payload) < layout.size:
        raise _einval(f"{c.MSG_NAMES[msg_type]} body shorter than {layout.c_name}")
    body: Body = layout.parse(payload)
    return body, nl_align(layout.size)


def _build_body(msg_type: int, body: Body) -> bytes:
    if msg_type in _FLAGS_BODY:
        if not isinstance(body, int):
            raise ConfigError(f"{c.MSG_NAMES[msg_type]} needs an int body (flags)")
        return _U32_CODEC[1](body)
    layout = BODY_LAYOUTS[msg_type]
    if layout is None:
        if body is not None:
            raise ConfigError(f"{c.MSG_NAMES[msg_type]} has no body")
        return b""
    if not isinstance(body, layout.cls):  # type: ignore[arg-type]
        raise ConfigError(f"{c.MSG_NAMES[msg_type]} needs a {layout.c_name} body")
    return layout.build(body)


def parse_attrs(msg_type: int, buf: bytes | memoryview) -> list[Attr]:
    """Decode the attributes of a message of ``msg_type`` (its namespace decides)."""
    codecs = _namespace(msg_type)
    attrs: list[Attr] = []
    for raw_type, payload in iter_attrs(buf):
        attr_type = raw_type & NLA_TYPE_MASK
        parse = codecs.get(attr_type, _RAW)[0]
        attrs.append(Attr(attr_type, parse(payload), raw_type & ~NLA_TYPE_MASK))
    return attrs


def build_attrs(msg_type: int, attrs: list[Attr]) -> bytes:
    codecs = _namespace(msg_type)
    out = []
    for attr in attrs:
        build = codecs.get(attr.type, _RAW)[1]
        out.append(build_attr(attr.type | attr.flags, build(attr.value)))
    return b"".join(out)


# -- messages -------------------------------------------------------------------------------


def _decode(msg_type: int, flags: int, seq: int, pid: int, payload: memoryview) -> XfrmMessage:
    if msg_type == NLMSG_ERROR:
        return XfrmMessage(msg_type, parse_error(payload), [], flags, seq, pid)
    if msg_type == NLMSG_DONE:
        return XfrmMessage(msg_type, parse_done(payload), [], flags, seq, pid)
    if msg_type < NLMSG_MIN_TYPE:
        # NOOP, OVERRUN and reserved control types: nothing to decode.
        return XfrmMessage(msg_type, bytes(payload), [], flags, seq, pid)
    if msg_type > c.XFRM_MSG_MAX:
        # xfrm_user_rcv_msg: "if (type > XFRM_MSG_MAX) return -EINVAL".
        raise _einval(f"unknown message type {msg_type:#x}")
    body, attr_offset = _parse_body(msg_type, payload)
    attrs = parse_attrs(msg_type, payload[attr_offset:]) if attr_offset < len(payload) else []
    return XfrmMessage(msg_type, body, attrs, flags, seq, pid)


def parse_messages(buf: bytes | memoryview) -> list[XfrmMessage]:
    """Every message in ``buf`` (a datagram from the kernel: a dump part, an ACK, events)."""
    return [_decode(h.type, h.flags, h.seq, h.pid, payload) for h, payload in split_messages(buf)]


def parse_message(buf: bytes | memoryview) -> XfrmMessage:
    """Exactly one message (trailing alignment padding allowed)."""
    messages = parse_messages(buf)
    if len(messages) != 1:
        raise _einval(f"expected one netlink message, found {len(messages)}")
    return messages[0]


def build_payload(msg: XfrmMessage) -> bytes:
    """The bytes after the nlmsghdr: body, padding to 4, attributes."""
    if msg.type == NLMSG_ERROR:
        if not isinstance(msg.body, NetlinkError):
            raise ConfigError("NLMSG_ERROR needs a NetlinkError body")
        return msg.body.pack()
    if msg.type == NLMSG_DONE:
        if not isinstance(msg.body, Done):
            raise ConfigError("NLMSG_DONE needs a Done body")
        return msg.body.pack()
    if msg.type < NLMSG_MIN_TYPE:
        if not isinstance(msg.body, bytes):
            raise ConfigError("control messages carry raw bytes")
        return msg.body
    if not c.XFRM_MSG_BASE <= msg.type <= c.XFRM_MSG_MAX:
        raise ConfigError(f"unknown xfrm message type {msg.type:#x}")
    body = _build_body(msg.type, msg.body)
    if not msg.attrs:
        # Like the kernel's nlmsg_put: nlmsg_len counts the struct, not its padding.
        return body
    return body + bytes(nl_align(len(body)) - len(body)) + build_attrs(msg.type, msg.attrs)


def build_message(msg: XfrmMessage) -> bytes:
    """The wire form of ``msg`` (padded to 4 bytes); ConfigError for impossible values."""
    return build_nlmsg(msg.type, msg.flags, msg.seq, msg.pid, build_payload(msg))

"""Generic netlink framing: ``nlmsghdr``, ``nlattr``, NLMSG_ERROR/NLMSG_DONE, NLM_F_* flags.

Layouts follow ``<linux/netlink.h>``. Netlink is host byte order; every header and
attribute starts on a 4-byte boundary (``NLMSG_ALIGNTO`` / ``NLA_ALIGNTO``).

Malformed bytes raise :class:`~pyipsec.errors.KeyApiError` with ``EINVAL``. The kernel's
own receive loop (``netlink_rcv_skb``) silently stops at a header whose length is out of
range, and its legacy attribute parser only warns about trailing bytes after the last
attribute; a codec that hides such bytes would hide bugs, so we answer ``EINVAL`` as the
kernel's strict validation (``NL_VALIDATE_TRAILING``) does.
"""

from __future__ import annotations

import errno
import struct
from collections.abc import Iterator
from dataclasses import dataclass

from pyipsec.errors import ConfigError, KeyApiError

# Control message types (types below NLMSG_MIN_TYPE are reserved for netlink itself).
NLMSG_NOOP = 0x1
NLMSG_ERROR = 0x2
NLMSG_DONE = 0x3
NLMSG_OVERRUN = 0x4
NLMSG_MIN_TYPE = 0x10

# Flags common to every request.
NLM_F_REQUEST = 0x01
NLM_F_MULTI = 0x02
NLM_F_ACK = 0x04
NLM_F_ECHO = 0x08
NLM_F_DUMP_INTR = 0x10
NLM_F_DUMP_FILTERED = 0x20
# Modifiers to GET requests.
NLM_F_ROOT = 0x100
NLM_F_MATCH = 0x200
NLM_F_ATOMIC = 0x400
NLM_F_DUMP = NLM_F_ROOT | NLM_F_MATCH
# Modifiers to NEW requests.
NLM_F_REPLACE = 0x100
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400
NLM_F_APPEND = 0x800
# Flags of an NLMSG_ERROR message (acknowledgements).
NLM_F_CAPPED = 0x100
NLM_F_ACK_TLVS = 0x200

# Attribute type bits: the top two bits are flags, not part of the type.
NLA_F_NESTED = 0x8000
NLA_F_NET_BYTEORDER = 0x4000
NLA_TYPE_MASK = ~(NLA_F_NESTED | NLA_F_NET_BYTEORDER) & 0xFFFF

# Socket-level constants not exported by Python's socket module.
NETLINK_XFRM = 6
SOL_NETLINK = 270
NETLINK_ADD_MEMBERSHIP = 1
NETLINK_DROP_MEMBERSHIP = 2
NETLINK_CAP_ACK = 10
NETLINK_EXT_ACK = 11

# struct nlmsghdr { __u32 nlmsg_len; __u16 nlmsg_type; __u16 nlmsg_flags;
#                   __u32 nlmsg_seq; __u32 nlmsg_pid; };
NLMSG_HDR = struct.Struct("=IHHII")
NLMSG_HDRLEN = NLMSG_HDR.size  # 16
# struct nlattr { __u16 nla_len; __u16 nla_type; };
NLA_HDR = struct.Struct("=HH")
NLA_HDRLEN = NLA_HDR.size  # 4
# struct nlmsgerr { int error; struct nlmsghdr msg; };
_ERRNO = struct.Struct("=i")
_U32 = struct.Struct("=I")


def nl_align(length: int) -> int:
    """Round ``length`` up to the 4-byte netlink alignment (NLMSG_ALIGN and NLA_ALIGN)."""
    return (length + 3) & ~3


def _einval(detail: str) -> KeyApiError:
    return KeyApiError(errno.EINVAL, f"malformed netlink message: {detail}")


@dataclass(slots=True)
class NlMsgHeader:
    """One ``struct nlmsghdr``."""

    length: int
    type: int
    flags: int = 0
    seq: int = 0
    pid: int = 0

    def pack(self) -> bytes:
        try:
            return NLMSG_HDR.pack(self.length, self.type, self.flags, self.seq, self.pid)
        except struct.error as exc:
            raise ConfigError(f"nlmsghdr field out of range: {exc}") from None


def parse_header(buf: bytes | memoryview, offset: int = 0) -> NlMsgHeader:
    """Parse the nlmsghdr at ``offset``; EINVAL if fewer than 16 bytes remain."""
    if len(buf) - offset < NLMSG_HDRLEN:
        raise _einval("truncated nlmsghdr")
    return NlMsgHeader(*NLMSG_HDR.unpack_from(buf, offset))


def split_messages(buf: bytes | memoryview) -> Iterator[tuple[NlMsgHeader, memoryview]]:
    """Yield ``(header, payload)`` for each netlink message packed in ``buf``.

    Each message must have ``16 <= nlmsg_len <= remaining``; the next message starts at
    ``NLMSG_ALIGN(nlmsg_len)`` (the last one may omit its padding).
    """
    view = memoryview(buf)
    offset = 0
    total = len(view)
    while offset < total:
        hdr = parse_header(view, offset)
        if hdr.length < NLMSG_HDRLEN or hdr.length > total - offset:
            raise _einval(f"nlmsg_len {hdr.length} out of range at offset {offset}")
        yield hdr, view[offset + NLMSG_HDRLEN : offset + hdr.length]
        offset += nl_align(hdr.length)


def build_nlmsg(msg_type: int, flags: int, seq: int, pid: int, payload: bytes) -> bytes:
    """Frame ``payload`` with an nlmsghdr; the result is padded to 4 bytes."""
    length = NLMSG_HDRLEN + len(payload)
    hdr = NlMsgHeader(length, msg_type, flags, seq, pid).pack()
    return hdr + payload + bytes(nl_align(length) - length)


def iter_attrs(buf: bytes | memoryview) -> Iterator[tuple[int, memoryview]]:
    """Yield ``(nla_type, payload)`` for each attribute in ``buf`` (flag bits kept).

    EINVAL for an attribute header that is truncated, shorter than 4 or longer than the
    bytes left (the kernel's ``nla_ok`` conditions).
    """
    view = memoryview(buf)
    offset = 0
    total = len(view)
    while offset < total:
        if total - offset < NLA_HDRLEN:
            raise _einval(f"{total - offset} trailing bytes after the last attribute")
        nla_len, nla_type = NLA_HDR.unpack_from(view, offset)
        if nla_len < NLA_HDRLEN or nla_len > total - offset:
            raise _einval(f"nla_len {nla_len} out of range at offset {offset}")
        yield nla_type, view[offset + NLA_HDRLEN : offset + nla_len]
        offset += nl_align(nla_len)


def build_attr(nla_type: int, payload: bytes) -> bytes:
    """One nlattr with ``payload``, padded to 4 bytes."""
    length = NLA_HDRLEN + len(payload)
    if length > 0xFFFF:
        raise ConfigError(f"netlink attribute {nla_type} too long ({length} bytes)")
    if not 0 <= nla_type <= 0xFFFF:
        raise ConfigError(f"netlink attribute type {nla_type} out of range")
    return NLA_HDR.pack(length, nla_type) + payload + bytes(nl_align(length) - length)


@dataclass(slots=True)
class NetlinkError:
    """Body of NLMSG_ERROR: ``error`` is 0 (an ACK) or a negative errno.

    ``echo`` is everything after the error code, kept verbatim: the offending request's
    header, followed by its payload unless the reply has NLM_F_CAPPED, then extended-ACK
    attributes if NLM_F_ACK_TLVS is set.
    """

    error: int
    echo: bytes = b""

    @property
    def is_ack(self) -> bool:
        return self.error == 0

    @property
    def offending(self) -> NlMsgHeader | None:
        """The header of the request this error answers, if it was echoed."""
        if len(self.echo) < NLMSG_HDRLEN:
            return None
        return NlMsgHeader(*NLMSG_HDR.unpack_from(self.echo, 0))

    def pack(self) -> bytes:
        try:
            return _ERRNO.pack(self.error) + self.echo
        except struct.error:
            raise ConfigError(f"netlink error code {self.error} out of range") from None


def parse_error(payload: bytes | memoryview) -> NetlinkError:
    if len(payload) < _ERRNO.size:
        raise _einval("NLMSG_ERROR shorter than its error code")
    (code,) = _ERRNO.unpack_from(payload, 0)
    return NetlinkError(code, bytes(payload[_ERRNO.size :]))


@dataclass(slots=True)
class Done:
    """Body of NLMSG_DONE: the dump's final status (0, or a negative errno)."""

    status: int = 0
    extra: bytes = b""

    def pack(self) -> bytes:
        try:
            return _ERRNO.pack(self.status) + self.extra
        except struct.error:
            raise ConfigError(f"NLMSG_DONE status {self.status} out of range") from None


def parse_done(payload: bytes | memoryview) -> Done:
    # Old kernels sent an empty NLMSG_DONE; treat the missing status as success.
    if len(payload) < _ERRNO.size:
        if len(payload):
            raise _einval("NLMSG_DONE with a partial status")
        return Done(0, b"")
    (status,) = _ERRNO.unpack_from(payload, 0)
    return Done(status, bytes(payload[_ERRNO.size :]))


def pack_u32(value: int) -> bytes:
    try:
        return _U32.pack(value)
    except struct.error:
        raise ConfigError(f"value {value} does not fit in 32 bits") from None

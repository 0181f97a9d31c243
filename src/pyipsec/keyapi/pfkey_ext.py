"""PF_KEY v2 extensions: one frozen dataclass per ``sadb_*`` structure, with its codec.

Layouts are those of ``<linux/pfkeyv2.h>``: every field in host byte order except the SPI,
the ports and the sockaddrs' addresses and flowinfo, in network byte order (RFC 2367
§2.3.1, §2.3.3). PF_KEY is a local socket, so "host order" is the order of this machine;
the structs use ``=`` (native order, no alignment), as the packed C structs do.

Parsing follows net/key/af_key.c (``parse_exthdrs``, ``verify_address_len``,
``verify_key_len``, ``verify_sec_ctx_len``, ``parse_ipsecrequests``,
``parse_sockaddr_pair``): whatever Linux refuses raises ``KeyApiError(EINVAL)``.
Deviations, each because the dataclass could not give the same bytes back, also raise
EINVAL and are marked "stricter than Linux" below: a sensitivity extension whose length
is not its bitmaps', a proposal with a partial ``sadb_comb``, a sockaddr pair longer than
two sockaddrs, trailing bytes after the last ipsecrequest, a filter with a family other
than AF_INET/AF_INET6. Reserved fields and padding are ignored on input and written as
zeros, as the kernel does.

Builders raise ``ConfigError`` for values that do not fit the wire format.
"""

from __future__ import annotations

import errno
import struct
from collections.abc import Callable
from dataclasses import astuple, dataclass, field
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import ClassVar, Final, TypeAlias

from pyipsec.errors import ConfigError, KeyApiError
from pyipsec.keyapi import pfkey_const as k

IPAddress: TypeAlias = IPv4Address | IPv6Address

# Extension headers, in the order of <linux/pfkeyv2.h>. "x" bytes are reserved fields.
_EXT_HDR: Final = struct.Struct("=HH")
_U16: Final = struct.Struct("=H")
_BE16: Final = struct.Struct("!H")
_BE32: Final = struct.Struct("!I")
_SA: Final = struct.Struct("=HH4sBBBBI")  # sadb_sa, 16
_LIFETIME: Final = struct.Struct("=HHIQQQ")  # sadb_lifetime, 32
_ADDRESS: Final = struct.Struct("=HHBB2x")  # sadb_address, 8
_KEY: Final = struct.Struct("=HHH2x")  # sadb_key, 8
_IDENT: Final = struct.Struct("=HHH2xQ")  # sadb_ident, 16
_SENS: Final = struct.Struct("=HHIBBBB4x")  # sadb_sens, 16
_PROP: Final = struct.Struct("=HHB3x")  # sadb_prop, 8
_COMB: Final = struct.Struct("=BBHHHHH4xIIQQQQQQ")  # sadb_comb, 72
_SUPPORTED: Final = struct.Struct("=HH4x")  # sadb_supported, 8
_ALG: Final = struct.Struct("=BBHH2x")  # sadb_alg, 8
_SPIRANGE: Final = struct.Struct("=HHII4x")  # sadb_spirange, 16
_KMPRIVATE: Final = struct.Struct("=HH4x")  # sadb_x_kmprivate, 8
_SA2: Final = struct.Struct("=HHB3xII")  # sadb_x_sa2, 16
_POLICY: Final = struct.Struct("=HHHBxII")  # sadb_x_policy, 16
_IPSECREQ: Final = struct.Struct("=HHBB2xI4x")  # sadb_x_ipsecrequest, 16
_NAT_T_TYPE: Final = struct.Struct("=HHB3x")  # sadb_x_nat_t_type, 8
_NAT_T_PORT: Final = struct.Struct("=HH2s2x")  # sadb_x_nat_t_port, 8
_SEC_CTX: Final = struct.Struct("=HHBBH")  # sadb_x_sec_ctx, 8
_KMADDRESS: Final = struct.Struct("=HHI")  # sadb_x_kmaddress, 8
_FILTER: Final = struct.Struct("=HH16s16sHBB")  # sadb_x_filter, 40
_SOCKADDR_IN: Final = struct.Struct("=H2s4s8x")  # struct sockaddr_in, 16
_SOCKADDR_IN6: Final = struct.Struct("=H2s4s16sI")  # struct sockaddr_in6, 28

ADDRESS_TYPES: Final = frozenset(
    {
        k.SADB_EXT_ADDRESS_SRC,
        k.SADB_EXT_ADDRESS_DST,
        k.SADB_EXT_ADDRESS_PROXY,
        k.SADB_X_EXT_NAT_T_OA,
    }
)
LIFETIME_TYPES: Final = frozenset(
    {k.SADB_EXT_LIFETIME_CURRENT, k.SADB_EXT_LIFETIME_HARD, k.SADB_EXT_LIFETIME_SOFT}
)
KEY_TYPES: Final = frozenset({k.SADB_EXT_KEY_AUTH, k.SADB_EXT_KEY_ENCRYPT})
IDENTITY_TYPES: Final = frozenset({k.SADB_EXT_IDENTITY_SRC, k.SADB_EXT_IDENTITY_DST})
SUPPORTED_TYPES: Final = frozenset({k.SADB_EXT_SUPPORTED_AUTH, k.SADB_EXT_SUPPORTED_ENCRYPT})
NAT_T_PORT_TYPES: Final = frozenset({k.SADB_X_EXT_NAT_T_SPORT, k.SADB_X_EXT_NAT_T_DPORT})


def _einval(why: str) -> KeyApiError:
    return KeyApiError(errno.EINVAL, f"PF_KEY: {why}")


def align8(n: int) -> int:
    """``n`` rounded up to a multiple of 8 (PFKEY_ALIGN8)."""
    return (n + 7) & ~7


def _pad8(data: bytes) -> bytes:
    return data + bytes(align8(len(data)) - len(data))


# --- sockaddrs ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SockAddr:
    """A ``sockaddr_in``/``sockaddr_in6`` (the family follows ``addr``'s version)."""

    addr: IPAddress
    port: int = 0
    flowinfo: int = 0  # IPv6 only, network order on the wire
    scope_id: int = 0  # IPv6 only, host order on the wire


def sockaddr_len(family: int) -> int:
    """sizeof the sockaddr of ``family``; 0 for a family PF_KEY on Linux cannot carry."""
    if family == k.AF_INET:
        return _SOCKADDR_IN.size
    if family == k.AF_INET6:
        return _SOCKADDR_IN6.size
    return 0


def _parse_sockaddr(buf: memoryview, off: int, family: int) -> SockAddr:
    # The caller checked the family and that the whole sockaddr is in buf.
    if family == k.AF_INET:
        (
            _,
            port,
            addr4,
        ) = _SOCKADDR_IN.unpack_from(buf, off)
        return SockAddr(IPv4Address(addr4), _BE16.unpack(port)[0])
    _, port, flow, addr6, scope = _SOCKADDR_IN6.unpack_from(buf, off)
    return SockAddr(IPv6Address(addr6), _BE16.unpack(port)[0], _BE32.unpack(flow)[0], scope)


def _build_sockaddr(sa: SockAddr) -> bytes:
    if isinstance(sa.addr, IPv4Address):
        if sa.flowinfo or sa.scope_id:
            raise ConfigError("flowinfo and scope_id exist only in an IPv6 sockaddr")
        return _SOCKADDR_IN.pack(k.AF_INET, _BE16.pack(sa.port), sa.addr.packed)
    if isinstance(sa.addr, IPv6Address):
        return _SOCKADDR_IN6.pack(
            k.AF_INET6, _BE16.pack(sa.port), _BE32.pack(sa.flowinfo), sa.addr.packed, sa.scope_id
        )
    raise ConfigError(f"not an IPv4Address or IPv6Address: {sa.addr!r}")


def _family_at(buf: memoryview, off: int) -> int:
    family: int = _U16.unpack_from(buf, off)[0]
    return family


def _parse_sockaddr_pair(buf: memoryview) -> tuple[SockAddr, SockAddr]:
    # af_key.c parse_sockaddr_pair: two sockaddrs of one family, padded to 8 bytes.
    if len(buf) < 2:
        raise _einval("sockaddr pair truncated")
    family = _family_at(buf, 0)
    size = sockaddr_len(family)
    if not size:
        raise _einval(f"sockaddr family {family} not supported")
    if len(buf) != align8(2 * size):  # Linux: shorter is EINVAL; longer, stricter than Linux
        raise _einval("sockaddr pair length does not match its family")
    if _family_at(buf, size) != family:
        raise _einval("sockaddr pair mixes families")
    return _parse_sockaddr(buf, 0, family), _parse_sockaddr(buf, size, family)


def _build_sockaddr_pair(first: SockAddr, second: SockAddr) -> bytes:
    if type(first.addr) is not type(second.addr):
        raise ConfigError("a sockaddr pair needs two addresses of one family")
    return _pad8(_build_sockaddr(first) + _build_sockaddr(second))


# --- extension dataclasses ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sa:
    """``sadb_sa`` (RFC 2367 §2.3.1). ``spi`` is the SPI as a number."""

    exttype: ClassVar[int] = k.SADB_EXT_SA
    spi: int
    replay: int = 0
    state: int = k.SADB_SASTATE_MATURE
    auth: int = 0
    encrypt: int = 0
    flags: int = 0


@dataclass(frozen=True, slots=True)
class Lifetime:
    """``sadb_lifetime`` (§2.3.2); ``exttype`` is LIFETIME_CURRENT, _HARD or _SOFT."""

    exttype: int
    allocations: int = 0
    nbytes: int = 0
    addtime: int = 0
    usetime: int = 0


@dataclass(frozen=True, slots=True)
class Address:
    """``sadb_address`` + sockaddr (§2.3.3): ADDRESS_SRC/DST/PROXY or X_NAT_T_OA."""

    exttype: int
    addr: IPAddress
    prefixlen: int
    proto: int = 0
    port: int = 0
    flowinfo: int = 0
    scope_id: int = 0

    @classmethod
    def host(cls, exttype: int, addr: str | IPAddress, *, port: int = 0, proto: int = 0) -> Address:
        """A single-address extension: the prefix length is the address's full length."""
        ip = ip_address(addr) if isinstance(addr, str) else addr
        return cls(exttype, ip, ip.max_prefixlen, proto, port)

    @property
    def family(self) -> int:
        return k.AF_INET if isinstance(self.addr, IPv4Address) else k.AF_INET6

    @property
    def sockaddr(self) -> SockAddr:
        return SockAddr(self.addr, self.port, self.flowinfo, self.scope_id)


@dataclass(frozen=True, slots=True)
class Key:
    """``sadb_key`` (§2.3.4): ``bits`` of key material; the key is never in the repr."""

    exttype: int
    bits: int
    key: bytes = field(repr=False)

    @classmethod
    def of(cls, exttype: int, key: bytes) -> Key:
        return cls(exttype, 8 * len(key), key)


@dataclass(frozen=True, slots=True)
class Identity:
    """``sadb_ident`` (§2.3.5) and its identity string, without the terminating NUL."""

    exttype: int
    ident_type: int
    ident: bytes = b""
    ident_id: int = 0


@dataclass(frozen=True, slots=True)
class Sensitivity:
    """``sadb_sens`` (§2.3.6) with its sensitivity and integrity bitmaps (64-bit words)."""

    exttype: ClassVar[int] = k.SADB_EXT_SENSITIVITY
    dpd: int
    sens_level: int = 0
    integ_level: int = 0
    sens_bitmap: tuple[int, ...] = ()
    integ_bitmap: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Comb:
    """``sadb_comb``: one algorithm combination of a proposal (§2.3.7)."""

    auth: int = 0
    encrypt: int = 0
    flags: int = 0
    auth_minbits: int = 0
    auth_maxbits: int = 0
    encrypt_minbits: int = 0
    encrypt_maxbits: int = 0
    soft_allocations: int = 0
    hard_allocations: int = 0
    soft_bytes: int = 0
    hard_bytes: int = 0
    soft_addtime: int = 0
    hard_addtime: int = 0
    soft_usetime: int = 0
    hard_usetime: int = 0


@dataclass(frozen=True, slots=True)
class Proposal:
    """``sadb_prop`` and its ``sadb_comb`` list (§2.3.7)."""

    exttype: ClassVar[int] = k.SADB_EXT_PROPOSAL
    replay: int
    combs: tuple[Comb, ...] = ()


@dataclass(frozen=True, slots=True)
class Alg:
    """``sadb_alg``: one supported algorithm (§2.3.8)."""

    alg_id: int
    ivlen: int = 0
    minbits: int = 0
    maxbits: int = 0


@dataclass(frozen=True, slots=True)
class Supported:
    """``sadb_supported`` (§2.3.8): SUPPORTED_AUTH or SUPPORTED_ENCRYPT."""

    exttype: int
    algs: tuple[Alg, ...] = ()


@dataclass(frozen=True, slots=True)
class SpiRange:
    """``sadb_spirange`` (§2.3.9), in host order like the kernel reads it."""

    exttype: ClassVar[int] = k.SADB_EXT_SPIRANGE
    spi_min: int
    spi_max: int


@dataclass(frozen=True, slots=True)
class KmPrivate:
    """``sadb_x_kmprivate``: opaque key-manager data, a multiple of 8 bytes."""

    exttype: ClassVar[int] = k.SADB_X_EXT_KMPRIVATE
    data: bytes = b""


@dataclass(frozen=True, slots=True)
class Sa2:
    """``sadb_x_sa2``: mode (IPSEC_MODE_*) and reqid of an SA."""

    exttype: ClassVar[int] = k.SADB_X_EXT_SA2
    mode: int
    reqid: int = 0
    sequence: int = 0


@dataclass(frozen=True, slots=True)
class IpsecRequest:
    """``sadb_x_ipsecrequest``: one template of a policy, with its endpoint pair if any."""

    proto: int
    mode: int
    level: int
    reqid: int = 0
    src: SockAddr | None = None
    dst: SockAddr | None = None


@dataclass(frozen=True, slots=True)
class Policy:
    """``sadb_x_policy`` (IPSEC_POLICY_*, IPSEC_DIR_*) and its ipsecrequests."""

    exttype: ClassVar[int] = k.SADB_X_EXT_POLICY
    policy_type: int
    direction: int
    policy_id: int = 0
    priority: int = 0
    requests: tuple[IpsecRequest, ...] = ()


@dataclass(frozen=True, slots=True)
class NatTType:
    """``sadb_x_nat_t_type``: the UDP encapsulation (UDP_ENCAP_ESPINUDP)."""

    exttype: ClassVar[int] = k.SADB_X_EXT_NAT_T_TYPE
    encap_type: int


@dataclass(frozen=True, slots=True)
class NatTPort:
    """``sadb_x_nat_t_port``: X_NAT_T_SPORT or X_NAT_T_DPORT."""

    exttype: int
    port: int


@dataclass(frozen=True, slots=True)
class SecCtx:
    """``sadb_x_sec_ctx``: an LSM security context string."""

    exttype: ClassVar[int] = k.SADB_X_EXT_SEC_CTX
    alg: int
    doi: int
    ctx: bytes = b""


@dataclass(frozen=True, slots=True)
class KmAddress:
    """``sadb_x_kmaddress``: the addresses IKE uses for a MIGRATE."""

    exttype: ClassVar[int] = k.SADB_X_EXT_KMADDRESS
    local: SockAddr
    remote: SockAddr
    reserved: int = 0  # the kernel passes it through to xfrm_kmaddress


@dataclass(frozen=True, slots=True)
class Filter:
    """``sadb_x_filter``: source and destination prefixes that restrict a DUMP."""

    exttype: ClassVar[int] = k.SADB_X_EXT_FILTER
    saddr: IPAddress
    daddr: IPAddress
    splen: int
    dplen: int

    @property
    def family(self) -> int:
        return k.AF_INET if isinstance(self.saddr, IPv4Address) else k.AF_INET6


@dataclass(frozen=True, slots=True)
class UnknownExtension:
    """An extension type beyond SADB_EXT_MAX, kept opaque (only with ``strict=False``)."""

    exttype: int
    data: bytes = b""


# The RFC 2367 extensions, then the Linux/KAME ones.
_SadbExtension: TypeAlias = Sa | Lifetime | Address | Key | Identity | Sensitivity | Proposal
_KameExtension: TypeAlias = SpiRange | KmPrivate | Sa2 | Policy | NatTType | NatTPort | SecCtx
Extension: TypeAlias = (
    _SadbExtension | Supported | _KameExtension | KmAddress | Filter | UnknownExtension
)

# --- parsers -----------------------------------------------------------------------
# Each takes the whole extension (header included); its length is a multiple of 8, at
# least MIN_LEN[exttype], and the message checked it fits.


def _parse_sa(exttype: int, ext: memoryview) -> Sa:
    _, _, spi, replay, state, auth, encrypt, flags = _SA.unpack_from(ext)
    return Sa(_BE32.unpack(spi)[0], replay, state, auth, encrypt, flags)


def _parse_lifetime(exttype: int, ext: memoryview) -> Lifetime:
    _, _, allocations, nbytes, addtime, usetime = _LIFETIME.unpack_from(ext)
    return Lifetime(exttype, allocations, nbytes, addtime, usetime)


def _parse_address(exttype: int, ext: memoryview) -> Address:
    # af_key.c verify_address_len: the family must be readable, the length must be
    # exactly that family's sockaddr padded to 8, the prefix no longer than the address.
    if len(ext) < _ADDRESS.size + 2:
        raise _einval("address extension without a sockaddr")
    _, _, proto, prefixlen = _ADDRESS.unpack_from(ext)
    family = _family_at(ext, _ADDRESS.size)
    size = sockaddr_len(family)
    if not size:
        raise _einval(f"address family {family} not supported")
    if len(ext) != align8(_ADDRESS.size + size):
        raise _einval("address extension length does not match its family")
    sa = _parse_sockaddr(ext, _ADDRESS.size, family)
    if prefixlen > sa.addr.max_prefixlen:
        raise _einval("address prefix length beyond the family")
    return Address(exttype, sa.addr, prefixlen, proto, sa.port, sa.flowinfo, sa.scope_id)


def _parse_key(exttype: int, ext: memoryview) -> Key:
    # af_key.c verify_key_len: the key bits must fit in the extension.
    _, _, bits = _KEY.unpack_from(ext)
    nbytes = (bits + 7) // 8
    if align8(_KEY.size + nbytes) > len(ext):
        raise _einval("key bits beyond the key extension")
    return Key(exttype, bits, bytes(ext[_KEY.size : _KEY.size + nbytes]))


def _parse_identity(exttype: int, ext: memoryview) -> Identity:
    # RFC 2367 §2.3.5: a NUL-terminated string padded to 64 bits follows the header.
    _, _, ident_type, ident_id = _IDENT.unpack_from(ext)
    text = bytes(ext[_IDENT.size :])
    end = text.find(0)
    return Identity(exttype, ident_type, text if end < 0 else text[:end], ident_id)


def _parse_sensitivity(exttype: int, ext: memoryview) -> Sensitivity:
    _, _, dpd, sens_level, sens_len, integ_level, integ_len = _SENS.unpack_from(ext)
    if len(ext) != _SENS.size + 8 * (sens_len + integ_len):  # stricter than Linux
        raise _einval("sensitivity length does not match its bitmaps")
    words = ext[_SENS.size :].cast("Q")
    return Sensitivity(
        dpd, sens_level, integ_level, tuple(words[:sens_len]), tuple(words[sens_len:])
    )


def _parse_proposal(exttype: int, ext: memoryview) -> Proposal:
    _, _, replay = _PROP.unpack_from(ext)
    if (len(ext) - _PROP.size) % _COMB.size:  # stricter than Linux
        raise _einval("proposal holds a partial sadb_comb")
    combs = tuple(Comb(*c) for c in _COMB.iter_unpack(ext[_PROP.size :]))
    return Proposal(replay, combs)


def _parse_supported(exttype: int, ext: memoryview) -> Supported:
    algs = tuple(Alg(*a) for a in _ALG.iter_unpack(ext[_SUPPORTED.size :]))
    return Supported(exttype, algs)


def _parse_spirange(exttype: int, ext: memoryview) -> SpiRange:
    _, _, spi_min, spi_max = _SPIRANGE.unpack_from(ext)
    return SpiRange(spi_min, spi_max)


def _parse_kmprivate(exttype: int, ext: memoryview) -> KmPrivate:
    return KmPrivate(bytes(ext[_KMPRIVATE.size :]))


def _parse_sa2(exttype: int, ext: memoryview) -> Sa2:
    _, _, mode, sequence, reqid = _SA2.unpack_from(ext)
    return Sa2(mode, reqid, sequence)


def _parse_policy(exttype: int, ext: memoryview) -> Policy:
    _, _, policy_type, direction, policy_id, priority = _POLICY.unpack_from(ext)
    requests: list[IpsecRequest] = []
    off, end = _POLICY.size, len(ext)
    # af_key.c parse_ipsecrequests: sadb_x_ipsecrequest_len counts bytes, not words.
    while end - off >= _IPSECREQ.size:
        rq_len, proto, mode, level, reqid = _IPSECREQ.unpack_from(ext, off)
        if rq_len < _IPSECREQ.size or rq_len > end - off:
            raise _einval("ipsecrequest length out of its policy")
        src = dst = None
        if rq_len > _IPSECREQ.size:
            src, dst = _parse_sockaddr_pair(ext[off + _IPSECREQ.size : off + rq_len])
        requests.append(IpsecRequest(proto, mode, level, reqid, src, dst))
        off += rq_len
    if off != end:  # Linux skips fewer than 16 trailing bytes; stricter than Linux
        raise _einval("trailing bytes after the last ipsecrequest")
    return Policy(policy_type, direction, policy_id, priority, tuple(requests))


def _parse_nat_t_type(exttype: int, ext: memoryview) -> NatTType:
    return NatTType(_NAT_T_TYPE.unpack_from(ext)[2])


def _parse_nat_t_port(exttype: int, ext: memoryview) -> NatTPort:
    port: int = _BE16.unpack(_NAT_T_PORT.unpack_from(ext)[2])[0]
    return NatTPort(exttype, port)


def _parse_sec_ctx(exttype: int, ext: memoryview) -> SecCtx:
    # af_key.c verify_sec_ctx_len: at most a page, and exactly the padded length.
    _, _, alg, doi, ctx_len = _SEC_CTX.unpack_from(ext)
    if ctx_len > k.SEC_CTX_MAX:
        raise _einval("security context longer than a page")
    if len(ext) != align8(_SEC_CTX.size + ctx_len):
        raise _einval("security context length does not match the extension")
    return SecCtx(alg, doi, bytes(ext[_SEC_CTX.size : _SEC_CTX.size + ctx_len]))


def _parse_kmaddress(exttype: int, ext: memoryview) -> KmAddress:
    _, _, reserved = _KMADDRESS.unpack_from(ext)
    local, remote = _parse_sockaddr_pair(ext[_KMADDRESS.size :])
    return KmAddress(local, remote, reserved)


def _parse_filter(exttype: int, ext: memoryview) -> Filter:
    _, _, saddr, daddr, family, splen, dplen = _FILTER.unpack_from(ext)
    if family == k.AF_INET:  # an xfrm_address_t holds an IPv4 address in its first word
        return Filter(IPv4Address(saddr[:4]), IPv4Address(daddr[:4]), splen, dplen)
    if family == k.AF_INET6:
        return Filter(IPv6Address(saddr), IPv6Address(daddr), splen, dplen)
    raise _einval(f"filter family {family} not supported")  # stricter than Linux


_Parser: TypeAlias = Callable[[int, memoryview], Extension]

# Each type's parser and, as af_key.c's sadb_ext_min_len, the size of its fixed part.
_TABLE: Final[dict[int, tuple[_Parser, int]]] = {
    k.SADB_EXT_SA: (_parse_sa, _SA.size),
    k.SADB_EXT_LIFETIME_CURRENT: (_parse_lifetime, _LIFETIME.size),
    k.SADB_EXT_LIFETIME_HARD: (_parse_lifetime, _LIFETIME.size),
    k.SADB_EXT_LIFETIME_SOFT: (_parse_lifetime, _LIFETIME.size),
    k.SADB_EXT_ADDRESS_SRC: (_parse_address, _ADDRESS.size),
    k.SADB_EXT_ADDRESS_DST: (_parse_address, _ADDRESS.size),
    k.SADB_EXT_ADDRESS_PROXY: (_parse_address, _ADDRESS.size),
    k.SADB_EXT_KEY_AUTH: (_parse_key, _KEY.size),
    k.SADB_EXT_KEY_ENCRYPT: (_parse_key, _KEY.size),
    k.SADB_EXT_IDENTITY_SRC: (_parse_identity, _IDENT.size),
    k.SADB_EXT_IDENTITY_DST: (_parse_identity, _IDENT.size),
    k.SADB_EXT_SENSITIVITY: (_parse_sensitivity, _SENS.size),
    k.SADB_EXT_PROPOSAL: (_parse_proposal, _PROP.size),
    k.SADB_EXT_SUPPORTED_AUTH: (_parse_supported, _SUPPORTED.size),
    k.SADB_EXT_SUPPORTED_ENCRYPT: (_parse_supported, _SUPPORTED.size),
    k.SADB_EXT_SPIRANGE: (_parse_spirange, _SPIRANGE.size),
    k.SADB_X_EXT_KMPRIVATE: (_parse_kmprivate, _KMPRIVATE.size),
    k.SADB_X_EXT_POLICY: (_parse_policy, _POLICY.size),
    k.SADB_X_EXT_SA2: (_parse_sa2, _SA2.size),
    k.SADB_X_EXT_NAT_T_TYPE: (_parse_nat_t_type, _NAT_T_TYPE.size),
    k.SADB_X_EXT_NAT_T_SPORT: (_parse_nat_t_port, _NAT_T_PORT.size),
    k.SADB_X_EXT_NAT_T_DPORT: (_parse_nat_t_port, _NAT_T_PORT.size),
    k.SADB_X_EXT_NAT_T_OA: (_parse_address, _ADDRESS.size),
    k.SADB_X_EXT_SEC_CTX: (_parse_sec_ctx, _SEC_CTX.size),
    k.SADB_X_EXT_KMADDRESS: (_parse_kmaddress, _KMADDRESS.size),
    k.SADB_X_EXT_FILTER: (_parse_filter, _FILTER.size),
}
MIN_LEN: Final = {t: size for t, (_, size) in _TABLE.items()}

# Extensions with no variable part. Linux accepts them longer and ignores the tail; a
# strict parse refuses the tail, which no dataclass could give back.
FIXED_LEN: Final[dict[int, int]] = {
    t: MIN_LEN[t]
    for t in (
        k.SADB_EXT_SA,
        k.SADB_EXT_LIFETIME_CURRENT,
        k.SADB_EXT_LIFETIME_HARD,
        k.SADB_EXT_LIFETIME_SOFT,
        k.SADB_EXT_SPIRANGE,
        k.SADB_X_EXT_SA2,
        k.SADB_X_EXT_NAT_T_TYPE,
        k.SADB_X_EXT_NAT_T_SPORT,
        k.SADB_X_EXT_NAT_T_DPORT,
        k.SADB_X_EXT_FILTER,
    )
}


def parse_extension(exttype: int, ext: memoryview, *, strict: bool = True) -> Extension:
    """Decode one extension (header included) whose outer length the caller checked.

    Raises ``KeyApiError(EINVAL)`` as af_key.c's ``parse_exthdrs`` would; an unknown
    type is an error when ``strict`` and an ``UnknownExtension`` otherwise.
    """
    if exttype == 0:
        raise _einval("reserved extension type 0")
    if exttype > k.SADB_EXT_MAX:
        if strict:  # Linux skips these; a codec that cannot name them refuses them
            raise _einval(f"unknown extension type {exttype}")
        return UnknownExtension(exttype, bytes(ext[_EXT_HDR.size :]))
    if len(ext) < MIN_LEN[exttype]:
        raise _einval(f"extension {exttype} shorter than its structure")
    fixed = FIXED_LEN.get(exttype)
    if strict and fixed is not None and len(ext) != fixed:
        raise _einval(f"extension {exttype} longer than its structure")
    return _TABLE[exttype][0](exttype, ext)


# --- builders ----------------------------------------------------------------------


def _words(n: int) -> int:
    return n // 8


def _check_type(exttype: int, allowed: frozenset[int], what: str) -> None:
    if exttype not in allowed:
        raise ConfigError(f"extension type {exttype} is not a {what} extension")


def _build_sa(e: Sa) -> bytes:
    return _SA.pack(
        _words(_SA.size),
        e.exttype,
        _BE32.pack(e.spi),
        e.replay,
        e.state,
        e.auth,
        e.encrypt,
        e.flags,
    )


def _build_lifetime(e: Lifetime) -> bytes:
    _check_type(e.exttype, LIFETIME_TYPES, "lifetime")
    return _LIFETIME.pack(
        _words(_LIFETIME.size), e.exttype, e.allocations, e.nbytes, e.addtime, e.usetime
    )


def _build_address(e: Address) -> bytes:
    _check_type(e.exttype, ADDRESS_TYPES, "address")
    sa = _build_sockaddr(e.sockaddr)
    if not 0 <= e.prefixlen <= e.addr.max_prefixlen:
        raise ConfigError(f"prefix length {e.prefixlen} out of range for {e.addr}")
    size = align8(_ADDRESS.size + len(sa))
    return _pad8(_ADDRESS.pack(_words(size), e.exttype, e.proto, e.prefixlen) + sa)


def _build_key(e: Key) -> bytes:
    _check_type(e.exttype, KEY_TYPES, "key")
    if (e.bits + 7) // 8 != len(e.key):
        raise ConfigError("key bits do not match the key length")
    size = align8(_KEY.size + len(e.key))
    return _pad8(_KEY.pack(_words(size), e.exttype, e.bits) + e.key)


def _build_identity(e: Identity) -> bytes:
    _check_type(e.exttype, IDENTITY_TYPES, "identity")
    if 0 in e.ident:
        raise ConfigError("an identity string cannot hold a NUL byte")
    text = _pad8(e.ident + b"\0") if e.ident else b""
    size = _IDENT.size + len(text)
    return _IDENT.pack(_words(size), e.exttype, e.ident_type, e.ident_id) + text


def _build_sensitivity(e: Sensitivity) -> bytes:
    ns, ni = len(e.sens_bitmap), len(e.integ_bitmap)
    size = _SENS.size + 8 * (ns + ni)
    head = _SENS.pack(_words(size), e.exttype, e.dpd, e.sens_level, ns, e.integ_level, ni)
    return head + struct.pack(f"={ns + ni}Q", *e.sens_bitmap, *e.integ_bitmap)


def _build_proposal(e: Proposal) -> bytes:
    size = _PROP.size + _COMB.size * len(e.combs)
    parts = [_PROP.pack(_words(size), e.exttype, e.replay)]
    parts += [_COMB.pack(*astuple(comb)) for comb in e.combs]
    return b"".join(parts)


def _build_supported(e: Supported) -> bytes:
    _check_type(e.exttype, SUPPORTED_TYPES, "supported")
    size = _SUPPORTED.size + _ALG.size * len(e.algs)
    parts = [_SUPPORTED.pack(_words(size), e.exttype)]
    parts += [_ALG.pack(a.alg_id, a.ivlen, a.minbits, a.maxbits) for a in e.algs]
    return b"".join(parts)


def _build_spirange(e: SpiRange) -> bytes:
    return _SPIRANGE.pack(_words(_SPIRANGE.size), e.exttype, e.spi_min, e.spi_max)


def _build_kmprivate(e: KmPrivate) -> bytes:
    if len(e.data) % 8:
        raise ConfigError("X_KMPRIVATE data must be a multiple of 8 bytes")
    return _KMPRIVATE.pack(_words(_KMPRIVATE.size + len(e.data)), e.exttype) + e.data


def _build_sa2(e: Sa2) -> bytes:
    return _SA2.pack(_words(_SA2.size), e.exttype, e.mode, e.sequence, e.reqid)


def _build_request(r: IpsecRequest) -> bytes:
    if (r.src is None) != (r.dst is None):
        raise ConfigError("an ipsecrequest carries both endpoints or neither")
    pair = b"" if r.src is None or r.dst is None else _build_sockaddr_pair(r.src, r.dst)
    size = _IPSECREQ.size + len(pair)
    return _IPSECREQ.pack(size, r.proto, r.mode, r.level, r.reqid) + pair


def _build_policy(e: Policy) -> bytes:
    reqs = b"".join(_build_request(r) for r in e.requests)
    size = _POLICY.size + len(reqs)
    head = _POLICY.pack(
        _words(size), e.exttype, e.policy_type, e.direction, e.policy_id, e.priority
    )
    return head + reqs


def _build_nat_t_type(e: NatTType) -> bytes:
    return _NAT_T_TYPE.pack(_words(_NAT_T_TYPE.size), e.exttype, e.encap_type)


def _build_nat_t_port(e: NatTPort) -> bytes:
    _check_type(e.exttype, NAT_T_PORT_TYPES, "NAT-T port")
    return _NAT_T_PORT.pack(_words(_NAT_T_PORT.size), e.exttype, _BE16.pack(e.port))


def _build_sec_ctx(e: SecCtx) -> bytes:
    if len(e.ctx) > k.SEC_CTX_MAX:
        raise ConfigError("security context longer than a page")
    size = align8(_SEC_CTX.size + len(e.ctx))
    return _pad8(_SEC_CTX.pack(_words(size), e.exttype, e.alg, e.doi, len(e.ctx)) + e.ctx)


def _build_kmaddress(e: KmAddress) -> bytes:
    pair = _build_sockaddr_pair(e.local, e.remote)
    size = _KMADDRESS.size + len(pair)
    return _KMADDRESS.pack(_words(size), e.exttype, e.reserved) + pair


def _build_filter(e: Filter) -> bytes:
    if type(e.saddr) is not type(e.daddr) or not isinstance(e.saddr, IPv4Address | IPv6Address):
        raise ConfigError("a filter needs two addresses of one family")
    saddr, daddr = e.saddr.packed.ljust(16, b"\0"), e.daddr.packed.ljust(16, b"\0")
    return _FILTER.pack(_words(_FILTER.size), e.exttype, saddr, daddr, e.family, e.splen, e.dplen)


def _build_unknown(e: UnknownExtension) -> bytes:
    if e.exttype <= k.SADB_EXT_MAX or (_EXT_HDR.size + len(e.data)) % 8:
        raise ConfigError("an unknown extension has a type > SADB_EXT_MAX and 8-byte size")
    return _EXT_HDR.pack(_words(_EXT_HDR.size + len(e.data)), e.exttype) + e.data


_BUILDERS: Final[dict[type, Callable[..., bytes]]] = {
    Sa: _build_sa,
    Lifetime: _build_lifetime,
    Address: _build_address,
    Key: _build_key,
    Identity: _build_identity,
    Sensitivity: _build_sensitivity,
    Proposal: _build_proposal,
    Supported: _build_supported,
    SpiRange: _build_spirange,
    KmPrivate: _build_kmprivate,
    Sa2: _build_sa2,
    Policy: _build_policy,
    NatTType: _build_nat_t_type,
    NatTPort: _build_nat_t_port,
    SecCtx: _build_sec_ctx,
    KmAddress: _build_kmaddress,
    Filter: _build_filter,
    UnknownExtension: _build_unknown,
}


def build_extension(ext: Extension) -> bytes:
    """Encode one extension; ``ConfigError`` if a value does not fit its field."""
    builder = _BUILDERS.get(type(ext))
    if builder is None:
        raise ConfigError(f"not a PF_KEY extension: {type(ext).__name__}")
    try:
        return builder(ext)
    except struct.error as exc:
        raise ConfigError(f"{type(ext).__name__}: value out of range ({exc})") from None

"""PF_KEY v2 addresses: sockaddrs and the extensions that carry them, with their codecs.

``sadb_address`` (RFC 2367 §2.3.3), ``sadb_x_kmaddress`` and ``sadb_x_filter`` (Linux),
and the ``sockaddr_in``/``sockaddr_in6`` they hold. Ports, the IPv4/IPv6 address and
the IPv6 flowinfo are in network byte order; the family and scope id in host order.
Parsing follows net/key/af_key.c (``verify_address_len``, ``parse_sockaddr_pair``).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import ClassVar, Final, TypeAlias

from pyipsec.errors import ConfigError
from pyipsec.keyapi import pfkey_const as k
from pyipsec.keyapi.pfkey_wire import (
    BE16,
    BE32,
    U16,
    align8,
    check_type,
    einval,
    pad8,
    words,
)

IPAddress: TypeAlias = IPv4Address | IPv6Address

ADDRESS: Final = struct.Struct("=HHBB2x")  # sadb_address, 8
KMADDRESS: Final = struct.Struct("=HHI")  # sadb_x_kmaddress, 8
FILTER: Final = struct.Struct("=HH16s16sHBB")  # sadb_x_filter, 40
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
        _, port, addr4 = _SOCKADDR_IN.unpack_from(buf, off)
        return SockAddr(IPv4Address(addr4), BE16.unpack(port)[0])
    _, port, flow, addr6, scope = _SOCKADDR_IN6.unpack_from(buf, off)
    return SockAddr(IPv6Address(addr6), BE16.unpack(port)[0], BE32.unpack(flow)[0], scope)


def _build_sockaddr(sa: SockAddr) -> bytes:
    if isinstance(sa.addr, IPv4Address):
        if sa.flowinfo or sa.scope_id:
            raise ConfigError("flowinfo and scope_id exist only in an IPv6 sockaddr")
        return _SOCKADDR_IN.pack(k.AF_INET, BE16.pack(sa.port), sa.addr.packed)
    if isinstance(sa.addr, IPv6Address):
        return _SOCKADDR_IN6.pack(
            k.AF_INET6, BE16.pack(sa.port), BE32.pack(sa.flowinfo), sa.addr.packed, sa.scope_id
        )
    raise ConfigError(f"not an IPv4Address or IPv6Address: {sa.addr!r}")


def _family_at(buf: memoryview, off: int) -> int:
    family: int = U16.unpack_from(buf, off)[0]
    return family


def parse_sockaddr_pair(buf: memoryview) -> tuple[SockAddr, SockAddr]:
    """Two sockaddrs of one family padded to 8 bytes (af_key.c ``parse_sockaddr_pair``)."""
    if len(buf) < 2:
        raise einval("sockaddr pair truncated")
    family = _family_at(buf, 0)
    size = sockaddr_len(family)
    if not size:
        raise einval(f"sockaddr family {family} not supported")
    if len(buf) != align8(2 * size):  # Linux: shorter is EINVAL; longer, stricter than Linux
        raise einval("sockaddr pair length does not match its family")
    if _family_at(buf, size) != family:
        raise einval("sockaddr pair mixes families")
    return _parse_sockaddr(buf, 0, family), _parse_sockaddr(buf, size, family)


def build_sockaddr_pair(first: SockAddr, second: SockAddr) -> bytes:
    """The bytes :func:`parse_sockaddr_pair` reads back as ``(first, second)``."""
    if type(first.addr) is not type(second.addr):
        raise ConfigError("a sockaddr pair needs two addresses of one family")
    return pad8(_build_sockaddr(first) + _build_sockaddr(second))


# --- extension dataclasses ---------------------------------------------------------


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


# --- codecs ------------------------------------------------------------------------
# Parsers take the whole extension (header included), at least its fixed part long.


def parse_address(exttype: int, ext: memoryview) -> Address:
    """Decode a ``sadb_address`` extension (af_key.c ``verify_address_len``)."""
    # The family must be readable, the length must be exactly that family's sockaddr
    # padded to 8, the prefix no longer than the address.
    if len(ext) < ADDRESS.size + 2:
        raise einval("address extension without a sockaddr")
    _, _, proto, prefixlen = ADDRESS.unpack_from(ext)
    family = _family_at(ext, ADDRESS.size)
    size = sockaddr_len(family)
    if not size:
        raise einval(f"address family {family} not supported")
    if len(ext) != align8(ADDRESS.size + size):
        raise einval("address extension length does not match its family")
    sa = _parse_sockaddr(ext, ADDRESS.size, family)
    if prefixlen > sa.addr.max_prefixlen:
        raise einval("address prefix length beyond the family")
    return Address(exttype, sa.addr, prefixlen, proto, sa.port, sa.flowinfo, sa.scope_id)


def parse_kmaddress(exttype: int, ext: memoryview) -> KmAddress:
    """Decode a ``sadb_x_kmaddress`` extension."""
    _, _, reserved = KMADDRESS.unpack_from(ext)
    local, remote = parse_sockaddr_pair(ext[KMADDRESS.size :])
    return KmAddress(local, remote, reserved)


def parse_filter(exttype: int, ext: memoryview) -> Filter:
    """Decode a ``sadb_x_filter`` extension."""
    _, _, saddr, daddr, family, splen, dplen = FILTER.unpack_from(ext)
    if family == k.AF_INET:  # an xfrm_address_t holds an IPv4 address in its first word
        return Filter(IPv4Address(saddr[:4]), IPv4Address(daddr[:4]), splen, dplen)
    if family == k.AF_INET6:
        return Filter(IPv6Address(saddr), IPv6Address(daddr), splen, dplen)
    raise einval(f"filter family {family} not supported")  # stricter than Linux


def build_address(e: Address) -> bytes:
    """Encode a ``sadb_address`` extension."""
    check_type(e.exttype, ADDRESS_TYPES, "address")
    sa = _build_sockaddr(e.sockaddr)
    if not 0 <= e.prefixlen <= e.addr.max_prefixlen:
        raise ConfigError(f"prefix length {e.prefixlen} out of range for {e.addr}")
    size = align8(ADDRESS.size + len(sa))
    return pad8(ADDRESS.pack(words(size), e.exttype, e.proto, e.prefixlen) + sa)


def build_kmaddress(e: KmAddress) -> bytes:
    """Encode a ``sadb_x_kmaddress`` extension."""
    pair = build_sockaddr_pair(e.local, e.remote)
    size = KMADDRESS.size + len(pair)
    return KMADDRESS.pack(words(size), e.exttype, e.reserved) + pair


def build_filter(e: Filter) -> bytes:
    """Encode a ``sadb_x_filter`` extension."""
    if type(e.saddr) is not type(e.daddr) or not isinstance(e.saddr, IPv4Address | IPv6Address):
        raise ConfigError("a filter needs two addresses of one family")
    saddr, daddr = e.saddr.packed.ljust(16, b"\0"), e.daddr.packed.ljust(16, b"\0")
    return FILTER.pack(words(FILTER.size), e.exttype, saddr, daddr, e.family, e.splen, e.dplen)

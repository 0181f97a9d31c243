"""PF_KEY sockaddrs and address extensions (pyipsec.keyapi.pfkey_address), called directly.

Whole messages with these extensions are in test_pfkey.py (round trips, kernel errors)
and test_pfkey_golden.py (bytes against ctypes mirrors of the C structs).
"""

from __future__ import annotations

import errno
import struct
from ipaddress import IPv4Address, IPv6Address

import pytest

from pfkey_helpers import V4A, V4B, V6A, V6B
from pyipsec.errors import ConfigError, KeyApiError
from pyipsec.keyapi import pfkey_const as c
from pyipsec.keyapi.pfkey_address import (
    Address,
    Filter,
    KmAddress,
    SockAddr,
    build_address,
    build_filter,
    build_kmaddress,
    build_sockaddr_pair,
    parse_address,
    parse_filter,
    parse_kmaddress,
    parse_sockaddr_pair,
    sockaddr_len,
)


def test_sockaddr_sizes_are_the_c_ones() -> None:
    assert (sockaddr_len(c.AF_INET), sockaddr_len(c.AF_INET6), sockaddr_len(1)) == (16, 28, 0)


@pytest.mark.parametrize(
    "pair",
    [(SockAddr(V4A, 500), SockAddr(V4B, 4500)), (SockAddr(V6A, 1, 2, 3), SockAddr(V6B))],
)
def test_sockaddr_pair_round_trip_and_padding(pair: tuple[SockAddr, SockAddr]) -> None:
    raw = build_sockaddr_pair(*pair)
    assert len(raw) == {4: 32, 6: 56}[pair[0].addr.version]  # two sockaddrs, 8-aligned
    assert parse_sockaddr_pair(memoryview(raw)) == pair
    # Port and IPv6 flowinfo are in network order, the family in host order.
    assert raw[2:4] == struct.pack("!H", pair[0].port)
    assert struct.unpack("=H", raw[:2])[0] in (c.AF_INET, c.AF_INET6)


def test_sockaddr_pair_errors() -> None:
    good = build_sockaddr_pair(SockAddr(V4A), SockAddr(V4B))
    for bad in (b"\x02", good[:-8], good + bytes(8), struct.pack("=H", 1) + good[2:]):
        with pytest.raises(KeyApiError) as info:
            parse_sockaddr_pair(memoryview(bad))
        assert info.value.errno == errno.EINVAL
    mixed = build_sockaddr_pair(SockAddr(V6A), SockAddr(V6B))
    mixed = mixed[:28] + struct.pack("=H", c.AF_INET) + mixed[30:]
    with pytest.raises(KeyApiError, match="mixes families"):
        parse_sockaddr_pair(memoryview(mixed))
    with pytest.raises(ConfigError):
        build_sockaddr_pair(SockAddr(V4A), SockAddr(V6B))
    with pytest.raises(ConfigError):
        build_sockaddr_pair(SockAddr(V4A, flowinfo=1), SockAddr(V4B))


def test_address_extension_round_trip_and_checks() -> None:
    host = Address.host(c.SADB_EXT_ADDRESS_SRC, "192.0.2.1", port=500, proto=17)
    assert (host.prefixlen, host.family, host.sockaddr) == (32, c.AF_INET, SockAddr(V4A, 500))
    raw = build_address(host)
    assert len(raw) == 24 and struct.unpack_from("=H", raw)[0] == 3  # length in 64-bit words
    assert parse_address(c.SADB_EXT_ADDRESS_SRC, memoryview(raw)) == host
    net6 = Address(c.SADB_EXT_ADDRESS_DST, V6A, 64)
    assert parse_address(c.SADB_EXT_ADDRESS_DST, memoryview(build_address(net6))) == net6
    with pytest.raises(ConfigError):
        build_address(Address(c.SADB_EXT_KEY_AUTH, V4A, 32))
    with pytest.raises(ConfigError):
        build_address(Address(c.SADB_EXT_ADDRESS_SRC, V4A, 33))
    too_long = bytearray(raw)
    too_long[5] = 33  # sadb_address_prefixlen
    with pytest.raises(KeyApiError, match="prefix length"):
        parse_address(c.SADB_EXT_ADDRESS_SRC, memoryview(bytes(too_long)))


def test_kmaddress_and_filter() -> None:
    km = KmAddress(SockAddr(V4A), SockAddr(V4B), reserved=9)
    assert parse_kmaddress(km.exttype, memoryview(build_kmaddress(km))) == km
    f4 = Filter(IPv4Address("198.51.100.0"), IPv4Address("203.0.113.0"), 24, 25)
    raw = build_filter(f4)
    assert len(raw) == 40 and raw[4:8] == f4.saddr.packed and raw[8:20] == bytes(12)
    assert parse_filter(f4.exttype, memoryview(raw)) == f4
    f6 = Filter(IPv6Address("2001:db8:1::"), IPv6Address("2001:db8:2::"), 48, 48)
    assert parse_filter(f6.exttype, memoryview(build_filter(f6))) == f6
    with pytest.raises(ConfigError):
        build_filter(Filter(f4.saddr, f6.daddr, 24, 48))

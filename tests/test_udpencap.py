"""RFC 3948 UDP encapsulation helpers."""

from __future__ import annotations

import pytest
from scapy.layers.inet import UDP
from scapy.layers.inet6 import IPv6

from pyipsec.errors import ParseError
from pyipsec.wire.udpencap import UdpHeader, build_udp, classify, parse_udp


def test_classify() -> None:
    assert classify(b"\xff") == "keepalive"
    assert classify(b"\x00\x00\x00\x00IKE...") == "ike"
    assert classify(b"\x00\x00\x10\x00" + bytes(20)) == "esp"
    assert classify(b"\xfe") == "esp"
    assert classify(memoryview(b"\x00\x00\x00\x00")) == "ike"


def test_ipv4_checksum_zero_and_parse() -> None:
    raw = build_udp(4500, 4501, b"payload", bytes(4), bytes(4))
    assert parse_udp(raw) == UdpHeader(4500, 4501, 15, 0)
    with pytest.raises(ParseError):
        parse_udp(raw[:7])
    with pytest.raises(ParseError):
        parse_udp(raw[:10])  # length says 15


def test_ipv6_checksum_matches_scapy() -> None:
    src = IPv6(src="2001:db8::1").src
    pkt = IPv6(src="2001:db8::1", dst="2001:db8::2") / UDP(sport=4500, dport=4500) / b"esp!"
    expected = IPv6(bytes(pkt))[UDP].chksum
    import ipaddress

    raw = build_udp(4500, 4500, b"esp!", ipaddress.ip_address(src).packed,
                    ipaddress.ip_address("2001:db8::2").packed)  # fmt: skip
    assert parse_udp(raw).checksum == expected != 0


def test_bad_ports() -> None:
    with pytest.raises(ValueError):
        build_udp(70000, 1, b"")

"""IP wire helpers: checksums, headers, extension-header walk, flows, ICMP errors."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import (
    ICMPv6EchoRequest,
    ICMPv6PacketTooBig,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
)
from scapy.layers.sctp import SCTP

from pyipsec.errors import ParseError
from pyipsec.wire.ip import (
    Flow,
    IPv4Header,
    build_icmp_frag_needed,
    build_icmpv6_packet_too_big,
    build_ipv4,
    extract_flow,
    internet_checksum,
    ipv4_header_checksum,
    parse_ipv4,
    parse_ipv6,
    walk_ipv6,
)

A4, B4 = bytes([198, 51, 100, 1]), bytes([203, 0, 113, 2])


def naive_checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


@given(st.binary(max_size=300))
def test_checksum_matches_rfc1071_loop(data: bytes) -> None:
    assert internet_checksum(data) == naive_checksum(data)


def test_ipv4_header_round_trip_and_checksum() -> None:
    raw = bytes(IP(src="198.51.100.1", dst="203.0.113.2", options=[b"\x94\x04\x00\x00"]) / UDP())
    hdr = parse_ipv4(raw)
    assert hdr.src == A4 and hdr.proto == 17 and hdr.options == b"\x94\x04\x00\x00"
    assert build_ipv4(hdr) == raw[:24]
    assert ipv4_header_checksum(raw[:24]) == hdr.checksum
    assert internet_checksum(raw[:24]) == 0
    with pytest.raises(ParseError):
        parse_ipv4(raw[:19])
    with pytest.raises(ValueError):
        build_ipv4(IPv4Header(0, 20, 0, 0, 0, 64, 6, 0, b"\0" * 3, B4))


def test_ipv6_parse() -> None:
    hdr = parse_ipv6(bytes(IPv6(src="2001:db8::1", dst="2001:db8::2", tc=0xB8, fl=7, hlim=9)))
    assert (hdr.traffic_class, hdr.flow_label, hdr.hop_limit, hdr.next_header) == (0xB8, 7, 9, 59)
    with pytest.raises(ParseError):
        parse_ipv6(bytes(IP()))


@pytest.mark.parametrize(
    ("pkt", "flow"),
    [
        (IP(src="198.51.100.1", dst="203.0.113.2") / TCP(sport=1234, dport=80),
         (4, 6, 1234, 80)),
        (IP(src="198.51.100.1", dst="203.0.113.2") / UDP(sport=53, dport=5353), (4, 17, 53, 5353)),
        (IP(src="198.51.100.1", dst="203.0.113.2") / ICMP(type=8, code=0), (4, 1, 8, 0)),
        (IP(src="198.51.100.1", dst="203.0.113.2") / SCTP(sport=7, dport=9), (4, 132, 7, 9)),
        (IP(src="198.51.100.1", dst="203.0.113.2", frag=10, proto=17) / b"middle",
         (4, 17, None, None)),
        (IP(src="198.51.100.1", dst="203.0.113.2", proto=50) / (b"\0" * 16), (4, 50, None, None)),
        (IPv6(src="2001:db8::1", dst="2001:db8::2") / IPv6ExtHdrHopByHop() / IPv6ExtHdrDestOpt()
         / TCP(sport=5, dport=6), (6, 6, 5, 6)),
        (IPv6(src="2001:db8::1", dst="2001:db8::2") / ICMPv6EchoRequest(), (6, 58, 128, 0)),
        (IPv6(src="2001:db8::1", dst="2001:db8::2") / IPv6ExtHdrFragment(offset=0, m=1)
         / UDP(sport=1, dport=2), (6, 17, 1, 2)),
        (IPv6(src="2001:db8::1", dst="2001:db8::2") / IPv6ExtHdrFragment(offset=5, nh=17)
         / (b"x" * 8), (6, 17, None, None)),
    ],
)  # fmt: skip
def test_extract_flow(pkt, flow) -> None:
    raw = bytes(pkt)
    got = extract_flow(raw)
    assert isinstance(got, Flow)
    assert (got.version, got.proto, got.sport, got.dport) == flow
    assert got.src == raw[12:16] if flow[0] == 4 else got.src == raw[8:24]
    assert extract_flow(memoryview(raw)) == got


@given(st.binary(max_size=120))
def test_extract_flow_random_bytes(data: bytes) -> None:
    with contextlib.suppress(ParseError):
        extract_flow(data)


def test_extract_flow_truncations() -> None:
    raw = bytes(IPv6(src="2001:db8::1", dst="2001:db8::2") / IPv6ExtHdrHopByHop() / TCP())
    for cut in range(len(raw)):
        with pytest.raises(ParseError):
            extract_flow(raw[:cut])
    assert walk_ipv6(raw).proto == 6


def test_icmp_frag_needed() -> None:
    orig = bytes(IP(src="198.51.100.1", dst="203.0.113.2", flags="DF") / UDP() / (b"d" * 1400))
    raw = build_icmp_frag_needed(orig, 1400)
    pkt = IP(raw)
    assert pkt.src == "203.0.113.2" and pkt.dst == "198.51.100.1" and pkt.proto == 1
    assert pkt[ICMP].type == 3 and pkt[ICMP].code == 4 and pkt[ICMP].nexthopmtu == 1400
    assert raw[28:] == orig[:28]
    chk = pkt[ICMP].chksum
    del pkt[ICMP].chksum, pkt.chksum
    assert IP(bytes(pkt))[ICMP].chksum == chk
    with pytest.raises(ValueError):
        build_icmp_frag_needed(orig, 10)


def test_icmpv6_packet_too_big() -> None:
    orig = bytes(IPv6(src="2001:db8::1", dst="2001:db8::2") / UDP() / (b"d" * 1500))
    raw = build_icmpv6_packet_too_big(orig, 1400, "2001:db8::fe")
    pkt = IPv6(raw)
    assert len(raw) == 1280 and pkt.dst == "2001:db8::1" and pkt.src == "2001:db8::fe"
    ptb = pkt[ICMPv6PacketTooBig]
    assert ptb.mtu == 1400
    chk = ptb.cksum
    del ptb.cksum
    assert IPv6(bytes(pkt))[ICMPv6PacketTooBig].cksum == chk
    with pytest.raises(ValueError):
        build_icmpv6_packet_too_big(orig, 1000, "2001:db8::fe")

"""engine/sa_headers: the header helpers of the SA's general paths, on their own."""

from __future__ import annotations

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop, IPv6ExtHdrRouting

from pyipsec.engine.sa_headers import (
    ecn_decap,
    fix_l4_checksum,
    ipv6_front,
    locate_esp,
    set_ip_length,
    split_transport,
)
from pyipsec.errors import PacketDropped, ParseError, Reason
from pyipsec.wire.ip import internet_checksum

ESP = bytes(range(8, 48))  # stands for an ESP packet: SPI 0x08090a0b, ...


def v4(proto: int, payload: bytes, tos: int = 0, frag: int = 0) -> bytes:
    return bytes(IP(src="192.0.2.1", dst="192.0.2.2", proto=proto, tos=tos, frag=frag) / payload)


def udp4500(payload: bytes) -> bytes:
    return bytes(UDP(sport=4500, dport=4500) / payload)


def drop_reason(fn, *args) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(PacketDropped) as info:
        fn(*args)
    return info.value.reason


def test_locate_esp_in_ipv4_plain_and_udp() -> None:
    pkt = v4(50, ESP, tos=0x2B)
    assert locate_esp(memoryview(pkt), 4, False) == (4, 20, 9, 20, len(pkt), 3)
    # Plain ESP is accepted on a UDP-encapsulated SA too (a socket stripped the UDP).
    assert locate_esp(memoryview(pkt), 4, True)[3] == 20
    pkt = v4(17, udp4500(ESP)) + b"trailing"
    assert locate_esp(memoryview(pkt), 4, True) == (4, 20, 9, 28, 28 + len(ESP), 0)


def test_locate_esp_in_ipv6_behind_front_headers() -> None:
    pkt = bytes(IPv6(src="2001:db8::1", dst="2001:db8::2", tc=0x01) / IPv6ExtHdrHopByHop()
                / IPv6ExtHdrRouting(addresses=["2001:db8::3"]))  # fmt: skip
    pkt = bytearray(pkt)
    pkt[40 + 8] = 50  # routing header's next header: ESP
    pkt += ESP
    pkt[4:6] = (len(pkt) - 40).to_bytes(2, "big")
    v, off, nh_at, esp_at, end, ecn = locate_esp(memoryview(bytes(pkt)), 6, False)
    assert (v, nh_at, esp_at, end, ecn) == (6, 48, off, len(pkt), 1)
    assert bytes(pkt[esp_at:end]) == ESP


@pytest.mark.parametrize(
    ("pkt", "family", "encap", "reason"),
    [
        (b"\x45" + bytes(10), 4, False, Reason.IN_HDR_ERROR),
        (v4(50, ESP)[:-1], 4, False, Reason.IN_HDR_ERROR),  # total length past the end
        (v4(50, ESP, frag=1), 4, False, Reason.IN_HDR_ERROR),
        (v4(6, ESP), 4, False, Reason.IN_HDR_ERROR),
        (v4(50, ESP), 6, False, Reason.IN_STATE_MISMATCH),
        (v4(17, udp4500(ESP)), 4, False, Reason.IN_STATE_MISMATCH),
        (v4(17, udp4500(b"\xff")), 4, True, Reason.NAT_KEEPALIVE),
        (v4(17, udp4500(bytes(4) + ESP)), 4, True, Reason.NON_ESP),
        (v4(17, b"\x11\x94\x11\x94\x00\x04"), 4, True, Reason.IN_HDR_ERROR),
        (b"\x70" + bytes(39), 4, False, Reason.IN_HDR_ERROR),
        (bytes(IPv6(nh=50, plen=200)), 6, False, Reason.IN_HDR_ERROR),
    ],
)
def test_locate_esp_refusals(pkt: bytes, family: int, encap: bool, reason: str) -> None:
    assert drop_reason(locate_esp, memoryview(pkt), family, encap) == reason


def test_ipv6_front_stops_at_what_follows_the_front_headers() -> None:
    pkt = bytes(IPv6() / IPv6ExtHdrHopByHop() / IPv6ExtHdrFragment() / TCP())
    assert ipv6_front(pkt, len(pkt)) == (48, 56)
    with pytest.raises(ParseError):
        ipv6_front(pkt[:44], 44)


@pytest.mark.parametrize(
    ("outer", "inner", "expected"),
    [(0, 2, 2), (3, 1, 3), (3, 2, 3), (1, 2, 1), (1, 0, 0), (2, 1, 1), (3, 3, 3)],
)
def test_ecn_decap_rfc6040_table(outer: int, inner: int, expected: int) -> None:
    pkt = bytes(IP(src="198.51.100.1", dst="203.0.113.1", tos=0xB8 | inner) / UDP())
    out = ecn_decap(outer, 4, pkt, len(pkt))
    assert out[1] == 0xB8 | expected
    assert internet_checksum(out[:20]) == 0  # header checksum still right
    assert out[:1] + out[2:10] + out[12:] == pkt[:1] + pkt[2:10] + pkt[12:]
    pkt6 = bytes(IPv6(src="2001:db8::1", dst="2001:db8::2", tc=0xB8 | inner) / UDP())
    assert (ecn_decap(outer, 41, pkt6, len(pkt6))[1] >> 4) & 3 == expected


def test_ecn_decap_drops_ce_over_not_ect() -> None:
    pkt = bytes(IP(tos=0) / UDP())
    assert drop_reason(ecn_decap, 3, 4, pkt, len(pkt)) == Reason.IN_STATE_MODE_ERROR


@pytest.mark.parametrize("proto", [6, 17])
def test_fix_l4_checksum_recomputes_over_the_new_addresses(proto: int) -> None:
    l4 = TCP(sport=1, dport=2) if proto == 6 else UDP(sport=1, dport=2)
    sent = bytes(IP(src="192.0.2.1", dst="192.0.2.2") / l4 / b"data")
    hdr = bytearray(bytes(IP(src="192.0.2.200", dst="192.0.2.2", proto=proto)))
    hdr[2:4] = len(sent).to_bytes(2, "big")
    fixed = bytes(fix_l4_checksum(hdr, 4, proto, sent[20:]))
    # scapy recomputes a deleted checksum: over the new addresses it must be ours.
    ref = IP(bytes(hdr) + sent[20:])
    del ref[TCP if proto == 6 else UDP].chksum
    assert bytes(ref)[20:] == fixed != sent[20:]
    # UDP without a checksum (zero) stays without one on IPv4.
    if proto == 17:
        plain = bytearray(sent[20:])
        plain[6:8] = b"\0\0"
        assert bytes(fix_l4_checksum(hdr, 4, 17, bytes(plain))) == bytes(plain)


def test_split_transport_keeps_options_and_front_headers() -> None:
    pkt = bytes(IP(src="192.0.2.1", dst="192.0.2.2", options=b"\x01" * 4) / UDP() / b"x")
    v, hdr, nh_at, body = split_transport(pkt + b"pad")  # bytes past the total length
    assert (v, bytes(hdr), nh_at, bytes(body)) == (4, pkt[:24], 9, pkt[24:])
    pkt6 = bytes(IPv6(src="2001:db8::1", dst="2001:db8::2") / IPv6ExtHdrHopByHop() / TCP())
    v, hdr, nh_at, body = split_transport(pkt6)
    assert (v, bytes(hdr), nh_at, bytes(body)) == (6, pkt6[:48], 40, pkt6[48:])


@pytest.mark.parametrize(
    "pkt",
    [b"", b"\x45" + bytes(18), bytes(IP(frag=3) / UDP()), bytes(IP(flags="MF") / UDP()),
     bytes(IP(ihl=4) / UDP()), bytes(IPv6(plen=99) / UDP()), b"\x10" + bytes(40)],
)  # fmt: skip
def test_split_transport_refusals(pkt: bytes) -> None:
    with pytest.raises(ParseError):
        split_transport(pkt)


def test_set_ip_length() -> None:
    hdr = bytearray(bytes(IP(src="192.0.2.1", dst="192.0.2.2", len=20)))
    set_ip_length(hdr, 4, 1234)
    assert hdr[2:4] == (1234).to_bytes(2, "big") and internet_checksum(hdr) == 0
    hdr6 = bytearray(bytes(IPv6()))
    set_ip_length(hdr6, 6, 40 + 777)
    assert hdr6[4:6] == (777).to_bytes(2, "big")

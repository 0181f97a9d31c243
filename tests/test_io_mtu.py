"""io/mtu: MSS clamping, "too big" decisions and inner IPv4 fragmentation.

Packets are built with scapy and checked by re-parsing: checksums are verified by letting
scapy recompute them from scratch and comparing with our incremental update.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import ICMPv6EchoRequest, ICMPv6PacketTooBig, IPv6, IPv6ExtHdrHopByHop

from pyipsec.io.mtu import (
    TooBig,
    clamp_mss,
    fragment_ipv4,
    mss_for_mtu,
    too_big_action,
)


def _syn4(mss: int, flags: str = "S", **ip: object) -> bytes:
    pkt = IP(src="198.51.100.1", dst="203.0.113.1", **ip) / TCP(
        sport=40000, dport=80, flags=flags, options=[("NOP", None), ("MSS", mss), ("SAckOK", b"")]
    )
    return bytes(pkt)


def _tcp_checksum_ok(raw: bytes) -> bool:
    pkt = IP(raw) if raw[0] >> 4 == 4 else IPv6(raw)
    got = pkt[TCP].chksum
    del pkt[TCP].chksum
    return bool(got == (IP if raw[0] >> 4 == 4 else IPv6)(bytes(pkt))[TCP].chksum)


def _mss_of(raw: bytes) -> int:
    pkt = IP(raw) if raw[0] >> 4 == 4 else IPv6(raw)
    return dict(pkt[TCP].options)["MSS"]  # type: ignore[no-any-return]


def test_mss_for_mtu() -> None:
    assert mss_for_mtu(1500, 4) == 1460
    assert mss_for_mtu(1500, 6) == 1440


def test_clamp_lowers_mss_and_keeps_checksum_valid_ipv4() -> None:
    out = clamp_mss(_syn4(1460), 1400)
    assert _mss_of(out) == 1360
    assert _tcp_checksum_ok(out)


def test_clamp_ipv6_through_hop_by_hop_header() -> None:
    pkt = (
        IPv6(src="2001:db8::1", dst="2001:db8:1::1")
        / IPv6ExtHdrHopByHop()
        / TCP(flags="SA", options=[("MSS", 1440)])
    )
    out = clamp_mss(bytes(pkt), 1400)
    assert _mss_of(out) == 1340
    assert _tcp_checksum_ok(out)


def test_clamp_leaves_small_mss_and_non_syn_alone() -> None:
    small = _syn4(1200)
    assert clamp_mss(small, 1400) is small
    ack = _syn4(1460, flags="A")
    assert clamp_mss(ack, 1400) is ack
    udp = bytes(IP(dst="203.0.113.1") / UDP() / b"x")
    assert clamp_mss(udp, 1400) is udp


def test_clamp_ignores_non_first_fragment() -> None:
    frag = _syn4(1460, frag=10)
    assert clamp_mss(frag, 1400) is frag


@given(st.binary(max_size=80), st.integers(min_value=0, max_value=70000))
def test_clamp_never_raises_on_garbage(data: bytes, mtu: int) -> None:
    out = clamp_mss(data, mtu)
    assert len(out) == len(data)


@given(st.binary(min_size=20, max_size=60))
def test_clamp_never_raises_on_mangled_tcp(tail: bytes) -> None:
    # A valid IPv4 header claiming TCP, followed by random "TCP" bytes.
    hdr = bytes(IP(src="198.51.100.1", dst="203.0.113.1", proto=6, len=20 + len(tail)))[:20]
    out = clamp_mss(hdr + tail, 1000)
    assert out[:20] == hdr


def test_too_big_decisions() -> None:
    df = bytes(IP(dst="203.0.113.1", flags="DF") / UDP() / bytes(1400))
    assert too_big_action(df, 1300) is TooBig.ICMP
    no_df = bytes(IP(dst="203.0.113.1") / UDP() / bytes(1400))
    assert too_big_action(no_df, 1300) is TooBig.FRAGMENT
    v6 = bytes(IPv6(dst="2001:db8::1") / UDP() / bytes(1400))
    assert too_big_action(v6, 1300) is TooBig.ICMP
    # Below the IPv6 minimum MTU nothing can be promised (RFC 8200 §5).
    assert too_big_action(v6, 1000) is TooBig.DROP


def test_too_big_never_answers_icmp_errors() -> None:
    err4 = bytes(IP(dst="203.0.113.1", flags="DF") / ICMP(type=3, code=4) / bytes(1400))
    assert too_big_action(err4, 1300) is TooBig.DROP
    echo4 = bytes(IP(dst="203.0.113.1", flags="DF") / ICMP(type=8) / bytes(1400))
    assert too_big_action(echo4, 1300) is TooBig.ICMP
    err6 = bytes(IPv6(dst="2001:db8::1") / ICMPv6PacketTooBig() / bytes(1400))
    assert too_big_action(err6, 1300) is TooBig.DROP
    echo6 = bytes(IPv6(dst="2001:db8::1") / ICMPv6EchoRequest() / bytes(1400))
    assert too_big_action(echo6, 1300) is TooBig.ICMP


@pytest.mark.parametrize("garbage", [b"", b"\x45", bytes(19), b"\x70" + bytes(40)])
def test_too_big_garbage_is_dropped(garbage: bytes) -> None:
    assert too_big_action(garbage, 1300) is TooBig.DROP


def _reassemble(frags: list[bytes]) -> bytes:
    parts = sorted((IP(f) for f in frags), key=lambda p: p.frag)
    payload = b"".join(bytes(p.payload) for p in parts)
    return payload


@pytest.mark.parametrize("mtu", [576, 1000, 1280, 1399])
def test_fragment_ipv4_round_trip(mtu: int) -> None:
    data = bytes(range(256)) * 10
    pkt = bytes(IP(src="198.51.100.1", dst="203.0.113.1", id=7) / UDP(sport=1, dport=2) / data)
    frags = fragment_ipv4(pkt, mtu)
    assert len(frags) > 1
    for f in frags:
        assert len(f) <= mtu
        ip = IP(f)
        chk = ip.chksum
        del ip.chksum
        assert IP(bytes(ip)).chksum == chk  # header checksum valid
        assert ip.id == 7
    assert IP(frags[-1]).flags.MF == 0
    assert all(IP(f).flags.MF == 1 for f in frags[:-1])
    assert _reassemble(frags) == pkt[20:]


def test_fragment_copies_only_copied_options() -> None:
    # Option 0x94 (router alert, copy flag set) must be in every fragment; 0x07 (record
    # route, copy flag clear) only in the first.
    options = bytes([0x94, 4, 0, 0, 0x07, 7, 4, 0, 0, 0, 0, 0])
    hdr = bytes(IP(src="198.51.100.1", dst="203.0.113.1", ihl=8, proto=17, len=32 + 1000))
    hdr = hdr[:20]
    raw = bytearray(hdr + options + bytes(1000))
    raw[0] = 0x48
    frags = fragment_ipv4(bytes(raw), 500)
    assert (frags[0][0] & 0x0F) * 4 == 32
    assert all((f[0] & 0x0F) * 4 == 24 for f in frags[1:])
    assert all(f[20:22] == b"\x94\x04" for f in frags[1:])
    assert sum(len(f) - (f[0] & 0x0F) * 4 for f in frags) == 1000


def test_fragment_refuses_df_and_bad_headers() -> None:
    df = bytes(IP(dst="203.0.113.1", flags="DF") / UDP() / bytes(1400))
    assert fragment_ipv4(df, 1000) == []
    assert fragment_ipv4(b"\x45" + bytes(1500), 1000) == []  # total length mismatch
    small = bytes(IP(dst="203.0.113.1") / UDP() / b"x")
    assert fragment_ipv4(small, 1000) == [small]

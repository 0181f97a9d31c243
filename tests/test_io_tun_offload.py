"""io/tun_offload: virtio_net_hdr handling and TCP coalescing for TUN writes (no root).

Segments are built with scapy; every super-packet is checked field by field and its
checksums are recomputed by scapy from scratch, so a wrong merge rule or a wrong
checksum shortcut fails here rather than as a stalled TCP transfer in a namespace.
"""

from __future__ import annotations

import os
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrDestOpt

from pyipsec.errors import ParseError
from pyipsec.io.tun_offload import (
    F_NEEDS_CSUM,
    GSO_NONE,
    GSO_TCPV4,
    GSO_TCPV6,
    MAX_SUPER,
    PLAIN,
    VNET_HDR,
    VNET_HDR_LEN,
    checksum,
    coalesce,
    strip_header,
)
from vectors.checksum_rfc1071 import CHECKSUM, DATA

SRC4, DST4 = "198.51.100.1", "203.0.113.1"
SRC6, DST6 = "2001:db8::1", "2001:db8:1::1"
TS = [("NOP", None), ("NOP", None), ("Timestamp", (1000, 2000))]


def segs(
    count: int,
    size: int = 1000,
    *,
    v6: bool = False,
    seq: int = 5000,
    last: int | None = None,
    flags: str = "A",
    options: list[tuple[str, object]] | None = None,
    sport: int = 40000,
) -> list[bytes]:
    """``count`` consecutive TCP segments of one flow (the last of ``last`` bytes)."""
    out = []
    for i in range(count):
        n = last if last is not None and i == count - 1 else size
        data = os.urandom(n)
        ip = IPv6(src=SRC6, dst=DST6) if v6 else IP(src=SRC4, dst=DST4, id=100 + i, flags="DF")
        tcp = TCP(sport=sport, dport=5201, seq=seq, ack=77, flags=flags, window=500,
                  options=options if options is not None else TS)  # fmt: skip
        out.append(bytes(ip / tcp / data))
        seq += n
    return out


def payload(packet: bytes) -> bytes:
    layer = IPv6(packet) if packet[0] >> 4 == 6 else IP(packet)
    return bytes(layer[TCP].payload)


def recomputed(packet: bytes) -> tuple[int, int | None]:
    """(TCP checksum, IPv4 header checksum) as scapy computes them from scratch."""
    if packet[0] >> 4 == 6:
        p6 = IPv6(packet)
        del p6[TCP].chksum
        return IPv6(bytes(p6))[TCP].chksum, None
    p4 = IP(packet)
    del p4.chksum
    del p4[TCP].chksum
    again = IP(bytes(p4))
    return again[TCP].chksum, again.chksum


def test_checksum_rfc1071_example() -> None:
    assert checksum(DATA) == CHECKSUM
    assert checksum(DATA + b"\x01") == 0xFFFF - ((0xDDF2 + 0x0100) % 0xFFFF)  # odd length


@pytest.mark.parametrize("v6", [False, True])
def test_run_of_one_flow_becomes_one_gso_packet(v6: bool) -> None:
    packets = segs(5, 1000, v6=v6, last=300)
    [(buf, count)] = coalesce(packets)
    assert count == 5
    flags, gso_type, hdr_len, gso_size, _, _ = VNET_HDR.unpack_from(buf)
    ip_len = 40 if v6 else 20
    assert (flags, gso_type) == (0, GSO_TCPV6 if v6 else GSO_TCPV4)
    assert hdr_len == ip_len + 32 and gso_size == 1000
    sup = buf[VNET_HDR_LEN:]
    assert len(sup) == hdr_len + 4300
    assert payload(sup) == b"".join(payload(p) for p in packets)
    layer = IPv6(sup) if v6 else IP(sup)
    tcp = layer[TCP]
    assert (tcp.seq, tcp.ack, tcp.flags, tcp.window) == (5000, 77, "A", 500)
    first = IPv6(packets[0]) if v6 else IP(packets[0])
    assert tcp.options == first[TCP].options
    if v6:
        assert layer.plen == len(sup) - 40
    else:
        assert layer.len == len(sup) and layer.id == 100 and layer.flags == "DF"
    tcp_sum, ip_sum = recomputed(sup)
    assert tcp.chksum == tcp_sum
    if not v6:
        assert layer.chksum == ip_sum


def test_psh_on_the_last_segment_is_kept_and_ends_the_run() -> None:
    first = segs(3, 800)
    pushed = bytes(IP(first[2]))
    p = IP(pushed)
    p[TCP].flags = "PA"
    del p[TCP].chksum
    first[2] = bytes(p)
    after = segs(2, 800, seq=5000 + 3 * 800)
    out = coalesce(first + after)
    assert [n for _, n in out] == [3, 2]
    sup = out[0][0][VNET_HDR_LEN:]
    assert IP(sup)[TCP].flags == "PA"
    assert IP(sup)[TCP].chksum == recomputed(sup)[0]


def test_what_does_not_merge() -> None:
    a = segs(2, 500)
    gap = segs(1, 500, seq=5000 + 1500)  # one segment missing before it
    other_flow = segs(1, 500, seq=6000, sport=40001)
    fin = segs(1, 500, seq=5000 + 2000, flags="FA")
    syn = segs(1, 0, flags="S", options=[])
    udp = bytes(IP(src=SRC4, dst=DST4) / UDP(sport=1, dport=2) / (b"x" * 100))
    frag = bytes(IP(src=SRC4, dst=DST4, flags="MF") / TCP(flags="A") / (b"y" * 100))
    ext6 = bytes(IPv6(src=SRC6, dst=DST6) / IPv6ExtHdrDestOpt() / TCP(flags="A") / (b"z" * 99))
    bad_offset = bytearray(segs(1, 500, seq=5000 + 1000)[0])
    bad_offset[32] = 0x40  # TCP data offset 4: shorter than a TCP header
    out = coalesce([*a, *gap, *other_flow, *fin, *syn, udp, frag, ext6, bytes(bad_offset)])
    assert [n for _, n in out] == [2, 1, 1, 1, 1, 1, 1, 1, 1]
    for buf, n in out[1:]:
        assert buf[:VNET_HDR_LEN] == PLAIN and n == 1


def test_shorter_segment_ends_the_run_and_header_changes_split() -> None:
    short = segs(3, 1000, last=10)
    longer_after = segs(2, 1000, seq=5000 + 2010)
    assert [n for _, n in coalesce(short + longer_after)] == [3, 2]
    other_ts = segs(2, 1000, seq=5000 + 2000, options=[("Timestamp", (1001, 2000))])
    assert [n for _, n in coalesce(segs(2, 1000) + other_ts)] == [2, 2]
    bigger = segs(1, 1200, seq=5000 + 1000)  # larger than gso_size: not part of the run
    assert [n for _, n in coalesce(segs(1, 1000) + bigger)] == [1, 1]


def test_super_packet_stays_within_64k() -> None:
    packets = segs(100, 1400)
    out = coalesce(packets)
    assert sum(n for _, n in out) == 100 and len(out) == 3
    for buf, _ in out:
        assert len(buf) - VNET_HDR_LEN <= MAX_SUPER
        sup = buf[VNET_HDR_LEN:]
        assert IP(sup)[TCP].chksum == recomputed(sup)[0]
    joined = b"".join(payload(b[VNET_HDR_LEN:]) for b, _ in out)
    assert joined == b"".join(payload(p) for p in packets)


def test_a_bad_segment_checksum_spoils_the_super_packet() -> None:
    packets = segs(3, 700)
    bad = bytearray(packets[1])
    bad[-1] ^= 0x40  # payload corrupted in flight, checksum left as it was
    [(buf, _)] = coalesce([packets[0], bytes(bad), packets[2]])
    sup = buf[VNET_HDR_LEN:]
    assert IP(sup)[TCP].chksum != recomputed(sup)[0]  # the kernel will drop it


def test_strip_header() -> None:
    pkt = segs(1, 100)[0]
    assert strip_header(PLAIN + pkt) == pkt
    # NEEDS_CSUM: the field holds the pseudo-header sum, the rest must be added.
    udp = IP(src=SRC4, dst=DST4) / UDP(sport=1000, dport=2000) / (b"q" * 51)
    full = bytes(udp)
    partial = bytearray(full)
    pseudo = bytes(IP(full))[12:20] + bytes([0, 17]) + struct.pack("!H", len(full) - 20)
    struct.pack_into("!H", partial, 26, 0xFFFF - checksum(pseudo))
    hdr = VNET_HDR.pack(F_NEEDS_CSUM, GSO_NONE, 0, 0, 20, 6)
    assert strip_header(hdr + bytes(partial)) == full
    with pytest.raises(ParseError):
        strip_header(VNET_HDR.pack(0, GSO_TCPV4, 52, 1000, 20, 16) + pkt)
    with pytest.raises(ParseError):
        strip_header(b"\x00" * 5)
    with pytest.raises(ParseError):
        strip_header(VNET_HDR.pack(F_NEEDS_CSUM, GSO_NONE, 0, 0, 20, 600) + pkt[:100])


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 1), st.integers(1, 3), st.booleans(), st.booleans()),
        min_size=1,
        max_size=25,
    )
)
def test_coalesce_keeps_every_byte_in_order(plan: list[tuple[int, int, bool, bool]]) -> None:
    """Two interleaved flows with short segments, pushes and holes: whatever is merged,
    every packet is carried once, each flow's bytes come out in order, and every
    super-packet's checksums are what scapy computes."""
    seqs = [1000, 9000]
    packets: list[bytes] = []
    for flow, units, push, hole in plan:
        size = 200 * units
        if hole:
            seqs[flow] += 1  # a byte missing: the next segment cannot join
        [pkt] = segs(1, size, seq=seqs[flow], sport=40000 + flow, flags="PA" if push else "A")
        packets.append(pkt)
        seqs[flow] += size
    out = coalesce(packets)
    assert sum(n for _, n in out) == len(packets)
    streams: dict[int, bytes] = {0: b"", 1: b""}
    for buf, n in out:
        pkt = buf[VNET_HDR_LEN:]
        if n > 1:
            assert IP(pkt)[TCP].chksum == recomputed(pkt)[0]
            assert IP(pkt).chksum == recomputed(pkt)[1]
        else:
            assert buf[:VNET_HDR_LEN] == PLAIN
        streams[IP(pkt)[TCP].sport - 40000] += payload(pkt)
    for flow in (0, 1):
        assert streams[flow] == b"".join(
            payload(p) for p in packets if IP(p)[TCP].sport == 40000 + flow
        )

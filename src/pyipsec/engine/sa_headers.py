"""Header helpers of the SA's general (non-fast) paths: where ESP goes in a packet
to protect in transport mode, where it is in a received outer packet, IP length
rewrites, the RFC 6040 ECN update of a decapsulated inner packet, and the RFC 3948
transport-mode checksum fix-up behind a NAT.

Split out of ``engine/sa.py`` so that module holds the SA and its packet paths only.
They work on bytes and raise ``ParseError`` or ``PacketDropped`` like the SA.
"""

from __future__ import annotations

from pyipsec.crypto.esp_cipher import Buffer
from pyipsec.errors import PacketDropped, ParseError, Reason
from pyipsec.wire.ip import (
    IPPROTO_ESP,
    IPPROTO_FRAGMENT,
    IPPROTO_IPIP,
    IPPROTO_TCP,
    IPPROTO_UDP,
    internet_checksum,
    transport_checksum,
)

# IPv6 headers that stay in front of ESP in transport mode (RFC 4303 §3.1.1).
_FRONT_EXT = frozenset((0, 43, 44))


def ipv6_front(packet: Buffer, end: int) -> tuple[int, int]:
    """(offset of the next-header byte that names what follows the front extension
    headers, offset where that starts). Front headers: hop-by-hop, routing, fragment,
    and destination options followed by routing (RFC 4303 §3.1.1)."""
    nh_at = 6
    off = 40
    nh = packet[6]
    while True:
        if nh in _FRONT_EXT or (nh == 60 and off < end and packet[off] == 43):
            if off + 8 > end:
                raise ParseError("IPv6 extension header truncated")
            hlen = 8 if nh == IPPROTO_FRAGMENT else (packet[off + 1] + 1) * 8
        else:
            return nh_at, off
        nh_at = off
        nh = packet[off]
        off += hlen
        if off > end:
            raise ParseError("IPv6 extension header runs past the packet")


def ecn_decap(outer: int, nh: int, pt: Buffer, ilen: int) -> bytes:
    """Apply RFC 6040 §4.2 (normal mode) to the inner packet's ECN field."""
    if nh == IPPROTO_IPIP:
        tos = pt[1]
        inner = tos & 3
    else:
        tos = (pt[0] & 15) << 4 | pt[1] >> 4
        inner = tos & 3
    if outer == 3:
        if inner == 0:
            raise PacketDropped(Reason.IN_STATE_MODE_ERROR, "outer CE over a Not-ECT packet")
        new = 3
    elif outer == 1 and inner == 2:
        new = 1  # ECT(1) outer over ECT(0) inner
    else:
        return bytes(pt[:ilen])
    if new == inner:
        return bytes(pt[:ilen])
    buf = bytearray(pt[:ilen])
    if nh == IPPROTO_IPIP:
        # Incremental checksum update (RFC 1624 eqn. 3) keeps everything else exact.
        old_w = buf[0] << 8 | tos
        new_w = buf[0] << 8 | (tos & 0xFC | new)
        hc = buf[10] << 8 | buf[11]
        buf[1] = tos & 0xFC | new
        s = (~hc & 0xFFFF) + (~old_w & 0xFFFF) + new_w
        buf[10:12] = (-s % 0xFFFF).to_bytes(2, "big")  # folded and complemented
    else:
        buf[1] = (buf[1] & 0xCF) | new << 4
    return bytes(buf)


def fix_l4_checksum(hdr: bytearray, v: int, proto: int, body: Buffer) -> Buffer:
    """Recompute a TCP/UDP checksum over the received addresses (RFC 3948 §3.1.2)."""
    at = 16 if proto == IPPROTO_TCP else 6
    if len(body) < at + 2:
        return body
    if proto == IPPROTO_UDP and v == 4 and body[6] == 0 and body[7] == 0:
        return body  # no checksum in use
    src, dst = (bytes(hdr[12:16]), bytes(hdr[16:20])) if v == 4 else (
        bytes(hdr[8:24]), bytes(hdr[24:40]))  # fmt: skip
    seg = bytearray(body)
    seg[at : at + 2] = b"\0\0"
    csum = transport_checksum(src, dst, proto, seg)
    if proto == IPPROTO_UDP and csum == 0:
        csum = 0xFFFF
    seg[at : at + 2] = csum.to_bytes(2, "big")
    return seg


def locate_esp(mv: memoryview, family: int, encap: bool) -> tuple[int, int, int, int, int, int]:
    """Where the ESP packet is in a received outer IP[/UDP]/ESP packet, for an SA of
    address ``family`` that is (``encap``) or is not UDP-encapsulated.

    Returns (IP version, end of the IP headers, offset of the next-header byte that
    names UDP or ESP, start of ESP, end of ESP, outer ECN field). Raises PacketDropped
    with the reason (malformed headers, fragments, the wrong family, NAT keepalives and
    non-ESP-marked datagrams on port 4500, RFC 3948 §2.2-2.3).
    """
    n = len(mv)
    if n < 20:
        raise PacketDropped(Reason.IN_HDR_ERROR, "truncated IP header")
    b0 = mv[0]
    v = b0 >> 4
    if v == 4:
        ihl = (b0 & 15) * 4
        end = mv[2] << 8 | mv[3]
        if ihl < 20 or end < ihl or end > n:
            raise PacketDropped(Reason.IN_HDR_ERROR, "bad IPv4 header")
        if (mv[6] & 0x3F) | mv[7]:
            raise PacketDropped(Reason.IN_HDR_ERROR, "fragment (reassembly comes first)")
        proto = mv[9]
        off = ihl
        nh_at = 9
        outer_ecn = mv[1] & 3
    elif v == 6:
        if n < 40:
            raise PacketDropped(Reason.IN_HDR_ERROR, "truncated IPv6 header")
        end = 40 + (mv[4] << 8 | mv[5])
        if end > n:
            raise PacketDropped(Reason.IN_HDR_ERROR, "bad IPv6 payload length")
        proto = mv[6]
        off = 40
        nh_at = 6
        if proto != IPPROTO_ESP and proto != IPPROTO_UDP:
            try:
                nh_at, off = ipv6_front(mv, end)
            except ParseError as exc:
                raise PacketDropped(Reason.IN_HDR_ERROR, str(exc)) from None
            proto = mv[nh_at]
        outer_ecn = (mv[1] >> 4) & 3
    else:
        raise PacketDropped(Reason.IN_HDR_ERROR, f"IP version {v}")
    if v != family:
        raise PacketDropped(Reason.IN_STATE_MISMATCH, "address family differs from the SA")
    if proto == IPPROTO_UDP:
        if not encap:
            raise PacketDropped(Reason.IN_STATE_MISMATCH, "UDP-encapsulated, SA is not")
        if end - off < 8:
            raise PacketDropped(Reason.IN_HDR_ERROR, "truncated UDP header")
        ulen = mv[off + 4] << 8 | mv[off + 5]
        if ulen < 8 or off + ulen > end:
            raise PacketDropped(Reason.IN_HDR_ERROR, "bad UDP length")
        end = off + ulen
        esp_at = off + 8
        if end - esp_at == 1 and mv[esp_at] == 0xFF:
            raise PacketDropped(Reason.NAT_KEEPALIVE, "NAT keepalive (RFC 3948 §2.3)")
        if end - esp_at >= 4 and not any(mv[esp_at : esp_at + 4]):
            raise PacketDropped(Reason.NON_ESP, "non-ESP marker: IKE, not ESP")
    elif proto == IPPROTO_ESP:
        # Accepted on a UDP-encapsulated SA too: a socket layer that strips the UDP
        # header (and checks the encapsulation itself) hands us IP/ESP.
        esp_at = off
    else:
        raise PacketDropped(Reason.IN_HDR_ERROR, f"protocol {proto} is not ESP")

    return v, off, nh_at, esp_at, end, outer_ecn


def split_transport(packet: Buffer) -> tuple[int, bytearray, int, Buffer]:
    """(IP version, a copy of the headers that stay in front of ESP, offset of the
    next-header byte in them, upper-layer data) of a packet to protect in transport
    mode: ESP goes after the IPv4 header (options kept) or after the IPv6 front
    extension headers (RFC 4303 §3.1.1). Raises ParseError for anything else,
    fragments included (ESP protects whole datagrams, §3.3)."""
    n = len(packet)
    v = packet[0] >> 4 if n else 0
    if v == 4 and n >= 20:
        ihl = (packet[0] & 15) * 4
        total = packet[2] << 8 | packet[3]
        if ihl < 20 or total < ihl or total > n:
            raise ParseError("malformed IPv4 header")
        if (packet[6] & 0x3F) | packet[7]:
            raise ParseError("fragment in transport mode")
        return 4, bytearray(packet[:ihl]), 9, packet[ihl:total]
    if v == 6 and n >= 40:
        end = 40 + (packet[4] << 8 | packet[5])
        if end > n:
            raise ParseError("IPv6 payload length too long")
        nh_at, off = ipv6_front(packet, end)
        return 6, bytearray(packet[:off]), nh_at, packet[off:end]
    raise ParseError("not an IPv4 or IPv6 packet")


def set_ip_length(hdr: bytearray, version: int, total: int) -> None:
    """Write the length of a packet of ``total`` bytes into its IP header ``hdr``: the
    IPv4 total length (and a new header checksum) or the IPv6 payload length."""
    if version == 4:
        hdr[2:4] = total.to_bytes(2, "big")
        hdr[10:12] = b"\0\0"
        hdr[10:12] = internet_checksum(hdr).to_bytes(2, "big")
    else:
        hdr[4:6] = (total - 40).to_bytes(2, "big")


__all__ = [
    "ecn_decap",
    "fix_l4_checksum",
    "ipv6_front",
    "locate_esp",
    "set_ip_length",
    "split_transport",
]

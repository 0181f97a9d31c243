"""Header helpers of the SA's general (non-fast) paths: where ESP goes in an IPv6
packet, the RFC 6040 ECN update of a decapsulated inner packet, and the RFC 3948
transport-mode checksum fix-up behind a NAT.

Split out of ``engine/sa.py`` so that module holds the SA and its packet paths only.
They work on bytes and raise ``ParseError`` or ``PacketDropped`` like the SA.
"""

from __future__ import annotations

from pyipsec.crypto.esp_cipher import Buffer
from pyipsec.errors import PacketDropped, ParseError, Reason
from pyipsec.wire.ip import (
    IPPROTO_FRAGMENT,
    IPPROTO_IPIP,
    IPPROTO_TCP,
    IPPROTO_UDP,
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


__all__ = ["ecn_decap", "fix_l4_checksum", "ipv6_front"]

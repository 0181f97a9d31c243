"""MTU handling between the TUN and the tunnel: TCP MSS clamping and "too big" decisions.

Everything here works on raw IP packets as the TUN hands them over and never raises on
malformed input: a packet that cannot be read is returned unchanged (the engine drops it
with the right counter), because these helpers run on the data path before the engine.

- ``clamp_mss``: lowers the MSS option of TCP SYNs so that TCP segments fit the tunnel
  without fragmentation (the same job as ``iptables -j TCPMSS --clamp-mss-to-pmtu``).
  The TCP checksum is updated incrementally (RFC 1624 eqn. 3), never recomputed.
- ``too_big_action``: what to do with an inner packet bigger than what its SA can carry
  within the path MTU: answer ICMP "fragmentation needed" (RFC 792, RFC 1191) or ICMPv6
  "packet too big" (RFC 4443 §3.2), fragment the inner IPv4 packet before encapsulation
  (RFC 4459 §5.1 "fragment before"), or drop.
- ``fragment_ipv4``: that inner fragmentation (RFC 791 §3.2).
"""

from __future__ import annotations

import struct
from enum import StrEnum

IPPROTO_TCP = 6
IPPROTO_ICMP = 1
IPPROTO_ICMPV6 = 58
IPV4_MIN_MTU = 68  # RFC 791: every IPv4 link carries 68 bytes unfragmented
IPV6_MIN_MTU = 1280  # RFC 8200 §5
TCP_V4_OVERHEAD = 40  # IPv4 + TCP headers without options (RFC 879)
TCP_V6_OVERHEAD = 60

_U16 = struct.Struct("!H")
_TCP_SYN = 0x02
_TCPOPT_EOL = 0
_TCPOPT_NOP = 1
_TCPOPT_MSS = 2
_IPV4_DF = 0x4000
_IPV4_MF = 0x2000
_IPV4_OFFSET_MASK = 0x1FFF
# IPv6 extension headers we step over to find TCP (hop-by-hop, routing, destination).
_IPV6_SKIPPABLE = frozenset({0, 43, 60})


def mss_for_mtu(mtu: int, version: int) -> int:
    """The largest MSS whose segments fit ``mtu`` (no IP or TCP options assumed)."""
    return mtu - (TCP_V4_OVERHEAD if version == 4 else TCP_V6_OVERHEAD)


def _tcp_offset(packet: bytes | bytearray) -> int:
    """Offset of the TCP header of an unfragmented (or first-fragment) TCP packet, or -1."""
    n = len(packet)
    if n < 20:
        return -1
    version = packet[0] >> 4
    if version == 4:
        ihl = (packet[0] & 0x0F) * 4
        if ihl < 20 or packet[9] != IPPROTO_TCP:
            return -1
        if _U16.unpack_from(packet, 6)[0] & _IPV4_OFFSET_MASK:
            return -1  # a non-first fragment carries no TCP header
        return ihl
    if version == 6 and n >= 40:
        nh, off = packet[6], 40
        while nh in _IPV6_SKIPPABLE:
            if off + 8 > n:
                return -1
            nh, off = packet[off], off + (packet[off + 1] + 1) * 8
        return off if nh == IPPROTO_TCP else -1
    return -1


def clamp_mss(packet: bytes, mtu: int) -> bytes:
    """``packet`` with the MSS option of a TCP SYN lowered to fit ``mtu``; any other
    packet (or a SYN already small enough) is returned as is, the same object."""
    off = _tcp_offset(packet)
    if off < 0 or len(packet) < off + 20 or not packet[off + 13] & _TCP_SYN:
        return packet
    limit = mss_for_mtu(mtu, packet[0] >> 4)
    end = off + (packet[off + 12] >> 4) * 4
    if end > len(packet):
        return packet
    i = off + 20
    while i < end:
        kind = packet[i]
        if kind == _TCPOPT_EOL:
            break
        if kind == _TCPOPT_NOP:
            i += 1
            continue
        if i + 1 >= end:
            break
        length = packet[i + 1]
        if length < 2 or i + length > end:
            break  # malformed options: leave the packet alone
        if kind == _TCPOPT_MSS and length == 4:
            old = _U16.unpack_from(packet, i + 2)[0]
            if old <= limit or limit <= 0:
                return packet
            out = bytearray(packet)
            # The option need not be 16-bit aligned: update the aligned words covering it.
            lo = off + ((i + 2 - off) & ~1)
            hi = lo + (2 if lo == i + 2 else 4)
            before = packet[lo:hi]
            _U16.pack_into(out, i + 2, limit)
            # RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'), in one's complement arithmetic.
            csum_at = off + 16
            total = ~_U16.unpack_from(out, csum_at)[0] & 0xFFFF
            for j in range(0, hi - lo, 2):
                total += (~_U16.unpack_from(before, j)[0] & 0xFFFF) + _U16.unpack_from(out, lo + j)[
                    0
                ]
            total = (total & 0xFFFF) + (total >> 16)
            total = (total & 0xFFFF) + (total >> 16)
            _U16.pack_into(out, csum_at, ~total & 0xFFFF)
            return bytes(out)
        i += length
    return packet


class TooBig(StrEnum):
    """What to do with an inner packet that does not fit its SA within the path MTU."""

    ICMP = "icmp"  # answer "fragmentation needed" / "packet too big" into the TUN
    FRAGMENT = "fragment"  # IPv4 without DF: fragment the inner packet, protect each piece
    DROP = "drop"  # nothing sensible to do (e.g. it is itself an ICMP error)


def _is_icmp_error(packet: bytes, version: int) -> bool:
    """Never answer an ICMP error with another (RFC 1812 §4.3.2.7, RFC 4443 §2.4 (e))."""
    if version == 4:
        ihl = (packet[0] & 0x0F) * 4
        if packet[9] != IPPROTO_ICMP or len(packet) <= ihl:
            return False
        return packet[ihl] not in (0, 8, 13, 14, 15, 16, 17, 18)  # not query/reply
    if packet[6] != IPPROTO_ICMPV6 or len(packet) <= 40:
        return False
    return packet[40] < 128  # RFC 4443 §2.1: types 0-127 are errors


def too_big_action(packet: bytes, limit: int) -> TooBig:
    """The answer for ``packet`` (longer than ``limit``, the largest inner packet its SA
    can carry). IPv6 is never fragmented on the way (RFC 8200 §5), so it always gets
    ICMPv6 "packet too big"; IPv4 gets ICMP when DF is set and is fragmented otherwise."""
    if len(packet) < 20:
        return TooBig.DROP
    version = packet[0] >> 4
    if version == 6:
        if len(packet) < 40 or limit < IPV6_MIN_MTU or _is_icmp_error(packet, 6):
            return TooBig.DROP
        return TooBig.ICMP
    if version != 4:
        return TooBig.DROP
    if _U16.unpack_from(packet, 6)[0] & _IPV4_DF:
        if limit < IPV4_MIN_MTU or _is_icmp_error(packet, 4):
            return TooBig.DROP
        return TooBig.ICMP
    ihl = (packet[0] & 0x0F) * 4
    # Each fragment must carry the header and at least 8 bytes of payload.
    return TooBig.FRAGMENT if limit >= ihl + 8 else TooBig.DROP


def _copied_options(options: bytes) -> bytes:
    """The IPv4 options a non-first fragment keeps: those with the copy flag (RFC 791)."""
    out = bytearray()
    i = 0
    while i < len(options):
        kind = options[i]
        if kind == 0:
            break
        if kind == 1:
            i += 1
            continue
        if i + 1 >= len(options) or options[i + 1] < 2:
            break
        length = options[i + 1]
        if kind & 0x80:
            out += options[i : i + length]
        i += length
    out += bytes(-len(out) % 4)
    return bytes(out)


def _ipv4_checksum(header: bytes | bytearray) -> int:
    total: int = sum(struct.unpack(f"!{len(header) // 2}H", header))
    total = (total & 0xFFFF) + (total >> 16)
    total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def fragment_ipv4(packet: bytes, mtu: int) -> list[bytes]:
    """Split an IPv4 packet without DF into fragments of at most ``mtu`` bytes (RFC 791
    §3.2). Returns ``[packet]`` if it fits, ``[]`` if it cannot be split (DF set, bad
    header, ``mtu`` too small)."""
    if len(packet) <= mtu:
        return [packet]
    if len(packet) < 20 or packet[0] >> 4 != 4:
        return []
    ihl = (packet[0] & 0x0F) * 4
    total = _U16.unpack_from(packet, 2)[0]
    flags_off = _U16.unpack_from(packet, 6)[0]
    if ihl < 20 or total != len(packet) or total < ihl or flags_off & _IPV4_DF:
        return []
    base_offset = flags_off & _IPV4_OFFSET_MASK
    more = flags_off & _IPV4_MF
    first_hdr = bytes(packet[:ihl])
    later_hdr = first_hdr[:20] + _copied_options(first_hdr[20:])
    payload = memoryview(packet)[ihl:]
    out: list[bytes] = []
    pos = 0
    while pos < len(payload):
        hdr = first_hdr if pos == 0 else later_hdr
        room = (mtu - len(hdr)) & ~7  # fragment payloads are multiples of 8 bytes
        if room <= 0:
            return []
        chunk = payload[pos : pos + room]
        last = pos + len(chunk) >= len(payload)
        frag = bytearray(hdr)
        frag[0] = 0x40 | (len(hdr) // 4)
        _U16.pack_into(frag, 2, len(hdr) + len(chunk))
        flags = (base_offset + pos // 8) | (more if last else _IPV4_MF)
        _U16.pack_into(frag, 6, flags)
        _U16.pack_into(frag, 10, 0)
        _U16.pack_into(frag, 10, _ipv4_checksum(frag))
        frag += chunk
        out.append(bytes(frag))
        pos += len(chunk)
    return out

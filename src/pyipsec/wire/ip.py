"""IPv4/IPv6 wire formats: checksums, headers, the IPv6 extension chain, 5-tuples, ICMP.

Shared by the ESP code, the engine (SPD lookups use ``extract_flow``) and the daemon
(ICMP "packet too big" towards local senders). Stateless; malformed bytes raise
``ParseError``, never IndexError or struct.error.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass
from typing import NamedTuple

from pyipsec.errors import ParseError

Buffer = bytes | bytearray | memoryview

IPPROTO_HOPOPTS = 0
IPPROTO_ICMP = 1
IPPROTO_IPIP = 4
IPPROTO_TCP = 6
IPPROTO_UDP = 17
IPPROTO_IPV6 = 41
IPPROTO_ROUTING = 43
IPPROTO_FRAGMENT = 44
IPPROTO_ESP = 50
IPPROTO_AH = 51
IPPROTO_ICMPV6 = 58
IPPROTO_NONE = 59
IPPROTO_DSTOPTS = 60
IPPROTO_SCTP = 132
IPPROTO_MH = 135
IPPROTO_UDPLITE = 136

IPV4_HEADER = struct.Struct("!BBHHHBBH4s4s")
IPV6_HEADER = struct.Struct("!IHBB16s16s")
IPV4_HEADER_LEN = 20
IPV6_HEADER_LEN = 40
IP_DF = 0x4000
IP_MF = 0x2000

_PORT_PROTOS = frozenset((IPPROTO_TCP, IPPROTO_UDP, IPPROTO_SCTP, IPPROTO_UDPLITE))
_ICMP_PROTOS = frozenset((IPPROTO_ICMP, IPPROTO_ICMPV6))
# Extension headers with the generic (next header, length in 8-octet units - 1) layout.
_GENERIC_EXT = frozenset((IPPROTO_HOPOPTS, IPPROTO_ROUTING, IPPROTO_DSTOPTS))
_PORTS = struct.Struct("!HH")


# --- checksums ------------------------------------------------------------------------


def checksum_sum(data: Buffer, initial: int = 0) -> int:
    """Unfolded partial sum of ``data`` as 16-bit big-endian words (odd tail zero-padded).

    Since 2^16 = 1 (mod 0xFFFF), the one's-complement sum of the words is congruent to
    the whole buffer read as one big integer; ``int.from_bytes`` does that in C.
    """
    v = int.from_bytes(data, "big")
    if len(data) & 1:
        v <<= 8
    return v + initial


def fold_checksum(total: int) -> int:
    """Internet checksum (RFC 1071) from a ``checksum_sum`` result."""
    if total == 0:
        return 0xFFFF
    return 0xFFFF - (total % 0xFFFF or 0xFFFF)


def internet_checksum(data: Buffer, initial: int = 0) -> int:
    """RFC 1071 checksum; over a header that holds its checksum, 0 means valid."""
    return fold_checksum(checksum_sum(data, initial))


def pseudo_header_sum(src: bytes, dst: bytes, proto: int, length: int) -> int:
    """Partial sum of the IPv4 (RFC 768) or IPv6 (RFC 8200 §8.1) pseudo-header."""
    return checksum_sum(src) + checksum_sum(dst) + proto + length


def transport_checksum(src: bytes, dst: bytes, proto: int, segment: Buffer) -> int:
    """TCP/UDP/ICMPv6 checksum of ``segment`` (checksum field zeroed by the caller)."""
    return fold_checksum(checksum_sum(segment, pseudo_header_sum(src, dst, proto, len(segment))))


# --- headers --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IPv4Header:
    tos: int
    total_length: int
    ident: int
    flags: int  # 3 bits: reserved, DF, MF
    frag_offset: int  # in 8-octet units
    ttl: int
    proto: int
    checksum: int
    src: bytes
    dst: bytes
    options: bytes = b""

    @property
    def header_length(self) -> int:
        return IPV4_HEADER_LEN + len(self.options)


def parse_ipv4(buf: Buffer) -> IPv4Header:
    n = len(buf)
    if n < IPV4_HEADER_LEN:
        raise ParseError("IPv4 header truncated")
    vihl, tos, total, ident, frag, ttl, proto, csum, src, dst = IPV4_HEADER.unpack_from(buf)
    if vihl >> 4 != 4:
        raise ParseError("not an IPv4 packet")
    ihl = (vihl & 15) * 4
    if ihl < IPV4_HEADER_LEN or ihl > n or ihl > total:
        raise ParseError("bad IPv4 header length")
    return IPv4Header(
        tos, total, ident, frag >> 13, frag & 0x1FFF, ttl, proto, csum, src, dst,
        bytes(buf[IPV4_HEADER_LEN:ihl]),
    )  # fmt: skip


def build_ipv4(hdr: IPv4Header, *, compute_checksum: bool = True) -> bytes:
    """The header bytes; the checksum is computed unless told to keep ``hdr.checksum``."""
    if len(hdr.options) % 4 or len(hdr.options) > 40:
        raise ValueError("IPv4 options must be a multiple of 4 bytes, at most 40")
    if len(hdr.src) != 4 or len(hdr.dst) != 4:
        raise ValueError("IPv4 addresses are 4 bytes")
    ihl = (IPV4_HEADER_LEN + len(hdr.options)) // 4
    frag = (hdr.flags & 7) << 13 | (hdr.frag_offset & 0x1FFF)
    args = (0x40 | ihl, hdr.tos, hdr.total_length, hdr.ident, frag, hdr.ttl, hdr.proto)
    raw = IPV4_HEADER.pack(*args, 0 if compute_checksum else hdr.checksum, hdr.src, hdr.dst)
    raw += hdr.options
    if compute_checksum:
        csum = internet_checksum(raw)
        raw = raw[:10] + csum.to_bytes(2, "big") + raw[12:]
    return raw


def ipv4_header_checksum(header: Buffer) -> int:
    """Checksum a header should carry (its own checksum field ignored)."""
    # Word positions do not matter to the sum (2^16 = 1 mod 0xFFFF): skip bytes 10-11.
    return fold_checksum(checksum_sum(header[:10]) + checksum_sum(header[12:]))


@dataclass(frozen=True, slots=True)
class IPv6Header:
    traffic_class: int
    flow_label: int
    payload_length: int
    next_header: int
    hop_limit: int
    src: bytes
    dst: bytes


def parse_ipv6(buf: Buffer) -> IPv6Header:
    if len(buf) < IPV6_HEADER_LEN:
        raise ParseError("IPv6 header truncated")
    word, plen, nh, hlim, src, dst = IPV6_HEADER.unpack_from(buf)
    if word >> 28 != 6:
        raise ParseError("not an IPv6 packet")
    return IPv6Header((word >> 20) & 0xFF, word & 0xFFFFF, plen, nh, hlim, src, dst)


def build_ipv6(hdr: IPv6Header) -> bytes:
    if len(hdr.src) != 16 or len(hdr.dst) != 16:
        raise ValueError("IPv6 addresses are 16 bytes")
    word = 6 << 28 | (hdr.traffic_class & 0xFF) << 20 | (hdr.flow_label & 0xFFFFF)
    return IPV6_HEADER.pack(
        word, hdr.payload_length, hdr.next_header, hdr.hop_limit, hdr.src, hdr.dst
    )


class Ipv6Chain(NamedTuple):
    """Result of walking the IPv6 extension headers."""

    headers: tuple[tuple[int, int], ...]  # (header type, offset) of each extension header
    proto: int  # the first protocol that is not a walked extension header
    offset: int  # where that protocol's header starts
    fragment_offset: int  # of a fragment header in the chain, in octets (0 if none)
    fragmented: bool


def walk_ipv6(packet: Buffer, *, stop_at: int = -1) -> Ipv6Chain:
    """Walk hop-by-hop, routing, fragment, destination options and AH headers.

    Stops at the upper-layer protocol, at ESP (opaque beyond) or at ``stop_at``.
    """
    n = len(packet)
    if n < IPV6_HEADER_LEN:
        raise ParseError("IPv6 header truncated")
    nh = packet[6]
    off = IPV6_HEADER_LEN
    headers: list[tuple[int, int]] = []
    frag_off = 0
    fragmented = False
    while nh != stop_at:
        if nh in _GENERIC_EXT:
            if off + 8 > n:
                raise ParseError("IPv6 extension header truncated")
            hlen = (packet[off + 1] + 1) * 8
        elif nh == IPPROTO_FRAGMENT:
            if off + 8 > n:
                raise ParseError("IPv6 fragment header truncated")
            fragmented = True
            frag_off = ((packet[off + 2] << 8 | packet[off + 3]) >> 3) * 8
            hlen = 8
        elif nh == IPPROTO_AH:
            if off + 8 > n:
                raise ParseError("AH header truncated")
            hlen = (packet[off + 1] + 2) * 4
        else:
            break
        headers.append((nh, off))
        nh = packet[off]
        off += hlen
        if off > n:
            raise ParseError("IPv6 extension header runs past the packet")
        if frag_off:
            break  # beyond a non-first fragment's header lies the middle of a payload
    return Ipv6Chain(tuple(headers), nh, off, frag_off, fragmented)


# --- flows ----------------------------------------------------------------------------


class Flow(NamedTuple):
    """What an SPD selector matches: addresses, upper protocol and ports.

    For ICMP/ICMPv6, sport is the type and dport the code (as xfrm selectors use
    them). Ports are None without a port-bearing protocol or for non-first
    fragments (RFC 4301 §4.4.1.1: OPAQUE).
    """

    version: int
    src: bytes
    dst: bytes
    proto: int
    sport: int | None
    dport: int | None


def _ports(packet: Buffer, proto: int, off: int, end: int) -> tuple[int | None, int | None]:
    if proto in _PORT_PROTOS:
        if off + 4 > end:
            raise ParseError("transport header truncated before its ports")
        sport, dport = _PORTS.unpack_from(packet, off)
        return sport, dport
    if proto in _ICMP_PROTOS:
        if off + 2 > end:
            raise ParseError("ICMP header truncated")
        return packet[off], packet[off + 1]
    return None, None


def extract_flow(packet: Buffer) -> Flow:
    """The 5-tuple of an IPv4 or IPv6 packet; ParseError when malformed."""
    n = len(packet)
    if n == 0:
        raise ParseError("empty packet")
    v = packet[0] >> 4
    if v == 4:
        if n < IPV4_HEADER_LEN:
            raise ParseError("IPv4 header truncated")
        ihl = (packet[0] & 15) * 4
        total = packet[2] << 8 | packet[3]
        if ihl < IPV4_HEADER_LEN or total < ihl or total > n:
            raise ParseError("bad IPv4 header or total length")
        proto = packet[9]
        src = bytes(packet[12:16])
        dst = bytes(packet[16:20])
        if (packet[6] & 0x1F) | packet[7]:
            return Flow(4, src, dst, proto, None, None)  # non-first fragment
        sport, dport = _ports(packet, proto, ihl, total)
        return Flow(4, src, dst, proto, sport, dport)
    if v == 6:
        chain = walk_ipv6(packet)
        end = IPV6_HEADER_LEN + (packet[4] << 8 | packet[5])
        if end > n:
            raise ParseError("IPv6 payload length runs past the packet")
        src = bytes(packet[8:24])
        dst = bytes(packet[24:40])
        if chain.fragment_offset:
            return Flow(6, src, dst, chain.proto, None, None)
        sport, dport = _ports(packet, chain.proto, chain.offset, end)
        return Flow(6, src, dst, chain.proto, sport, dport)
    raise ParseError(f"IP version {v}")


# --- ICMP errors for the daemon -------------------------------------------------------

_ICMP_FRAG_NEEDED = struct.Struct("!BBHHH")
_ICMPV6_PTB = struct.Struct("!BBHI")
IPV6_MIN_MTU = 1280


def _addr(value: bytes | str | ipaddress.IPv4Address | ipaddress.IPv6Address, size: int) -> bytes:
    packed = value if isinstance(value, bytes) else ipaddress.ip_address(value).packed
    if len(packed) != size:
        raise ValueError(f"address must be {size} bytes")
    return packed


def build_icmp_frag_needed(
    packet: Buffer, mtu: int, src: bytes | str | ipaddress.IPv4Address | None = None
) -> bytes:
    """ICMPv4 Destination Unreachable, Fragmentation Needed (type 3 code 4, RFC 1191).

    Addressed to the offending packet's source; from ``src`` (default: the packet's
    destination, as seen by a local sender behind the TUN). Quotes the IP header and
    the first 8 payload bytes (RFC 792).
    """
    if not 68 <= mtu <= 0xFFFF:
        raise ValueError("next-hop MTU must be in 68..65535")
    hdr = parse_ipv4(packet)
    quote = bytes(packet[: min(len(packet), hdr.header_length + 8, hdr.total_length)])
    icmp = _ICMP_FRAG_NEEDED.pack(3, 4, 0, 0, mtu) + quote
    csum = internet_checksum(icmp)
    icmp = icmp[:2] + csum.to_bytes(2, "big") + icmp[4:]
    sender = hdr.dst if src is None else _addr(src, 4)
    ip = IPv4Header(0, IPV4_HEADER_LEN + len(icmp), 0, 0, 0, 64, IPPROTO_ICMP, 0, sender, hdr.src)
    return build_ipv4(ip) + icmp


def build_icmpv6_packet_too_big(
    packet: Buffer, mtu: int, src: bytes | str | ipaddress.IPv6Address
) -> bytes:
    """ICMPv6 Packet Too Big (RFC 4443 §3.2) from ``src`` to the packet's source.

    Quotes as much of the packet as fits in the IPv6 minimum MTU (RFC 4443 §2.4 (c)).
    """
    if not IPV6_MIN_MTU <= mtu <= 0xFFFFFFFF:
        raise ValueError("IPv6 MTU must be at least 1280")
    hdr = parse_ipv6(packet)
    sender = _addr(src, 16)
    quote = bytes(packet[: IPV6_MIN_MTU - IPV6_HEADER_LEN - 8])
    body = _ICMPV6_PTB.pack(2, 0, 0, mtu) + quote
    csum = transport_checksum(sender, hdr.src, IPPROTO_ICMPV6, body)
    body = body[:2] + csum.to_bytes(2, "big") + body[4:]
    ip = IPv6Header(0, 0, len(body), IPPROTO_ICMPV6, 64, sender, hdr.src)
    return build_ipv6(ip) + body

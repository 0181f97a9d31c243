"""UDP encapsulation of ESP (RFC 3948) and the UDP header codec.

On port 4500 one socket carries three things (RFC 3948 §2.2, §2.3):
- IKE, after a 4-byte non-ESP marker of zeros (an SPI is never 0);
- NAT keepalives: a single 0xFF byte;
- ESP, starting with its non-zero SPI.

Checksums: over IPv4 the sender puts 0 (RFC 3948 §2.1); a receiver accepts a non-zero
one without checking it, since the ESP ICV protects the content and NATs may have
rewritten the addresses (strongSwan, for one, sends computed checksums). Over IPv6 a
zero UDP checksum is not allowed (RFC 8200 §8.1), so it is computed.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Literal

from pyipsec.errors import ParseError
from pyipsec.wire.ip import IPPROTO_UDP, checksum_sum, fold_checksum, pseudo_header_sum

Buffer = bytes | bytearray | memoryview

UDP_HEADER = struct.Struct("!HHHH")
UDP_HEADER_LEN = 8
NAT_T_PORT = 4500
NON_ESP_MARKER = b"\x00\x00\x00\x00"
NAT_KEEPALIVE = b"\xff"

Kind = Literal["esp", "ike", "keepalive"]


@dataclass(frozen=True, slots=True)
class UdpHeader:
    sport: int
    dport: int
    length: int
    checksum: int


def parse_udp(buf: Buffer) -> UdpHeader:
    """The UDP header; its length must fit in ``buf`` (the IP payload)."""
    if len(buf) < UDP_HEADER_LEN:
        raise ParseError("UDP header truncated")
    sport, dport, length, csum = UDP_HEADER.unpack_from(buf)
    if length < UDP_HEADER_LEN or length > len(buf):
        raise ParseError("bad UDP length")
    return UdpHeader(sport, dport, length, csum)


def build_udp(
    sport: int,
    dport: int,
    payload: Buffer,
    src: bytes | None = None,
    dst: bytes | None = None,
) -> bytes:
    """UDP header + payload. With IPv6 addresses (16 bytes) the checksum is computed;
    with IPv4 or no addresses it is 0 (RFC 3948 §2.1)."""
    if not (0 <= sport <= 0xFFFF and 0 <= dport <= 0xFFFF):
        raise ValueError("UDP ports are 16-bit")
    length = UDP_HEADER_LEN + len(payload)
    if length > 0xFFFF:
        raise ValueError("UDP datagram too long")
    csum = 0
    if src is not None and dst is not None and len(src) == 16:
        csum = udp_checksum(src, dst, sport, dport, payload)
    return UDP_HEADER.pack(sport, dport, length, csum) + bytes(payload)


def udp_checksum(src: bytes, dst: bytes, sport: int, dport: int, payload: Buffer) -> int:
    """The UDP checksum (0 transmitted as 0xFFFF, RFC 768)."""
    length = UDP_HEADER_LEN + len(payload)
    total = pseudo_header_sum(src, dst, IPPROTO_UDP, length) + sport + dport + length
    csum = fold_checksum(checksum_sum(payload, total))
    return csum or 0xFFFF


def classify(udp_payload: Buffer) -> Kind:
    """What a port-4500 datagram carries: ``"esp"``, ``"ike"`` or ``"keepalive"``.

    Anything else (even too short to be ESP) is "esp": the ESP parser rejects it then.
    """
    n = len(udp_payload)
    if n == 1 and udp_payload[0] == 0xFF:
        return "keepalive"
    if n >= 4 and udp_payload[:4] == NON_ESP_MARKER:
        return "ike"
    return "esp"

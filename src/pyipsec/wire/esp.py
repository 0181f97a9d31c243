"""ESP wire format (RFC 4303 §2): header, padding and trailer. No state, no crypto.

    0                   1                   2                   3
    | Security Parameters Index (SPI)                               |
    | Sequence Number (low 32 bits)                                 |
    | IV (algorithm-specific) | Payload ... | Padding | PadLen | NH | ICV |

The trailer (Pad Length, Next Header) ends on a 4-byte boundary and the encrypted
part is a multiple of the cipher block (RFC 4303 §2.4); padding bytes are 1, 2, 3, ...
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from pyipsec.errors import ParseError

ESP_HEADER = struct.Struct("!II")
ESP_HEADER_LEN = 8
IPPROTO_ESP = 50
NEXT_HEADER_NONE = 59  # RFC 4303 §2.6: dummy packet
MAX_SPI = 0xFFFFFFFF

# RFC 4303 §2.4: the default padding content is the monotonic sequence 1, 2, 3, ...
PAD_BYTES = bytes(range(1, 256))

# Trailer bytes (padding || pad length || next header) for every next header and each
# padding length a block cipher of up to 16 bytes can need: built once, sliced never.
TRAILERS: tuple[tuple[bytes, ...], ...] = tuple(
    tuple(PAD_BYTES[:p] + bytes((p, nh)) for p in range(16)) for nh in range(256)
)


@dataclass(frozen=True, slots=True)
class EspHeader:
    spi: int
    seq: int  # low 32 bits as sent


def parse_esp_header(buf: bytes | bytearray | memoryview) -> EspHeader:
    if len(buf) < ESP_HEADER_LEN:
        raise ParseError("ESP packet shorter than its 8-byte header")
    spi, seq = ESP_HEADER.unpack_from(buf)
    return EspHeader(spi, seq)


def build_esp_header(hdr: EspHeader) -> bytes:
    if not (0 <= hdr.spi <= MAX_SPI and 0 <= hdr.seq <= 0xFFFFFFFF):
        raise ValueError("SPI and sequence number are 32-bit unsigned values")
    return ESP_HEADER.pack(hdr.spi, hdr.seq)


def pad_length(payload_len: int, align: int) -> int:
    """Padding bytes so that payload + padding + 2 is a multiple of ``align``."""
    return -(payload_len + 2) % align


def trailer(payload_len: int, next_header: int, align: int) -> bytes:
    """Padding, Pad Length and Next Header for a payload of ``payload_len`` bytes."""
    pad = -(payload_len + 2) % align
    if pad < 16:
        return TRAILERS[next_header][pad]
    return PAD_BYTES[:pad] + bytes((pad, next_header))


def split_trailer(plain: bytes | bytearray | memoryview) -> tuple[int, int]:
    """(payload length, next header) of a decrypted ESP payload; checks the padding.

    Raises ParseError when the pad length overruns the payload or the padding is not
    the 1, 2, 3, ... sequence (RFC 4303 §2.4: the receiver checks it when it is the
    default, as here, since both ends are ours or follow the default).
    """
    n = len(plain)
    if n < 2:
        raise ParseError("ESP payload shorter than its trailer")
    pad = plain[n - 2]
    end = n - 2 - pad
    if end < 0:
        raise ParseError("ESP pad length runs past the payload")
    if pad and plain[end : n - 2] != PAD_BYTES[:pad]:
        raise ParseError("ESP padding bytes are not 1, 2, 3, ...")
    return end, plain[n - 1]

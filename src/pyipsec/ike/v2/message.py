"""IKEv2 messages: the IKE header (RFC 7296 §3.1) and the generic payload chain (§3.2).

``parse_message(datagram)`` checks the header, walks the payload chain and returns an
``IkeMessage``; an SK/SKF payload stays encrypted until ``sk.decrypt_message``.
``build_message(header, payloads)`` is the inverse for cleartext messages (sk.py
builds the encrypted ones). Parsers raise ``ParseError`` only: the subclasses
``InvalidMajorVersion`` and ``UnsupportedCriticalPayload`` tell the IKE logic which
notification §2.5/§3.1 asks for; everything else is INVALID_SYNTAX or a silent drop
(§2.21), the caller's choice.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field

from pyipsec.errors import ConfigError, ParseError
from pyipsec.ike.v2.constants import (
    IKE_HEADER_LEN,
    IKE_MAJOR_VERSION,
    IKE_MINOR_VERSION,
    HeaderFlag,
    PayloadType,
)
from pyipsec.ike.v2.payloads import (
    KNOWN_TYPES,
    EncryptedFragmentPayload,
    EncryptedPayload,
    Payload,
    UnknownPayload,
    build_body,
    parse_body,
)

_HEADER = struct.Struct("!8s8sBBBBII")  # SPIi, SPIr, next, version, exchange, flags, id, len
_GENERIC = struct.Struct("!BBH")  # next payload, C|reserved, payload length
_CRITICAL = 0x80
# Plain ints: an IntFlag operand sends every `&` through the enum machinery.
_FLAG_I = int(HeaderFlag.INITIATOR)
_FLAG_R = int(HeaderFlag.RESPONSE)
_FLAG_MASK = int(HeaderFlag.INITIATOR | HeaderFlag.VERSION | HeaderFlag.RESPONSE)
_ENCRYPTED_TYPES = (PayloadType.SK, PayloadType.SKF)
MAX_MESSAGE_LEN = 0xFFFFFFFF


class InvalidMajorVersion(ParseError):
    """§3.1/§2.5: a major version other than 2; answer INVALID_MAJOR_VERSION (or drop)."""

    def __init__(self, major: int, minor: int) -> None:
        super().__init__(f"IKE major version {major} is not supported")
        self.major = major
        self.minor = minor


class UnsupportedCriticalPayload(ParseError):
    """§2.5: an unknown payload with the critical bit; answer UNSUPPORTED_CRITICAL_PAYLOAD.

    ``payload_type`` is the one-octet value the notification's data carries.
    """

    def __init__(self, payload_type: int) -> None:
        super().__init__(f"unsupported critical payload type {payload_type}")
        self.payload_type = payload_type


@dataclass(slots=True)
class IkeHeader:
    """§3.1. ``next_payload`` and ``length`` are filled by the parser and by the builder."""

    spi_i: bytes
    spi_r: bytes
    exchange_type: int
    message_id: int
    flags: int = 0
    next_payload: int = 0
    length: int = 0
    major_version: int = IKE_MAJOR_VERSION
    minor_version: int = IKE_MINOR_VERSION

    @property
    def is_initiator(self) -> bool:
        """The I flag: the original initiator of the IKE SA sent this message."""
        return bool(self.flags & _FLAG_I)

    @property
    def is_response(self) -> bool:
        return bool(self.flags & _FLAG_R)


@dataclass(slots=True)
class IkeMessage:
    header: IkeHeader
    payloads: list[Payload]
    raw: bytes = field(default=b"", repr=False, compare=False)
    # Offset in ``raw`` of the SK/SKF payload's generic header, -1 without one.
    encrypted_offset: int = field(default=-1, compare=False)

    @property
    def encrypted(self) -> EncryptedPayload | EncryptedFragmentPayload | None:
        if self.payloads and isinstance(
            self.payloads[-1], EncryptedPayload | EncryptedFragmentPayload
        ):
            return self.payloads[-1]
        return None

    def find(self, payload_type: int) -> list[Payload]:
        return [p for p in self.payloads if p.payload_type == payload_type]


def parse_header(buf: bytes | memoryview) -> IkeHeader:
    """The 28-octet header; checks the version and that ``length`` covers ``buf``."""
    if len(buf) < IKE_HEADER_LEN:
        raise ParseError(f"IKE message of {len(buf)} octets is shorter than its header")
    spi_i, spi_r, nxt, version, exchange, flags, msg_id, length = _HEADER.unpack_from(buf)
    major, minor = version >> 4, version & 0x0F
    if major != IKE_MAJOR_VERSION:
        raise InvalidMajorVersion(major, minor)
    # §3.1: the length is of the whole message; a UDP datagram holds exactly one.
    if length != len(buf):
        raise ParseError(f"IKE header length {length} but {len(buf)} octets received")
    # §3.1: undefined flag bits MUST be ignored on receipt; keep only the known ones.
    return IkeHeader(spi_i, spi_r, exchange, msg_id, flags & _FLAG_MASK, nxt, length, major, minor)


def build_header(header: IkeHeader, next_payload: int, length: int) -> bytes:
    if len(header.spi_i) != 8 or len(header.spi_r) != 8:
        raise ConfigError("IKE SPIs are 8 octets")
    if not 0 <= header.message_id <= 0xFFFFFFFF:
        raise ConfigError("message id must fit 32 bits")
    if not 0 <= header.exchange_type <= 255 or not 0 <= header.flags <= 255:
        raise ConfigError("exchange type and flags are one octet")
    if length > MAX_MESSAGE_LEN:
        raise ConfigError("IKE message too long")
    version = (header.major_version << 4) | header.minor_version
    return _HEADER.pack(
        header.spi_i,
        header.spi_r,
        next_payload,
        version,
        header.exchange_type,
        header.flags,
        header.message_id,
        length,
    )


def parse_payloads(
    first_type: int, buf: memoryview, base: int = 0, *, allow_encrypted: bool = True
) -> tuple[list[Payload], int]:
    """Walk a payload chain that fills ``buf`` exactly.

    Returns the payloads and the offset (relative to ``base``, the position of ``buf``
    in the message) of an SK/SKF payload, or -1. Unknown non-critical payloads are
    skipped (§2.5). ``allow_encrypted=False`` is for the chain inside an SK payload.
    """
    payloads: list[Payload] = []
    encrypted_at = -1
    next_type = first_type
    off = 0
    while next_type != PayloadType.NONE:
        if off + _GENERIC.size > len(buf):
            raise ParseError(f"payload type {next_type} truncated at octet {base + off}")
        nxt, flags, length = _GENERIC.unpack_from(buf, off)
        if length < _GENERIC.size or off + length > len(buf):
            raise ParseError(f"payload type {next_type} has bad length {length}")
        body = buf[off + _GENERIC.size : off + length]
        if next_type in _ENCRYPTED_TYPES:
            if not allow_encrypted:
                raise ParseError("an encrypted payload inside an encrypted payload")
            # §3.14 / RFC 7383 §2.5: it is the last payload; its Next Payload field
            # names the first payload inside it.
            if off + length != len(buf):
                raise ParseError("data after the encrypted payload")
            payloads.append(parse_body(next_type, body, nxt))
            return payloads, base + off
        if next_type in KNOWN_TYPES:
            payloads.append(parse_body(next_type, body))
        elif flags & _CRITICAL:
            raise UnsupportedCriticalPayload(next_type)
        # else: §2.5, an unknown payload without the critical bit is skipped.
        next_type = nxt
        off += length
    if off != len(buf):
        raise ParseError(f"{len(buf) - off} octets after the last payload")
    return payloads, encrypted_at


def parse_message(datagram: bytes) -> IkeMessage:
    """Header checks (§3.1) and the payload chain (§3.2); ParseError if malformed."""
    raw = bytes(datagram)
    header = parse_header(raw)
    view = memoryview(raw)[IKE_HEADER_LEN:]
    payloads, enc_at = parse_payloads(header.next_payload, view, IKE_HEADER_LEN)
    return IkeMessage(header, payloads, raw, enc_at)


def build_payloads(payloads: Sequence[Payload]) -> tuple[int, bytes]:
    """(type of the first payload, the chained payload bytes)."""
    out = bytearray()
    for index, payload in enumerate(payloads):
        is_last = index == len(payloads) - 1
        if isinstance(payload, EncryptedPayload | EncryptedFragmentPayload):
            if not is_last:
                raise ConfigError("the encrypted payload must be the last payload (§3.14)")
            nxt = payload.first_payload
        else:
            nxt = PayloadType.NONE if is_last else payloads[index + 1].payload_type
        body = build_body(payload)
        length = _GENERIC.size + len(body)
        if length > 0xFFFF:
            raise ConfigError(f"payload type {payload.payload_type} exceeds 65535 octets")
        # §3.2: the critical bit is zero for the payload types RFC 7296 defines.
        crit = _CRITICAL if isinstance(payload, UnknownPayload) and payload.critical else 0
        out += _GENERIC.pack(nxt, crit, length) + body
    first = payloads[0].payload_type if payloads else PayloadType.NONE
    return first, bytes(out)


def build_message(header: IkeHeader, payloads: Sequence[Payload]) -> bytes:
    """A complete message; the header's next payload and length are computed."""
    first, body = build_payloads(payloads)
    return build_header(header, first, IKE_HEADER_LEN + len(body)) + body


def generic_header(next_payload: int, length: int) -> bytes:
    """One generic payload header (§3.2), for the SK builders."""
    return _GENERIC.pack(next_payload, 0, length)

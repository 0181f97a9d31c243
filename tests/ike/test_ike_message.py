"""pyipsec.ike.v2.message: header checks (§3.1), the payload chain and §2.5's critical bit."""

from __future__ import annotations

import pytest

from pyipsec.errors import ConfigError, ParseError
from pyipsec.ike.v2.constants import ExchangeType, HeaderFlag, NotifyType, PayloadType
from pyipsec.ike.v2.message import (
    IkeHeader,
    IkeMessage,
    InvalidMajorVersion,
    UnsupportedCriticalPayload,
    build_message,
    parse_header,
    parse_message,
)
from pyipsec.ike.v2.payloads import (
    EncryptedPayload,
    KePayload,
    NoncePayload,
    NotifyPayload,
    UnknownPayload,
    VendorIdPayload,
)

SPI_I = bytes.fromhex("0102030405060708")
NONCE = bytes(range(16))

# §3.1 header: SPIi, SPIr = 0, next payload 40 (Nonce), version 2.0, exchange 34,
# flags I (0x08), message id 0, length 48; then the Nonce payload: next 0, length 20.
GOLDEN = (
    bytes.fromhex(
        "0102030405060708 0000000000000000 28 20 22 08 00000000 00000030".replace(" ", "")
        + "00000014"
    )
    + NONCE
)


def _header(**kw: int) -> IkeHeader:
    return IkeHeader(SPI_I, bytes(8), ExchangeType.IKE_SA_INIT, 0, flags=HeaderFlag.INITIATOR, **kw)


def test_golden_build_and_parse() -> None:
    assert build_message(_header(), [NoncePayload(NONCE)]) == GOLDEN
    msg = parse_message(GOLDEN)
    assert msg.header.spi_i == SPI_I
    assert msg.header.exchange_type == ExchangeType.IKE_SA_INIT
    assert msg.header.is_initiator and not msg.header.is_response
    assert (msg.header.next_payload, msg.header.length) == (PayloadType.NONCE, 48)
    assert msg.payloads == [NoncePayload(NONCE)]
    assert msg.encrypted is None and msg.encrypted_offset == -1
    assert msg.find(PayloadType.NONCE) == [NoncePayload(NONCE)]


def test_chain_roundtrip() -> None:
    payloads = [
        NotifyPayload(NotifyType.COOKIE, b"c" * 8),
        KePayload(31, b"k" * 32),
        NoncePayload(NONCE),
        VendorIdPayload(b"v"),
        EncryptedPayload(PayloadType.IDI, b"e" * 40),
    ]
    header = IkeHeader(SPI_I, b"r" * 8, ExchangeType.IKE_AUTH, 1, HeaderFlag.RESPONSE)
    raw = build_message(header, payloads)
    msg = parse_message(raw)
    assert msg.payloads == payloads
    assert msg.header.is_response
    assert msg.encrypted == payloads[-1]
    assert raw[msg.encrypted_offset] == PayloadType.IDI  # SK's Next Payload field
    assert msg == IkeMessage(msg.header, payloads)


@pytest.mark.parametrize(
    ("mutate", "error"),
    [
        (lambda b: b[:27], ParseError),
        (lambda b: b + b"\x00", ParseError),  # datagram longer than the header says
        (lambda b: b[:-1], ParseError),
        (lambda b: b[:17] + b"\x30" + b[18:], InvalidMajorVersion),
        (lambda b: b[:17] + b"\x10" + b[18:], InvalidMajorVersion),
        (lambda b: b[:30] + b"\x00\x15" + b[32:], ParseError),  # Nonce length past the end
        (lambda b: b[:30] + b"\x00\x03" + b[32:], ParseError),  # length below 4
        (lambda b: b[:16] + b"\x00" + b[17:], ParseError),  # no payloads, 20 octets left
    ],
)
def test_header_and_chain_errors(mutate: object, error: type[Exception]) -> None:
    assert callable(mutate)
    with pytest.raises(error):
        parse_message(mutate(GOLDEN))


def test_minor_version_and_unknown_flags_are_tolerated() -> None:
    raw = bytearray(GOLDEN)
    raw[17] = 0x2F  # version 2.15
    raw[19] = 0xFF  # every flag bit
    msg = parse_message(bytes(raw))
    assert msg.header.minor_version == 15
    assert msg.header.flags == HeaderFlag.INITIATOR | HeaderFlag.VERSION | HeaderFlag.RESPONSE


def test_invalid_major_version_carries_the_version() -> None:
    raw = GOLDEN[:17] + b"\x31" + GOLDEN[18:]
    with pytest.raises(InvalidMajorVersion) as info:
        parse_header(raw)
    assert (info.value.major, info.value.minor) == (3, 1)


def test_unknown_noncritical_payload_is_skipped() -> None:
    raw = build_message(
        _header(), [UnknownPayload(200, b"whatever"), NoncePayload(NONCE), UnknownPayload(201, b"")]
    )
    assert parse_message(raw).payloads == [NoncePayload(NONCE)]


def test_unknown_critical_payload_rejects_the_message() -> None:
    raw = build_message(_header(), [NoncePayload(NONCE), UnknownPayload(200, b"x", critical=True)])
    with pytest.raises(UnsupportedCriticalPayload) as info:
        parse_message(raw)
    assert info.value.payload_type == 200
    assert isinstance(info.value, ParseError)


def test_critical_bit_on_known_payload_is_ignored() -> None:
    raw = bytearray(GOLDEN)
    raw[29] = 0x80  # C bit of the Nonce payload
    assert parse_message(bytes(raw)).payloads == [NoncePayload(NONCE)]


def test_encrypted_payload_must_be_last() -> None:
    raw = bytearray(build_message(_header(), [EncryptedPayload(0, b"e" * 8)]))
    raw += NONCE  # data after the SK payload, header length patched to match
    raw[24:28] = len(raw).to_bytes(4, "big")
    with pytest.raises(ParseError):
        parse_message(bytes(raw))
    with pytest.raises(ConfigError):
        build_message(_header(), [EncryptedPayload(0, b"e"), NoncePayload(NONCE)])


def test_build_argument_errors() -> None:
    with pytest.raises(ConfigError):
        build_message(IkeHeader(b"short", bytes(8), 34, 0), [])
    with pytest.raises(ConfigError):
        build_message(IkeHeader(SPI_I, bytes(8), 34, 2**32), [])
    with pytest.raises(ConfigError):
        build_message(_header(), [VendorIdPayload(b"v" * 70000)])


def test_empty_message() -> None:
    raw = build_message(_header(), [])
    assert len(raw) == 28
    assert parse_message(raw).payloads == []

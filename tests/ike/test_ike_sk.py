"""pyipsec.ike.v2.sk: SK/SKF protection (RFC 7296 §3.14, RFC 5282, RFC 7634, RFC 7383)."""

from __future__ import annotations

import hmac as std_hmac

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

from pyipsec.errors import ConfigError, ParseError
from pyipsec.ike.v2 import sk
from pyipsec.ike.v2.constants import (
    EncrId,
    ExchangeType,
    HeaderFlag,
    IdType,
    IntegId,
    NotifyType,
    PayloadType,
)
from pyipsec.ike.v2.message import IkeHeader, UnsupportedCriticalPayload, parse_message
from pyipsec.ike.v2.payloads import (
    AuthPayload,
    IdPayload,
    NotifyPayload,
    Payload,
    UnknownPayload,
    VendorIdPayload,
)

HEADER = IkeHeader(b"I" * 8, b"R" * 8, ExchangeType.IKE_AUTH, 1, HeaderFlag.INITIATOR)
INNER: list[Payload] = [
    IdPayload(IdType.FQDN, b"alice.example"),
    AuthPayload(2, b"\x5a" * 32),
    NotifyPayload(NotifyType.INITIAL_CONTACT),
]

SUITES = [
    ("aes128-sha1", EncrId.AES_CBC, 128, IntegId.HMAC_SHA1_96),
    ("aes256-sha256", EncrId.AES_CBC, 256, IntegId.HMAC_SHA2_256_128),
    ("aes192-sha384", EncrId.AES_CBC, 192, IntegId.HMAC_SHA2_384_192),
    ("aes256-sha512", EncrId.AES_CBC, 256, IntegId.HMAC_SHA2_512_256),
    ("aes128gcm16", EncrId.AES_GCM_16, 128, IntegId.NONE),
    ("aes256gcm16", EncrId.AES_GCM_16, 256, IntegId.NONE),
    ("chacha20poly1305", EncrId.CHACHA20_POLY1305, None, IntegId.NONE),
]


def _cipher(encr: int, bits: int | None, integ: int, seed: int = 1) -> sk.SkCipher:
    ekey = bytes((seed + i) % 256 for i in range(sk.encr_key_length(encr, bits)))
    ikey = bytes((seed * 7 + i) % 256 for i in range(sk.integ_key_length(integ)))
    return sk.SkCipher(encr, ekey, integ, ikey)


@pytest.mark.parametrize(("name", "encr", "bits", "integ"), SUITES, ids=[s[0] for s in SUITES])
def test_roundtrip_and_tamper(name: str, encr: int, bits: int | None, integ: int) -> None:
    sender, receiver = _cipher(encr, bits, integ), _cipher(encr, bits, integ)
    raw = sk.encrypt_message(HEADER, INNER, sender)
    msg = parse_message(raw)
    assert msg.header.next_payload == PayloadType.SK
    assert sk.decrypt_message(msg, receiver) == INNER
    # Any changed octet, header included, fails the integrity check (§3.14, RFC 5282 §5.1).
    for pos in (0, 16, 20, 24, 28, 30, 33, len(raw) // 2, len(raw) - 1):
        bad = bytearray(raw)
        bad[pos] ^= 0x01
        try:
            tampered = parse_message(bytes(bad))
        except ParseError:
            continue  # the header/SK header no longer parses: dropped anyway
        with pytest.raises(sk.IntegrityError):
            sk.decrypt_message(tampered, receiver)
    with pytest.raises(sk.IntegrityError):
        sk.decrypt_message(msg, _cipher(encr, bits, integ, seed=2))


def test_cbc_construction_by_hand() -> None:
    ekey, ikey = b"e" * 16, b"a" * 32
    cipher = sk.SkCipher(EncrId.AES_CBC, ekey, IntegId.HMAC_SHA2_256_128, ikey)
    raw = sk.encrypt_message(HEADER, INNER, cipher)
    # §3.14: ICV = first 16 octets of HMAC-SHA-256 over everything before it.
    icv = std_hmac.new(ikey, raw[:-16], "sha256").digest()[:16]
    assert raw[-16:] == icv
    iv, ct = raw[32:48], raw[48:-16]
    assert len(ct) % 16 == 0
    dec = Cipher(algorithms.AES(ekey), modes.CBC(iv)).decryptor()
    plain = dec.update(ct) + dec.finalize()
    pad = plain[-1]
    assert sk.parse_inner(PayloadType.IDI, plain[: -pad - 1]) == INNER
    # A fresh random IV each time: the same payloads never give the same bytes.
    assert sk.encrypt_message(HEADER, INNER, cipher)[32:48] != iv


@pytest.mark.parametrize("encr", [EncrId.AES_GCM_16, EncrId.CHACHA20_POLY1305])
def test_aead_construction_by_hand(encr: int) -> None:
    key = bytes(range(36))
    cipher = sk.SkCipher(encr, key)
    raw = sk.encrypt_message(HEADER, INNER, cipher)
    # RFC 5282 §5.1 / RFC 7634 §4: AAD = IKE header + SK generic header; nonce = salt | IV.
    aad, iv, sealed = raw[:32], raw[32:40], raw[40:]
    aead = AESGCM(key[:32]) if encr == EncrId.AES_GCM_16 else ChaCha20Poly1305(key[:32])
    plain = aead.decrypt(key[32:] + iv, sealed, aad)
    assert plain[-1] == 0  # no padding needed
    assert sk.parse_inner(PayloadType.IDI, plain[:-1]) == INNER
    # The IV is a counter: never repeats under one key.
    assert sk.encrypt_message(HEADER, INNER, cipher)[32:40] != iv


def test_cleartext_payloads_before_sk_are_authenticated() -> None:
    cipher = _cipher(EncrId.AES_CBC, 128, IntegId.HMAC_SHA1_96)
    clear = [VendorIdPayload(b"v1"), VendorIdPayload(b"v2")]
    raw = sk.encrypt_message(HEADER, INNER, cipher, cleartext=clear)
    msg = parse_message(raw)
    assert msg.payloads[:2] == clear
    assert sk.decrypt_message(msg, cipher) == INNER
    bad = bytearray(raw)
    bad[33] ^= 1  # inside the first Vendor ID
    with pytest.raises(sk.IntegrityError):
        sk.decrypt_message(parse_message(bytes(bad)), cipher)


def test_empty_inner_and_critical_inner_payload() -> None:
    cipher = _cipher(EncrId.AES_GCM_16, 128, IntegId.NONE)
    raw = sk.encrypt_message(HEADER, [], cipher)
    assert sk.decrypt_message(parse_message(raw), cipher) == []
    raw = sk.encrypt_message(HEADER, [UnknownPayload(222, b"x", critical=True)], cipher)
    with pytest.raises(UnsupportedCriticalPayload):
        sk.decrypt_message(parse_message(raw), cipher)


def test_authenticated_garbage_is_a_parse_error() -> None:
    # A peer holding the keys can still send a bad pad length: INVALID_SYNTAX, not a drop.
    key = bytes(36)
    cipher = sk.SkCipher(EncrId.AES_GCM_16, key)
    prefix_len = 32
    header_bytes = sk.encrypt_message(HEADER, [], cipher)[:prefix_len]
    aad = bytearray(header_bytes)
    total = prefix_len + 8 + 2 + 16
    aad[24:28] = total.to_bytes(4, "big")
    aad[30:32] = (total - 28).to_bytes(2, "big")
    iv = b"\x00" * 7 + b"\x09"
    sealed = AESGCM(key[:32]).encrypt(key[32:] + iv, b"\x00\x05", bytes(aad))
    with pytest.raises(ParseError):
        sk.decrypt_message(parse_message(bytes(aad) + iv + sealed), cipher)


def test_short_sk_payload_is_an_integrity_failure() -> None:
    cipher = _cipher(EncrId.AES_CBC, 128, IntegId.HMAC_SHA2_256_128)
    raw = bytearray(sk.encrypt_message(HEADER, INNER, cipher))
    short = raw[:32] + b"\x00" * 8
    short[24:28] = len(short).to_bytes(4, "big")
    short[30:32] = (len(short) - 28).to_bytes(2, "big")
    with pytest.raises(sk.IntegrityError):
        sk.decrypt_message(parse_message(bytes(short)), cipher)


@pytest.mark.parametrize(
    ("name", "encr", "bits", "integ"), SUITES[::3], ids=[s[0] for s in SUITES[::3]]
)
def test_fragments(name: str, encr: int, bits: int | None, integ: int) -> None:
    cipher = _cipher(encr, bits, integ)
    first, chunks = sk.split_for_fragments(INNER, 20)
    assert len(chunks) > 2
    plain = b""
    for n, chunk in enumerate(chunks, 1):
        raw = sk.encrypt_fragment(
            HEADER, chunk, n, len(chunks), cipher, first if n == 1 else PayloadType.NONE
        )
        msg = parse_message(raw)
        skf = msg.encrypted
        assert skf is not None and skf.payload_type == PayloadType.SKF
        plain += sk.decrypt_fragment(msg, cipher)
        # Fragment number and total are authenticated (RFC 7383 §2.5): claim one more.
        bad = bytearray(raw)
        bad[34:36] = (len(chunks) + 1).to_bytes(2, "big")
        with pytest.raises(sk.IntegrityError):
            sk.decrypt_fragment(parse_message(bytes(bad)), cipher)
    assert sk.parse_inner(first, plain) == INNER


def test_argument_errors() -> None:
    with pytest.raises(ConfigError):
        sk.SkCipher(EncrId.AES_CBC, b"k" * 16)  # no integrity
    with pytest.raises(ConfigError):
        sk.SkCipher(EncrId.AES_CBC, b"k" * 15, IntegId.HMAC_SHA1_96, b"a" * 20)
    with pytest.raises(ConfigError):
        sk.SkCipher(EncrId.AES_CBC, b"k" * 16, IntegId.HMAC_SHA1_96, b"a" * 19)
    with pytest.raises(ConfigError):
        sk.SkCipher(EncrId.AES_GCM_16, b"k" * 20, IntegId.HMAC_SHA1_96, b"a" * 20)
    with pytest.raises(ConfigError):
        sk.SkCipher(EncrId.CHACHA20_POLY1305, b"k" * 32)
    with pytest.raises(ConfigError):
        sk.SkCipher(EncrId.THREE_DES, b"k" * 24, IntegId.HMAC_SHA1_96, b"a" * 20)
    with pytest.raises(ConfigError):
        sk.encr_key_length(EncrId.AES_CBC, 100)
    with pytest.raises(ConfigError):
        sk.encr_key_length(EncrId.CHACHA20_POLY1305, 128)
    with pytest.raises(ConfigError):
        sk.integ_key_length(99)
    cipher = _cipher(EncrId.AES_GCM_16, 128, IntegId.NONE)
    with pytest.raises(ConfigError):
        sk.encrypt_fragment(HEADER, b"x", 2, 1, cipher)
    with pytest.raises(ConfigError):
        sk.encrypt_fragment(HEADER, b"x", 2, 2, cipher, PayloadType.IDI)
    with pytest.raises(ParseError):
        sk.decrypt_message(parse_message(sk.encrypt_fragment(HEADER, b"x", 1, 1, cipher)), cipher)
    assert repr(cipher) == "SkCipher(encr=20, integ=0)"  # no key material

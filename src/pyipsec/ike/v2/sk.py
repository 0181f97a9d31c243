"""The IKEv2 Encrypted payload (SK, RFC 7296 §3.14) and Encrypted Fragment (SKF, RFC 7383).

Ciphers: AES-CBC with HMAC-SHA1-96 / HMAC-SHA2-256-128 / -384-192 / -512-256 (§3.14),
AES-GCM with a 16-octet ICV (RFC 5282) and ChaCha20-Poly1305 (RFC 7634).

- CBC: a random IV per message; the ICV is the truncated HMAC over the whole message
  from the IKE header through the Pad Length octet (§3.14).
- AEAD: nonce = salt (last 4 octets of SK_e) | 8-octet IV, the IV a per-key counter
  (RFC 5282 §3.1 / RFC 7634 §2 ask only that it never repeat under one key); the AAD is
  the message from the IKE header through the end of the SK(F) header, i.e. everything
  before the IV (RFC 5282 §5.1, RFC 7383 §2.5).

An ICV that does not verify raises ``IntegrityError``: §2.21 says such messages are
dropped silently. A message that authenticates but whose plaintext is malformed raises
``ParseError`` (INVALID_SYNTAX).
"""

from __future__ import annotations

import hmac as std_hmac
import os
import struct
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

from pyipsec.errors import ConfigError, ParseError, PyipsecError
from pyipsec.ike.v2.constants import IKE_HEADER_LEN, EncrId, IntegId, PayloadType
from pyipsec.ike.v2.message import (
    IkeHeader,
    IkeMessage,
    build_header,
    build_payloads,
    generic_header,
    parse_payloads,
)
from pyipsec.ike.v2.payloads import EncryptedFragmentPayload, EncryptedPayload, Payload

_SKF_FIELDS = struct.Struct("!HH")
_AES_BLOCK = 16
_AEAD_IV_LEN = 8
_AEAD_SALT_LEN = 4
_AEAD_ICV_LEN = 16
_MAX_COUNTER = 2**64 - 1

# integ id -> (hash, key length, ICV length): RFC 2404 and RFC 4868 §2.
# HMAC-SHA1-96 is a MAC here, where SHA-1 collisions do not matter (RFC 8247 §2.3).
_INTEG: dict[int, tuple[hashes.HashAlgorithm, int, int]] = {
    IntegId.HMAC_SHA1_96: (hashes.SHA1(), 20, 12),  # noqa: S303
    IntegId.HMAC_SHA2_256_128: (hashes.SHA256(), 32, 16),
    IntegId.HMAC_SHA2_384_192: (hashes.SHA384(), 48, 24),
    IntegId.HMAC_SHA2_512_256: (hashes.SHA512(), 64, 32),
}
_AES_KEY_LENGTHS = (16, 24, 32)


class IntegrityError(PyipsecError):
    """The SK/SKF payload failed its integrity check: drop the message silently (§2.21)."""


def encr_key_length(encr_id: int, key_bits: int | None = None) -> int:
    """Octets of SK_e for a transform: the key plus the AEAD salt (RFC 5282 §7.1, RFC 7634 §4)."""
    if encr_id == EncrId.CHACHA20_POLY1305:
        # RFC 7634 §2: the key is always 256 bits; no Key Length attribute.
        if key_bits not in (None, 256):
            raise ConfigError("ChaCha20-Poly1305 has a 256-bit key")
        return 32 + _AEAD_SALT_LEN
    if encr_id in (EncrId.AES_CBC, EncrId.AES_GCM_16):
        if key_bits not in (128, 192, 256):
            raise ConfigError(f"AES needs a key length of 128, 192 or 256 bits, not {key_bits}")
        salt = _AEAD_SALT_LEN if encr_id == EncrId.AES_GCM_16 else 0
        return key_bits // 8 + salt
    raise ConfigError(f"unsupported IKE encryption transform {encr_id}")


def integ_key_length(integ_id: int) -> int:
    """Octets of SK_a for an integrity transform (0 for none, with AEAD ciphers)."""
    if integ_id == IntegId.NONE:
        return 0
    try:
        return _INTEG[integ_id][1]
    except KeyError:
        raise ConfigError(f"unsupported IKE integrity transform {integ_id}") from None


class SkCipher:
    """The SK protection of one direction of one IKE SA (SK_ei/SK_ai or SK_er/SK_ar).

    Holds the key objects; AEAD ciphers also hold the IV counter, so use one instance
    per direction and never share a sending instance between two SAs.
    """

    __slots__ = (
        "_aead",
        "_cbc_key",
        "_counter",
        "_hash",
        "_integ_key",
        "_salt",
        "block_size",
        "encr_id",
        "icv_len",
        "integ_id",
        "iv_len",
    )

    def __init__(
        self, encr_id: int, encr_key: bytes, integ_id: int = IntegId.NONE, integ_key: bytes = b""
    ) -> None:
        self.encr_id = encr_id
        self.integ_id = integ_id
        self._counter = 0
        self._aead: AESGCM | ChaCha20Poly1305 | None = None
        self._cbc_key = b""
        self._salt = b""
        self._integ_key = b""
        self._hash: hashes.HashAlgorithm | None = None
        if encr_id in (EncrId.AES_GCM_16, EncrId.CHACHA20_POLY1305):
            # RFC 5282 §8 / RFC 7634 §3: an AEAD transform has no integrity transform.
            if integ_id != IntegId.NONE or integ_key:
                raise ConfigError("AEAD ciphers take no integrity transform")
            key, self._salt = encr_key[:-_AEAD_SALT_LEN], encr_key[-_AEAD_SALT_LEN:]
            if encr_id == EncrId.CHACHA20_POLY1305:
                if len(key) != 32:
                    raise ConfigError("ChaCha20-Poly1305 needs 32 + 4 octets of key")
                self._aead = ChaCha20Poly1305(key)
            else:
                if len(key) not in _AES_KEY_LENGTHS:
                    raise ConfigError("AES-GCM needs 16, 24 or 32 + 4 octets of key")
                self._aead = AESGCM(key)
            self.iv_len, self.icv_len, self.block_size = _AEAD_IV_LEN, _AEAD_ICV_LEN, 1
        elif encr_id == EncrId.AES_CBC:
            if len(encr_key) not in _AES_KEY_LENGTHS:
                raise ConfigError("AES-CBC needs a 16, 24 or 32 octet key")
            if integ_id not in _INTEG:
                raise ConfigError(f"AES-CBC needs an integrity transform, not {integ_id}")
            algorithm, key_len, self.icv_len = _INTEG[integ_id]
            if len(integ_key) != key_len:
                raise ConfigError(f"integrity transform {integ_id} needs a {key_len}-octet key")
            self._cbc_key, self._integ_key, self._hash = encr_key, integ_key, algorithm
            self.iv_len, self.block_size = _AES_BLOCK, _AES_BLOCK
        else:
            raise ConfigError(f"unsupported IKE encryption transform {encr_id}")

    def __repr__(self) -> str:
        return f"SkCipher(encr={self.encr_id}, integ={self.integ_id})"

    @property
    def is_aead(self) -> bool:
        return self._aead is not None

    def overhead(self, plaintext_len: int) -> int:
        """Octets an SK payload's data adds around ``plaintext_len`` octets of payloads."""
        return len(self._pad(plaintext_len)) + 1 + self.iv_len + self.icv_len

    # -- the two halves of the construction ---------------------------------------

    def _pad(self, inner_len: int) -> bytes:
        # §3.14: Padding + Pad Length round the plaintext up to the block size; the
        # padding's content is arbitrary, zeros here. AEAD needs none (RFC 5282 §3).
        return bytes((-(inner_len + 1)) % self.block_size)

    def _next_iv(self) -> bytes:
        if self._aead is None:
            return os.urandom(self.iv_len)
        if self._counter >= _MAX_COUNTER:
            raise ConfigError("IV space of this IKE SA exhausted; rekey it")
        self._counter += 1
        return self._counter.to_bytes(_AEAD_IV_LEN, "big")

    def seal(self, prefix: bytes, inner: bytes) -> bytes:
        """The message ``prefix`` (header + SK(F) header, lengths final) + IV | ct | ICV.

        ``len(prefix) + overhead(len(inner)) + len(inner)`` must be the length the
        header and the SK(F) header announce.
        """
        pad = self._pad(len(inner))
        plaintext = inner + pad + bytes((len(pad),))
        iv = self._next_iv()
        if self._aead is not None:
            sealed = self._aead.encrypt(self._salt + iv, plaintext, prefix)
            return prefix + iv + sealed
        encryptor = Cipher(algorithms.AES(self._cbc_key), modes.CBC(iv)).encryptor()
        ciphertext = encryptor.update(plaintext) + encryptor.finalize()
        signed = prefix + iv + ciphertext
        return signed + self._icv(signed)

    def open(self, raw: bytes, data_start: int) -> bytes:
        """Verify and decrypt ``raw[data_start:]`` (IV | ct | ICV); the inner payload bytes."""
        data_len = len(raw) - data_start
        if data_len < self.iv_len + self.icv_len + 1:
            raise IntegrityError("encrypted payload too short to authenticate")
        iv = raw[data_start : data_start + self.iv_len]
        if self._aead is not None:
            try:
                plaintext = self._aead.decrypt(
                    self._salt + iv, raw[data_start + self.iv_len :], raw[:data_start]
                )
            except InvalidTag:
                raise IntegrityError("AEAD tag mismatch") from None
        else:
            icv_at = len(raw) - self.icv_len
            if not std_hmac.compare_digest(self._icv(raw[:icv_at]), raw[icv_at:]):
                raise IntegrityError("ICV mismatch")
            ciphertext = raw[data_start + self.iv_len : icv_at]
            if len(ciphertext) % _AES_BLOCK:
                raise ParseError("CBC ciphertext is not a whole number of blocks")
            decryptor = Cipher(algorithms.AES(self._cbc_key), modes.CBC(iv)).decryptor()
            plaintext = decryptor.update(ciphertext) + decryptor.finalize()
        pad_len = plaintext[-1]
        if pad_len + 1 > len(plaintext):
            raise ParseError("pad length longer than the plaintext")
        return plaintext[: len(plaintext) - pad_len - 1]

    def _icv(self, data: bytes) -> bytes:
        if self._hash is None:  # not reached: only CBC ciphers compute an ICV
            raise ConfigError("no integrity transform")
        h = hmac.HMAC(self._integ_key, self._hash)
        h.update(data)
        return h.finalize()[: self.icv_len]


# -- whole messages ------------------------------------------------------------------


def encrypt_message(
    header: IkeHeader,
    inner: Sequence[Payload],
    cipher: SkCipher,
    cleartext: Sequence[Payload] = (),
) -> bytes:
    """A message whose payloads ``inner`` travel in one SK payload (§3.14).

    ``cleartext`` payloads, if any, precede the SK payload unencrypted (but are still
    covered by its integrity check).
    """
    first_inner, inner_bytes = build_payloads(inner)
    sk_len = 4 + cipher.overhead(len(inner_bytes)) + len(inner_bytes)
    if sk_len > 0xFFFF:
        raise ConfigError("SK payload exceeds 65535 octets; fragment it (RFC 7383)")
    if cleartext:
        first, clear_bytes = build_payloads(cleartext)
        # Patch the Next Payload of the last cleartext payload to point at SK.
        last_at = _last_payload_offset(clear_bytes)
        clear_bytes = clear_bytes[:last_at] + bytes((PayloadType.SK,)) + clear_bytes[last_at + 1 :]
    else:
        first, clear_bytes = PayloadType.SK, b""
    total = IKE_HEADER_LEN + len(clear_bytes) + sk_len
    prefix = build_header(header, first, total) + clear_bytes + generic_header(first_inner, sk_len)
    return cipher.seal(prefix, inner_bytes)


def decrypt_message(message: IkeMessage, cipher: SkCipher) -> list[Payload]:
    """The payloads inside ``message``'s SK payload.

    IntegrityError: drop silently. ParseError: the authenticated plaintext is malformed
    (UnsupportedCriticalPayload included, for an unknown critical inner payload).
    """
    sk = message.encrypted
    if not isinstance(sk, EncryptedPayload):
        raise ParseError("the message has no SK payload")
    data_start = message.encrypted_offset + 4
    inner = cipher.open(message.raw, data_start)
    payloads, _ = parse_payloads(sk.first_payload, memoryview(inner), allow_encrypted=False)
    return payloads


def encrypt_fragment(
    header: IkeHeader,
    chunk: bytes,
    fragment_number: int,
    total_fragments: int,
    cipher: SkCipher,
    first_payload: int = PayloadType.NONE,
) -> bytes:
    """One SKF message (RFC 7383 §2.5) carrying ``chunk`` of the inner payload bytes.

    ``first_payload`` is given for fragment 1 only (the type of the first inner payload).
    """
    if not 1 <= fragment_number <= total_fragments <= 0xFFFF:
        raise ConfigError("fragments are numbered 1..total, total under 65536")
    if fragment_number != 1 and first_payload != PayloadType.NONE:
        raise ConfigError("only fragment 1 names the first inner payload")
    skf_len = 8 + cipher.overhead(len(chunk)) + len(chunk)
    if skf_len > 0xFFFF:
        raise ConfigError("SKF payload exceeds 65535 octets")
    total = IKE_HEADER_LEN + skf_len
    prefix = (
        build_header(header, PayloadType.SKF, total)
        + generic_header(first_payload, skf_len)
        + _SKF_FIELDS.pack(fragment_number, total_fragments)
    )
    return cipher.seal(prefix, chunk)


def decrypt_fragment(message: IkeMessage, cipher: SkCipher) -> bytes:
    """The plaintext chunk of one SKF message; reassembly (RFC 7383 §2.6) is the caller's."""
    skf = message.encrypted
    if not isinstance(skf, EncryptedFragmentPayload):
        raise ParseError("the message has no SKF payload")
    return cipher.open(message.raw, message.encrypted_offset + 8)


def split_for_fragments(inner: Sequence[Payload], chunk_size: int) -> tuple[int, list[bytes]]:
    """(first inner payload type, chunks) for ``encrypt_fragment`` (RFC 7383 §2.5)."""
    if chunk_size < 1:
        raise ConfigError("chunk size must be positive")
    first, data = build_payloads(inner)
    chunks = [data[i : i + chunk_size] for i in range(0, len(data), chunk_size)] or [b""]
    return first, chunks


def parse_inner(first_payload: int, plaintext: bytes) -> list[Payload]:
    """Parse reassembled SKF plaintext (or any inner chain) into payloads."""
    payloads, _ = parse_payloads(first_payload, memoryview(plaintext), allow_encrypted=False)
    return payloads


def _last_payload_offset(chain: bytes) -> int:
    off = 0
    while True:
        length = int.from_bytes(chain[off + 2 : off + 4], "big")
        if off + length >= len(chain):
            return off
        off += length

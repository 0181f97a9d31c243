"""Per-SA ESP cipher objects: built once per SA, used for every packet.

Each object turns a padded plaintext into the ESP packet (header, IV, ciphertext, ICV)
and back. Building a cipher or HMAC context costs microseconds, so none is built per
packet:

- AEAD (RFC 4106 AES-GCM, RFC 7634 ChaCha20-Poly1305): one ``AESGCM`` /
  ``ChaCha20Poly1305`` object. The 8-byte explicit IV is the 64-bit sequence number,
  unique per key as both RFCs require (RFC 4106 §3.1, RFC 7634 §2). The AAD is
  SPI || seq_lo, or SPI || seq_hi || seq_lo with ESN (RFC 4106 §5, RFC 7634 §2.1).
- AES-CBC + HMAC (RFC 3602 with RFC 2404/4868): a pre-keyed HMAC context ``copy()``'d
  per packet and one long-lived CBC encryptor and decryptor.

  IV construction. A running CBC context alone would use the previous ciphertext block
  as the next IV, which an attacker knows in advance: RFC 3602 §2 requires IVs that
  cannot be predicted. So each packet first pushes a nonce block N through the
  running encryptor; its output IV = E_k(C_prev XOR N) is the packet's IV (SP 800-38A
  Appendix C: an IV obtained by enciphering a nonce under the key). N is a secret
  random 64-bit prefix followed by the packet's 64-bit sequence number, which an SA
  never repeats (RFC 4303 §3.3.3), so N is unique per packet and needs no state of its
  own. The encryptor's chaining value is then IV, so the blocks that follow are
  exactly CBC(k, IV, P).
  Decryption feeds the received IV block to the running decryptor first: its output
  is discarded and the chaining value becomes IV, so the rest is plain CBC decryption.
  Lengths are checked to be block multiples before anything reaches a running
  context, so no partial block ever stays buffered across packets.
- NULL + HMAC (RFC 2410): the plaintext is sent as is, with the ICV.

ESN (RFC 4303 §2.2.1): the high 32 bits of the sequence number are not sent; they are
appended to the ICV input for HMAC and put in the AAD for AEAD.
"""

from __future__ import annotations

import hmac as _std_hmac
import os
import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as _hmac
from cryptography.hazmat.primitives.ciphers import Cipher, CipherContext
from cryptography.hazmat.primitives.ciphers import algorithms as _alg
from cryptography.hazmat.primitives.ciphers import modes as _modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

from pyipsec.crypto.algorithms import EncAlgorithm, IntegAlgorithm
from pyipsec.errors import ConfigError, ParseError

_HDR = struct.Struct("!II")  # SPI, low 32 bits of the sequence number
_HDR_IV = struct.Struct("!IIQ")  # header followed by the 64-bit sequence number as IV
_AAD_ESN = struct.Struct("!III")  # SPI, seq_hi, seq_lo
_U32 = struct.Struct("!I")
_U64 = struct.Struct("!Q")
# CBC IV nonce block: secret 64-bit prefix, 64-bit sequence number (module docstring).
NONCE_BLOCK = struct.Struct("!QQ")
_NONCE = struct.Struct("!4sQ")  # salt, 64-bit IV
_M32 = 0xFFFFFFFF

Buffer = bytes | bytearray | memoryview


class EspCipher:
    """Interface shared by the per-SA cipher objects.

    ``encrypt(prefix, spi, seq, plaintext, tail=b"")`` returns ``prefix`` followed by the
    whole ESP packet; ``plaintext + tail`` is already padded and carries the trailer (the
    SA passes the trailer as ``tail`` so that the payload is copied once, not twice). ``decrypt(esp,
    seq_hi)`` takes the ESP packet from the SPI to the end of the ICV and returns the
    plaintext (padding and trailer included), or ``None`` when the ICV does not verify.
    """

    __slots__ = ("block_size", "esn", "icv_size", "iv_size")

    iv_size: int
    block_size: int  # padding alignment, at least 4 (RFC 4303 §2.4)
    icv_size: int
    esn: bool

    def encrypt(
        self, prefix: bytes, spi: int, seq: int, plaintext: Buffer, tail: bytes = b""
    ) -> bytes:
        raise NotImplementedError

    def decrypt(self, esp: Buffer, seq_hi: int) -> Buffer | None:
        raise NotImplementedError

    @property
    def min_size(self) -> int:
        """Shortest valid ESP packet: header, IV, one aligned trailer, ICV."""
        return 8 + self.iv_size + self.block_size + self.icv_size


class AeadEspCipher(EspCipher):
    """AES-GCM-16 (RFC 4106) or ChaCha20-Poly1305 (RFC 7634) for ESP.

    ``aead`` (the ``cryptography`` object, keyed once) and ``salt`` (the last 4 bytes of
    the key material, the nonce's first 4 bytes) are public so that the SA's fast path
    can call the AEAD directly; they are never logged or shown (``__repr__`` omits them).
    """

    __slots__ = ("aead", "salt")

    def __init__(self, alg: EncAlgorithm, keymat: bytes, esn: bool) -> None:
        key, salt = keymat[: alg.key_size], keymat[alg.key_size :]
        self.aead: AESGCM | ChaCha20Poly1305 = (
            ChaCha20Poly1305(key) if alg.name == "chacha20poly1305" else AESGCM(key)
        )
        self.salt = salt
        self.iv_size = 8
        self.block_size = 4
        self.icv_size = 16
        self.esn = esn

    def __repr__(self) -> str:
        return f"AeadEspCipher(icv_size={self.icv_size}, esn={self.esn})"

    def encrypt(
        self, prefix: bytes, spi: int, seq: int, plaintext: Buffer, tail: bytes = b""
    ) -> bytes:
        # The nonce is salt || IV with IV = the 64-bit sequence number (RFC 4106 §3.1,
        # RFC 7634 §2); the packed header then carries the same 8 bytes as the IV.
        lo = seq & _M32
        hdr_iv = _HDR_IV.pack(spi, lo, seq)
        aad = _AAD_ESN.pack(spi, seq >> 32, lo) if self.esn else hdr_iv[:8]
        pt = b"".join((plaintext, tail)) if tail else plaintext
        ct = self.aead.encrypt(_NONCE.pack(self.salt, seq), pt, aad)
        return b"".join((prefix, hdr_iv, ct))

    def seal(self, prefix: bytes, hdr_iv: bytes, spi: int, seq: int, plaintext: bytes) -> bytes:
        """Encrypt with the explicit IV in ``hdr_iv[8:]`` (test vectors call this directly)."""
        aad = _AAD_ESN.pack(spi, seq >> 32, seq & _M32) if self.esn else hdr_iv[:8]
        ct = self.aead.encrypt(self.salt + hdr_iv[8:], plaintext, aad)
        return b"".join((prefix, hdr_iv, ct))

    def decrypt(self, esp: Buffer, seq_hi: int) -> Buffer | None:
        mv = memoryview(esp)
        if self.esn:
            spi, seq_lo = _HDR.unpack_from(mv)
            aad: Buffer = _AAD_ESN.pack(spi, seq_hi, seq_lo)
        else:
            aad = mv[:8]
        try:
            return self.aead.decrypt(self.salt + mv[8:16], mv[16:], aad)
        except InvalidTag:
            return None


class _HmacMixin:
    __slots__ = ()

    mac: _hmac.HMAC  # pre-keyed, only ever copied
    _icv: int
    esn: bool

    def compute_icv(self, *parts: Buffer, seq_hi: int = 0) -> bytes:
        h = self.mac.copy()
        for p in parts:
            h.update(p)
        if self.esn:
            # RFC 4303 §2.2.1: seq_hi is appended to the ICV input, never sent.
            h.update(_U32.pack(seq_hi))
        return h.finalize()[: self._icv]


def _make_hmac(integ: IntegAlgorithm, key: bytes) -> _hmac.HMAC:
    algo = getattr(hashes, integ.hash_name)()
    return _hmac.HMAC(key, algo)


class CbcHmacEspCipher(_HmacMixin, EspCipher):
    """AES-CBC (RFC 3602) with HMAC-SHA1-96 / HMAC-SHA2 (RFC 2404, RFC 4868).

    ``encryptor``, ``decryptor`` (the running CBC contexts), ``mac`` (the pre-keyed HMAC
    context, only ever ``copy()``'d) and ``iv_prefix`` (the secret first half of each
    IV nonce block) are public so that the SA's fast paths can do what ``encrypt`` and
    ``decrypt`` do without a method call; like the AEAD object they are never logged
    or shown (``__repr__`` omits them).
    """

    __slots__ = ("_icv", "_key", "decryptor", "encryptor", "iv_prefix", "mac")

    def __init__(
        self, alg: EncAlgorithm, key: bytes, integ: IntegAlgorithm, ikey: bytes, esn: bool
    ) -> None:
        self._key = key
        # The starting chaining values are random so that the first IV is too.
        self.encryptor: CipherContext = Cipher(
            _alg.AES(key), _modes.CBC(os.urandom(16))
        ).encryptor()
        self.decryptor: CipherContext = Cipher(_alg.AES(key), _modes.CBC(bytes(16))).decryptor()
        self.iv_prefix = int.from_bytes(os.urandom(8), "big")
        self.mac = _make_hmac(integ, ikey)
        self._icv = integ.icv_size
        self.iv_size = 16
        self.block_size = 16
        self.icv_size = integ.icv_size
        self.esn = esn

    def __repr__(self) -> str:
        return f"CbcHmacEspCipher(icv_size={self.icv_size}, esn={self.esn})"

    def encrypt(
        self, prefix: bytes, spi: int, seq: int, plaintext: Buffer, tail: bytes = b""
    ) -> bytes:
        # Hot path, kept flat: one copy of the payload into the encryptor's input, one
        # HMAC context copied from the pre-keyed one, one join for the output.
        # Output = E(C_prev ^ N) || CBC(k, that IV, plaintext): see the module docstring.
        iv_ct = self.encryptor.update(
            b"".join((NONCE_BLOCK.pack(self.iv_prefix, seq), plaintext, tail))
        )
        hdr = _HDR.pack(spi, seq & _M32)
        h = self.mac.copy()
        h.update(hdr)
        h.update(iv_ct)
        if self.esn:
            h.update(_U32.pack(seq >> 32))  # RFC 4303 §2.2.1: appended, never sent
        return b"".join((prefix, hdr, iv_ct, h.finalize()[: self._icv]))

    def seal_with_iv(self, hdr: bytes, iv: bytes, seq_hi: int, plaintext: bytes) -> bytes:
        """Test hook for published vectors with a fixed IV: a one-off CBC context.

        Never used by the SA; it leaves the running contexts untouched.
        """
        enc = Cipher(_alg.AES(self._key), _modes.CBC(iv)).encryptor()
        body = iv + enc.update(plaintext) + enc.finalize()
        return hdr + body + self.compute_icv(hdr, body, seq_hi=seq_hi)

    def decrypt(self, esp: Buffer, seq_hi: int) -> Buffer | None:
        mv = memoryview(esp)
        end = len(mv) - self._icv
        if end < 24 or (end - 8) % 16:
            # Never feed a partial block to the running decryptor.
            raise ParseError("ESP ciphertext is not a whole number of AES blocks")
        if not _std_hmac.compare_digest(self.compute_icv(mv[:end], seq_hi=seq_hi), mv[end:]):
            return None
        # Verified (encrypt-then-MAC): the IV block steers the running decryptor.
        return memoryview(self.decryptor.update(mv[8:end]))[16:]


class NullHmacEspCipher(_HmacMixin, EspCipher):
    """NULL encryption (RFC 2410) with an HMAC integrity algorithm."""

    __slots__ = ("_icv", "mac")

    def __init__(self, integ: IntegAlgorithm, ikey: bytes, esn: bool) -> None:
        self.mac = _make_hmac(integ, ikey)
        self._icv = integ.icv_size
        self.iv_size = 0
        self.block_size = 4
        self.icv_size = integ.icv_size
        self.esn = esn

    def encrypt(
        self, prefix: bytes, spi: int, seq: int, plaintext: Buffer, tail: bytes = b""
    ) -> bytes:
        hdr = _HDR.pack(spi, seq & _M32)
        icv = self.compute_icv(hdr, plaintext, tail, seq_hi=seq >> 32)
        return b"".join((prefix, hdr, plaintext, tail, icv))

    def decrypt(self, esp: Buffer, seq_hi: int) -> Buffer | None:
        mv = memoryview(esp)
        end = len(mv) - self._icv
        if end < 8:
            raise ParseError("ESP packet shorter than its ICV")
        if not _std_hmac.compare_digest(self.compute_icv(mv[:end], seq_hi=seq_hi), mv[end:]):
            return None
        return mv[8:end]


def make_esp_cipher(
    enc: EncAlgorithm,
    enc_key: bytes,
    integ: IntegAlgorithm | None,
    integ_key: bytes,
    esn: bool,
) -> EspCipher:
    """Validate the combination and key lengths, and build the SA's cipher object."""
    if not isinstance(enc_key, bytes | bytearray) or not isinstance(integ_key, bytes | bytearray):
        raise ConfigError("keys must be bytes")
    if len(enc_key) != enc.keymat_size:
        raise ConfigError(
            f"{enc.name} needs {enc.keymat_size} bytes of key material, got {len(enc_key)}"
        )
    if enc.is_aead:
        if integ is not None:
            raise ConfigError(f"{enc.name} is an AEAD algorithm: integ must be None")
        if integ_key:
            raise ConfigError(f"{enc.name} is an AEAD algorithm: integ_key must be empty")
        return AeadEspCipher(enc, bytes(enc_key), esn)
    if integ is None:
        # RFC 4303 §3.2.2 / RFC 8221 §5: confidentiality-only ESP is not offered.
        raise ConfigError(f"{enc.name} needs an integrity algorithm")
    if len(integ_key) != integ.key_size:
        raise ConfigError(f"{integ.name} needs a {integ.key_size}-byte key, got {len(integ_key)}")
    if enc.kind == "cbc":
        return CbcHmacEspCipher(enc, bytes(enc_key), integ, bytes(integ_key), esn)
    return NullHmacEspCipher(integ, bytes(integ_key), esn)

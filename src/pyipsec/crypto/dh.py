"""IKEv2 Diffie-Hellman groups (transform type 4) through `cryptography`.

MODP groups 14, 15, 16 (RFC 3526), ECP groups 19, 20, 21 (RFC 5903) and Curve25519 /
Curve448 (RFC 8031). ``generate(group)`` makes a key pair; ``public_bytes()`` is the
Key Exchange Data of the KE payload; ``shared_secret(peer)`` validates the peer's Key
Exchange Data and returns g^ir in the form RFC 7296 §2.14 feeds to the PRF.

A peer value that fails validation raises ``InvalidKeyExchange`` (a ``ParseError``),
which the IKE logic answers with INVALID_SYNTAX (RFC 7296 §3.4, RFC 6989 §2).
"""

from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from typing import ClassVar

from cryptography.hazmat.primitives.asymmetric import dh, ec, x448, x25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.utils import CryptographyDeprecationWarning

from pyipsec.errors import ConfigError, ParseError


class InvalidKeyExchange(ParseError):
    """The peer's Key Exchange Data is not a valid public value for the group."""


# RFC 3526 §3-5: p = 2^N - 2^(N-64) - 1 + 2^64 * ([2^(N-130) pi] + k), generator 2.
# The tests recompute these from pi and check that they are safe primes.
_MODP_2048_P = int(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74"
    "020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437"
    "4FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED"
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF05"
    "98DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB"
    "9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B"
    "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF695581718"
    "3995497CEA956AE515D2261898FA051015728E5A8AACAA68FFFFFFFFFFFFFFFF",
    16,
)

_MODP_3072_P = int(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74"
    "020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437"
    "4FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED"
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF05"
    "98DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB"
    "9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B"
    "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF695581718"
    "3995497CEA956AE515D2261898FA051015728E5A8AAAC42DAD33170D04507A33"
    "A85521ABDF1CBA64ECFB850458DBEF0A8AEA71575D060C7DB3970F85A6E1E4C7"
    "ABF5AE8CDB0933D71E8C94E04A25619DCEE3D2261AD2EE6BF12FFA06D98A0864"
    "D87602733EC86A64521F2B18177B200CBBE117577A615D6C770988C0BAD946E2"
    "08E24FA074E5AB3143DB5BFCE0FD108E4B82D120A93AD2CAFFFFFFFFFFFFFFFF",
    16,
)

_MODP_4096_P = int(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74"
    "020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437"
    "4FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED"
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF05"
    "98DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB"
    "9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B"
    "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF695581718"
    "3995497CEA956AE515D2261898FA051015728E5A8AAAC42DAD33170D04507A33"
    "A85521ABDF1CBA64ECFB850458DBEF0A8AEA71575D060C7DB3970F85A6E1E4C7"
    "ABF5AE8CDB0933D71E8C94E04A25619DCEE3D2261AD2EE6BF12FFA06D98A0864"
    "D87602733EC86A64521F2B18177B200CBBE117577A615D6C770988C0BAD946E2"
    "08E24FA074E5AB3143DB5BFCE0FD108E4B82D120A92108011A723C12A787E6D7"
    "88719A10BDBA5B2699C327186AF4E23C1A946834B6150BDA2583E9CA2AD44CE8"
    "DBBBC2DB04DE8EF92E8EFC141FBECAA6287C59474E6BC05D99B2964FA090C3A2"
    "233BA186515BE7ED1F612970CEE2D7AFB81BDD762170481CD0069127D5B05AA9"
    "93B4EA988D8FDDC186FFB7DC90A6C08F4DF435C934063199FFFFFFFFFFFFFFFF",
    16,
)

_MODP_PRIMES: dict[int, int] = {14: _MODP_2048_P, 15: _MODP_3072_P, 16: _MODP_4096_P}
_MODP_GENERATOR = 2

# RFC 5903 §3: groups 19, 20, 21 are NIST P-256, P-384, P-521; §7: each coordinate
# is a fixed-width big-endian integer of the field size in octets.
_ECP_CURVES: dict[int, tuple[type[ec.EllipticCurve], int]] = {
    19: (ec.SECP256R1, 32),
    20: (ec.SECP384R1, 48),
    21: (ec.SECP521R1, 66),
}

# RFC 8031 §2: the public value is the 32 (X25519) or 56 (X448) octet u-coordinate.
_X_LENGTHS: dict[int, int] = {31: 32, 32: 56}

_modp_parameters: dict[int, dh.DHParameters] = {}


def supported_groups() -> tuple[int, ...]:
    return (*_MODP_PRIMES, *_ECP_CURVES, *_X_LENGTHS)


def public_length(group: int) -> int:
    """Octets of Key Exchange Data for ``group`` (RFC 7296 §3.4, RFC 5903 §7, RFC 8031 §2)."""
    if group in _MODP_PRIMES:
        return (_MODP_PRIMES[group].bit_length() + 7) // 8
    if group in _ECP_CURVES:
        return 2 * _ECP_CURVES[group][1]
    if group in _X_LENGTHS:
        return _X_LENGTHS[group]
    raise ConfigError(f"unsupported Diffie-Hellman group {group}")


class KeyExchange(ABC):
    """One side of a Diffie-Hellman exchange: our private key, for one group."""

    __slots__ = ("group",)
    kind: ClassVar[str]

    def __init__(self, group: int) -> None:
        self.group = group

    def __repr__(self) -> str:
        # Never the private value.
        return f"{type(self).__name__}(group={self.group})"

    @property
    def public_length(self) -> int:
        return public_length(self.group)

    @abstractmethod
    def public_bytes(self) -> bytes:
        """Our Key Exchange Data, as the KE payload carries it."""

    @abstractmethod
    def shared_secret(self, peer: bytes) -> bytes:
        """g^ir from the peer's Key Exchange Data; InvalidKeyExchange if it is unusable."""

    def _check_length(self, peer: bytes) -> None:
        if len(peer) != self.public_length:
            raise InvalidKeyExchange(
                f"group {self.group}: Key Exchange Data is {len(peer)} octets, "
                f"expected {self.public_length}"
            )


@contextmanager
def _ffdh() -> Iterator[None]:
    # `cryptography` deprecates finite-field DH, but RFC 8247 §2.4 still has MODP
    # 2048 as a MUST for IKEv2; silence that one warning, only around FFDH calls.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        yield


def _modp_params(group: int) -> dh.DHParameters:
    params = _modp_parameters.get(group)
    if params is None:
        with _ffdh():
            params = dh.DHParameterNumbers(_MODP_PRIMES[group], _MODP_GENERATOR).parameters()
        _modp_parameters[group] = params
    return params


class ModpKeyExchange(KeyExchange):
    """RFC 3526 MODP groups; values are big-endian, zero-padded to the prime's length."""

    __slots__ = ("_key", "_public")
    kind = "modp"

    def __init__(self, group: int, key: dh.DHPrivateKey) -> None:
        super().__init__(group)
        self._key = key
        with _ffdh():
            y = key.public_key().public_numbers().y
        self._public = y.to_bytes(public_length(group), "big")

    def public_bytes(self) -> bytes:
        return self._public

    def shared_secret(self, peer: bytes) -> bytes:
        self._check_length(peer)
        p = _MODP_PRIMES[self.group]
        y = int.from_bytes(peer, "big")
        # RFC 6989 §2.1: for these safe-prime groups, 1 < y < p-1 is the whole test
        # (it excludes the elements of order 1 and 2).
        if not 1 < y < p - 1:
            raise InvalidKeyExchange(f"group {self.group}: public value out of range")
        try:
            with _ffdh():
                peer_key = dh.DHPublicNumbers(y, _modp_params(self.group).parameter_numbers())
                secret = self._key.exchange(peer_key.public_key())
        except ValueError:
            raise InvalidKeyExchange(f"group {self.group}: public value rejected") from None
        # RFC 7296 §2.14: g^ir is padded with zeros to the length of the modulus.
        return secret.rjust(self.public_length, b"\x00")


class EcpKeyExchange(KeyExchange):
    """RFC 5903 ECP groups: KE data is x || y, the shared secret is x alone."""

    __slots__ = ("_key", "_public")
    kind = "ecp"

    def __init__(self, group: int, key: ec.EllipticCurvePrivateKey) -> None:
        super().__init__(group)
        self._key = key
        # RFC 5903 §7: drop the SEC 1 0x04 prefix; no compression.
        encoded = key.public_key().public_bytes(_X962, _UNCOMPRESSED)
        self._public = encoded[1:]

    def public_bytes(self) -> bytes:
        return self._public

    def shared_secret(self, peer: bytes) -> bytes:
        self._check_length(peer)
        curve_cls, _ = _ECP_CURVES[self.group]
        try:
            # from_encoded_point checks that the point lies on the curve (RFC 6989
            # §2.3), and the x || y form cannot name the point at infinity.
            peer_key = ec.EllipticCurvePublicKey.from_encoded_point(curve_cls(), b"\x04" + peer)
            return self._key.exchange(ec.ECDH(), peer_key)
        except ValueError:
            raise InvalidKeyExchange(f"group {self.group}: point not on the curve") from None


class XKeyExchange(KeyExchange):
    """RFC 8031 Curve25519 (group 31) and Curve448 (group 32)."""

    __slots__ = ("_key", "_public")
    kind = "ecx"

    def __init__(self, group: int, key: x25519.X25519PrivateKey | x448.X448PrivateKey) -> None:
        super().__init__(group)
        self._key = key
        self._public = key.public_key().public_bytes(_RAW, _RAW_FORMAT)

    def public_bytes(self) -> bytes:
        return self._public

    def shared_secret(self, peer: bytes) -> bytes:
        self._check_length(peer)
        try:
            if isinstance(self._key, x25519.X25519PrivateKey):
                secret = self._key.exchange(x25519.X25519PublicKey.from_public_bytes(peer))
            else:
                secret = self._key.exchange(x448.X448PublicKey.from_public_bytes(peer))
        except ValueError:
            # OpenSSL refuses low-order points, whose result is all zeros.
            raise InvalidKeyExchange(f"group {self.group}: low-order public value") from None
        # RFC 8031 §2.3: the receiver MUST check the result is not all zeros.
        if not any(secret):
            raise InvalidKeyExchange(f"group {self.group}: all-zero shared secret")
        return secret


_X962 = Encoding.X962
_UNCOMPRESSED = PublicFormat.UncompressedPoint
_RAW = Encoding.Raw
_RAW_FORMAT = PublicFormat.Raw


def generate(group: int) -> KeyExchange:
    """A fresh key pair for ``group`` (randomness from OpenSSL's CSPRNG)."""
    if group in _MODP_PRIMES:
        with _ffdh():
            return ModpKeyExchange(group, _modp_params(group).generate_private_key())
    if group in _ECP_CURVES:
        return EcpKeyExchange(group, ec.generate_private_key(_ECP_CURVES[group][0]()))
    if group == 31:
        return XKeyExchange(group, x25519.X25519PrivateKey.generate())
    if group == 32:
        return XKeyExchange(group, x448.X448PrivateKey.generate())
    raise ConfigError(f"unsupported Diffie-Hellman group {group}")


def from_private_bytes(group: int, private: bytes) -> KeyExchange:
    """A key pair from a known private value (big-endian for MODP/ECP, raw for X25519/X448).

    For known-answer tests and reproducible captures; live exchanges use ``generate``.
    """
    try:
        if group in _MODP_PRIMES:
            x = int.from_bytes(private, "big")
            p = _MODP_PRIMES[group]
            if not 1 < x < p - 1:
                raise ConfigError(f"group {group}: private value out of range")
            params = _modp_params(group).parameter_numbers()
            with _ffdh():
                public = dh.DHPublicNumbers(pow(_MODP_GENERATOR, x, p), params)
                return ModpKeyExchange(group, dh.DHPrivateNumbers(x, public).private_key())
        if group in _ECP_CURVES:
            scalar = int.from_bytes(private, "big")
            return EcpKeyExchange(group, ec.derive_private_key(scalar, _ECP_CURVES[group][0]()))
        if group == 31:
            return XKeyExchange(group, x25519.X25519PrivateKey.from_private_bytes(private))
        if group == 32:
            return XKeyExchange(group, x448.X448PrivateKey.from_private_bytes(private))
    except ValueError as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"group {group}: unusable private value") from None
    raise ConfigError(f"unsupported Diffie-Hellman group {group}")

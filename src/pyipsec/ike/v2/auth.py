"""IKEv2 authentication: AUTH payloads (RFC 7296 §2.15, §3.8) built and verified.

Methods:

- 2, Shared Key Message Integrity Code (PSK): prf(prf(psk, "Key Pad for IKEv2"), octets).
- 1, RSA Digital Signature: RSASSA-PKCS1-v1_5 with SHA-1 (legacy, RFC 7296 §3.8).
- 9/10/11, ECDSA with SHA-256/P-256, SHA-384/P-384, SHA-512/P-521 (RFC 4754: the
  signature is r || s, each left-padded to the curve's octet length).
- 14, Digital Signature (RFC 7427): one length octet, a DER AlgorithmIdentifier, then
  the signature: RSA PKCS#1 v1.5 and RSASSA-PSS with SHA-256/384/512, ECDSA (DER
  Ecdsa-Sig-Value) and Ed25519/Ed448 (RFC 8420). SHA-1 is refused here, as RFC 8247
  §3.2 requires.

The IKE_AUTH task uses three things: an ``Authenticator`` per local identity
(``id_payload``, ``cert_payloads``, ``build_auth``), ``verify_auth`` for the peer's AUTH
(raises ``AuthenticationFailed``, which maps to the AUTHENTICATION_FAILED notify), and
the SIGNATURE_HASH_ALGORITHMS (RFC 7427 §4) and CERTREQ helpers.
"""

from __future__ import annotations

import hmac
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from pyipsec.crypto import certs
from pyipsec.crypto.certs import CertificateError, PrivateKey, PublicKey, TrustStore
from pyipsec.crypto.prf import Prf
from pyipsec.errors import ConfigError, ParseError, PyipsecError
from pyipsec.ike.v2 import keymat
from pyipsec.ike.v2.constants import AuthMethod, CertEncoding, NotifyType
from pyipsec.ike.v2.identity import ANY_ID, Identity
from pyipsec.ike.v2.payloads import (
    AuthPayload,
    CertPayload,
    CertReqPayload,
    IdPayload,
    NotifyPayload,
)


class AuthenticationFailed(PyipsecError):
    """The peer's AUTH (or the identity/certificates behind it) did not verify.

    The IKE_AUTH task answers with AUTHENTICATION_FAILED (``notify_type``) and tears
    the SA down (RFC 7296 §2.21.2). ``reason`` is a short machine name (``bad-psk``,
    ``bad-signature``, ``id-mismatch``, ``untrusted``, ``expired``...); no message
    carries key material.
    """

    notify_type = NotifyType.AUTHENTICATION_FAILED

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class HashAlgorithmId(IntEnum):
    """IANA "IKEv2 Hash Algorithms" (RFC 7427 §7, RFC 8420 §2)."""

    SHA1 = 1
    SHA2_256 = 2
    SHA2_384 = 3
    SHA2_512 = 4
    IDENTITY = 5  # RFC 8420: EdDSA signs the whole message, no separate hash


# What we announce: RFC 8247 §3.2 — SHA2-256 MUST, 384/512 SHOULD, SHA-1 MUST NOT;
# Identity for Ed25519/Ed448 (RFC 8420 §2).
SUPPORTED_HASH_ALGORITHMS: tuple[int, ...] = (
    HashAlgorithmId.SHA2_256,
    HashAlgorithmId.SHA2_384,
    HashAlgorithmId.SHA2_512,
    HashAlgorithmId.IDENTITY,
)

_HASHES: dict[int, type[hashes.HashAlgorithm]] = {
    HashAlgorithmId.SHA1: hashes.SHA1,
    HashAlgorithmId.SHA2_256: hashes.SHA256,
    HashAlgorithmId.SHA2_384: hashes.SHA384,
    HashAlgorithmId.SHA2_512: hashes.SHA512,
}


def _hash_of(hash_id: int) -> hashes.HashAlgorithm:
    cls = _HASHES.get(hash_id)
    if cls is None:
        raise ConfigError(f"no hash function for hash id {hash_id}")
    return cls()


# -- SIGNATURE_HASH_ALGORITHMS (RFC 7427 §4) ------------------------------------------


def signature_hash_algorithms_notify(
    algorithms: Sequence[int] = SUPPORTED_HASH_ALGORITHMS,
) -> NotifyPayload:
    """The notify both peers send in IKE_SA_INIT: a list of 2-octet hash ids."""
    if not algorithms:
        raise ConfigError("SIGNATURE_HASH_ALGORITHMS needs at least one algorithm")
    data = b"".join(int(a).to_bytes(2, "big") for a in algorithms)
    return NotifyPayload(NotifyType.SIGNATURE_HASH_ALGORITHMS, data)


def parse_signature_hash_algorithms(data: bytes) -> tuple[int, ...]:
    """The hash ids of a received SIGNATURE_HASH_ALGORITHMS notify (unknown ones kept)."""
    if len(data) % 2:
        raise ParseError("SIGNATURE_HASH_ALGORITHMS data has an odd length")
    return tuple(int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2))


# -- DER for AlgorithmIdentifier ------------------------------------------------------


def _der(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        return bytes((tag, n)) + content
    size = (n.bit_length() + 7) // 8
    return bytes((tag, 0x80 | size)) + n.to_bytes(size, "big") + content


def _oid(dotted: str) -> bytes:
    """X.690 §8.19: an OBJECT IDENTIFIER TLV."""
    arcs = [int(a) for a in dotted.split(".")]
    out = bytearray()
    for arc in [40 * arcs[0] + arcs[1], *arcs[2:]]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        out += bytes(reversed(chunk))
    return _der(0x06, bytes(out))


_SEQ, _NULL = 0x30, b"\x05\x00"
_OID_RSASSA_PSS = "1.2.840.113549.1.1.10"
_OID_MGF1 = "1.2.840.113549.1.1.8"
_HASH_OIDS: dict[int, str] = {
    HashAlgorithmId.SHA1: "1.3.14.3.2.26",
    HashAlgorithmId.SHA2_256: "2.16.840.1.101.3.4.2.1",
    HashAlgorithmId.SHA2_384: "2.16.840.1.101.3.4.2.2",
    HashAlgorithmId.SHA2_512: "2.16.840.1.101.3.4.2.3",
}
_RSA_PKCS1_OIDS: dict[int, str] = {
    HashAlgorithmId.SHA1: "1.2.840.113549.1.1.5",
    HashAlgorithmId.SHA2_256: "1.2.840.113549.1.1.11",
    HashAlgorithmId.SHA2_384: "1.2.840.113549.1.1.12",
    HashAlgorithmId.SHA2_512: "1.2.840.113549.1.1.13",
}
_ECDSA_OIDS: dict[int, str] = {
    HashAlgorithmId.SHA1: "1.2.840.10045.4.1",
    HashAlgorithmId.SHA2_256: "1.2.840.10045.4.3.2",
    HashAlgorithmId.SHA2_384: "1.2.840.10045.4.3.3",
    HashAlgorithmId.SHA2_512: "1.2.840.10045.4.3.4",
}
_HASH_NAMES = {1: "sha1", 2: "sha256", 3: "sha384", 4: "sha512"}
_ED_OIDS = {"ed25519": "1.3.101.112", "ed448": "1.3.101.113"}  # RFC 8410 §3


def _hash_algorithm_identifier(hash_id: int) -> bytes:
    return _der(_SEQ, _oid(_HASH_OIDS[hash_id]) + _NULL)


@dataclass(frozen=True, slots=True)
class SignatureScheme:
    """One RFC 7427 signature algorithm: key type, hash, and RSASSA-PSS parameters."""

    key_type: str  # "rsa", "ecdsa", "ed25519" or "ed448"
    hash_id: int  # HashAlgorithmId
    pss_salt: int | None = None  # None: RSASSA-PKCS1-v1_5
    mgf_hash_id: int | None = None  # MGF1's hash for PSS (defaults to hash_id)

    @property
    def name(self) -> str:
        if self.key_type in _ED_OIDS:
            return self.key_type
        kind = self.key_type
        if kind == "rsa":
            kind = "rsa-pss" if self.pss_salt is not None else "rsa-pkcs1"
        return f"{kind}-{_HASH_NAMES.get(self.hash_id, str(self.hash_id))}"

    @property
    def hash(self) -> hashes.HashAlgorithm | None:
        cls = _HASHES.get(self.hash_id)
        return cls() if cls is not None else None

    def algorithm_identifier(self) -> bytes:
        """The DER AlgorithmIdentifier that RFC 7427 §3 puts before the signature."""
        if self.key_type in _ED_OIDS:
            return _der(_SEQ, _oid(_ED_OIDS[self.key_type]))  # RFC 8420 §2: no parameters
        if self.key_type == "ecdsa":
            return _der(_SEQ, _oid(_ECDSA_OIDS[self.hash_id]))  # RFC 5758 §3.2: absent
        if self.pss_salt is None:
            return _der(_SEQ, _oid(_RSA_PKCS1_OIDS[self.hash_id]) + _NULL)  # RFC 4055 §5
        # RFC 4055 §3.1 RSASSA-PSS-params: hash [0], MGF1 [1], salt [2]; the trailer
        # field keeps its default and is omitted (DER leaves out default values).
        mgf_hash = self.mgf_hash_id if self.mgf_hash_id is not None else self.hash_id
        params = (
            _der(0xA0, _hash_algorithm_identifier(self.hash_id))
            + _der(0xA1, _der(_SEQ, _oid(_OID_MGF1) + _hash_algorithm_identifier(mgf_hash)))
            + _der(0xA2, _der(0x02, self.pss_salt.to_bytes(2, "big").lstrip(b"\0") or b"\0"))
        )
        return _der(_SEQ, _oid(_OID_RSASSA_PSS) + _der(_SEQ, params))


def _pss(hash_id: int) -> SignatureScheme:
    # RFC 8247 §3.1 / RFC 4055 §3.1: salt as long as the hash, MGF1 with the same hash.
    return SignatureScheme("rsa", hash_id, _hash_of(hash_id).digest_size, hash_id)


SCHEMES: dict[str, SignatureScheme] = {
    s.name: s
    for s in (
        SignatureScheme("rsa", HashAlgorithmId.SHA2_256),
        SignatureScheme("rsa", HashAlgorithmId.SHA2_384),
        SignatureScheme("rsa", HashAlgorithmId.SHA2_512),
        _pss(HashAlgorithmId.SHA2_256),
        _pss(HashAlgorithmId.SHA2_384),
        _pss(HashAlgorithmId.SHA2_512),
        SignatureScheme("ecdsa", HashAlgorithmId.SHA2_256),
        SignatureScheme("ecdsa", HashAlgorithmId.SHA2_384),
        SignatureScheme("ecdsa", HashAlgorithmId.SHA2_512),
        SignatureScheme("ed25519", HashAlgorithmId.IDENTITY),
        SignatureScheme("ed448", HashAlgorithmId.IDENTITY),
    )
}


def parse_algorithm_identifier(der: bytes) -> SignatureScheme:
    """The scheme a received RFC 7427 AlgorithmIdentifier names; ParseError if unknown."""
    tag, start, end = certs.der_tlv(der, 0)
    if tag != _SEQ or end != len(der):
        raise ParseError("AlgorithmIdentifier is one DER SEQUENCE")
    oid_tag, oid_start, oid_end = certs.der_tlv(der, start, end)
    if oid_tag != 0x06:
        raise ParseError("AlgorithmIdentifier starts with an OID")
    oid = certs.decode_oid(der[oid_start:oid_end])
    params = der[oid_end:end]
    for hash_id, value in _RSA_PKCS1_OIDS.items():
        if oid == value:
            _expect_params(params, (b"", _NULL))
            return SignatureScheme("rsa", hash_id)
    for hash_id, value in _ECDSA_OIDS.items():
        if oid == value:
            _expect_params(params, (b"",))
            return SignatureScheme("ecdsa", hash_id)
    for key_type, value in _ED_OIDS.items():
        if oid == value:
            _expect_params(params, (b"",))
            return SignatureScheme(key_type, HashAlgorithmId.IDENTITY)
    if oid == _OID_RSASSA_PSS:
        return _parse_pss_params(params)
    raise ParseError(f"unsupported signature algorithm {oid}")


def _expect_params(params: bytes, allowed: tuple[bytes, ...]) -> None:
    if params not in allowed:
        raise ParseError("unexpected AlgorithmIdentifier parameters")


def _parse_hash_algorithm(der: bytes) -> int:
    tag, start, end = certs.der_tlv(der, 0)
    if tag != _SEQ or end != len(der):
        raise ParseError("bad hash AlgorithmIdentifier")
    oid_tag, oid_start, oid_end = certs.der_tlv(der, start, end)
    if oid_tag != 0x06:
        raise ParseError("bad hash AlgorithmIdentifier")
    _expect_params(der[oid_end:end], (b"", _NULL))  # RFC 4055 §2.1 allows both
    oid = certs.decode_oid(der[oid_start:oid_end])
    for hash_id, value in _HASH_OIDS.items():
        if oid == value:
            return hash_id
    raise ParseError(f"unsupported hash {oid}")


def _parse_pss_params(params: bytes) -> SignatureScheme:
    """RFC 4055 §3.1 RSASSA-PSS-params, every field optional with its default."""
    hash_id: int = HashAlgorithmId.SHA1
    mgf_hash_id: int = HashAlgorithmId.SHA1
    salt = 20
    if params:
        tag, start, end = certs.der_tlv(params, 0)
        if tag != _SEQ or end != len(params):
            raise ParseError("RSASSA-PSS parameters are a SEQUENCE")
        pos, last = start, -1
        while pos < end:
            ftag, fstart, fend = certs.der_tlv(params, pos, end)
            field_no = ftag - 0xA0
            if not 0 <= field_no <= 3 or field_no <= last:
                raise ParseError("bad RSASSA-PSS parameter field")
            last = field_no
            body = params[fstart:fend]
            if field_no == 0:
                hash_id = _parse_hash_algorithm(body)
            elif field_no == 1:
                mgf_hash_id = _parse_mgf1(body)
            else:
                itag, istart, iend = certs.der_tlv(body, 0)
                if itag != 0x02 or iend != len(body) or not 0 < iend - istart <= 2:
                    raise ParseError("bad RSASSA-PSS integer")
                number = int.from_bytes(body[istart:iend], "big", signed=True)
                if field_no == 2:
                    salt = number
                elif number != 1:  # trailerField: only trailerFieldBC(1) exists
                    raise ParseError("unsupported RSASSA-PSS trailer field")
            pos = fend
    if salt < 0:
        raise ParseError("negative RSASSA-PSS salt length")
    return SignatureScheme("rsa", hash_id, salt, mgf_hash_id)


def _parse_mgf1(der: bytes) -> int:
    tag, start, end = certs.der_tlv(der, 0)
    if tag != _SEQ or end != len(der):
        raise ParseError("bad mask generation AlgorithmIdentifier")
    oid_tag, oid_start, oid_end = certs.der_tlv(der, start, end)
    if oid_tag != 0x06 or certs.decode_oid(der[oid_start:oid_end]) != _OID_MGF1:
        raise ParseError("only MGF1 is supported")
    return _parse_hash_algorithm(der[oid_end:end])


def encode_signature_auth(scheme: SignatureScheme, signature: bytes) -> bytes:
    """RFC 7427 §3 AUTH data: ASN.1 length (1 octet) | AlgorithmIdentifier | signature."""
    algorithm_identifier = scheme.algorithm_identifier()
    return bytes((len(algorithm_identifier),)) + algorithm_identifier + signature


def decode_signature_auth(data: bytes) -> tuple[SignatureScheme, bytes]:
    """Split RFC 7427 AUTH data into the scheme and the signature; ParseError if bad."""
    if not data:
        raise ParseError("empty Digital Signature AUTH data")
    n = data[0]
    if n == 0 or 1 + n > len(data):
        raise ParseError("AlgorithmIdentifier length overruns the AUTH data")
    return parse_algorithm_identifier(data[1 : 1 + n]), data[1 + n :]


# -- signing and verification primitives ----------------------------------------------

_ECDSA_METHODS: dict[int, tuple[type[ec.EllipticCurve], int]] = {
    AuthMethod.ECDSA_SHA256_P256: (ec.SECP256R1, HashAlgorithmId.SHA2_256),
    AuthMethod.ECDSA_SHA384_P384: (ec.SECP384R1, HashAlgorithmId.SHA2_384),
    AuthMethod.ECDSA_SHA512_P521: (ec.SECP521R1, HashAlgorithmId.SHA2_512),
}
_CURVE_HASH = {"secp256r1": 0, "secp384r1": 1, "secp521r1": 2}
_SHA2 = (HashAlgorithmId.SHA2_256, HashAlgorithmId.SHA2_384, HashAlgorithmId.SHA2_512)


def _key_type(key: PrivateKey | PublicKey) -> str:
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return "rsa"
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        return "ecdsa"
    if isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
        return "ed25519"
    return "ed448"


def _pss_padding(scheme: SignatureScheme) -> padding.PSS:
    mgf_hash = scheme.mgf_hash_id if scheme.mgf_hash_id is not None else scheme.hash_id
    return padding.PSS(mgf=padding.MGF1(_hash_of(mgf_hash)), salt_length=scheme.pss_salt or 0)


def sign(key: PrivateKey, scheme: SignatureScheme, data: bytes) -> bytes:
    """The raw signature of ``data`` (ECDSA in DER, as RFC 7427 sends it)."""
    if _key_type(key) != scheme.key_type:
        raise ConfigError(f"a {_key_type(key)} key cannot make {scheme.name} signatures")
    if isinstance(key, rsa.RSAPrivateKey):
        pad = _pss_padding(scheme) if scheme.pss_salt is not None else padding.PKCS1v15()
        return key.sign(data, pad, _hash_of(scheme.hash_id))
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(data, ec.ECDSA(_hash_of(scheme.hash_id)))
    return key.sign(data)


def verify(key: PublicKey, scheme: SignatureScheme, signature: bytes, data: bytes) -> bool:
    """True if ``signature`` (ECDSA in DER) over ``data`` verifies with ``key``."""
    if _key_type(key) != scheme.key_type:
        return False
    try:
        if isinstance(key, rsa.RSAPublicKey):
            pad = _pss_padding(scheme) if scheme.pss_salt is not None else padding.PKCS1v15()
            key.verify(signature, data, pad, _hash_of(scheme.hash_id))
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, data, ec.ECDSA(_hash_of(scheme.hash_id)))
        else:
            key.verify(signature, data)
    except (InvalidSignature, ValueError):
        return False
    return True


def _curve_octets(curve: ec.EllipticCurve) -> int:
    return (curve.key_size + 7) // 8


def _ecdsa_raw(der_signature: bytes, curve: ec.EllipticCurve) -> bytes:
    """RFC 4754 §7: r and s as fixed-length big-endian integers, concatenated."""
    r, s = decode_dss_signature(der_signature)
    size = _curve_octets(curve)
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


def _ecdsa_der(raw: bytes, curve: ec.EllipticCurve) -> bytes | None:
    size = _curve_octets(curve)
    if len(raw) != 2 * size:
        return None
    return encode_dss_signature(
        int.from_bytes(raw[:size], "big"), int.from_bytes(raw[size:], "big")
    )


# RFC 7296 §3.8 method 1: RSASSA-PKCS1-v1_5, and SHA-1 "SHOULD" be the hash.
_RSA_SHA1 = SignatureScheme("rsa", HashAlgorithmId.SHA1)


# -- our side -------------------------------------------------------------------------


class Authenticator:
    """How one local identity proves itself: a PSK, or a private key (+ certificates).

    ``build_auth(octets, peer_hash_algorithms, prf=...)`` makes the AUTH payload;
    ``id_payload`` and ``cert_payloads`` give the IDi/IDr and CERT payloads to send.
    """

    __slots__ = ("_key", "_psk", "chain", "identity", "rsa_pss")

    def __init__(
        self,
        identity: Identity,
        *,
        psk: bytes | None = None,
        private_key: PrivateKey | None = None,
        chain: Sequence[x509.Certificate] = (),
        rsa_pss: bool = True,
    ) -> None:
        if identity.is_any:
            raise ConfigError("the local identity cannot be %any")
        if (psk is None) == (private_key is None):
            raise ConfigError("an authenticator has either a PSK or a private key")
        if psk is not None and not psk:
            raise ConfigError("the pre-shared key must not be empty")
        if chain:
            if private_key is None:
                raise ConfigError("certificates need the matching private key")
            if chain[0].public_key() != private_key.public_key():
                raise ConfigError("the certificate does not hold the private key's public key")
            if not identity.matches_certificate(chain[0]):
                raise ConfigError(f"identity {identity} is not in the certificate")
        self.identity = identity
        self._psk = psk
        self._key = private_key
        self.chain: tuple[x509.Certificate, ...] = tuple(chain)
        # RFC 8247 §3.2 prefers RSASSA-PSS over PKCS#1 v1.5 for method 14.
        self.rsa_pss = rsa_pss

    def __repr__(self) -> str:
        kind = "psk" if self._psk is not None else _key_type(self._key) if self._key else "?"
        return f"Authenticator({self.identity}, {kind})"

    @classmethod
    def with_psk(cls, identity: Identity, secret: bytes) -> Authenticator:
        return cls(identity, psk=secret)

    @classmethod
    def with_key(
        cls,
        identity: Identity | None,
        private_key: PrivateKey,
        chain: Sequence[x509.Certificate] = (),
        *,
        rsa_pss: bool = True,
    ) -> Authenticator:
        """A signature authenticator; ``identity=None`` takes the certificate's subject DN."""
        if identity is None:
            if not chain:
                raise ConfigError("without a certificate the identity must be given")
            identity = Identity.from_name(chain[0].subject)
        return cls(identity, private_key=private_key, chain=chain, rsa_pss=rsa_pss)

    @property
    def uses_psk(self) -> bool:
        return self._psk is not None

    def id_payload(self, responder: bool) -> IdPayload:
        return self.identity.to_payload(responder)

    def cert_payloads(self) -> list[CertPayload]:
        """CERT payloads for our chain, end entity first (RFC 7296 §3.6)."""
        return cert_payloads(self.chain)

    def choose_scheme(self, peer_hash_algorithms: Collection[int]) -> SignatureScheme:
        """The RFC 7427 scheme for our key and the hashes the peer announced (§4)."""
        if self._key is None:
            raise ConfigError("a PSK authenticator does not sign")
        kind = _key_type(self._key)
        if kind in _ED_OIDS:
            if HashAlgorithmId.IDENTITY not in peer_hash_algorithms:
                raise ConfigError(f"the peer does not accept {kind} (no Identity hash, RFC 8420)")
            return SCHEMES[kind]
        order = list(_SHA2)
        if isinstance(self._key, ec.EllipticCurvePrivateKey):
            # The hash that matches the curve's strength first (RFC 5656 §6.2.1 style).
            first = order[_CURVE_HASH.get(self._key.curve.name, 0)]
            order.remove(first)
            order.insert(0, first)
        for hash_id in order:
            if hash_id in peer_hash_algorithms:
                if kind == "rsa" and self.rsa_pss:
                    return _pss(hash_id)
                return SignatureScheme(kind, hash_id)
        raise ConfigError("no signature hash algorithm in common with the peer")

    def build_auth(
        self,
        signed_octets: bytes,
        peer_hash_algorithms: Collection[int] = (),
        *,
        prf: Prf | None = None,
    ) -> AuthPayload:
        """The AUTH payload over ``signed_octets`` (keymat.signed_octets, §2.15).

        ``peer_hash_algorithms`` is the peer's SIGNATURE_HASH_ALGORITHMS list; empty
        means the peer did not send one, and the legacy methods 1 and 9-11 are used.
        ``prf`` is the IKE SA's PRF, needed for a PSK.
        """
        if self._psk is not None:
            if prf is None:
                raise ConfigError("PSK authentication needs the IKE SA's prf")
            return AuthPayload(
                AuthMethod.SHARED_KEY_MIC, keymat.psk_auth(prf, self._psk, signed_octets)
            )
        key = self._key
        if key is None:  # unreachable: __init__ requires one of the two
            raise ConfigError("no credential")
        if peer_hash_algorithms:
            scheme = self.choose_scheme(peer_hash_algorithms)
            signature = sign(key, scheme, signed_octets)
            return AuthPayload(
                AuthMethod.DIGITAL_SIGNATURE, encode_signature_auth(scheme, signature)
            )
        if isinstance(key, rsa.RSAPrivateKey):
            return AuthPayload(AuthMethod.RSA_SIG, sign(key, _RSA_SHA1, signed_octets))
        if isinstance(key, ec.EllipticCurvePrivateKey):
            for method, (curve_cls, hash_id) in _ECDSA_METHODS.items():
                if isinstance(key.curve, curve_cls):
                    der = sign(key, SignatureScheme("ecdsa", hash_id), signed_octets)
                    return AuthPayload(method, _ecdsa_raw(der, key.curve))
            raise ConfigError(f"curve {key.curve.name} needs RFC 7427 signatures")
        raise ConfigError("EdDSA needs RFC 7427 signatures, which the peer did not announce")


# -- the peer's side ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PeerTrust:
    """What we accept from a peer (one connection's remote section).

    ``remote_id``: the identity pattern the peer must present (``ANY_ID`` for any).
    ``psk``: allows PSK authentication with this key. ``cas``: allows certificate
    authentication to these CAs. ``public_keys``: raw keys trusted without a
    certificate (pinned keys). A method with nothing configured for it fails.
    """

    remote_id: Identity = ANY_ID
    psk: bytes | None = field(default=None, repr=False)
    cas: TrustStore | None = None
    public_keys: tuple[PublicKey, ...] = ()


def verify_auth(
    auth_payload: AuthPayload,
    signed_octets: bytes,
    peer_id_payload: IdPayload,
    cert_chain: Sequence[x509.Certificate],
    trust: PeerTrust,
    *,
    prf: Prf | None = None,
    now: datetime | None = None,
) -> None:
    """Check the peer's AUTH payload (RFC 7296 §2.15); AuthenticationFailed if it fails.

    ``signed_octets`` are the peer's (keymat.signed_octets with the peer's message,
    our nonce, SK_p of the peer's role and the peer's ID payload). ``cert_chain`` is
    what its CERT payloads held, end entity first (``peer_certificates``). ``prf``
    is needed for PSK, ``now`` (wall-clock) for certificates.
    """
    try:
        peer = Identity.from_payload(peer_id_payload)
    except ParseError as exc:
        raise AuthenticationFailed("bad-id", str(exc)) from exc
    if not peer.matches(trust.remote_id):
        raise AuthenticationFailed("id-mismatch", f"{peer} is not {trust.remote_id}")
    method = auth_payload.method
    data = auth_payload.data
    if method == AuthMethod.SHARED_KEY_MIC:
        if trust.psk is None:
            raise AuthenticationFailed("method-not-allowed", "PSK")
        if prf is None:
            raise ConfigError("PSK verification needs the IKE SA's prf")
        expected = keymat.psk_auth(prf, trust.psk, signed_octets)
        if not hmac.compare_digest(expected, data):
            raise AuthenticationFailed("bad-psk", f"AUTH of {peer} does not match the PSK")
        return
    for key in _peer_keys(peer, cert_chain, trust, now):
        if _verify_signature_auth(key, method, data, signed_octets):
            return
    raise AuthenticationFailed("bad-signature", f"method {method} from {peer}")


def _peer_keys(
    peer: Identity,
    cert_chain: Sequence[x509.Certificate],
    trust: PeerTrust,
    now: datetime | None,
) -> list[PublicKey]:
    if cert_chain:
        if trust.cas is None:
            raise AuthenticationFailed("method-not-allowed", "certificates")
        if now is None:
            raise ConfigError("certificate verification needs the current time")
        try:
            path = certs.verify_chain(cert_chain[0], cert_chain[1:], trust.cas, now)
            key = certs.public_key_of(path[0])
            # RFC 7296 §3.5 / RFC 4945 §3.1: the ID must be in the certificate.
            in_certificate = peer.matches_certificate(path[0])
        except CertificateError as exc:
            raise AuthenticationFailed(exc.reason, exc.detail) from exc
        if not in_certificate:
            raise AuthenticationFailed("id-not-in-certificate", str(peer))
        return [key]
    if trust.public_keys:
        return list(trust.public_keys)
    raise AuthenticationFailed("no-certificate", "the peer sent no certificate")


def _verify_signature_auth(key: PublicKey, method: int, data: bytes, octets: bytes) -> bool:
    if method == AuthMethod.RSA_SIG:
        return verify(key, _RSA_SHA1, data, octets)
    if method in _ECDSA_METHODS:
        curve_cls, hash_id = _ECDSA_METHODS[method]
        # RFC 4754 §3: the method fixes the curve as well as the hash.
        if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, curve_cls):
            return False
        der = _ecdsa_der(data, key.curve)
        return der is not None and verify(key, SignatureScheme("ecdsa", hash_id), der, octets)
    if method == AuthMethod.DIGITAL_SIGNATURE:
        try:
            scheme, signature = decode_signature_auth(data)
        except ParseError as exc:
            raise AuthenticationFailed("bad-auth-data", str(exc)) from exc
        if scheme.hash_id == HashAlgorithmId.SHA1 or scheme.mgf_hash_id == HashAlgorithmId.SHA1:
            raise AuthenticationFailed("weak-hash", "RFC 8247 §3.2 forbids SHA-1 here")
        return verify(key, scheme, signature, octets)
    raise AuthenticationFailed("unsupported-method", f"AUTH method {method}")


# -- CERT and CERTREQ payloads --------------------------------------------------------


def cert_payloads(chain: Iterable[x509.Certificate]) -> list[CertPayload]:
    """One "X.509 Certificate - Signature" CERT payload per certificate (§3.6)."""
    return [
        CertPayload(CertEncoding.X509_SIGNATURE, c.public_bytes(serialization.Encoding.DER))
        for c in chain
    ]


def peer_certificates(payloads: Iterable[CertPayload]) -> list[x509.Certificate]:
    """The X.509 certificates a peer sent, in order (end entity first, §3.6).

    Other encodings (hash-and-URL, raw keys...) are skipped: we cannot use them. A
    certificate that does not decode fails authentication.
    """
    out: list[x509.Certificate] = []
    for payload in payloads:
        if payload.encoding != CertEncoding.X509_SIGNATURE:
            continue
        try:
            out.append(certs.parse_certificate(payload.data))
        except ParseError as exc:
            raise AuthenticationFailed("bad-certificate", str(exc)) from exc
    return out


def certreq_payload(trust: TrustStore) -> CertReqPayload | None:
    """The CERTREQ naming our CAs (``send_certreq``), or None with no CA configured."""
    if not len(trust):
        return None
    return CertReqPayload(CertEncoding.X509_SIGNATURE, b"".join(trust.authority_hashes()))


def requested_authorities(payloads: Iterable[CertReqPayload]) -> list[bytes]:
    """The CA key hashes a peer's CERTREQ payloads list (X.509 ones only, §3.7)."""
    out: list[bytes] = []
    for payload in payloads:
        if payload.encoding == CertEncoding.X509_SIGNATURE:
            out.extend(certs.split_key_hashes(payload.data))
    return out

"""Cross-check of the RFC 7427 Appendix A / RFC 8420 encodings in tests/vectors/ike_rfc7427.py
against an independent encoder: the signatureAlgorithm that `cryptography` (OpenSSL) writes
into a certificate it signs with the same algorithm."""

from __future__ import annotations

import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.x509.oid import NameOID

from vectors.ike_rfc7427 import ALGORITHM_IDENTIFIERS


def _tlv(der: bytes, off: int) -> tuple[int, int]:
    """(start of the value, end of the element) of the DER element at ``off``."""
    length = der[off + 1]
    start = off + 2
    if length & 0x80:
        n = length & 0x7F
        length = int.from_bytes(der[start : start + n], "big")
        start += n
    return start, start + length


def signature_algorithm(cert: x509.Certificate) -> bytes:
    """Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signature }."""
    from cryptography.hazmat.primitives.serialization import Encoding

    der = cert.public_bytes(Encoding.DER)
    body, _ = _tlv(der, 0)
    _, tbs_end = _tlv(der, body)
    _, alg_end = _tlv(der, tbs_end)
    return der[tbs_end:alg_end]


def self_signed(
    key: object, algorithm: hashes.HashAlgorithm | None, **kw: object
) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "rfc7427")])
    now = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())  # type: ignore[attr-defined]
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
    )
    return builder.sign(key, algorithm, **kw)  # type: ignore[arg-type]


def vector(name: str) -> bytes:
    (entry,) = [v for v in ALGORITHM_IDENTIFIERS if v["name"] == name]
    return bytes.fromhex(str(entry["hex"]).replace(" ", ""))


RSA = rsa.generate_private_key(65537, 2048)
EC = ec.generate_private_key(ec.SECP256R1())

CASES = [
    ("sha256WithRSAEncryption", RSA, hashes.SHA256(), {}),
    ("sha384WithRSAEncryption", RSA, hashes.SHA384(), {}),
    ("sha512WithRSAEncryption", RSA, hashes.SHA512(), {}),
    ("ecdsa-with-sha256", EC, hashes.SHA256(), {}),
    ("ecdsa-with-sha384", EC, hashes.SHA384(), {}),
    ("ecdsa-with-sha512", EC, hashes.SHA512(), {}),
    (
        "RSASSA-PSS with SHA-256",
        RSA,
        hashes.SHA256(),
        {"rsa_padding": padding.PSS(padding.MGF1(hashes.SHA256()), 32)},
    ),
    ("id-Ed25519", ed25519.Ed25519PrivateKey.generate(), None, {}),
    ("id-Ed448", ed448.Ed448PrivateKey.generate(), None, {}),
]


@pytest.mark.parametrize(("name", "key", "algorithm", "kw"), CASES, ids=[c[0] for c in CASES])
def test_vector_matches_what_openssl_encodes(
    name: str, key: object, algorithm: hashes.HashAlgorithm | None, kw: dict[str, object]
) -> None:
    assert signature_algorithm(self_signed(key, algorithm, **kw)) == vector(name)

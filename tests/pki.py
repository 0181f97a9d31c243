"""Test PKI: generates CA, intermediate and end-entity certificates with `cryptography`.

Shared by the certificate and IKE authentication tests. Keys are generated per test
session (RSA is slow), certificates per test.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from functools import cache

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.x509.oid import NameOID

from pyipsec.crypto.certs import PrivateKey

NOW = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


@cache
def key(kind: str) -> PrivateKey:
    """One key per kind for the session: rsa2048, rsa3072, p256, p384, p521, ed25519, ed448.

    Kinds with a suffix (``p256-b``) give a second, different key of the same type.
    """
    base = kind.split("-")[0]
    if base.startswith("rsa"):
        return rsa.generate_private_key(65537, int(base[3:]))
    curves: dict[str, ec.EllipticCurve] = {
        "p256": ec.SECP256R1(),
        "p384": ec.SECP384R1(),
        "p521": ec.SECP521R1(),
    }
    if base in curves:
        return ec.generate_private_key(curves[base])
    if base == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    if base == "ed448":
        return ed448.Ed448PrivateKey.generate()
    raise ValueError(kind)


def name(*parts: tuple[x509.ObjectIdentifier, str]) -> x509.Name:
    return x509.Name([x509.NameAttribute(oid, value) for oid, value in parts])


def cn(common_name: str, org: str = "example") -> x509.Name:
    return name((NameOID.COUNTRY_NAME, "CH"), (NameOID.ORGANIZATION_NAME, org),
                (NameOID.COMMON_NAME, common_name))  # fmt: skip


def _hash_for(signer: PrivateKey) -> hashes.HashAlgorithm | None:
    if isinstance(signer, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey):
        return None
    return hashes.SHA256()


def make_cert(
    subject: x509.Name,
    subject_key: PrivateKey,
    issuer: x509.Certificate | None = None,
    issuer_key: PrivateKey | None = None,
    *,
    ca: bool | None = False,
    path_length: int | None = None,
    not_before: datetime = NOW - 30 * DAY,
    not_after: datetime = NOW + 365 * DAY,
    san: Sequence[x509.GeneralName] = (),
    key_usage: str | None = None,
) -> x509.Certificate:
    """A certificate for ``subject_key``; self-signed when ``issuer`` is None.

    ``ca=None`` leaves out basicConstraints; ``key_usage`` is "sign", "ca", "encipher"
    or None (no extension).
    """
    signer = issuer_key if issuer_key is not None else subject_key
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.subject if issuer is not None else subject)
        .public_key(subject_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(subject_key.public_key()), critical=False
        )
    )
    if ca is not None:
        builder = builder.add_extension(
            x509.BasicConstraints(ca=ca, path_length=path_length if ca else None), critical=True
        )
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(san)), critical=False)
    if key_usage is not None:
        flags = dict.fromkeys(
            (
                "digital_signature",
                "content_commitment",
                "key_encipherment",
                "data_encipherment",
                "key_agreement",
                "key_cert_sign",
                "crl_sign",
                "encipher_only",
                "decipher_only",
            ),
            False,
        )
        if key_usage == "sign":
            flags["digital_signature"] = True
        elif key_usage == "ca":
            flags["key_cert_sign"] = flags["crl_sign"] = True
        elif key_usage == "encipher":
            flags["key_encipherment"] = True
        builder = builder.add_extension(x509.KeyUsage(**flags), critical=True)
    return builder.sign(signer, _hash_for(signer))


def dns(value: str) -> x509.DNSName:
    return x509.DNSName(value)


def ip(value: str) -> x509.IPAddress:
    return x509.IPAddress(ipaddress.ip_address(value))


def email(value: str) -> x509.RFC822Name:
    return x509.RFC822Name(value)


class Pki:
    """Root CA -> intermediate CA -> end entities, all with one key kind for the CAs."""

    def __init__(self, ca_kind: str = "p256", org: str = "example") -> None:
        self.root_key = key(f"{ca_kind}-root-{org}")
        self.root = make_cert(cn("Root CA", org), self.root_key, ca=True, key_usage="ca")
        self.inter_key = key(f"{ca_kind}-inter-{org}")
        self.inter = make_cert(
            cn("Intermediate CA", org),
            self.inter_key,
            self.root,
            self.root_key,
            ca=True,
            path_length=0,
            key_usage="ca",
        )

    def end_entity(
        self, subject: x509.Name, ee_key: PrivateKey, *, direct: bool = False, **kw: object
    ) -> x509.Certificate:
        issuer, issuer_key = (self.root, self.root_key) if direct else (self.inter, self.inter_key)
        return make_cert(subject, ee_key, issuer, issuer_key, **kw)  # type: ignore[arg-type]

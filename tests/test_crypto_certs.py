"""pyipsec.crypto.certs: loading, path validation, identities in certificates, CERTREQ."""

from __future__ import annotations

import hashlib
import ipaddress

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from pki import DAY, NOW, Pki, cn, dns, email, ip, key, make_cert, name
from pyipsec.crypto import certs
from pyipsec.crypto.certs import CertificateError, TrustStore
from pyipsec.errors import ConfigError, ParseError

KINDS = ("rsa2048", "rsa3072", "p256", "p384", "p521", "ed25519")


@pytest.fixture(scope="module")
def pki() -> Pki:
    return Pki("p256")


def _ee(pki: Pki, kind: str = "p256", **kw: object) -> x509.Certificate:
    kw.setdefault("san", [dns("vpn.example.org")])
    return pki.end_entity(cn("vpn.example.org"), key(kind), **kw)


# -- path validation ---------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_good_chain_every_key_type(kind: str) -> None:
    # CA keys of each type sign an end entity of the same type.
    p = Pki(kind, org=f"org-{kind}")
    ee = p.end_entity(cn("gw"), key(kind), san=[dns("gw.example.org")])
    path = certs.verify_chain(ee, [p.inter], TrustStore([p.root]), NOW)
    assert path == [ee, p.inter, p.root]


def test_chain_through_unordered_extra_intermediates(pki: Pki) -> None:
    other = Pki("p384", org="other")
    ee = _ee(pki)
    path = certs.verify_chain(ee, [other.inter, other.root, pki.inter], TrustStore([pki.root]), NOW)
    assert path == [ee, pki.inter, pki.root]


def test_end_entity_issued_by_root(pki: Pki) -> None:
    ee = _ee(pki, direct=True)
    assert certs.verify_chain(ee, [], TrustStore([pki.root]), NOW) == [ee, pki.root]


def test_intermediate_as_trust_anchor(pki: Pki) -> None:
    ee = _ee(pki)
    assert certs.verify_chain(ee, [], TrustStore([pki.inter]), NOW) == [ee, pki.inter]


def test_pinned_end_entity(pki: Pki) -> None:
    ee = _ee(pki)
    assert certs.verify_chain(ee, [], TrustStore([ee]), NOW) == [ee]


@pytest.mark.parametrize(
    ("kw", "reason"),
    [
        ({"not_after": NOW - DAY}, "expired"),
        ({"not_before": NOW + DAY}, "not-yet-valid"),
        ({"key_usage": "encipher"}, "key-usage"),
    ],
)
def test_end_entity_checks(pki: Pki, kw: dict[str, object], reason: str) -> None:
    ee = _ee(pki, **kw)
    with pytest.raises(CertificateError) as info:
        certs.verify_chain(ee, [pki.inter], TrustStore([pki.root]), NOW)
    assert info.value.reason == reason


def test_key_usage_digital_signature_accepted(pki: Pki) -> None:
    ee = _ee(pki, key_usage="sign")
    assert certs.verify_chain(ee, [pki.inter], TrustStore([pki.root]), NOW)[0] == ee


def test_validity_boundaries_are_inclusive(pki: Pki) -> None:
    ee = _ee(pki, not_before=NOW - DAY, not_after=NOW + DAY)
    trust = TrustStore([pki.root])
    certs.verify_chain(ee, [pki.inter], trust, NOW - DAY)
    certs.verify_chain(ee, [pki.inter], trust, NOW + DAY)
    with pytest.raises(CertificateError, match="expired"):
        certs.verify_chain(ee, [pki.inter], trust, NOW + DAY + DAY / 86400)


def test_naive_now_is_utc(pki: Pki) -> None:
    ee = _ee(pki, not_after=NOW)
    certs.verify_chain(ee, [pki.inter], TrustStore([pki.root]), NOW.replace(tzinfo=None))


def test_wrong_ca(pki: Pki) -> None:
    other = Pki("p256", org="other")
    with pytest.raises(CertificateError) as info:
        certs.verify_chain(_ee(pki), [pki.inter], TrustStore([other.root]), NOW)
    assert info.value.reason == "untrusted"


def test_same_name_different_key_ca() -> None:
    # A CA with the right name but another key: the signature check decides.
    real = Pki("p256", org="clone")
    fake_root = make_cert(cn("Root CA", "clone"), key("p256-fake"), ca=True)
    ee = real.end_entity(cn("gw"), key("p256"))
    with pytest.raises(CertificateError) as info:
        certs.verify_chain(ee, [real.inter], TrustStore([fake_root]), NOW)
    assert info.value.reason == "bad-signature"


def test_missing_intermediate(pki: Pki) -> None:
    with pytest.raises(CertificateError) as info:
        certs.verify_chain(_ee(pki), [], TrustStore([pki.root]), NOW)
    assert info.value.reason == "untrusted"


@pytest.mark.parametrize(("ca", "reason"), [(False, "not-a-ca"), (None, "not-a-ca")])
def test_intermediate_without_ca_flag(pki: Pki, ca: bool | None, reason: str) -> None:
    inter_key = key("p256-notca")
    inter = make_cert(cn("Not a CA"), inter_key, pki.root, pki.root_key, ca=ca)
    ee = make_cert(cn("gw"), key("p256"), inter, inter_key)
    with pytest.raises(CertificateError) as info:
        certs.verify_chain(ee, [inter], TrustStore([pki.root]), NOW)
    assert info.value.reason == reason


def test_intermediate_key_usage_without_cert_sign(pki: Pki) -> None:
    inter_key = key("p256-kusign")
    inter = make_cert(cn("Sign only"), inter_key, pki.root, pki.root_key, ca=True, key_usage="sign")
    ee = make_cert(cn("gw"), key("p256"), inter, inter_key)
    with pytest.raises(CertificateError, match="key-usage"):
        certs.verify_chain(ee, [inter], TrustStore([pki.root]), NOW)


def test_path_length_constraint(pki: Pki) -> None:
    # pki.inter has pathLenConstraint 0: it may not issue another CA.
    sub_key = key("p256-sub")
    sub = make_cert(cn("Sub CA"), sub_key, pki.inter, pki.inter_key, ca=True)
    ee = make_cert(cn("gw"), key("p256"), sub, sub_key)
    with pytest.raises(CertificateError) as info:
        certs.verify_chain(ee, [sub, pki.inter], TrustStore([pki.root]), NOW)
    assert info.value.reason == "path-length"


def test_expired_intermediate_and_root(pki: Pki) -> None:
    inter_key = key("p256-old")
    old = make_cert(cn("Old CA"), inter_key, pki.root, pki.root_key, ca=True, not_after=NOW - DAY)
    ee = make_cert(cn("gw"), key("p256"), old, inter_key)
    with pytest.raises(CertificateError, match="expired"):
        certs.verify_chain(ee, [old], TrustStore([pki.root]), NOW)
    old_root = make_cert(cn("Old root"), key("p384-oldroot"), ca=True, not_after=NOW - DAY)
    ee2 = make_cert(cn("gw"), key("p256"), old_root, key("p384-oldroot"))
    with pytest.raises(CertificateError, match="expired"):
        certs.verify_chain(ee2, [], TrustStore([old_root]), NOW)


def test_tampered_end_entity_signature(pki: Pki) -> None:
    der = bytearray(_ee(pki).public_bytes(serialization.Encoding.DER))
    der[-5] ^= 0x01  # inside the signature value
    with pytest.raises(CertificateError, match="bad-signature"):
        certs.verify_chain(certs.parse_certificate(bytes(der)), [pki.inter],
                           TrustStore([pki.root]), NOW)  # fmt: skip


def test_issuer_loop_terminates() -> None:
    # Two CAs that certify each other, neither trusted: the search must end.
    ka, kb = key("p256-loopa"), key("p256-loopb")
    a0 = make_cert(cn("A"), ka, ca=True)
    b = make_cert(cn("B"), kb, a0, ka, ca=True)
    a = make_cert(cn("A"), ka, b, kb, ca=True)
    ee = make_cert(cn("gw"), key("p256"), a, ka)
    with pytest.raises(CertificateError, match="untrusted"):
        certs.verify_chain(ee, [a, b], TrustStore([make_cert(cn("Z"), key("p384"), ca=True)]), NOW)


# -- identities ----------------------------------------------------------------------


def test_san_matching() -> None:
    p = Pki("p256", org="san")
    ee = p.end_entity(
        cn("moon"),
        key("p256"),
        san=[
            dns("Moon.Example.org"),
            ip("192.0.2.1"),
            ip("2001:db8::1"),
            email("Carol@Example.org"),
        ],
    )
    assert certs.has_dns_name(ee, "moon.example.org.")
    assert not certs.has_dns_name(ee, "sun.example.org")
    assert certs.has_ip_address(ee, ipaddress.ip_address("192.0.2.1"))
    assert certs.has_ip_address(ee, ipaddress.ip_address("2001:db8::1"))
    assert not certs.has_ip_address(ee, ipaddress.ip_address("192.0.2.2"))
    assert certs.has_email(ee, "Carol@example.ORG")
    assert not certs.has_email(ee, "carol@example.org")  # local part is case-sensitive
    assert not certs.has_email(ee, "moon.example.org")


def test_no_san_matches_nothing_but_dn(pki: Pki) -> None:
    ee = pki.end_entity(cn("vpn.example.org"), key("p256"))
    assert not certs.has_dns_name(ee, "vpn.example.org")  # CN is no DNS identity
    assert not certs.has_ip_address(ee, ipaddress.ip_address("192.0.2.1"))
    assert certs.has_directory_name(ee, cn("vpn.example.org"))
    assert not certs.has_directory_name(ee, cn("vpn.example.org", org="other"))


def test_dn_in_san_directory_name(pki: Pki) -> None:
    alt = name((NameOID.COMMON_NAME, "alias"))
    ee = pki.end_entity(cn("gw"), key("p256"), san=[x509.DirectoryName(alt)])
    assert certs.has_directory_name(ee, alt)


def test_key_id(pki: Pki) -> None:
    ee = pki.end_entity(cn("gw"), key("p256"))
    ski = ee.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    assert certs.has_key_id(ee, ski)
    assert not certs.has_key_id(ee, bytes(len(ski)))


# -- DER names -----------------------------------------------------------------------


def test_parse_name_round_trip() -> None:
    original = name(
        (NameOID.COUNTRY_NAME, "CH"),
        (NameOID.ORGANIZATION_NAME, "Ex, ample"),
        (NameOID.COMMON_NAME, "vpn ünï"),
        (NameOID.EMAIL_ADDRESS, "a@example.org"),
    )
    parsed = certs.parse_name(original.public_bytes())
    assert parsed == original
    assert parsed.public_bytes() == original.public_bytes()


@pytest.mark.parametrize(
    "hexdata",
    [
        "",
        "30",
        "3003310130",  # SET overruns
        "3000ff",  # trailing bytes
        "3100",  # not a SEQUENCE
        "30023100",  # empty SET
        "3009310730050603550403",  # attribute without value
        "300c310a3008060355040304010a",  # OCTET STRING value
        "3084000000003100",  # non-minimal length
        "300b3109300706035504030c",  # truncated value
        "300d310b300906035504031f0100",  # multi-octet tag
    ],
)
def test_parse_name_rejects(hexdata: str) -> None:
    with pytest.raises(ParseError):
        certs.parse_name(bytes.fromhex(hexdata))


def test_decode_oid() -> None:
    assert certs.decode_oid(bytes.fromhex("2a864886f70d01010b")) == "1.2.840.113549.1.1.11"
    assert certs.decode_oid(bytes.fromhex("2b6570")) == "1.3.101.112"
    assert certs.decode_oid(bytes.fromhex("8837")) == "2.999"
    for bad in ("", "2a86", "2a8001"):
        with pytest.raises(ParseError):
            certs.decode_oid(bytes.fromhex(bad))


# -- loading -------------------------------------------------------------------------


def test_load_pem_bundle_and_der(pki: Pki) -> None:
    pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (pki.inter, pki.root))
    assert certs.load_certificates(pem) == [pki.inter, pki.root]
    der = pki.root.public_bytes(serialization.Encoding.DER)
    assert certs.load_certificates(der) == [pki.root]
    with pytest.raises(ConfigError):
        certs.load_certificates(b"garbage")
    with pytest.raises(ParseError):
        certs.parse_certificate(der[:-1])


@pytest.mark.parametrize("kind", [*KINDS, "ed448"])
def test_load_private_key(kind: str) -> None:
    k = key(kind)
    pem = k.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"),
    )
    loaded = certs.load_private_key(pem, b"secret")
    assert loaded.public_key() == k.public_key()
    der = k.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    assert certs.load_private_key(der).public_key() == k.public_key()
    with pytest.raises(ConfigError) as info:
        certs.load_private_key(pem, b"wrong")
    assert "secret" not in str(info.value)


def test_load_private_key_rejects_garbage() -> None:
    with pytest.raises(ConfigError):
        certs.load_private_key(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")


# -- CERTREQ -------------------------------------------------------------------------


def test_key_hash_is_sha1_of_spki(pki: Pki) -> None:
    spki = pki.root.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert certs.key_hash(pki.root) == hashlib.sha1(spki).digest()
    trust = TrustStore([pki.root, pki.inter])
    assert trust.authority_hashes() == [certs.key_hash(pki.root), certs.key_hash(pki.inter)]
    assert trust.by_key_hash(certs.key_hash(pki.inter)) == pki.inter
    assert trust.by_key_hash(bytes(20)) is None


def test_select_chain(pki: Pki) -> None:
    other = Pki("p384", org="other")
    mine = [_ee(pki), pki.inter]
    theirs = [other.end_entity(cn("gw"), key("p384")), other.inter]
    trust = TrustStore([pki.root, other.root])
    chains = [mine, theirs]
    assert certs.select_chain(chains, [certs.key_hash(other.root)], trust) == theirs
    assert certs.select_chain(chains, [certs.key_hash(pki.inter)], trust) == mine
    assert certs.select_chain(chains, [certs.key_hash(pki.root)], trust) == mine
    assert certs.select_chain(chains, [], trust) == mine
    assert certs.select_chain(chains, [bytes(20)], trust) is None
    assert certs.select_chain([], [], trust) is None
    # Without our root configured, a hash of the root only matches through the chain.
    assert certs.select_chain([mine], [certs.key_hash(pki.root)], TrustStore()) is None


def test_split_key_hashes() -> None:
    data = bytes(range(40))
    assert certs.split_key_hashes(data) == [data[:20], data[20:]]
    assert certs.split_key_hashes(b"") == []
    with pytest.raises(ParseError):
        certs.split_key_hashes(bytes(21))

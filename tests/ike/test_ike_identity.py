"""pyipsec.ike.v2.identity: swanctl id strings, ID payload checks, matching."""

from __future__ import annotations

import ipaddress

import pytest
from cryptography.x509.oid import NameOID

from pki import Pki, cn, dns, email, ip, key, name
from pyipsec.errors import ConfigError, ParseError
from pyipsec.ike.v2.constants import IdType
from pyipsec.ike.v2.identity import ANY_ID, Identity, format_dn, parse_dn, parse_identity
from pyipsec.ike.v2.payloads import IdPayload


@pytest.mark.parametrize(
    ("text", "id_type", "data"),
    [
        ("192.0.2.1", IdType.IPV4_ADDR, bytes([192, 0, 2, 1])),
        ("2001:db8::1", IdType.IPV6_ADDR, ipaddress.IPv6Address("2001:db8::1").packed),
        ("vpn.example.org", IdType.FQDN, b"vpn.example.org"),
        ("@vpn.example.org", IdType.FQDN, b"vpn.example.org"),
        ("@192.0.2.1", IdType.FQDN, b"192.0.2.1"),
        ("user@example.org", IdType.RFC822_ADDR, b"user@example.org"),
        ("@#0a1B2c", IdType.KEY_ID, bytes.fromhex("0a1b2c")),
        ("keyid:opaque", IdType.KEY_ID, b"opaque"),
        ("fqdn:user@example.org", IdType.FQDN, b"user@example.org"),
        ("email:carol@example.org", IdType.RFC822_ADDR, b"carol@example.org"),
        ("ipv4:198.51.100.7", IdType.IPV4_ADDR, bytes([198, 51, 100, 7])),
        ("asn1gn:#3000", IdType.DER_ASN1_GN, bytes.fromhex("3000")),
    ],
)
def test_parse_strings(text: str, id_type: int, data: bytes) -> None:
    identity = parse_identity(text)
    assert (identity.id_type, identity.data) == (id_type, data)
    assert parse_identity(str(identity)) == identity


def test_parse_dn_string() -> None:
    identity = parse_identity("C=CH, O=example, CN=vpn")
    assert identity.id_type == IdType.DER_ASN1_DN
    expected = name(
        (NameOID.COUNTRY_NAME, "CH"), (NameOID.ORGANIZATION_NAME, "example"),
        (NameOID.COMMON_NAME, "vpn"),
    )  # fmt: skip
    assert identity.data == expected.public_bytes()
    assert str(identity) == "C=CH, O=example, CN=vpn"
    assert Identity.from_name(expected) == identity


def test_dn_quoting_escapes_and_oids() -> None:
    n = parse_dn('O="a, b", OU=x\\,y;  CN = spaced , 2.5.4.5=1234, E=a@example.org')
    values = [a.value for rdn in n.rdns for a in rdn]
    assert values == ["a, b", "x,y", "spaced", "1234", "a@example.org"]
    assert parse_dn(format_dn(n)) == n
    assert format_dn(n) == "O=a\\, b, OU=x\\,y, CN=spaced, SERIALNUMBER=1234, E=a@example.org"


@pytest.mark.parametrize(
    "text",
    ["", "   ", "ipv4:2001:db8::1", "ipv6:192.0.2.1", "ipv4:nope", "@#zz", "C=CH, ", "X=1",
     'O="open', "O=a\\", "C=CHE", "asn1gn:raw", "email:nobody", "fqdn:a\x01b"],
)  # fmt: skip
def test_parse_rejects(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_identity(text)


def test_any() -> None:
    assert parse_identity("%any") is ANY_ID
    assert str(ANY_ID) == "%any"
    assert parse_identity("vpn.example.org").matches(ANY_ID)
    with pytest.raises(ConfigError):
        ANY_ID.to_payload()


def test_payload_round_trip() -> None:
    identity = parse_identity("user@example.org")
    payload = identity.to_payload(responder=True)
    assert payload.responder
    assert payload.body == bytes([IdType.RFC822_ADDR, 0, 0, 0]) + b"user@example.org"
    assert Identity.from_payload(payload) == identity


@pytest.mark.parametrize(
    ("id_type", "data"),
    [
        (IdType.IPV4_ADDR, b"\x01\x02\x03"),
        (IdType.IPV6_ADDR, bytes(4)),
        (IdType.FQDN, b""),
        (IdType.FQDN, b"caf\xc3\xa9.example"),  # FQDN is ASCII
        (IdType.FQDN, b"a\x00b"),
        (IdType.RFC822_ADDR, b"\xff@x"),
        (IdType.DER_ASN1_DN, b"\x30\x05"),
        (IdType.KEY_ID, b""),
        (4, b"x"),  # reserved ID type
        (200, b"x"),
    ],
)
def test_from_payload_rejects(id_type: int, data: bytes) -> None:
    with pytest.raises(ParseError):
        Identity.from_payload(IdPayload(id_type, data))


def test_str_uses_prefix_when_ambiguous() -> None:
    odd = Identity(IdType.FQDN, b"C=CH")
    assert str(odd) == "fqdn:C=CH"
    assert parse_identity(str(odd)) == odd
    key_id = Identity(IdType.KEY_ID, b"\x01\x02")
    assert str(key_id) == "@#0102"


@pytest.mark.parametrize(
    ("peer", "pattern", "expected"),
    [
        ("vpn.example.org", "VPN.example.org", True),
        ("vpn.example.org", "*.example.org", True),
        ("vpn.example.net", "*.example.org", False),
        ("carol@Example.org", "*@example.org", True),
        ("carol@example.org", "Carol@example.org", False),
        ("C=CH, O=example, CN=vpn", "C=CH, O=example, CN=*", True),
        ("C=CH, O=example, CN=vpn", "C=CH, O=other, CN=*", False),
        ("C=CH, O=example, CN=vpn", "C=CH, O=example", False),
        ("192.0.2.1", "192.0.2.1", True),
        ("192.0.2.1", "@192.0.2.1", False),
        ("@#01", "@#01", True),
    ],
)
def test_matches(peer: str, pattern: str, expected: bool) -> None:
    assert parse_identity(peer).matches(parse_identity(pattern)) is expected


def test_matches_certificate() -> None:
    p = Pki("p256", org="idtest")
    subject = cn("gw")
    cert = p.end_entity(
        subject,
        key("p256"),
        san=[dns("gw.example.org"), ip("192.0.2.10"), ip("2001:db8::10"), email("gw@example.org")],
    )
    for good in ("gw.example.org", "192.0.2.10", "2001:db8::10", "gw@example.org"):
        assert parse_identity(good).matches_certificate(cert), good
    assert Identity.from_name(subject).matches_certificate(cert)
    for bad in ("other.example.org", "192.0.2.11", "gw2@example.org", "C=CH, O=idtest, CN=x",
                "@#00", "@gw"):  # fmt: skip
        assert not parse_identity(bad).matches_certificate(cert), bad
    # The CN of a SAN-less certificate is no FQDN identity.
    bare = p.end_entity(cn("gw.example.org"), key("p256"))
    assert not parse_identity("gw.example.org").matches_certificate(bare)

"""pyipsec.ike.v2.auth: every AUTH method built by one side and verified by the other.

The two "sides" are an Authenticator (the signer) and verify_auth with a PeerTrust
(the verifier), over the same <SignedOctets> (RFC 7296 §2.15).
"""

from __future__ import annotations

import os

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pki import NOW, Pki, cn, dns, email, ip, key
from pyipsec.crypto import certs
from pyipsec.crypto.certs import TrustStore
from pyipsec.crypto.prf import PRF_HMAC_SHA1, PRF_HMAC_SHA2_256
from pyipsec.errors import ConfigError, ParseError
from pyipsec.ike.v2 import auth, keymat
from pyipsec.ike.v2.auth import (
    SCHEMES,
    AuthenticationFailed,
    Authenticator,
    HashAlgorithmId,
    PeerTrust,
    SignatureScheme,
    verify_auth,
)
from pyipsec.ike.v2.constants import AuthMethod, CertEncoding, IdType, NotifyType
from pyipsec.ike.v2.identity import Identity, parse_identity
from pyipsec.ike.v2.payloads import AuthPayload, CertPayload, CertReqPayload, IdPayload
from vectors.ike_rfc7427 import ALGORITHM_IDENTIFIERS

GW_ID = "gw.example.org"
ALL_HASHES = tuple(auth.SUPPORTED_HASH_ALGORITHMS)


@pytest.fixture(scope="module")
def pki() -> Pki:
    return Pki("p384", org="auth")


def _octets() -> bytes:
    # Stands in for RealMessage | Nonce | prf(SK_p, ID'): the methods sign any octets.
    return os.urandom(200)


def _signer(pki: Pki, kind: str, identity: str = GW_ID, **kw: bool) -> Authenticator:
    ee = pki.end_entity(
        cn(identity), key(kind), san=[dns(GW_ID), ip("192.0.2.10"), email("gw@example.org")]
    )
    return Authenticator.with_key(parse_identity(identity), key(kind), [ee, pki.inter], **kw)


def _verify(
    signer: Authenticator,
    payload: AuthPayload,
    octets: bytes,
    trust: PeerTrust,
    chain: list[x509.Certificate] | None = None,
) -> None:
    sent = signer.cert_payloads()
    peer_chain = auth.peer_certificates(sent) if chain is None else chain
    verify_auth(payload, octets, signer.id_payload(False), peer_chain, trust,
                prf=PRF_HMAC_SHA2_256, now=NOW)  # fmt: skip


def _trust(pki: Pki, remote: str = "%any") -> PeerTrust:
    return PeerTrust(remote_id=parse_identity(remote), cas=TrustStore([pki.root]))


# -- PSK (method 2) --------------------------------------------------------------------


@pytest.mark.parametrize("prf", [PRF_HMAC_SHA1, PRF_HMAC_SHA2_256], ids=lambda p: p.name)
def test_psk_both_ways(prf: object) -> None:
    octets = _octets()
    me = Authenticator.with_psk(parse_identity("192.0.2.1"), b"correct horse")
    payload = me.build_auth(octets, ALL_HASHES, prf=prf)  # type: ignore[arg-type]
    assert payload.method == AuthMethod.SHARED_KEY_MIC
    assert payload.data == keymat.psk_auth(prf, b"correct horse", octets)  # type: ignore[arg-type]
    trust = PeerTrust(remote_id=parse_identity("192.0.2.1"), psk=b"correct horse")
    verify_auth(payload, octets, me.id_payload(False), [], trust, prf=prf)  # type: ignore[arg-type]


def test_wrong_psk_fails_without_leaking_it() -> None:
    octets = _octets()
    me = Authenticator.with_psk(parse_identity("192.0.2.1"), b"secret-one")
    payload = me.build_auth(octets, prf=PRF_HMAC_SHA2_256)
    trust = PeerTrust(psk=b"secret-two")
    with pytest.raises(AuthenticationFailed) as info:
        verify_auth(payload, octets, me.id_payload(False), [], trust, prf=PRF_HMAC_SHA2_256)
    assert info.value.reason == "bad-psk"
    assert info.value.notify_type == NotifyType.AUTHENTICATION_FAILED
    assert "secret" not in str(info.value) and "secret" not in repr(trust)
    # Right PSK, but over other octets (e.g. a different IKE_SA_INIT).
    with pytest.raises(AuthenticationFailed, match="bad-psk"):
        verify_auth(payload, _octets(), me.id_payload(False), [], PeerTrust(psk=b"secret-one"),
                    prf=PRF_HMAC_SHA2_256)  # fmt: skip


def test_psk_not_allowed_and_needs_prf() -> None:
    me = Authenticator.with_psk(parse_identity("192.0.2.1"), b"k")
    payload = me.build_auth(b"x", prf=PRF_HMAC_SHA2_256)
    with pytest.raises(AuthenticationFailed, match="method-not-allowed"):
        verify_auth(payload, b"x", me.id_payload(False), [], PeerTrust(), prf=PRF_HMAC_SHA2_256)
    with pytest.raises(ConfigError):
        me.build_auth(b"x")
    with pytest.raises(ConfigError):
        verify_auth(payload, b"x", me.id_payload(False), [], PeerTrust(psk=b"k"))


# -- legacy signature methods (1, 9, 10, 11) -----------------------------------------


@pytest.mark.parametrize(
    ("kind", "method", "length"),
    [
        ("rsa2048", AuthMethod.RSA_SIG, 256),
        ("rsa3072", AuthMethod.RSA_SIG, 384),
        ("p256", AuthMethod.ECDSA_SHA256_P256, 64),
        ("p384", AuthMethod.ECDSA_SHA384_P384, 96),
        ("p521", AuthMethod.ECDSA_SHA512_P521, 132),
    ],
)
def test_legacy_methods_both_ways(pki: Pki, kind: str, method: int, length: int) -> None:
    signer = _signer(pki, kind)
    octets = _octets()
    payload = signer.build_auth(octets, ())  # no SIGNATURE_HASH_ALGORITHMS from the peer
    assert payload.method == method
    assert len(payload.data) == length  # RSA: modulus size; ECDSA: r || s (RFC 4754 §7)
    _verify(signer, payload, octets, _trust(pki))
    if method == AuthMethod.RSA_SIG:
        # Method 1 is RSASSA-PKCS1-v1_5 with SHA-1, checked here by `cryptography` directly.
        key(kind).public_key().verify(payload.data, octets, padding.PKCS1v15(), hashes.SHA1())  # type: ignore[call-arg, union-attr]
    tampered = AuthPayload(method, payload.data[:-1] + bytes([payload.data[-1] ^ 1]))
    with pytest.raises(AuthenticationFailed, match="bad-signature"):
        _verify(signer, tampered, octets, _trust(pki))
    with pytest.raises(AuthenticationFailed, match="bad-signature"):
        _verify(signer, AuthPayload(method, payload.data[:-1]), octets, _trust(pki))


def test_ecdsa_method_must_match_curve(pki: Pki) -> None:
    signer = _signer(pki, "p256")
    octets = _octets()
    payload = signer.build_auth(octets, ())
    # The same r || s announced as P-384 (method 10) must not verify with a P-256 key.
    wrong = AuthPayload(AuthMethod.ECDSA_SHA384_P384, payload.data)
    with pytest.raises(AuthenticationFailed):
        _verify(signer, wrong, octets, _trust(pki))


def test_eddsa_needs_rfc7427(pki: Pki) -> None:
    signer = _signer(pki, "ed25519")
    with pytest.raises(ConfigError):
        signer.build_auth(b"x", ())
    with pytest.raises(ConfigError):
        signer.build_auth(b"x", (HashAlgorithmId.SHA2_256,))  # no Identity hash (RFC 8420)


# -- Digital Signature (method 14, RFC 7427) -----------------------------------------

METHOD14 = [
    ("rsa2048", False, (2,), "rsa-pkcs1-sha256"),
    ("rsa2048", False, (3,), "rsa-pkcs1-sha384"),
    ("rsa3072", False, (4,), "rsa-pkcs1-sha512"),
    ("rsa2048", True, (2, 3, 4), "rsa-pss-sha256"),
    ("rsa2048", True, (3,), "rsa-pss-sha384"),
    ("rsa3072", True, (4, 5), "rsa-pss-sha512"),
    ("p256", False, ALL_HASHES, "ecdsa-sha256"),
    ("p384", False, ALL_HASHES, "ecdsa-sha384"),
    ("p521", False, ALL_HASHES, "ecdsa-sha512"),
    ("p256", False, (4,), "ecdsa-sha512"),
    ("p521", False, (2,), "ecdsa-sha256"),
    ("ed25519", False, ALL_HASHES, "ed25519"),
    ("ed448", False, (5,), "ed448"),
]


@pytest.mark.parametrize(("kind", "pss", "peer_hashes", "scheme"), METHOD14)
def test_digital_signature_both_ways(
    pki: Pki, kind: str, pss: bool, peer_hashes: tuple[int, ...], scheme: str
) -> None:
    signer = _signer(pki, kind, rsa_pss=pss)
    octets = _octets()
    payload = signer.build_auth(octets, peer_hashes)
    assert payload.method == AuthMethod.DIGITAL_SIGNATURE
    algorithm_identifier = SCHEMES[scheme].algorithm_identifier()
    assert payload.data[0] == len(algorithm_identifier)
    assert payload.data[1 : 1 + len(algorithm_identifier)] == algorithm_identifier
    _verify(signer, payload, octets, _trust(pki))
    # A flipped bit in the signature, or other octets, must fail.
    tampered = AuthPayload(payload.method, payload.data[:-2] + bytes([payload.data[-2] ^ 4]) +
                           payload.data[-1:])  # fmt: skip
    with pytest.raises(AuthenticationFailed, match="bad-signature"):
        _verify(signer, tampered, octets, _trust(pki))
    with pytest.raises(AuthenticationFailed, match="bad-signature"):
        _verify(signer, payload, octets + b"\0", _trust(pki))


@pytest.mark.parametrize("kind", ["rsa2048", "p256", "ed25519"])
def test_wrong_key(pki: Pki, kind: str) -> None:
    # The peer signs with one key but presents a (valid) certificate for another.
    signer = _signer(pki, kind)
    octets = _octets()
    payload = signer.build_auth(octets, ALL_HASHES)
    other = pki.end_entity(cn(GW_ID), key(f"{kind}-other"), san=[dns(GW_ID)])
    with pytest.raises(AuthenticationFailed, match="bad-signature"):
        _verify(signer, payload, octets, _trust(pki), chain=[other, pki.inter])
    # Pinned raw keys: only the right one verifies.
    pinned = PeerTrust(public_keys=(key(f"{kind}-other").public_key(),))  # type: ignore[arg-type]
    with pytest.raises(AuthenticationFailed, match="bad-signature"):
        _verify(signer, payload, octets, pinned, chain=[])
    _verify(signer, payload, octets, PeerTrust(public_keys=(key(kind).public_key(),)), chain=[])  # type: ignore[arg-type]


def test_scheme_key_type_mismatch(pki: Pki) -> None:
    # An ECDSA AlgorithmIdentifier in front of an RSA signature.
    signer = _signer(pki, "rsa2048", rsa_pss=False)
    octets = _octets()
    payload = signer.build_auth(octets, (2,))
    sig = payload.data[1 + payload.data[0] :]
    forged = auth.encode_signature_auth(SCHEMES["ecdsa-sha256"], sig)
    with pytest.raises(AuthenticationFailed, match="bad-signature"):
        _verify(signer, AuthPayload(14, forged), octets, _trust(pki))


def test_pss_with_other_parameters_verifies(pki: Pki) -> None:
    # A peer may pick another salt length or MGF hash; the AlgorithmIdentifier says which.
    k = key("rsa2048")
    signer = _signer(pki, "rsa2048")
    octets = _octets()
    for scheme in (SignatureScheme("rsa", 2, 20, 2), SignatureScheme("rsa", 4, 0, 3)):
        data = auth.encode_signature_auth(scheme, auth.sign(k, scheme, octets))  # type: ignore[arg-type]
        assert auth.decode_signature_auth(data)[0] == scheme
        _verify(signer, AuthPayload(14, data), octets, _trust(pki))


@pytest.mark.parametrize("scheme", [SignatureScheme("rsa", 1), SignatureScheme("rsa", 2, 32, 1)])
def test_sha1_refused_in_method14(pki: Pki, scheme: SignatureScheme) -> None:
    k = key("rsa2048")
    signer = _signer(pki, "rsa2048")
    octets = _octets()
    data = auth.encode_signature_auth(scheme, auth.sign(k, scheme, octets))  # type: ignore[arg-type]
    with pytest.raises(AuthenticationFailed, match="weak-hash"):
        _verify(signer, AuthPayload(14, data), octets, _trust(pki))


@pytest.mark.parametrize(
    "data",
    [b"", b"\x00sig", b"\x40" + bytes(10), b"\x0b" + bytes.fromhex("3009 0607 2a86 48ce 3804 03")],
)
def test_malformed_method14_data(pki: Pki, data: bytes) -> None:
    signer = _signer(pki, "p256")
    with pytest.raises(AuthenticationFailed, match="bad-auth-data"):
        _verify(signer, AuthPayload(14, data), b"x", _trust(pki))


def test_unsupported_method(pki: Pki) -> None:
    signer = _signer(pki, "p256")
    with pytest.raises(AuthenticationFailed, match="unsupported-method"):
        _verify(signer, AuthPayload(AuthMethod.DSS_SIG, b"x"), b"x", _trust(pki))


# -- RFC 7427 Appendix A / RFC 8420 encodings ------------------------------------------


@pytest.mark.parametrize("vec", ALGORITHM_IDENTIFIERS, ids=lambda v: f"{v['section']} {v['name']}")
def test_rfc7427_algorithm_identifiers(vec: dict[str, object]) -> None:
    der = bytes.fromhex(str(vec["hex"]))
    if vec["scheme"] is None:
        with pytest.raises(ParseError):
            auth.parse_algorithm_identifier(der)
        return
    scheme = auth.parse_algorithm_identifier(der)
    assert scheme.name == vec["scheme"]
    assert scheme.algorithm_identifier() == der  # our encoder gives the RFC's bytes
    if vec["sent"]:
        assert SCHEMES[str(vec["scheme"])].algorithm_identifier() == der


def test_pss_identifier_matches_cryptography_certificates(pki: Pki) -> None:
    # Independent check: the AlgorithmIdentifier `cryptography` writes into a
    # certificate signed with RSASSA-PSS (salt = hash length) is the one we send.
    for hash_cls, name in ((hashes.SHA256, "sha256"), (hashes.SHA384, "sha384"),
                           (hashes.SHA512, "sha512")):  # fmt: skip
        cert = (
            x509.CertificateBuilder()
            .subject_name(cn("pss"))
            .issuer_name(cn("pss"))
            .public_key(key("rsa2048").public_key())
            .serial_number(1)
            .not_valid_before(NOW)
            .not_valid_after(NOW)
            .sign(key("rsa2048"), hash_cls(),  # type: ignore[arg-type]
                  rsa_padding=padding.PSS(padding.MGF1(hash_cls()), padding.PSS.DIGEST_LENGTH))
        )  # fmt: skip
        der = cert.public_bytes(serialization.Encoding.DER)
        assert SCHEMES[f"rsa-pss-{name}"].algorithm_identifier() in der


# -- SIGNATURE_HASH_ALGORITHMS ---------------------------------------------------------


def test_signature_hash_algorithms_notify() -> None:
    notify = auth.signature_hash_algorithms_notify()
    assert notify.notify_type == NotifyType.SIGNATURE_HASH_ALGORITHMS
    assert notify.data == bytes.fromhex("0002 0003 0004 0005")
    assert auth.parse_signature_hash_algorithms(notify.data) == (2, 3, 4, 5)
    assert auth.parse_signature_hash_algorithms(bytes.fromhex("0001 00ff")) == (1, 255)
    with pytest.raises(ParseError):
        auth.parse_signature_hash_algorithms(b"\x00")
    with pytest.raises(ConfigError):
        auth.signature_hash_algorithms_notify(())


def test_choose_scheme(pki: Pki) -> None:
    assert _signer(pki, "rsa2048").choose_scheme((4, 3)).name == "rsa-pss-sha384"
    assert _signer(pki, "rsa2048", rsa_pss=False).choose_scheme((2,)).name == "rsa-pkcs1-sha256"
    assert _signer(pki, "p384").choose_scheme((2, 3, 4)).name == "ecdsa-sha384"
    with pytest.raises(ConfigError):
        _signer(pki, "p256").choose_scheme((1, 5))  # SHA-1 is never chosen
    with pytest.raises(ConfigError):
        Authenticator.with_psk(parse_identity("a.example"), b"k").choose_scheme(ALL_HASHES)


# -- identities and certificates in verification ---------------------------------------


def test_remote_id_mismatch(pki: Pki) -> None:
    signer = _signer(pki, "p256")
    octets = _octets()
    payload = signer.build_auth(octets, ALL_HASHES)
    _verify(signer, payload, octets, _trust(pki, "*.example.org"))
    with pytest.raises(AuthenticationFailed, match="id-mismatch"):
        _verify(signer, payload, octets, _trust(pki, "other.example.org"))


def test_peer_id_not_in_certificate(pki: Pki) -> None:
    # The certificate is valid and the signature good, but the ID is not in it.
    k = key("p256")
    ee = pki.end_entity(cn("gw"), k, san=[dns("other.example.org")])
    liar = Authenticator.with_key(None, k, [ee, pki.inter])
    octets = _octets()
    payload = liar.build_auth(octets, ALL_HASHES)
    claimed = parse_identity(GW_ID).to_payload()
    with pytest.raises(AuthenticationFailed, match="id-not-in-certificate"):
        verify_auth(payload, octets, claimed, [ee, pki.inter], _trust(pki), now=NOW)


def test_dn_identity_default_from_certificate(pki: Pki) -> None:
    k = key("p256")
    ee = pki.end_entity(cn("dn-peer", "auth"), k)
    me = Authenticator.with_key(None, k, [ee, pki.inter])
    assert me.identity == Identity.from_name(ee.subject)
    octets = _octets()
    _verify(me, me.build_auth(octets, ALL_HASHES), octets,
            _trust(pki, "C=CH, O=auth, CN=dn-peer"))  # fmt: skip


@pytest.mark.parametrize(
    ("case", "reason"),
    [("untrusted", "untrusted"), ("expired", "expired"), ("no-ca", "method-not-allowed"),
     ("no-cert", "no-certificate")],
)  # fmt: skip
def test_certificate_failures(pki: Pki, case: str, reason: str) -> None:
    signer = _signer(pki, "p256")
    octets = _octets()
    payload = signer.build_auth(octets, ALL_HASHES)
    trust = _trust(pki)
    chain = auth.peer_certificates(signer.cert_payloads())
    if case == "untrusted":
        trust = PeerTrust(cas=TrustStore([Pki("p256", org="else").root]))
    elif case == "expired":
        ee = pki.end_entity(cn(GW_ID), key("p256"), san=[dns(GW_ID)], not_after=NOW)
        chain = [ee, pki.inter]
        verify_auth(payload, octets, signer.id_payload(False), chain, trust, now=NOW)
        trust = _trust(pki)
        with pytest.raises(AuthenticationFailed) as info:
            verify_auth(payload, octets, signer.id_payload(False), chain, trust,
                        now=NOW.replace(second=1))  # fmt: skip
        assert info.value.reason == reason
        return
    elif case == "no-ca":
        trust = PeerTrust(psk=b"only psk")
    else:
        chain = []
    with pytest.raises(AuthenticationFailed) as info:
        _verify(signer, payload, octets, trust, chain=chain)
    assert info.value.reason == reason


def test_bad_peer_id_payload(pki: Pki) -> None:
    with pytest.raises(AuthenticationFailed, match="bad-id"):
        verify_auth(AuthPayload(2, b"x"), b"x", IdPayload(IdType.IPV4_ADDR, b"\x01"), [],
                    PeerTrust(psk=b"k"), prf=PRF_HMAC_SHA2_256)  # fmt: skip


def test_authenticator_config_errors(pki: Pki) -> None:
    k = key("p256")
    ee = pki.end_entity(cn("gw"), k, san=[dns(GW_ID)])
    with pytest.raises(ConfigError):
        Authenticator(parse_identity(GW_ID))  # neither PSK nor key
    with pytest.raises(ConfigError):
        Authenticator(parse_identity(GW_ID), psk=b"k", private_key=k)
    with pytest.raises(ConfigError):
        Authenticator.with_psk(parse_identity(GW_ID), b"")
    with pytest.raises(ConfigError):
        Authenticator.with_key(parse_identity(GW_ID), key("p384"), [ee])  # key not in cert
    with pytest.raises(ConfigError):
        Authenticator.with_key(parse_identity("nothere.example.org"), k, [ee])
    with pytest.raises(ConfigError):
        Authenticator.with_psk(parse_identity("%any"), b"k")
    with pytest.raises(ConfigError):
        Authenticator.with_key(None, k)
    assert "psk" in repr(Authenticator.with_psk(parse_identity(GW_ID), b"topsecret"))
    assert "topsecret" not in repr(Authenticator.with_psk(parse_identity(GW_ID), b"topsecret"))


# -- CERT / CERTREQ payloads -----------------------------------------------------------


def test_cert_and_certreq_payloads(pki: Pki) -> None:
    signer = _signer(pki, "p256")
    sent = signer.cert_payloads()
    assert [p.encoding for p in sent] == [CertEncoding.X509_SIGNATURE] * 2
    skipped = CertPayload(CertEncoding.HASH_URL_X509_CERT, b"\x00" * 20 + b"http://x")
    assert auth.peer_certificates([*sent, skipped]) == list(signer.chain)
    with pytest.raises(AuthenticationFailed, match="bad-certificate"):
        auth.peer_certificates([CertPayload(CertEncoding.X509_SIGNATURE, b"\x30\x03abc")])

    trust = TrustStore([pki.root])
    req = auth.certreq_payload(trust)
    assert req is not None and req.encoding == CertEncoding.X509_SIGNATURE
    assert req.data == certs.key_hash(pki.root)
    assert auth.certreq_payload(TrustStore()) is None
    other = CertReqPayload(CertEncoding.PGP, b"ignored")
    wanted = auth.requested_authorities([req, other])
    assert wanted == [certs.key_hash(pki.root)]
    assert certs.select_chain([signer.chain], wanted, trust) == signer.chain
    with pytest.raises(ParseError):
        auth.requested_authorities([CertReqPayload(CertEncoding.X509_SIGNATURE, b"123")])


# -- robustness ------------------------------------------------------------------------


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    method=st.sampled_from([1, 2, 3, 9, 10, 11, 14, 200]),
    data=st.one_of(
        st.binary(max_size=300),
        st.builds(lambda alg, tail: bytes([len(alg)]) + alg + tail,
                  st.sampled_from([s.algorithm_identifier() for s in SCHEMES.values()]),
                  st.binary(max_size=200)),
    ),
    id_type=st.sampled_from([1, 2, 3, 5, 9, 11, 0, 77]),
    id_data=st.binary(max_size=40),
)  # fmt: skip
def test_random_auth_only_fails_cleanly(
    pki: Pki, method: int, data: bytes, id_type: int, id_data: bytes
) -> None:
    # Whatever the peer sends, verification ends in AuthenticationFailed, never in
    # another exception.
    trust = PeerTrust(psk=b"k", cas=TrustStore([pki.root]))
    signer = _signer(pki, "p256")
    chain = list(signer.chain)
    with pytest.raises(AuthenticationFailed):
        verify_auth(AuthPayload(method, data), b"octets", IdPayload(id_type, id_data), chain,
                    trust, prf=PRF_HMAC_SHA2_256, now=NOW)  # fmt: skip

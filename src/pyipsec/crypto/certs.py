"""X.509 certificates and private keys for IKE authentication, all through `cryptography`.

- Loading: PEM/DER certificates (``load_certificates``), private keys
  (``load_private_key``), and the DER a peer sends in a CERT payload
  (``parse_certificate``).
- Path validation (``verify_chain``): from the peer's end-entity certificate through
  the intermediates it sent up to one of our configured CAs (``TrustStore``), with
  signatures checked by `cryptography`, validity dates against an injected ``now``,
  the basicConstraints CA flag and path length of every issuer, and keyUsage
  (keyCertSign for issuers, digitalSignature for the end entity) where present.
- Identity: does a certificate carry a DNS name, IP address, email or DN
  (``has_dns_name``...)? IKE identities themselves live in ``ike.v2.identity``.
- CERTREQ: the SHA-1 hash of a CA's SubjectPublicKeyInfo (``key_hash``, RFC 7296
  §3.7) and the choice of which of our chains answers a peer's request
  (``select_chain``).

`cryptography.x509.verification` is not used for the path: its verifiers apply the
CA/Browser Forum (WebPKI) profile of TLS, which IKE certificates often do not follow
(cryptography 46 refuses an end entity without authorityKeyIdentifier, and applies
TLS's extended key usage rules; IKE peers are named by IP, email or DN as well).

Nothing here reads files or the clock: callers pass bytes and ``now``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

from pyipsec.errors import ConfigError, ParseError, PyipsecError

PrivateKey = (
    rsa.RSAPrivateKey
    | ec.EllipticCurvePrivateKey
    | ed25519.Ed25519PrivateKey
    | ed448.Ed448PrivateKey
)
PublicKey = (
    rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | ed448.Ed448PublicKey
)
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# RFC 7296 §3.7: CERTREQ Certification Authority values are SHA-1 hashes (20 octets).
KEY_HASH_LEN = 20
# A path longer than this is refused rather than searched (loops, resource use).
MAX_PATH_DEPTH = 8

_PEM_CERT_MARKER = b"-----BEGIN CERTIFICATE-----"
_PEM_MARKER = b"-----BEGIN "


class CertificateError(PyipsecError):
    """A certificate path or identity check failed; ``reason`` names which check.

    Reasons: ``expired``, ``not-yet-valid``, ``untrusted`` (no path to a configured CA),
    ``bad-signature``, ``not-a-ca``, ``path-length``, ``key-usage``, ``too-long``,
    ``unsupported-key``.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


# -- loading -----------------------------------------------------------------------


def load_certificates(data: bytes) -> list[x509.Certificate]:
    """Every certificate in ``data``: one or more PEM blocks, or a single DER one."""
    try:
        if _PEM_CERT_MARKER in data:
            return list(x509.load_pem_x509_certificates(data))
        return [x509.load_der_x509_certificate(data)]
    except ValueError as exc:
        raise ConfigError("not a PEM or DER X.509 certificate") from exc


def parse_certificate(der: bytes) -> x509.Certificate:
    """A DER certificate from the wire (a CERT payload, RFC 7296 §3.6); ParseError if bad."""
    try:
        return x509.load_der_x509_certificate(der)
    except ValueError as exc:
        raise ParseError("malformed DER X.509 certificate") from exc


def load_private_key(data: bytes, password: bytes | None = None) -> PrivateKey:
    """An RSA, ECDSA, Ed25519 or Ed448 private key from PEM or DER (PKCS#8, PKCS#1, SEC1).

    The error never repeats the key's bytes.
    """
    try:
        if _PEM_MARKER in data:
            key = serialization.load_pem_private_key(data, password)
        else:
            key = serialization.load_der_private_key(data, password)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise ConfigError("cannot load the private key (format or password)") from exc
    if not isinstance(
        key,
        rsa.RSAPrivateKey
        | ec.EllipticCurvePrivateKey
        | ed25519.Ed25519PrivateKey
        | ed448.Ed448PrivateKey,
    ):
        raise ConfigError(f"unsupported private key type {type(key).__name__}")
    return key


def public_key_of(cert: x509.Certificate) -> PublicKey:
    """The certificate's public key, if it is a type IKE can authenticate with."""
    try:
        key = cert.public_key()
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise CertificateError("unsupported-key", "cannot decode the public key") from exc
    if not isinstance(
        key,
        rsa.RSAPublicKey
        | ec.EllipticCurvePublicKey
        | ed25519.Ed25519PublicKey
        | ed448.Ed448PublicKey,
    ):
        raise CertificateError("unsupported-key", type(key).__name__)
    return key


def key_hash(cert: x509.Certificate) -> bytes:
    """RFC 7296 §3.7: SHA-1 of the certificate's DER SubjectPublicKeyInfo.

    SHA-1 is what the CERTREQ encoding fixes; it names a key, it does not protect it.
    """
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    digest = hashes.Hash(hashes.SHA1())  # noqa: S303 - fixed by RFC 7296 §3.7
    digest.update(spki)
    return digest.finalize()


# -- trust anchors -----------------------------------------------------------------


class TrustStore:
    """The configured CA certificates (``cacerts``) that peer paths must end in."""

    __slots__ = ("_by_hash", "_by_subject", "cas")

    def __init__(self, cas: Iterable[x509.Certificate] = ()) -> None:
        self.cas: tuple[x509.Certificate, ...] = tuple(cas)
        self._by_subject: dict[x509.Name, list[x509.Certificate]] = {}
        self._by_hash: dict[bytes, x509.Certificate] = {}
        for ca in self.cas:
            self._by_subject.setdefault(ca.subject, []).append(ca)
            self._by_hash[key_hash(ca)] = ca

    def __len__(self) -> int:
        return len(self.cas)

    def __contains__(self, cert: object) -> bool:
        return isinstance(cert, x509.Certificate) and cert in self._by_subject.get(cert.subject, ())

    def authority_hashes(self) -> list[bytes]:
        """One 20-octet key hash per CA, in configuration order (CERTREQ content)."""
        return list(self._by_hash)

    def by_key_hash(self, digest: bytes) -> x509.Certificate | None:
        return self._by_hash.get(digest)

    def candidates(self, issuer: x509.Name) -> list[x509.Certificate]:
        return list(self._by_subject.get(issuer, ()))


# -- path validation ---------------------------------------------------------------


def _utc(now: datetime) -> datetime:
    # A naive datetime is taken as UTC, as certificate times are.
    return now if now.tzinfo is not None else now.replace(tzinfo=UTC)


def check_validity(cert: x509.Certificate, now: datetime) -> None:
    """RFC 5280 §4.1.2.5: notBefore <= now <= notAfter."""
    now = _utc(now)
    if now < cert.not_valid_before_utc:
        raise CertificateError("not-yet-valid", _subject_text(cert))
    if now > cert.not_valid_after_utc:
        raise CertificateError("expired", _subject_text(cert))


def _extension(cert: x509.Certificate, ext_type: type[x509.ExtensionType]) -> object | None:
    try:
        return cert.extensions.get_extension_for_class(ext_type).value
    except x509.ExtensionNotFound:
        return None
    except ValueError as exc:  # duplicate or undecodable extensions
        raise CertificateError("bad-extension", _subject_text(cert)) from exc


def _check_issuer(cert: x509.Certificate, below: int, anchor: bool) -> None:
    """An issuing certificate: CA flag, path length and keyCertSign (RFC 5280 §4.2.1.9, .3).

    ``below`` counts the intermediates between this issuer and the end entity.
    A trust anchor without basicConstraints (an old v1 root) is accepted because the
    administrator configured it; an intermediate must say it is a CA.
    """
    bc = _extension(cert, x509.BasicConstraints)
    if bc is None:
        if not anchor:
            raise CertificateError("not-a-ca", _subject_text(cert))
    else:
        if not isinstance(bc, x509.BasicConstraints) or not bc.ca:
            raise CertificateError("not-a-ca", _subject_text(cert))
        if bc.path_length is not None and below > bc.path_length:
            raise CertificateError("path-length", _subject_text(cert))
    ku = _extension(cert, x509.KeyUsage)
    if isinstance(ku, x509.KeyUsage) and not ku.key_cert_sign:
        raise CertificateError("key-usage", f"{_subject_text(cert)} may not sign certificates")


def _signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
        return False
    return True


def verify_chain(
    end_entity: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    trust: TrustStore,
    now: datetime,
) -> list[x509.Certificate]:
    """Check a path from ``end_entity`` to a CA in ``trust``; return it (EE first, CA last).

    ``intermediates`` may hold extra or unordered certificates, as peers send them.
    Raises ``CertificateError`` naming the first check that no path could pass.
    """
    check_validity(end_entity, now)
    ku = _extension(end_entity, x509.KeyUsage)
    # RFC 4945 §5.1.3.2: a key usage extension that is present must allow signatures.
    if isinstance(ku, x509.KeyUsage) and not ku.digital_signature:
        raise CertificateError("key-usage", "the end-entity key may not sign")
    if end_entity in trust:
        return [end_entity]  # the peer's own certificate is configured as trusted

    path = [end_entity]
    pool = [c for c in intermediates if c != end_entity]
    failure: CertificateError | None = None
    current = end_entity
    for below in range(MAX_PATH_DEPTH):
        for anchor in trust.candidates(current.issuer):
            if not _signed_by(current, anchor):
                failure = CertificateError("bad-signature", _subject_text(current))
                continue
            try:
                check_validity(anchor, now)
                _check_issuer(anchor, below, anchor=True)
            except CertificateError as exc:
                failure = exc
                continue
            return [*path, anchor]
        step = _next_issuer(current, pool, path, below, now)
        if isinstance(step, CertificateError):
            raise failure or step
        path.append(step)
        current = step
    raise CertificateError("too-long", f"more than {MAX_PATH_DEPTH} certificates")


def _next_issuer(
    cert: x509.Certificate,
    pool: Sequence[x509.Certificate],
    path: Sequence[x509.Certificate],
    below: int,
    now: datetime,
) -> x509.Certificate | CertificateError:
    failure = CertificateError("untrusted", f"no issuer known for {_subject_text(cert)}")
    for candidate in pool:
        if candidate.subject != cert.issuer or candidate in path:
            continue
        if not _signed_by(cert, candidate):
            failure = CertificateError("bad-signature", _subject_text(cert))
            continue
        try:
            check_validity(candidate, now)
            _check_issuer(candidate, below, anchor=False)
        except CertificateError as exc:
            failure = exc
            continue
        return candidate
    return failure


def _subject_text(cert: x509.Certificate) -> str:
    return cert.subject.rfc4514_string()


# -- identities in certificates ----------------------------------------------------


def _san(cert: x509.Certificate) -> x509.SubjectAlternativeName | None:
    san = _extension(cert, x509.SubjectAlternativeName)
    return san if isinstance(san, x509.SubjectAlternativeName) else None


def _normal_dns(name: str) -> str:
    return name.rstrip(".").lower()


def has_dns_name(cert: x509.Certificate, name: str) -> bool:
    """A subjectAltName dNSName equal to ``name`` (case-insensitive, RFC 4945 §5.1.2.2)."""
    san = _san(cert)
    if san is None:
        return False
    wanted = _normal_dns(name)
    return any(_normal_dns(n) == wanted for n in san.get_values_for_type(x509.DNSName))


def has_ip_address(cert: x509.Certificate, address: IPAddress) -> bool:
    """A subjectAltName iPAddress equal to ``address``."""
    san = _san(cert)
    if san is None:
        return False
    return address in san.get_values_for_type(x509.IPAddress)


def _normal_email(address: str) -> str:
    # The local part is case-sensitive (RFC 5321 §2.4), the domain is not.
    local, _, domain = address.rpartition("@")
    return f"{local}@{domain.lower()}"


def has_email(cert: x509.Certificate, address: str) -> bool:
    """A subjectAltName rfc822Name equal to ``address``."""
    san = _san(cert)
    if san is None:
        return False
    wanted = _normal_email(address)
    return any(_normal_email(a) == wanted for a in san.get_values_for_type(x509.RFC822Name))


def has_directory_name(cert: x509.Certificate, name: x509.Name) -> bool:
    """The subject DN, or a subjectAltName directoryName, equals ``name`` (RFC 4945 §5.1.2.1)."""
    if cert.subject == name:
        return True
    san = _san(cert)
    return san is not None and name in san.get_values_for_type(x509.DirectoryName)


def has_key_id(cert: x509.Certificate, key_id: bytes) -> bool:
    """The subjectKeyIdentifier equals ``key_id`` (how a KEY_ID identity can name a cert)."""
    ski = _extension(cert, x509.SubjectKeyIdentifier)
    return isinstance(ski, x509.SubjectKeyIdentifier) and ski.digest == key_id


# -- DER names (ID_DER_ASN1_DN) ----------------------------------------------------

_TAG_SEQUENCE = 0x30
_TAG_SET = 0x31
_TAG_OID = 0x06
# The string types an X.520 attribute value may use (universal tags, X.680 §8.6).
_STRING_TAGS = frozenset((0x0C, 0x12, 0x13, 0x14, 0x16, 0x1A, 0x1C, 0x1E))
_LATIN1_TAGS = frozenset((0x14,))  # T61String: decoded as Latin-1, as most stacks do
_UTF16_TAGS = frozenset((0x1E,))  # BMPString
_UTF32_TAGS = frozenset((0x1C,))  # UniversalString


def der_tlv(buf: bytes, offset: int, end: int | None = None) -> tuple[int, int, int]:
    """One DER TLV at ``offset``: (tag, content start, content end). ParseError if bad.

    Only single-octet tags and definite lengths (X.690 §10.1: DER has no other).
    """
    limit = len(buf) if end is None else end
    if offset + 2 > limit:
        raise ParseError("truncated DER element")
    tag = buf[offset]
    if tag & 0x1F == 0x1F:
        raise ParseError("multi-octet DER tags are not supported")
    first = buf[offset + 1]
    pos = offset + 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if count == 0 or count > 4 or pos + count > limit:
            raise ParseError("bad DER length")
        length = int.from_bytes(buf[pos : pos + count], "big")
        pos += count
        if length < 0x80 or buf[pos - count] == 0:
            raise ParseError("non-minimal DER length")
    if pos + length > limit:
        raise ParseError("DER element overruns its container")
    return tag, pos, pos + length


def decode_oid(content: bytes) -> str:
    """X.690 §8.19: OBJECT IDENTIFIER content octets -> dotted string."""
    if not content or content[-1] & 0x80:
        raise ParseError("malformed OBJECT IDENTIFIER")
    arcs: list[int] = []
    value = 0
    for i, octet in enumerate(content):
        if value == 0 and octet == 0x80 and (i == 0 or not content[i - 1] & 0x80):
            raise ParseError("non-minimal OBJECT IDENTIFIER arc")
        value = (value << 7) | (octet & 0x7F)
        if not octet & 0x80:
            arcs.append(value)
            value = 0
    first = arcs[0]
    head = [0, first] if first < 40 else [1, first - 40] if first < 80 else [2, first - 80]
    return ".".join(str(a) for a in head + arcs[1:])


def parse_name(der: bytes) -> x509.Name:
    """A DER Name (RFC 5280 §4.1.2.4), as an ID_DER_ASN1_DN payload carries it."""
    tag, start, end = der_tlv(der, 0)
    if tag != _TAG_SEQUENCE or end != len(der):
        raise ParseError("a DN is one DER SEQUENCE")
    rdns: list[x509.RelativeDistinguishedName] = []
    pos = start
    while pos < end:
        tag, set_start, set_end = der_tlv(der, pos, end)
        if tag != _TAG_SET or set_start == set_end:
            raise ParseError("a DN holds non-empty SETs of attributes")
        attrs: list[x509.NameAttribute[str]] = []
        inner = set_start
        while inner < set_end:
            attrs.append(_parse_attribute(der, inner, set_end))
            inner = der_tlv(der, inner, set_end)[2]
        try:
            rdns.append(x509.RelativeDistinguishedName(attrs))
        except ValueError as exc:  # duplicate attributes in one RDN
            raise ParseError("bad relative distinguished name") from exc
        pos = set_end
    return x509.Name(rdns)


def _parse_attribute(der: bytes, offset: int, limit: int) -> x509.NameAttribute[str]:
    tag, start, end = der_tlv(der, offset, limit)
    if tag != _TAG_SEQUENCE:
        raise ParseError("a DN attribute is a SEQUENCE")
    oid_tag, oid_start, oid_end = der_tlv(der, start, end)
    if oid_tag != _TAG_OID:
        raise ParseError("a DN attribute starts with its type OID")
    oid = x509.ObjectIdentifier(decode_oid(der[oid_start:oid_end]))
    v_tag, v_start, v_end = der_tlv(der, oid_end, end)
    if v_end != end:
        raise ParseError("trailing octets in a DN attribute")
    if v_tag not in _STRING_TAGS:
        raise ParseError(f"unsupported DN attribute value tag {v_tag:#04x}")
    raw = der[v_start:v_end]
    try:
        if v_tag in _UTF16_TAGS:
            value = raw.decode("utf-16-be")
        elif v_tag in _UTF32_TAGS:
            value = raw.decode("utf-32-be")
        elif v_tag in _LATIN1_TAGS:
            value = raw.decode("latin-1")
        else:
            value = raw.decode("utf-8")
        return x509.NameAttribute(oid, value)
    except ValueError as exc:  # bad encoding, or a value the attribute type forbids
        raise ParseError("bad DN attribute value") from exc


# -- CERTREQ -----------------------------------------------------------------------


def chain_authorities(chain: Sequence[x509.Certificate], trust: TrustStore) -> set[bytes]:
    """Key hashes of every CA that vouches for ``chain`` (EE first): its issuers that we
    send, and the configured CAs that issued its last certificate."""
    hashes_ = {key_hash(c) for c in chain[1:]}
    if chain:
        top = chain[-1]
        hashes_.update(key_hash(ca) for ca in trust.candidates(top.issuer) if _signed_by(top, ca))
    return hashes_


def select_chain(
    chains: Sequence[Sequence[x509.Certificate]],
    requested: Sequence[bytes],
    trust: TrustStore,
) -> Sequence[x509.Certificate] | None:
    """The first of our chains that a CA named in the peer's CERTREQ vouches for.

    RFC 7296 §3.7: the peer lists the CAs it trusts; with no list (or no CERTREQ),
    the first chain is the answer. None when the peer asked only for CAs we cannot
    offer; the caller may still send its default chain (§2.15 leaves it open).
    """
    if not chains:
        return None
    if not requested:
        return chains[0]
    wanted = set(requested)
    for chain in chains:
        if chain_authorities(chain, trust) & wanted:
            return chain
    return None


def split_key_hashes(data: bytes) -> list[bytes]:
    """RFC 7296 §3.7: CERTREQ data for X.509 is a concatenation of 20-octet hashes."""
    if len(data) % KEY_HASH_LEN:
        raise ParseError(f"CERTREQ data length {len(data)} is not a multiple of 20")
    return [data[i : i + KEY_HASH_LEN] for i in range(0, len(data), KEY_HASH_LEN)]

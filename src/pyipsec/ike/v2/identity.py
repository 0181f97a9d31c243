"""IKEv2 identities (RFC 7296 §3.5): ID payloads <-> ``Identity`` <-> swanctl-style strings.

An ``Identity`` is the (ID Type, Identification Data) pair of an IDi/IDr payload,
validated. The string syntax follows what swanctl.conf users type for ``id``:

- ``192.0.2.1``, ``2001:db8::1``          -> ID_IPV4_ADDR / ID_IPV6_ADDR
- ``vpn.example.org``, ``@vpn.example.org`` -> ID_FQDN (``@`` forces FQDN)
- ``user@example.org``                    -> ID_RFC822_ADDR
- ``C=CH, O=example, CN=vpn``             -> ID_DER_ASN1_DN (RDNs in encoding order)
- ``@#0a1b2c``                            -> ID_KEY_ID (hex)
- ``%any``                                -> ANY_ID, matches every peer, never sent
- a type prefix forces the type: ``ipv4:``, ``ipv6:``, ``fqdn:``, ``email:``/``rfc822:``,
  ``asn1dn:``, ``keyid:`` (text, or ``#hex``), ``asn1gn:#hex``.

``str(identity)`` gives a string that parses back to the same identity.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from dataclasses import dataclass
from fnmatch import fnmatchcase

from cryptography import x509
from cryptography.x509.oid import NameOID

from pyipsec.crypto import certs
from pyipsec.errors import ConfigError, ParseError
from pyipsec.ike.v2.constants import IdType
from pyipsec.ike.v2.payloads import IdPayload

_ANY_TYPE = 0  # reserved in RFC 7296 §3.5: never on the wire, so free for "any"

# DN attribute short names users type (RFC 4514 §3 plus the usual X.520/PKCS#9 ones).
_DN_ATTRS: dict[str, x509.ObjectIdentifier] = {
    "C": NameOID.COUNTRY_NAME,
    "ST": NameOID.STATE_OR_PROVINCE_NAME,
    "S": NameOID.STATE_OR_PROVINCE_NAME,
    "L": NameOID.LOCALITY_NAME,
    "O": NameOID.ORGANIZATION_NAME,
    "OU": NameOID.ORGANIZATIONAL_UNIT_NAME,
    "CN": NameOID.COMMON_NAME,
    "E": NameOID.EMAIL_ADDRESS,
    "EMAIL": NameOID.EMAIL_ADDRESS,
    "EMAILADDRESS": NameOID.EMAIL_ADDRESS,
    "DC": NameOID.DOMAIN_COMPONENT,
    "SN": NameOID.SURNAME,
    "GN": NameOID.GIVEN_NAME,
    "G": NameOID.GIVEN_NAME,
    "SERIALNUMBER": NameOID.SERIAL_NUMBER,
    "UID": NameOID.USER_ID,
    "T": NameOID.TITLE,
    "TITLE": NameOID.TITLE,
    "STREET": NameOID.STREET_ADDRESS,
    "POSTALCODE": NameOID.POSTAL_CODE,
    "DNQ": NameOID.DN_QUALIFIER,
    "PSEUDONYM": NameOID.PSEUDONYM,
    "INITIALS": NameOID.INITIALS,
}
# The name printed for each OID: the first key above that maps to it.
_DN_NAMES: dict[x509.ObjectIdentifier, str] = {}
for _short, _oid in _DN_ATTRS.items():
    _DN_NAMES.setdefault(_oid, _short)

_PREFIXES = {
    "ipv4:": IdType.IPV4_ADDR,
    "ipv6:": IdType.IPV6_ADDR,
    "fqdn:": IdType.FQDN,
    "email:": IdType.RFC822_ADDR,
    "rfc822:": IdType.RFC822_ADDR,
    "asn1dn:": IdType.DER_ASN1_DN,
    "asn1gn:": IdType.DER_ASN1_GN,
    "keyid:": IdType.KEY_ID,
}
_DN_START = re.compile(r"^\s*([A-Za-z][A-Za-z0-9]*|[0-9]+(?:\.[0-9]+)+)\s*=")
_SPECIAL = ',+"\\<>;='


@dataclass(frozen=True, slots=True)
class Identity:
    """One IKE identity: an ID Type (``IdType``) and its Identification Data."""

    id_type: int
    data: bytes

    # -- constructors ---------------------------------------------------------------

    @classmethod
    def parse(cls, text: str) -> Identity:
        """A swanctl-style identity string; ConfigError if it makes no sense."""
        return parse_identity(text)

    @classmethod
    def from_payload(cls, payload: IdPayload) -> Identity:
        """The identity an IDi/IDr payload carries, checked against its type (§3.5)."""
        identity = cls(payload.id_type, payload.data)
        _validate(identity)
        return identity

    @classmethod
    def from_name(cls, name: x509.Name) -> Identity:
        """ID_DER_ASN1_DN of ``name`` (e.g. a certificate's subject, the default local id)."""
        return cls(IdType.DER_ASN1_DN, name.public_bytes())

    # -- views ----------------------------------------------------------------------

    @property
    def is_any(self) -> bool:
        return self.id_type == _ANY_TYPE

    def to_payload(self, responder: bool = False) -> IdPayload:
        """IDi (``responder=False``) or IDr carrying this identity."""
        if self.is_any:
            raise ConfigError("%any is a pattern, not an identity to send")
        return IdPayload(self.id_type, self.data, responder)

    def __str__(self) -> str:
        plain = _plain_text(self)
        try:
            if parse_identity(plain) == self:
                return plain
        except ConfigError:
            pass
        return _typed_text(self)

    # -- matching -------------------------------------------------------------------

    def matches(self, pattern: Identity) -> bool:
        """Is this (peer) identity accepted by a configured ``pattern``?

        ``%any`` accepts all; ``*`` wildcards work in FQDN and email patterns
        (``*.example.org``, ``*@example.org``) and as a whole DN attribute value
        (``C=CH, O=example, CN=*``). Everything else must be equal.
        """
        if pattern.is_any:
            return True
        if pattern.id_type != self.id_type:
            return False
        if self.id_type == IdType.FQDN:
            return fnmatchcase(_text(self.data).lower().rstrip("."),
                               _text(pattern.data).lower().rstrip("."))  # fmt: skip
        if self.id_type == IdType.RFC822_ADDR:
            return fnmatchcase(_lower_domain(_text(self.data)), _lower_domain(_text(pattern.data)))
        if self.id_type == IdType.DER_ASN1_DN:
            return _dn_matches(certs.parse_name(self.data), certs.parse_name(pattern.data))
        return self.data == pattern.data

    def matches_certificate(self, cert: x509.Certificate) -> bool:
        """RFC 4945 §3.1 / RFC 7296 §3.5: the ID must be in the certificate.

        An FQDN, IP or email identity must appear in subjectAltName (a CN is no DNS
        identity); a DN must be the subject (or a directoryName in the SAN); a KEY_ID
        must equal the subjectKeyIdentifier.
        """
        if self.id_type in (IdType.IPV4_ADDR, IdType.IPV6_ADDR):
            return certs.has_ip_address(cert, ipaddress.ip_address(self.data))
        if self.id_type == IdType.FQDN:
            return certs.has_dns_name(cert, _text(self.data))
        if self.id_type == IdType.RFC822_ADDR:
            return certs.has_email(cert, _text(self.data))
        if self.id_type == IdType.DER_ASN1_DN:
            return certs.has_directory_name(cert, certs.parse_name(self.data))
        if self.id_type == IdType.KEY_ID:
            return certs.has_key_id(cert, self.data)
        return False


ANY_ID = Identity(_ANY_TYPE, b"")


# Cached: every IKE SA parses its connection's ids again; Identity is frozen, so the
# parsed value can be shared (errors are raised, not cached).
@functools.lru_cache(maxsize=1024)
def parse_identity(text: str) -> Identity:
    """Parse a swanctl-style identity string (see the module docstring)."""
    s = text.strip()
    if not s:
        raise ConfigError("empty identity")
    if s == "%any":
        return ANY_ID
    lowered = s.lower()
    for prefix, id_type in _PREFIXES.items():
        if lowered.startswith(prefix):
            return _typed(id_type, s[len(prefix) :])
    if s.startswith("@#"):
        return _typed(IdType.KEY_ID, s[1:])
    if s.startswith("@"):
        return _typed(IdType.FQDN, s[1:])
    try:
        address = ipaddress.ip_address(s)
    except ValueError:
        pass
    else:
        return Identity(_ip_type(address), address.packed)
    if _DN_START.match(s):
        return _typed(IdType.DER_ASN1_DN, s)
    if "@" in s:
        return _typed(IdType.RFC822_ADDR, s)
    return _typed(IdType.FQDN, s)


def _ip_type(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> IdType:
    return IdType.IPV4_ADDR if address.version == 4 else IdType.IPV6_ADDR


def _typed(id_type: IdType, value: str) -> Identity:
    if id_type in (IdType.IPV4_ADDR, IdType.IPV6_ADDR):
        try:
            address = ipaddress.ip_address(value.strip())
        except ValueError as exc:
            raise ConfigError(f"not an IP address: {value!r}") from exc
        if _ip_type(address) != id_type:
            raise ConfigError(f"{value!r} is not an IPv{4 if id_type == IdType.IPV4_ADDR else 6}")
        return Identity(id_type, address.packed)
    if id_type == IdType.DER_ASN1_DN:
        return Identity.from_name(parse_dn(value))
    if id_type in (IdType.KEY_ID, IdType.DER_ASN1_GN):
        if value.startswith("#"):
            try:
                raw = bytes.fromhex(value[1:])
            except ValueError as exc:
                raise ConfigError(f"bad hex in identity {value!r}") from exc
        elif id_type == IdType.KEY_ID:
            raw = value.encode()
        else:
            raise ConfigError("asn1gn: identities are written as #hex")
        identity = Identity(id_type, raw)
    else:
        identity = Identity(id_type, value.encode())
    try:
        _validate(identity)
    except ParseError as exc:
        raise ConfigError(str(exc)) from exc
    return identity


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def _lower_domain(address: str) -> str:
    local, at, domain = address.rpartition("@")
    return f"{local}{at}{domain.lower()}"


def _validate(identity: Identity) -> None:
    """ParseError unless the data fits the ID type (RFC 7296 §3.5)."""
    t, data = identity.id_type, identity.data
    if t == IdType.IPV4_ADDR:
        if len(data) != 4:
            raise ParseError(f"ID_IPV4_ADDR of {len(data)} octets")
    elif t == IdType.IPV6_ADDR:
        if len(data) != 16:
            raise ParseError(f"ID_IPV6_ADDR of {len(data)} octets")
    elif t in (IdType.FQDN, IdType.RFC822_ADDR):
        # §3.5: FQDN is an ASCII string; RFC822 addresses may be UTF-8 (RFC 6531).
        try:
            text = data.decode("ascii" if t == IdType.FQDN else "utf-8")
        except UnicodeDecodeError as exc:
            raise ParseError("identity text is not valid ASCII/UTF-8") from exc
        if not text or any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
            raise ParseError("empty identity text or control characters in it")
        if t == IdType.RFC822_ADDR and "@" not in text:
            raise ParseError("an RFC822 identity needs an @")
    elif t == IdType.DER_ASN1_DN:
        certs.parse_name(data)
    elif t in (IdType.KEY_ID, IdType.DER_ASN1_GN):
        if not data:
            raise ParseError("empty identity data")
    else:
        raise ParseError(f"unknown ID type {t}")


# -- DN strings --------------------------------------------------------------------


def parse_dn(text: str) -> x509.Name:
    """``C=CH, O=example, CN=vpn`` -> Name, one RDN per attribute, in the order written.

    Values may be quoted (``O="a, b"``) or use backslash escapes (``O=a\\, b``).
    """
    attributes: list[x509.NameAttribute[str]] = []
    for part in _split_dn(text):
        key, sep, raw_value = part.partition("=")
        if not sep:
            raise ConfigError(f"DN component without '=': {part!r}")
        key = key.strip()
        oid = _DN_ATTRS.get(key.upper())
        if oid is None:
            if not re.fullmatch(r"[0-9]+(\.[0-9]+)+", key):
                raise ConfigError(f"unknown DN attribute {key!r}")
            oid = x509.ObjectIdentifier(key)
        try:
            attributes.append(x509.NameAttribute(oid, _dn_value(raw_value)))
        except ValueError as exc:
            raise ConfigError(f"bad value for DN attribute {key}: {exc}") from exc
    if not attributes:
        raise ConfigError("empty DN")
    return x509.Name([x509.RelativeDistinguishedName([a]) for a in attributes])


def _split_dn(text: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for ch in text:
        if escaped:
            current.append(ch)
            escaped = False
        elif ch == "\\":
            current.append(ch)
            escaped = True
        elif ch == '"':
            current.append(ch)
            quoted = not quoted
        elif ch in ",;" and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    if quoted or escaped:
        raise ConfigError("unterminated quote or escape in DN")
    parts.append("".join(current))
    if any(not p.strip() for p in parts):
        raise ConfigError("empty DN component")
    return parts


def _dn_value(raw: str) -> str:
    value = raw.strip()
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        value = value[1:-1]
    out: list[str] = []
    it = iter(value)
    for ch in it:
        if ch == "\\":
            out.append(next(it, ""))
        elif ch == '"':
            raise ConfigError("stray quote in DN value")
        else:
            out.append(ch)
    return "".join(out)


def format_dn(name: x509.Name) -> str:
    """Name -> ``C=CH, O=example, CN=vpn`` (encoding order, escapes where needed)."""
    parts: list[str] = []
    for rdn in name.rdns:
        for attr in rdn:
            key = _DN_NAMES.get(attr.oid, attr.oid.dotted_string)
            value = attr.value if isinstance(attr.value, str) else attr.value.hex()
            escaped = "".join("\\" + c if c in _SPECIAL else c for c in value)
            if escaped != escaped.strip():  # keep leading/trailing spaces
                escaped = f'"{value}"' if '"' not in value else escaped
            parts.append(f"{key}={escaped}")
    return ", ".join(parts)


def _dn_matches(name: x509.Name, pattern: x509.Name) -> bool:
    got = [a for rdn in name.rdns for a in rdn]
    want = [a for rdn in pattern.rdns for a in rdn]
    if len(got) != len(want):
        return False
    pairs = zip(got, want, strict=True)
    return all(g.oid == w.oid and (w.value == "*" or g.value == w.value) for g, w in pairs)


# -- text forms --------------------------------------------------------------------


def _plain_text(identity: Identity) -> str:
    t, data = identity.id_type, identity.data
    if identity.is_any:
        return "%any"
    if t in (IdType.IPV4_ADDR, IdType.IPV6_ADDR):
        return str(ipaddress.ip_address(data))
    if t in (IdType.FQDN, IdType.RFC822_ADDR):
        return _text(data)
    if t == IdType.DER_ASN1_DN:
        return format_dn(certs.parse_name(data))
    if t == IdType.KEY_ID:
        return "@#" + data.hex()
    return "asn1gn:#" + data.hex()


def _typed_text(identity: Identity) -> str:
    for prefix, id_type in _PREFIXES.items():
        if id_type == identity.id_type:
            if id_type in (IdType.KEY_ID, IdType.DER_ASN1_GN):
                return f"{prefix}#{identity.data.hex()}"
            return prefix + _plain_text(identity)
    return f"type{identity.id_type}:#{identity.data.hex()}"

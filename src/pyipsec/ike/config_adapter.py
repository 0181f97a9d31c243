"""swanctl connections as the IKEv2 engine sees them: ``IkeConfig`` -> ``IkeConfigLike``.

``config.swanctl`` gives ``IkeConfig``/``ChildConfig`` and the credentials of the file
(secrets, certificates, keys). The engine (``ike.v2.manager``) reads a smaller shape:
addresses, proposals, identities, a PSK, children (``ChildConfig`` already fits
``ChildConfigLike``). ``adapt(swanctl)`` builds one ``EngineConnection`` per connection
and resolves what swanctl leaves to lookup time:

- ``%any`` addresses become "any" (an empty list) for the engine's address match;
- the PSK is the ``secrets.ike*`` entry whose ids best match the two identities, as
  strongSwan chooses shared keys (both ids listed > one > a secret without ids);
- certificate authentication (``auth = pubkey|rsa|ecdsa...``): our chain is
  ``local.certs`` (or every certificate of ``x509/`` whose key we hold), its private
  key is found among the loaded keys by public key; peers are trusted through
  ``remote.cacerts``, else every CA of ``x509ca/`` and ``authorities``, or pinned
  ``remote.certs``/``remote.pubkeys``.

Each IKE SA gets its own ``Authenticator`` (``AuthenticatorSource`` of the IKE_AUTH
task) bound to the SA's PRF and the peer's SIGNATURE_HASH_ALGORITHMS; it wraps
``ike.v2.auth``. Verification needs wall-clock time for certificate validity: io/
passes a clock in (``wall``), nothing here reads one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from ipaddress import IPv4Address, IPv6Address

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

from pyipsec.config.swanctl import SwanctlConfig
from pyipsec.crypto import certs
from pyipsec.crypto.certs import PrivateKey, PublicKey, TrustStore
from pyipsec.errors import ConfigError, ParseError
from pyipsec.ike.connection import AuthConfig, ChildConfig, IkeConfig, Secret
from pyipsec.ike.proposals import Proposal
from pyipsec.ike.v2 import auth
from pyipsec.ike.v2.auth import AuthenticationFailed, PeerTrust
from pyipsec.ike.v2.identity import ANY_ID, Identity
from pyipsec.ike.v2.ike_sa import IkeSa
from pyipsec.ike.v2.payloads import AuthPayload, IdPayload, Payload

log = logging.getLogger(__name__)

_ANY_ADDRS = frozenset({"%any", "%any4", "%any6"})
_SIGNATURE_METHODS = ("pubkey", "rsa", "ecdsa", "ed25519", "ed448")

WallClock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def _is_signature(method: str) -> bool:
    return method.split("-")[0].split("/")[0] in _SIGNATURE_METHODS


@dataclass(frozen=True, slots=True)
class LocalCredential:
    """How we prove ourselves: a PSK, or a private key with its certificate chain."""

    method: str  # "psk" or a signature method
    identity: str | None  # the configured id (None: our address, or the cert subject)
    psk: bytes = field(default=b"", repr=False)
    key: PrivateKey | None = field(default=None, repr=False)
    chain: tuple[x509.Certificate, ...] = ()


@dataclass(frozen=True, slots=True)
class EngineConnection:
    """One swanctl connection, in the shape ``IkeManager`` reads (``IkeConfigLike``)."""

    name: str
    local_addrs: tuple[str, ...]
    remote_addrs: tuple[str, ...]
    proposals: tuple[Proposal, ...]
    local_id: str | None
    remote_id: str | None
    children: tuple[ChildConfig, ...]
    credential: LocalCredential
    trust: PeerTrust
    source: IkeConfig
    wall: WallClock = field(default=utc_now, compare=False)
    psk: bytes = field(default=b"", repr=False)

    @property
    def encap(self) -> bool:
        return self.source.encap

    @property
    def send_certreq(self) -> bool:
        return self.source.send_certreq

    @property
    def fragmentation(self) -> str:
        return self.source.fragmentation  # RFC 7383 (ike.v2.fragments.sends_fragments)

    @property
    def vips(self) -> tuple[IPv4Address | IPv6Address, ...]:
        return self.source.vips

    @property
    def pools(self) -> tuple[str, ...]:
        return self.source.pools

    def local_identity(self, address: str) -> str:
        """Our identity as the peer sees it: the configured id, else the certificate's
        subject, else our address (strongSwan's defaults, swanctl.conf(5))."""
        cred = self.credential
        if cred.identity:
            return cred.identity
        if cred.chain:
            return cred.chain[0].subject.rfc4514_string()
        return address

    def child(self, name: str) -> ChildConfig | None:
        return next((c for c in self.children if c.name == name), None)

    def authenticator(self, sa: IkeSa) -> SaAuthenticator:
        """The IKE_AUTH task's authenticator for ``sa`` (``AuthenticatorSource``)."""
        return SaAuthenticator(self, sa)


class SaAuthenticator:
    """``ike.v2.auth`` behind the IKE_AUTH task's ``Authenticator`` protocol, for one SA."""

    __slots__ = ("_conn", "_sa", "_signer")

    def __init__(self, conn: EngineConnection, sa: IkeSa) -> None:
        self._conn = conn
        self._sa = sa
        cred = conn.credential
        if cred.key is not None:
            identity = Identity.parse(cred.identity) if cred.identity else None
            self._signer = auth.Authenticator.with_key(identity, cred.key, cred.chain)
        else:
            # strongSwan's default local id is our IP address (swanctl.conf(5)).
            identity = Identity.parse(cred.identity or sa.local[0])
            self._signer = auth.Authenticator.with_psk(identity, cred.psk or conn.psk)

    def __repr__(self) -> str:
        return f"SaAuthenticator({self._conn.name}, {self._signer!r})"

    def build_auth(self, signed_octets: bytes) -> tuple[int, bytes]:
        payload = self._signer.build_auth(signed_octets, self._sa.peer_sig_hashes, prf=self._sa.prf)
        return payload.method, payload.data

    def verify_auth(
        self,
        method: int,
        data: bytes,
        signed_octets: bytes,
        peer_id: IdPayload,
        certs_der: Sequence[bytes],
    ) -> bool:
        try:
            chain = [certs.parse_certificate(der) for der in certs_der]
            auth.verify_auth(
                AuthPayload(method, data),
                signed_octets,
                peer_id,
                chain,
                self._conn.trust,
                prf=self._sa.prf,
                now=self._conn.wall(),
            )
        except AuthenticationFailed as exc:
            log.warning("%s: peer authentication failed: %s", self._conn.name, exc.reason)
            return False
        except (ParseError, ConfigError) as exc:
            log.warning("%s: peer authentication failed: %s", self._conn.name, exc)
            return False
        return True

    def own_id(self, responder: bool) -> IdPayload:
        return self._signer.id_payload(responder)

    def peer_id_ok(self, peer_id: IdPayload) -> bool:
        try:
            return Identity.from_payload(peer_id).matches(self._conn.trust.remote_id)
        except ParseError:
            return False

    def extra_payloads(self, request: bool) -> list[Payload]:
        out: list[Payload] = list(self._signer.cert_payloads())
        cas = self._conn.trust.cas
        # §3.7: the initiator names the CAs it trusts in IKE_AUTH, so a responder that
        # sends certificates only when asked (strongSwan's default) sends its own.
        if request and cas is not None and self._conn.send_certreq:
            certreq = auth.certreq_payload(cas)
            if certreq is not None:
                out.append(certreq)
        return out


# -- building ----------------------------------------------------------------------------


def adapt(swanctl: SwanctlConfig, wall: WallClock = utc_now) -> list[EngineConnection]:
    """Every IKEv2 connection of ``swanctl`` for the engine; ConfigError names the problem."""
    out: list[EngineConnection] = []
    for config in swanctl.connections:
        if config.version == 1:
            log.warning("%s: IKEv1 connection %s skipped", config.source, config.name)
            continue
        out.append(adapt_connection(config, swanctl, wall))
    return out


def adapt_connection(
    config: IkeConfig, swanctl: SwanctlConfig, wall: WallClock = utc_now
) -> EngineConnection:
    local = config.local[0]
    remote = config.remote[0]
    where = f"{config.source}: connection {config.name}"
    for extra in (*config.local[1:], *config.remote[1:]):
        log.warning("%s: authentication round %s ignored", where, extra.name)
    trust = _trust(config, remote, swanctl, where)
    if local.auth == "psk" or remote.auth == "psk":
        psk = _shared_key(swanctl.secrets, local, remote, config)
        if psk is None:
            raise ConfigError(f"{where}: auth = psk but no secrets.ike* matches its ids")
    else:
        psk = b""
    if local.auth == "psk":
        credential = LocalCredential("psk", local.id, psk=psk)
    elif _is_signature(local.auth):
        credential = _signature_credential(local, swanctl, where)
    else:
        raise ConfigError(f"{where}: local auth = {local.auth} is not supported")
    return EngineConnection(
        name=config.name,
        local_addrs=_addrs(config.local_addrs),
        remote_addrs=_addrs(config.remote_addrs),
        proposals=config.proposals,
        local_id=local.id,
        remote_id=remote.id,
        children=config.children,
        credential=credential,
        trust=trust,
        source=config,
        wall=wall,
        psk=psk,
    )


def _addrs(items: Sequence[str]) -> tuple[str, ...]:
    # The engine takes an empty list as "any"; subnets, ranges and names only match
    # literally (initiating needs a literal address first).
    return tuple(a for a in items if a not in _ANY_ADDRS)


def _identity_text(auth_config: AuthConfig, addrs: Sequence[str]) -> str | None:
    if auth_config.id:
        return auth_config.id
    literal = [a for a in addrs if a not in _ANY_ADDRS]
    return literal[0] if literal else None


def _shared_key(
    secrets: Sequence[Secret], local: AuthConfig, remote: AuthConfig, config: IkeConfig
) -> bytes | None:
    """The best matching ``secrets.ike*``: most of our two ids listed, then no ids."""
    wanted = {
        i
        for i in (
            _identity_text(local, config.local_addrs),
            _identity_text(remote, config.remote_addrs),
        )
        if i
    }
    best: tuple[int, bytes] | None = None
    for secret in secrets:
        if secret.kind != "ike":
            continue
        score = len(wanted & set(secret.ids)) if secret.ids else 0
        if secret.ids and score == 0:
            continue
        if best is None or score > best[0]:
            best = (score, secret.data)
    return best[1] if best is not None else None


_SIGNING_KEYS = (
    rsa.RSAPrivateKey,
    ec.EllipticCurvePrivateKey,
    ed25519.Ed25519PrivateKey,
    ed448.Ed448PrivateKey,
)
_VERIFYING_KEYS = (
    rsa.RSAPublicKey,
    ec.EllipticCurvePublicKey,
    ed25519.Ed25519PublicKey,
    ed448.Ed448PublicKey,
)


def _signature_credential(local: AuthConfig, swanctl: SwanctlConfig, where: str) -> LocalCredential:
    keys = swanctl.private_keys()
    candidates = local.certs or swanctl.certificates
    for cert in candidates:
        for key in keys:
            if isinstance(key, _SIGNING_KEYS) and key.public_key() == cert.public_key():
                chain = (cert, *_issuers(cert, swanctl.certificates + swanctl.ca_certificates))
                return LocalCredential(local.auth, local.id, key=key, chain=chain)
    if not candidates and len(keys) == 1 and local.id and isinstance(keys[0], _SIGNING_KEYS):
        # A raw key without a certificate (the peer pins our public key).
        return LocalCredential(local.auth, local.id, key=keys[0])
    raise ConfigError(f"{where}: no certificate with a matching private key for {local.name}")


def _issuers(
    cert: x509.Certificate, pool: Sequence[x509.Certificate]
) -> tuple[x509.Certificate, ...]:
    """Intermediates up to (not including) a self-signed root, for the CERT payloads."""
    out: list[x509.Certificate] = []
    current = cert
    while len(out) < 8 and current.issuer != current.subject:
        issuer = next((c for c in pool if c.subject == current.issuer and c not in out), None)
        if issuer is None or issuer.issuer == issuer.subject:
            break
        out.append(issuer)
        current = issuer
    return tuple(out)


def _trust(config: IkeConfig, remote: AuthConfig, swanctl: SwanctlConfig, where: str) -> PeerTrust:
    try:
        remote_id = Identity.parse(remote.id) if remote.id else ANY_ID
    except ConfigError as exc:
        raise ConfigError(f"{where}: remote id: {exc}") from None
    if remote.auth == "psk":
        return PeerTrust(remote_id=remote_id, psk=_shared_key(swanctl.secrets, config.local[0],
                                                              remote, config))  # fmt: skip
    if not _is_signature(remote.auth):
        raise ConfigError(f"{where}: remote auth = {remote.auth} is not supported")
    cas = list(remote.cacerts)
    if not cas:
        cas = list(swanctl.ca_certificates)
        cas += [a.cacert for a in swanctl.authorities if a.cacert is not None]
    pinned: list[PublicKey] = [certs.public_key_of(c) for c in remote.certs]
    pinned += [k for k in remote.pubkeys if isinstance(k, _VERIFYING_KEYS)]
    return PeerTrust(
        remote_id=remote_id,
        cas=TrustStore(cas) if cas else None,
        public_keys=tuple(pinned),
    )

"""IKE_AUTH (RFC 7296 §1.2, §2.15): identities and authentication; PSK for now.

Initiator:  HDR, SK {IDi, [IDr,] AUTH, [N(INITIAL_CONTACT)], SAi2, TSi, TSr}  -->
Responder:  <--  HDR, SK {IDr, AUTH, SAr2, TSi, TSr}

(the SA/TS payloads belong to the CHILD SA task that rides along). The AUTH payload
signs <SignedOctets> = our IKE_SA_INIT message | the peer's nonce | prf(SK_p, ID').
Authentication goes through the ``Authenticator`` protocol so the certificate methods
of ``ike.v2.auth`` plug in beside ``PskAuthenticator``: a connection that implements
``AuthenticatorSource`` (``ike.config_adapter``) supplies its own per IKE SA. A
failure on the responder is answered with AUTHENTICATION_FAILED and the IKE SA is gone
(§2.21.2); on the initiator it ends the IKE SA as well.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Sequence
from typing import Protocol, cast, runtime_checkable

from pyipsec.crypto.prf import Prf
from pyipsec.errors import ConfigError
from pyipsec.ike.v2 import keymat
from pyipsec.ike.v2.constants import AuthMethod, ExchangeType, IdType, NotifyType
from pyipsec.ike.v2.events import IkeSaEstablished
from pyipsec.ike.v2.ike_sa import IkeSa, IkeSaState, NotifyError
from pyipsec.ike.v2.message import IkeHeader
from pyipsec.ike.v2.payloads import AuthPayload, CertPayload, IdPayload, NotifyPayload, Payload
from pyipsec.ike.v2.task_manager import Status, Task

# Errors in an IKE_AUTH response that concern only the CHILD SA (§1.2): the IKE SA lives.
CHILD_ERRORS = frozenset(
    {
        NotifyType.NO_PROPOSAL_CHOSEN,
        NotifyType.TS_UNACCEPTABLE,
        NotifyType.SINGLE_PAIR_REQUIRED,
        NotifyType.INTERNAL_ADDRESS_FAILURE,
        NotifyType.FAILED_CP_REQUIRED,
        NotifyType.INVALID_SELECTORS,
    }
)


class Authenticator(Protocol):
    """One side's way to make and check AUTH payloads."""

    def build_auth(self, signed_octets: bytes) -> tuple[int, bytes]:
        """(AUTH method, authentication data) over our <SignedOctets>."""
        ...

    def verify_auth(
        self,
        method: int,
        data: bytes,
        signed_octets: bytes,
        peer_id: IdPayload,
        certs: Sequence[bytes],
    ) -> bool:
        """Whether the peer's AUTH payload proves it holds the credential."""
        ...

    def own_id(self, responder: bool) -> IdPayload | None:
        """Our IDi/IDr, or None for the connection's ``local_id`` (or our address)."""
        ...

    def peer_id_ok(self, peer_id: IdPayload) -> bool | None:
        """Whether the peer's identity is acceptable; None: compare with ``remote_id``."""
        ...

    def extra_payloads(self, request: bool) -> list[Payload]:
        """CERT (and, in a request, CERTREQ) payloads sent beside AUTH (§3.6, §3.7)."""
        ...


@runtime_checkable
class AuthenticatorSource(Protocol):
    """A connection that brings its own credentials (certificates, several methods).

    Without it the connection's ``psk`` is used with ``PskAuthenticator``.
    """

    def authenticator(self, sa: IkeSa) -> Authenticator: ...


class PskAuthenticator:
    """§2.15 shared-key MIC: prf(prf(secret, "Key Pad for IKEv2"), <SignedOctets>)."""

    __slots__ = ("_prf", "_secret")

    def __init__(self, prf: Prf, secret: bytes) -> None:
        if not secret:
            raise ConfigError("empty pre-shared key")
        self._prf = prf
        self._secret = secret

    def __repr__(self) -> str:
        return f"PskAuthenticator({self._prf.name})"  # never the secret

    def build_auth(self, signed_octets: bytes) -> tuple[int, bytes]:
        return AuthMethod.SHARED_KEY_MIC, keymat.psk_auth(self._prf, self._secret, signed_octets)

    def verify_auth(
        self,
        method: int,
        data: bytes,
        signed_octets: bytes,
        peer_id: IdPayload,
        certs: Sequence[bytes],
    ) -> bool:
        if method != AuthMethod.SHARED_KEY_MIC:
            return False
        expected = keymat.psk_auth(self._prf, self._secret, signed_octets)
        return hmac.compare_digest(expected, data)

    def own_id(self, responder: bool) -> IdPayload | None:
        return None

    def peer_id_ok(self, peer_id: IdPayload) -> bool | None:
        return None

    def extra_payloads(self, request: bool) -> list[Payload]:
        return []


def id_payload(text: str | None, address: str, responder: bool) -> IdPayload:
    """An ID payload for a swanctl-style identity; our IP address when none is set.

    ``192.0.2.1`` -> ID_IPV4_ADDR, ``user@example.org`` -> ID_RFC822_ADDR, anything else
    (``@`` stripped) -> ID_FQDN. DNs and key ids come with ``ike.v2.identity``.
    """
    value = text if text else address
    try:
        ip = ipaddress.ip_address(value)
    except ValueError:
        pass
    else:
        kind = IdType.IPV4_ADDR if ip.version == 4 else IdType.IPV6_ADDR
        return IdPayload(kind, ip.packed, responder)
    if "@" in value and not value.startswith("@"):
        return IdPayload(IdType.RFC822_ADDR, value.encode(), responder)
    return IdPayload(IdType.FQDN, value.lstrip("@").encode(), responder)


def id_text(payload: IdPayload) -> str:
    """The identity as text, for events and for matching configured ids."""
    if payload.id_type in (IdType.IPV4_ADDR, IdType.IPV6_ADDR):
        try:
            return str(ipaddress.ip_address(payload.data))
        except ValueError:
            return payload.data.hex()
    if payload.id_type in (IdType.FQDN, IdType.RFC822_ADDR):
        return payload.data.decode("utf-8", "replace")
    return f"{payload.id_type}:#{payload.data.hex()}"


def _id_matches(configured: str | None, got: IdPayload, address: str) -> bool:
    if configured is None or configured == "%any":
        return True
    want = id_payload(configured, address, got.responder)
    return (want.id_type, want.data) == (got.id_type, got.data)


def authenticator_for(sa: IkeSa) -> Authenticator:
    if sa.config is None or sa.prf is None:
        raise ConfigError("IKE_AUTH before IKE_SA_INIT")
    # The member check isinstance(config, AuthenticatorSource) makes, without its cost:
    # typing walks the Protocol's members on every runtime-checkable isinstance.
    if hasattr(sa.config, "authenticator"):
        return cast(AuthenticatorSource, sa.config).authenticator(sa)
    return PskAuthenticator(sa.prf, sa.config.psk)


def _peer_ok(sa: IkeSa, authenticator: Authenticator, peer: IdPayload) -> bool:
    verdict = authenticator.peer_id_ok(peer)
    if verdict is not None:
        return verdict
    return sa.config is not None and _id_matches(sa.config.remote_id, peer, sa.remote[0])


def _find(payloads: list[Payload], cls: type[Payload]) -> Payload | None:
    return next((p for p in payloads if isinstance(p, cls)), None)


class IkeAuth(Task):
    exchange = ExchangeType.IKE_AUTH

    def __init__(self, sa: IkeSa, initiator: bool) -> None:
        super().__init__(sa, initiator)
        self._peer = IdPayload(IdType.IPV4_ADDR, b"")

    @property
    def name(self) -> str:
        return "ike_auth"

    def _octets(self, own_init: bytes, peer_nonce: bytes, sk_p: bytes, ident: IdPayload) -> bytes:
        if self.sa.prf is None:
            raise ConfigError("no PRF negotiated")
        return keymat.signed_octets(own_init, peer_nonce, self.sa.prf, sk_p, ident.body)

    def _own_id(self, authenticator: Authenticator) -> IdPayload:
        sa = self.sa
        own = authenticator.own_id(not self.initiator)
        if own is not None:
            return own
        local_id = sa.config.local_id if sa.config is not None else None
        return id_payload(local_id, sa.local[0], responder=not self.initiator)

    def _established(self, peer: IdPayload, now: float) -> None:
        sa = self.sa
        sa.remote_id = id_text(peer)
        sa.set_state(IkeSaState.ESTABLISHED)
        sa.established_at = now
        sa.ctx.emit(
            IkeSaEstablished(
                sa.name, sa.spi_i, sa.spi_r, sa.local, sa.remote, sa.initiator, sa.remote_id
            )
        )

    # -- initiator ------------------------------------------------------------------

    def build_request(self, out: list[Payload], now: float) -> None:
        sa = self.sa
        if sa.keys is None or sa.config is None:
            raise ConfigError("IKE_AUTH before IKE_SA_INIT")
        authenticator = authenticator_for(sa)
        own = self._own_id(authenticator)
        out.append(own)
        out.extend(authenticator.extra_payloads(True))
        if sa.config.remote_id and sa.config.remote_id != "%any":
            out.append(id_payload(sa.config.remote_id, sa.remote[0], responder=True))
        octets = self._octets(sa.init_request, sa.nonce_r, sa.keys.sk_pi, own)
        out.append(AuthPayload(*authenticator.build_auth(octets)))
        # §2.4: we hold no other IKE SA with this peer, so it may drop stale ones.
        out.append(NotifyPayload(NotifyType.INITIAL_CONTACT))

    def process_response(self, header: IkeHeader, payloads: list[Payload], now: float) -> Status:
        sa = self.sa
        peer = _find(payloads, IdPayload)
        auth = _find(payloads, AuthPayload)
        for p in payloads:
            if (
                isinstance(p, NotifyPayload)
                and p.notify_type < NotifyType.INITIAL_CONTACT
                and p.notify_type not in CHILD_ERRORS
                and (p.notify_type == NotifyType.AUTHENTICATION_FAILED or auth is None)
            ):
                self.fail_notify = p.notify_type
                self.fail_reason = (
                    "auth-failed" if p.notify_type == NotifyType.AUTHENTICATION_FAILED else "failed"
                )
                return Status.FAILED
        # Any other error beside IDr and AUTH concerns the CHILD SA: the responder
        # authenticated, so its IKE SA is up. As strongSwan does by default (no
        # close_ike_on_child_failure), the IKE SA is kept once AUTH verifies below, and
        # the CHILD SA task reports the failure; ending it silently would orphan the
        # peer's (§2.21.3 lists the usual CHILD errors; a TEMPORARY_FAILURE from an
        # older peer is treated the same).
        if not isinstance(peer, IdPayload) or not isinstance(auth, AuthPayload) or sa.keys is None:
            self.fail_reason, self.fail_notify = "failed", NotifyType.INVALID_SYNTAX
            return Status.FAILED
        authenticator = authenticator_for(sa)
        if not _peer_ok(sa, authenticator, peer):
            self.fail_reason, self.fail_notify = "auth-failed", NotifyType.AUTHENTICATION_FAILED
            return Status.FAILED
        octets = self._octets(sa.init_response, sa.nonce_i, sa.keys.sk_pr, peer)
        certs = [p.data for p in payloads if isinstance(p, CertPayload)]
        if not authenticator.verify_auth(auth.method, auth.data, octets, peer, certs):
            self.fail_reason, self.fail_notify = "auth-failed", NotifyType.AUTHENTICATION_FAILED
            return Status.FAILED
        self._established(peer, now)
        return Status.DONE

    # -- responder --------------------------------------------------------------------

    def process_request(self, header: IkeHeader, payloads: list[Payload], now: float) -> None:
        sa = self.sa
        peer = _find(payloads, IdPayload)
        auth = _find(payloads, AuthPayload)
        failed = NotifyError(NotifyType.AUTHENTICATION_FAILED, fatal=True)
        if not isinstance(peer, IdPayload) or not isinstance(auth, AuthPayload):
            raise failed  # EAP is not offered, so AUTH is mandatory (§2.16)
        if sa.keys is None or sa.config is None or peer.responder:
            raise failed
        authenticator = authenticator_for(sa)
        if not _peer_ok(sa, authenticator, peer):
            raise failed
        octets = self._octets(sa.init_request, sa.nonce_r, sa.keys.sk_pi, peer)
        certs = [p.data for p in payloads if isinstance(p, CertPayload)]
        if not authenticator.verify_auth(auth.method, auth.data, octets, peer, certs):
            raise failed
        sa.initial_contact = any(
            isinstance(p, NotifyPayload) and p.notify_type == NotifyType.INITIAL_CONTACT
            for p in payloads
        )
        self._peer = peer

    def build_response(self, out: list[Payload], now: float) -> Status:
        sa = self.sa
        if sa.keys is None:
            raise NotifyError(NotifyType.AUTHENTICATION_FAILED, fatal=True)
        authenticator = authenticator_for(sa)
        own = self._own_id(authenticator)
        out.append(own)
        out.extend(authenticator.extra_payloads(False))
        octets = self._octets(sa.init_response, sa.nonce_i, sa.keys.sk_pr, own)
        out.append(AuthPayload(*authenticator.build_auth(octets)))
        self._established(self._peer, now)
        return Status.DONE

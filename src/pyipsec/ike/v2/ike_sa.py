"""One IKE SA (RFC 7296 §2): SPIs, role, state, keys, message IDs, endpoints, NAT state
and its CHILD SAs.

The states and the moves between them are a table (``IKE_TRANSITIONS``); a move that is
not in it is a bug of the caller (``ConfigError``), never silently accepted. The peer's
mistakes are ``NotifyError``s that the task manager turns into error notifications.

What the engine needs from a connection definition is described by the
``IkeConfigLike``/``ChildConfigLike`` protocols, so ``ike.connection`` (or a test's
stand-in) plugs in without this package knowing its class.
"""

from __future__ import annotations

import contextlib
import os
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from ipaddress import IPv4Address, IPv6Address
from typing import Protocol

from pyipsec.crypto.prf import Prf, prf_by_id
from pyipsec.engine.backend import KeyManagementBackend
from pyipsec.engine.sad import SASpec
from pyipsec.errors import ConfigError, KeyApiError, PyipsecError
from pyipsec.ike.proposals import Proposal, format_proposal
from pyipsec.ike.traffic_selectors import TrafficSelector, TsSpec
from pyipsec.ike.v2 import keymat
from pyipsec.ike.v2.constants import HeaderFlag, IntegId, TransformType
from pyipsec.ike.v2.events import ChildSaDeleted, Endpoint, Event, IkeSaDeleted
from pyipsec.ike.v2.message import IkeHeader, IkeMessage
from pyipsec.ike.v2.payloads import Payload
from pyipsec.ike.v2.sk import (
    SkCipher,
    decrypt_message,
    encr_key_length,
    encrypt_message,
    integ_key_length,
)

# -- configuration seen by the engine -----------------------------------------------


class ChildConfigLike(Protocol):
    """What a CHILD SA definition must offer (swanctl ``children.<name>``)."""

    @property
    def name(self) -> str: ...
    @property
    def esp_proposals(self) -> Sequence[Proposal]: ...
    @property
    def local_ts(self) -> Sequence[TsSpec]: ...
    @property
    def remote_ts(self) -> Sequence[TsSpec]: ...
    @property
    def mode(self) -> str: ...  # "tunnel" | "transport"


class IkeConfigLike(Protocol):
    """What an IKE connection definition must offer (swanctl ``connections.<name>``).

    ``local_addrs``/``remote_addrs`` empty mean "any" (a responder for every peer).
    ``psk`` is the pre-shared key for both directions (certificates come with auth.py).
    """

    @property
    def name(self) -> str: ...
    @property
    def local_addrs(self) -> Sequence[str]: ...
    @property
    def remote_addrs(self) -> Sequence[str]: ...
    @property
    def proposals(self) -> Sequence[Proposal]: ...
    @property
    def local_id(self) -> str | None: ...
    @property
    def remote_id(self) -> str | None: ...
    @property
    def psk(self) -> bytes: ...
    @property
    def children(self) -> Sequence[ChildConfigLike]: ...


# -- errors ------------------------------------------------------------------------------


class NotifyError(PyipsecError):
    """The peer's message is refused with an error notification (RFC 7296 §3.10.1).

    ``fatal`` errors end the IKE SA once the answer is sent (errors in IKE_SA_INIT and
    AUTHENTICATION_FAILED in IKE_AUTH, §2.21.1-§2.21.2).
    """

    def __init__(self, notify_type: int, data: bytes = b"", *, fatal: bool = False) -> None:
        super().__init__(f"notify {notify_type}")
        self.notify_type = notify_type
        self.data = data
        self.fatal = fatal


# -- shared services ---------------------------------------------------------------------


class KeyLogSink(Protocol):
    """Where negotiated keys go when a key log is on (``ike.v2.keylog.KeyLog``)."""

    def ike_sa(self, sa: IkeSa) -> None: ...
    def esp_sa(self, spec: SASpec) -> None: ...


@dataclass(slots=True)
class Datagram:
    """An IKE message to send: ``data`` from ``src`` to ``dst`` (UDP endpoints).

    io/ adds the non-ESP marker when either port is 4500 (RFC 3948 §2.2).
    """

    data: bytes
    src: Endpoint
    dst: Endpoint


@dataclass(slots=True)
class Context:
    """What every IKE SA of one daemon shares: the SAD/SPD, the event and send queues."""

    backend: KeyManagementBackend
    events: deque[Event] = field(default_factory=deque)
    outbox: list[Datagram] = field(default_factory=list)
    reqid_next: int = 1
    nonce_len: int = 32
    # RFC 7383 §2.5.1: the largest IKE message (UDP payload) sent unfragmented, once
    # both peers announced IKEV2_FRAGMENTATION_SUPPORTED; 0 never fragments.
    fragment_size: int = 1280
    keylog: KeyLogSink | None = None  # debugging only: off unless the daemon sets one

    def new_reqid(self) -> int:
        reqid = self.reqid_next
        self.reqid_next += 1
        return reqid

    def emit(self, event: Event) -> None:
        self.events.append(event)


# -- state machines ----------------------------------------------------------------------


class IkeSaState(StrEnum):
    CREATED = "created"  # nothing sent or received yet
    CONNECTING = "connecting"  # IKE_SA_INIT done or under way, not yet authenticated
    ESTABLISHED = "established"
    DELETING = "deleting"  # our Delete is in flight
    DESTROYED = "destroyed"


IKE_TRANSITIONS: dict[IkeSaState, frozenset[IkeSaState]] = {
    IkeSaState.CREATED: frozenset({IkeSaState.CONNECTING, IkeSaState.DESTROYED}),
    IkeSaState.CONNECTING: frozenset({IkeSaState.ESTABLISHED, IkeSaState.DESTROYED}),
    IkeSaState.ESTABLISHED: frozenset({IkeSaState.DELETING, IkeSaState.DESTROYED}),
    IkeSaState.DELETING: frozenset({IkeSaState.DESTROYED}),
    IkeSaState.DESTROYED: frozenset(),
}


class ChildSaState(StrEnum):
    INSTALLED = "installed"
    DELETING = "deleting"
    DELETED = "deleted"


CHILD_TRANSITIONS: dict[ChildSaState, frozenset[ChildSaState]] = {
    ChildSaState.INSTALLED: frozenset({ChildSaState.DELETING, ChildSaState.DELETED}),
    ChildSaState.DELETING: frozenset({ChildSaState.DELETED}),
    ChildSaState.DELETED: frozenset(),
}


@dataclass(slots=True)
class ChildSa:
    """One installed CHILD SA pair (inbound and outbound ESP SA) and its policies."""

    name: str
    reqid: int
    mode: str
    spi_in: int
    spi_out: int
    proposal: Proposal
    local_ts: tuple[TrafficSelector, ...]
    remote_ts: tuple[TrafficSelector, ...]
    local_addr: str
    remote_addr: str
    policies: list[int] = field(default_factory=list)
    state: ChildSaState = ChildSaState.INSTALLED
    # Rekeying (§2.8): a successor exists, so this pair only waits for its Delete.
    rekeyed: bool = False
    # A rekey responder's new outbound SA, held back until the pair it replaces
    # (``replaces_spi``, our inbound SPI of it) is deleted: make before break.
    pending_out: SASpec | None = field(default=None, repr=False)
    replaces_spi: int = 0

    def set_state(self, new: ChildSaState) -> None:
        if new not in CHILD_TRANSITIONS[self.state]:
            raise ConfigError(f"CHILD SA {self.name}: no transition {self.state} -> {new}")
        self.state = new

    @property
    def proposal_text(self) -> str:
        return format_proposal(self.proposal)


# -- the IKE SA --------------------------------------------------------------------------


def new_spi() -> bytes:
    """A random non-zero IKE SPI (§2.6: it must be unique; zero means "unknown")."""
    while True:
        spi = os.urandom(8)
        if any(spi):
            return spi


class IkeSa:
    """The state of one IKE SA; the tasks change it, the task manager drives them."""

    def __init__(
        self,
        ctx: Context,
        *,
        initiator: bool,
        local: Endpoint,
        remote: Endpoint,
        config: IkeConfigLike | None = None,
        spi_i: bytes | None = None,
    ) -> None:
        self.ctx = ctx
        self.initiator = initiator
        self.local = local
        self.remote = remote
        self.config = config
        self.spi_i = spi_i if spi_i is not None else new_spi()
        self.spi_r = new_spi() if not initiator else bytes(8)
        self.state = IkeSaState.CREATED
        self.proposal: Proposal | None = None
        self.prf: Prf | None = None
        self.keys: keymat.IkeSaKeys | None = None
        self.cipher_out: SkCipher | None = None
        self.cipher_in: SkCipher | None = None
        self.nonce_i = b""
        self.nonce_r = b""
        self.init_request = b""  # IKE_SA_INIT messages as sent, for AUTH (§2.15)
        self.init_response = b""
        self.nat_local = False  # we are behind a NAT (§2.23)
        self.nat_remote = False  # the peer is behind a NAT
        self.peer_fragmentation = False
        self.peer_sig_hashes: tuple[int, ...] = ()
        self.remote_id = ""
        self.initial_contact = False  # the peer said it holds no other IKE SA with us
        self.children: dict[int, ChildSa] = {}  # by inbound SPI
        # Virtual IPs (§2.19, tasks/config.py): assigned to us, and leased to the peer.
        self.my_vips: tuple[IPv4Address | IPv6Address, ...] = ()
        self.peer_vips: tuple[IPv4Address | IPv6Address, ...] = ()
        self.mid_out = 0  # ID of our next request (§2.2)
        self.mid_in = 0  # ID of the peer's next request
        self.established_at: float | None = None
        self.last_heard = 0.0

    def __repr__(self) -> str:
        return (
            f"IkeSa({self.name} {self.spi_i.hex()}_i {self.spi_r.hex()}_r "
            f"{'initiator' if self.initiator else 'responder'} {self.state})"
        )

    @property
    def name(self) -> str:
        return self.config.name if self.config is not None else "?"

    @property
    def my_spi(self) -> bytes:
        return self.spi_i if self.initiator else self.spi_r

    @property
    def nat(self) -> bool:
        return self.nat_local or self.nat_remote

    def set_state(self, new: IkeSaState) -> None:
        if new not in IKE_TRANSITIONS[self.state]:
            raise ConfigError(f"IKE SA {self.name}: no transition {self.state} -> {new}")
        self.state = new

    # -- keys (§2.14) --------------------------------------------------------------

    def derive_keys(self, g_ir: bytes, *, skeyseed: bytes | None = None) -> None:
        """SKEYSEED and the seven keys for the chosen proposal; SK ciphers both ways.

        ``skeyseed`` is given when the IKE SA is a rekeyed one (§2.18).
        """
        if self.proposal is None:
            raise ConfigError("no IKE proposal chosen")
        encr = self.proposal.of_type(TransformType.ENCR)[0]
        integs = self.proposal.of_type(TransformType.INTEG)
        integ_id = integs[0].id if integs else IntegId.NONE
        prf = prf_by_id(self.proposal.of_type(TransformType.PRF)[0].id)
        encr_len = encr_key_length(encr.id, encr.key_length)
        integ_len = integ_key_length(integ_id)
        seed = skeyseed or keymat.skeyseed(prf, self.nonce_i, self.nonce_r, g_ir)
        keys = keymat.derive_ike_sa_keys(
            prf, seed, self.nonce_i, self.nonce_r, self.spi_i, self.spi_r, encr_len, integ_len
        )
        cipher_i = SkCipher(encr.id, keys.sk_ei, integ_id, keys.sk_ai)
        cipher_r = SkCipher(encr.id, keys.sk_er, integ_id, keys.sk_ar)
        self.prf, self.keys = prf, keys
        if self.initiator:
            self.cipher_out, self.cipher_in = cipher_i, cipher_r
        else:
            self.cipher_out, self.cipher_in = cipher_r, cipher_i
        if self.ctx.keylog is not None:
            self.ctx.keylog.ike_sa(self)

    # -- messages --------------------------------------------------------------------

    def header(self, exchange: int, message_id: int, response: bool) -> IkeHeader:
        # §3.1: I is set by the original initiator, R on responses.
        flags = HeaderFlag.INITIATOR if self.initiator else 0
        if response:
            flags |= HeaderFlag.RESPONSE
        return IkeHeader(self.spi_i, self.spi_r, exchange, message_id, int(flags))

    def protect(self, header: IkeHeader, payloads: Sequence[Payload]) -> bytes:
        if self.cipher_out is None:
            raise ConfigError("IKE SA has no keys yet")
        return encrypt_message(header, payloads, self.cipher_out)

    def unprotect(self, message: IkeMessage) -> list[Payload]:
        """Inner payloads; IntegrityError (drop) or ParseError (INVALID_SYNTAX)."""
        if self.cipher_in is None:
            raise ConfigError("IKE SA has no keys yet")
        return decrypt_message(message, self.cipher_in)

    # -- teardown ----------------------------------------------------------------------

    def remove_child(self, child: ChildSa, reason: str) -> None:
        """Take a CHILD SA's SAs and policies out of the SAD/SPD."""
        backend = self.ctx.backend
        for dst, spi in ((child.local_addr, child.spi_in), (child.remote_addr, child.spi_out)):
            with contextlib.suppress(KeyApiError):  # already expired or flushed
                backend.del_sa(dst, spi)
        heir = next(
            (
                c
                for c in self.children.values()
                if c is not child and c.reqid == child.reqid and c.state is ChildSaState.INSTALLED
            ),
            None,
        )
        if heir is not None:
            # A newer pair with the same reqid (a replacement) keeps using the policies.
            heir.policies += child.policies
        else:
            for index in child.policies:
                with contextlib.suppress(KeyApiError):
                    backend.del_policy(index)
        child.policies = []
        if child.state is not ChildSaState.DELETED:
            child.set_state(ChildSaState.DELETED)
        self.children.pop(child.spi_in, None)
        self.ctx.emit(
            ChildSaDeleted(child.name, self.name, child.reqid, child.spi_in, child.spi_out, reason)
        )

    def destroy(self, reason: str, notify: int = 0) -> None:
        """The end of this IKE SA and everything it negotiated (§1.4.1)."""
        if self.state is IkeSaState.DESTROYED:
            return
        announced = self.state is not IkeSaState.CREATED
        for child in list(self.children.values()):
            self.remove_child(child, "ike-deleted")
        self.set_state(IkeSaState.DESTROYED)
        if announced:
            self.ctx.emit(IkeSaDeleted(self.name, self.spi_i, self.spi_r, reason, notify))

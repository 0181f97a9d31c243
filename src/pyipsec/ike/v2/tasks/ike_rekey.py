"""IKE SA rekeying (RFC 7296 §1.3.2, §2.8, §2.8.2, §2.18).

Initiator:  HDR(old SA), SK {SA(proposals, SPI = new SPIi), Ni, KEi}  -->
Responder:  <--  HDR(old SA), SK {SA(one proposal, SPI = new SPIr), Nr, KEr}

The new IKE SA has fresh SPIs, message IDs from zero, and keys from
SKEYSEED = prf(SK_d (old), g^ir (new) | Ni | Nr), computed with the old SA's PRF because
the exchange belongs to the old SA (§2.18); prf+ then runs with the new SA's PRF. Its
initiator is the rekey's initiator, whatever the roles of the old one. Authentication
is inherited. The CHILD SAs move to the new IKE SA and the rekey's initiator deletes the
old one (its Delete finds no CHILD SA left to take along).

Collisions (§2.8.2): both ends rekey the IKE SA at once and each answers the other's
request. The new IKE SA whose exchange carried the lowest of the four nonces is
redundant: its initiator deletes it; the CHILD SAs go to the other one, whose initiator
deletes the old IKE SA.

``adopt`` (the manager's) makes a new IKE SA reachable by its SPI; ``retire`` queues the
Delete of an IKE SA on its own task manager.
"""

from __future__ import annotations

import logging
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass

from pyipsec.crypto import dh
from pyipsec.errors import ConfigError, ParseError
from pyipsec.ike.proposals import Proposal, to_payload
from pyipsec.ike.v2 import keymat
from pyipsec.ike.v2.constants import DhId, ExchangeType, NotifyType, ProtocolId, TransformType
from pyipsec.ike.v2.events import IkeSaEstablished
from pyipsec.ike.v2.ike_sa import IkeSa, IkeSaState, NotifyError, new_spi
from pyipsec.ike.v2.message import IkeHeader
from pyipsec.ike.v2.payloads import KePayload, NoncePayload, NotifyPayload, Payload, SaPayload
from pyipsec.ike.v2.task_manager import Status, Task
from pyipsec.ike.v2.tasks import selection

log = logging.getLogger(__name__)
_U16 = struct.Struct("!H")

Adopt = Callable[[IkeSa], None]
Retire = Callable[[IkeSa, float], None]
Requeue = Callable[[Task], None]


@dataclass(frozen=True, slots=True)
class PeerIkeRekey:
    """The IKE SA our answer to the peer's colliding rekey created."""

    sa: IkeSa
    nonce_i: bytes  # the peer's
    nonce_r: bytes  # ours


def is_ike_rekey(payloads: list[Payload]) -> bool:
    """A CREATE_CHILD_SA request whose SA payload offers IKE proposals (§1.3.2)."""
    for p in payloads:
        if isinstance(p, SaPayload):
            return any(prop.protocol_id == ProtocolId.IKE for prop in p.proposals)
    return False


def _one(found: list[Payload], cls: type[Payload]) -> Payload | None:
    got = [p for p in found if isinstance(p, cls)]
    return got[0] if len(got) == 1 else None


def _groups(proposal: Proposal) -> set[int]:
    return {t.id for t in proposal.of_type(TransformType.DH)}


def successor(
    old: IkeSa, *, initiator: bool, spi_i: bytes, spi_r: bytes, proposal: Proposal
) -> IkeSa:
    """A new IKE SA that inherits ``old``'s endpoints, peer and authentication."""
    new = IkeSa(
        old.ctx,
        initiator=initiator,
        local=old.local,
        remote=old.remote,
        config=old.config,
        spi_i=spi_i,
    )
    new.spi_r = spi_r
    new.proposal = proposal
    new.nat_local, new.nat_remote = old.nat_local, old.nat_remote
    new.peer_fragmentation = old.peer_fragmentation
    new.peer_sig_hashes = old.peer_sig_hashes
    new.remote_id = old.remote_id
    return new


def derive(old: IkeSa, new: IkeSa, g_ir: bytes, nonce_i: bytes, nonce_r: bytes) -> None:
    """§2.18 keys of ``new``; the SKEYSEED comes from the old SA's SK_d and PRF."""
    if old.prf is None or old.keys is None:
        raise ConfigError("the IKE SA being rekeyed has no keys")
    new.nonce_i, new.nonce_r = nonce_i, nonce_r
    seed = keymat.rekey_skeyseed(old.prf, old.keys.sk_d, g_ir, nonce_i, nonce_r)
    new.derive_keys(g_ir, skeyseed=seed)


def establish(new: IkeSa, now: float) -> None:
    new.set_state(IkeSaState.CONNECTING)
    new.set_state(IkeSaState.ESTABLISHED)
    new.established_at = now
    new.last_heard = now
    new.ctx.emit(
        IkeSaEstablished(
            new.name, new.spi_i, new.spi_r, new.local, new.remote, new.initiator, new.remote_id
        )
    )


def move_children(src: IkeSa, dst: IkeSa) -> None:
    """§2.18: the CHILD SAs belong to the new IKE SA from now on."""
    dst.children.update(src.children)
    src.children.clear()


class IkeRekey(Task):
    """We rekey ``sa``."""

    exchange = ExchangeType.CREATE_CHILD_SA

    def __init__(
        self, sa: IkeSa, adopt: Adopt, retire: Retire, requeue: Requeue, group: int = 0
    ) -> None:
        super().__init__(sa, True)
        self.adopt, self.retire, self.requeue = adopt, retire, requeue
        self.spi = new_spi()
        self.nonce = b""
        self.offered: tuple[Proposal, ...] = ()
        self.ke: dh.KeyExchange | None = None
        self.group = group  # a group the responder asked for (INVALID_KE_PAYLOAD)
        self.collision: PeerIkeRekey | None = None
        self.new_sa: IkeSa | None = None

    @property
    def name(self) -> str:
        return "ike_rekey"

    def build_request(self, out: list[Payload], now: float) -> None:
        sa = self.sa
        if sa.config is None:
            raise ConfigError("an IKE SA without configuration cannot be rekeyed")
        offered = [p for p in map(selection.supported, sa.config.proposals) if p]
        if not offered:
            raise ConfigError(f"{sa.name}: no IKE proposal we can run")
        if self.group:
            # §1.3: put a proposal with the requested group first.
            offered.sort(
                key=lambda p: self.group not in {t.id for t in p.of_type(TransformType.DH)}
            )
        self.offered = tuple(offered)
        self.nonce = os.urandom(sa.ctx.nonce_len)
        group = self.group or selection.dh_group(self.offered[0])
        self.ke = dh.generate(group)
        out.append(SaPayload([to_payload(p, i + 1, self.spi) for i, p in enumerate(offered)]))
        out.append(NoncePayload(self.nonce))
        out.append(KePayload(group, self.ke.public_bytes()))

    def process_response(self, header: IkeHeader, found: list[Payload], now: float) -> Status:
        sa = self.sa
        for p in found:
            if isinstance(p, NotifyPayload) and p.notify_type < NotifyType.INITIAL_CONTACT:
                return self._refused(p, now)
        answer, nonce, ke = (
            _one(found, SaPayload),
            _one(found, NoncePayload),
            _one(found, KePayload),
        )
        if not (
            isinstance(answer, SaPayload)
            and isinstance(nonce, NoncePayload)
            and isinstance(ke, KePayload)
            and self.ke is not None
        ):
            log.warning("%r: IKE rekey answer without SA, Nr or KEr", sa)
            return Status.DONE
        chosen = selection.check_answer(self.offered, answer)
        spi_r = answer.proposals[0].spi if answer.proposals else b""
        if chosen is None or len(spi_r) != 8 or not any(spi_r):
            log.warning("%r: IKE rekey answer with an unusable proposal", sa)
            return Status.DONE
        if selection.dh_group(chosen) != ke.group or ke.group != self.ke.group:
            log.warning("%r: IKE rekey answer with the wrong key exchange", sa)
            return Status.DONE
        try:
            g_ir = self.ke.shared_secret(ke.data)
        except (ParseError, ConfigError):
            log.warning("%r: IKE rekey answer with a bad KE payload", sa)
            return Status.DONE
        new = successor(sa, initiator=True, spi_i=self.spi, spi_r=spi_r, proposal=chosen)
        derive(sa, new, g_ir, self.nonce, nonce.data)
        self.ke = None
        establish(new, now)
        self.adopt(new)
        self.new_sa = new
        peer = self.collision
        if peer is not None and peer.sa.state is IkeSaState.ESTABLISHED:
            if min(self.nonce, nonce.data) < min(peer.nonce_i, peer.nonce_r):
                # §2.8.2: ours is redundant; the peer deletes the old IKE SA.
                log.info("%r: IKE SA rekey collision lost", sa)
                move_children(new, peer.sa)
                self.retire(new, now)
                return Status.DONE
            log.info("%r: IKE SA rekey collision won", sa)
            move_children(peer.sa, new)
        move_children(sa, new)
        self.retire(sa, now)
        return Status.DONE

    def _refused(self, note: NotifyPayload, now: float) -> Status:
        sa = self.sa
        if note.notify_type == NotifyType.INVALID_KE_PAYLOAD and len(note.data) == 2:
            group = _U16.unpack(note.data)[0]
            offered = set().union(*map(_groups, self.offered)) - {DhId.NONE}
            if group in offered and not self.group:
                # §1.3: a new exchange (the answered message ID is spent) with that group.
                self.requeue(IkeRekey(sa, self.adopt, self.retire, self.requeue, group))
                return Status.DONE
        log.info("%r: IKE SA rekey refused with notify %d", sa, note.notify_type)
        return Status.DONE


class IkeRekeyResponder(Task):
    """The peer rekeys ``sa``; ``active`` are our tasks in flight (collision check)."""

    exchange = ExchangeType.CREATE_CHILD_SA

    def __init__(self, sa: IkeSa, adopt: Adopt, active: list[Task]) -> None:
        super().__init__(sa, False)
        self.adopt = adopt
        self.active = active
        self.chosen: Proposal | None = None
        self.number = 1
        self.peer_spi = b""
        self.peer_nonce = b""
        self.ke: dh.KeyExchange | None = None
        self.g_ir = b""

    @property
    def name(self) -> str:
        return "ike_rekey"

    def process_request(self, header: IkeHeader, found: list[Payload], now: float) -> None:
        sa = self.sa
        if any(not isinstance(t, IkeRekey) for t in self.active):
            # §2.25: a CHILD SA exchange of ours is under way on this IKE SA.
            raise NotifyError(NotifyType.TEMPORARY_FAILURE)
        offer, nonce, ke = _one(found, SaPayload), _one(found, NoncePayload), _one(found, KePayload)
        if not (
            isinstance(offer, SaPayload)
            and isinstance(nonce, NoncePayload)
            and isinstance(ke, KePayload)
        ):
            raise NotifyError(NotifyType.INVALID_SYNTAX)
        if sa.config is None:
            raise NotifyError(NotifyType.NO_PROPOSAL_CHOSEN)
        picked = selection.select(sa.config.proposals, offer.proposals, ProtocolId.IKE)
        if picked is None:
            raise NotifyError(NotifyType.NO_PROPOSAL_CHOSEN)
        chosen, theirs = picked
        if len(theirs.spi) != 8 or not any(theirs.spi):
            raise NotifyError(NotifyType.INVALID_SYNTAX)
        group = selection.dh_group(chosen)
        if ke.group != group:
            raise NotifyError(NotifyType.INVALID_KE_PAYLOAD, _U16.pack(group))
        mine = dh.generate(group)
        try:
            self.g_ir = mine.shared_secret(ke.data)
        except (ParseError, ConfigError):
            raise NotifyError(NotifyType.INVALID_SYNTAX) from None
        self.ke, self.chosen, self.number = mine, chosen, theirs.number
        self.peer_spi, self.peer_nonce = theirs.spi, nonce.data

    def build_response(self, out: list[Payload], now: float) -> Status:
        sa, chosen, ke = self.sa, self.chosen, self.ke
        if chosen is None or ke is None:
            raise NotifyError(NotifyType.NO_PROPOSAL_CHOSEN)
        nonce = os.urandom(sa.ctx.nonce_len)
        new = successor(sa, initiator=False, spi_i=self.peer_spi, spi_r=new_spi(), proposal=chosen)
        derive(sa, new, self.g_ir, self.peer_nonce, nonce)
        out.append(SaPayload([to_payload(chosen, self.number, new.spi_r)]))
        out.append(NoncePayload(nonce))
        out.append(KePayload(ke.group, ke.public_bytes()))
        self.ke = None
        establish(new, now)
        self.adopt(new)
        move_children(sa, new)
        for task in self.active:
            if isinstance(task, IkeRekey):
                task.collision = PeerIkeRekey(new, self.peer_nonce, nonce)
        return Status.DONE

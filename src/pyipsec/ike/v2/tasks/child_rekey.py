"""CHILD SA rekeying (RFC 7296 §1.3.3, §2.8, §2.8.1).

Initiator:  N(REKEY_SA, ESP, our inbound SPI of the old pair), SA, Ni, [KEi,] TSi, TSr  -->
Responder:  <--  SA, Nr, [KEr,] TSi, TSr

A rekey is a CHILD SA creation that names the pair it replaces; the new pair keeps the
old one's reqid, selectors and policies. Make before break, so that no packet is lost
while traffic flows:

1. the responder installs the new inbound SA before it answers, but holds the new
   outbound SA back: the initiator cannot decrypt it before it has the answer;
2. the initiator installs both new SAs on the answer (its outbound switches at once,
   the responder already has the inbound SA) and deletes the old pair (§2.8);
3. the Delete reaches the responder, which removes the old pair and only then installs
   its new outbound SA (``install_pending``). Until then it keeps sending on the old
   pair, which the initiator still accepts.

Collisions (§2.8.1): both ends rekey the same pair at once. Each answers the other's
request, so two new pairs appear. The one whose exchange carried the lowest of the four
nonces is redundant and is deleted by the end that initiated it; the other end (the
initiator of the surviving pair) deletes the old pair. A request to rekey a pair we are
deleting or have already replaced gets TEMPORARY_FAILURE, an unknown one
CHILD_SA_NOT_FOUND (§2.25).
"""

from __future__ import annotations

import contextlib
import logging
import struct
from collections.abc import Callable, MutableSequence
from dataclasses import dataclass

from pyipsec.errors import KeyApiError
from pyipsec.ike.traffic_selectors import TrafficSelector
from pyipsec.ike.v2.constants import NotifyType, ProtocolId
from pyipsec.ike.v2.ike_sa import ChildConfigLike, ChildSa, ChildSaState, IkeSa, NotifyError
from pyipsec.ike.v2.message import IkeHeader
from pyipsec.ike.v2.payloads import NoncePayload, NotifyPayload, Payload
from pyipsec.ike.v2.task_manager import Status, Task
from pyipsec.ike.v2.tasks.child_create import ChildCreate
from pyipsec.ike.v2.tasks.delete import DeleteChild

log = logging.getLogger(__name__)
_SPI = struct.Struct("!I")

Queue = Callable[[Task], None]


@dataclass(frozen=True, slots=True)
class PeerRekey:
    """What we learnt answering the peer's rekey of a pair we are rekeying too."""

    child: ChildSa  # the pair the peer's exchange created
    nonce_i: bytes  # the peer's nonce (it initiated that exchange)
    nonce_r: bytes  # ours


def rekey_notify(payloads: list[Payload]) -> NotifyPayload | None:
    """The REKEY_SA notify of a CREATE_CHILD_SA request, if any (§1.3.3)."""
    for p in payloads:
        if isinstance(p, NotifyPayload) and p.notify_type == NotifyType.REKEY_SA:
            return p
    return None


class ChildRekey(ChildCreate):
    """We rekey ``old``; ``queue`` adds the follow-up Delete to our task manager."""

    def __init__(self, sa: IkeSa, config: ChildConfigLike, old: ChildSa, queue: Queue) -> None:
        super().__init__(sa, True, config, reqid=old.reqid, replaces=old)
        self.old = old
        self.queue_task = queue
        self.collision: PeerRekey | None = None  # set by the peer's colliding rekey
        self.peer_nonce_r = b""

    @property
    def name(self) -> str:
        return "child_rekey"

    def _resolve(self, config: ChildConfigLike) -> tuple[list[TrafficSelector], ...]:
        # §2.8: the new pair protects what the old one did.
        return list(self.old.local_ts), list(self.old.remote_ts)

    def build_request(self, out: list[Payload], now: float) -> None:
        out.append(
            NotifyPayload(
                NotifyType.REKEY_SA, protocol_id=ProtocolId.ESP, spi=_SPI.pack(self.old.spi_in)
            )
        )
        super().build_request(out, now)

    def process_response(self, header: IkeHeader, found: list[Payload], now: float) -> Status:
        nonce = next((p for p in found if isinstance(p, NoncePayload)), None)
        self.peer_nonce_r = nonce.data if nonce is not None else b""
        super().process_response(header, found, now)
        new = self.child
        if new is None:
            # Refused (TEMPORARY_FAILURE, CHILD_SA_NOT_FOUND, ...): the old pair stays;
            # its hard lifetime still ends it if nothing else does.
            return Status.DONE
        new.replaces_spi = self.old.spi_in
        peer = self.collision
        if peer is not None and peer.child.state is ChildSaState.INSTALLED:
            ours = min(self.nonce, self.peer_nonce_r)
            theirs = min(peer.nonce_i, peer.nonce_r)
            if ours < theirs:
                # §2.8.1: our exchange had the lowest nonce: our new pair is redundant
                # and ours to delete; the peer deletes the old pair.
                log.info("%r: CHILD SA rekey collision lost", self.sa)
                self.old.rekeyed = True
                # Never send on the redundant pair: the peer drops its inbound half as
                # soon as our Delete arrives. Until the peer deletes the old pair we keep
                # sending on that; the surviving pair's outbound SA follows it then.
                with contextlib.suppress(KeyApiError):
                    self.sa.ctx.backend.del_sa(new.remote_addr, new.spi_out)
                self.queue_task(DeleteChild(self.sa, new))
                return Status.DONE
            log.info("%r: CHILD SA rekey collision won", self.sa)
        self.old.rekeyed = True
        if self.old.state is ChildSaState.INSTALLED:
            self.queue_task(DeleteChild(self.sa, self.old))
        return Status.DONE


class ChildRekeyResponder(ChildCreate):
    """The peer rekeys one of our pairs. ``active`` are our own tasks in flight (for
    collisions); ``queued`` our waiting tasks, from which a rekey of the same pair is
    dropped: the peer's rekey makes it pointless."""

    def __init__(self, sa: IkeSa, active: list[Task], queued: MutableSequence[Task]) -> None:
        super().__init__(sa, False)
        self.defer_outbound = True
        self.active = active
        self.queued = queued
        self.old: ChildSa | None = None

    @property
    def name(self) -> str:
        return "child_rekey"

    def process_request(self, header: IkeHeader, found: list[Payload], now: float) -> None:
        note = rekey_notify(found)
        if note is None or note.protocol_id != ProtocolId.ESP or len(note.spi) != 4:
            raise NotifyError(NotifyType.INVALID_SYNTAX)
        # The SPI is the one the peer receives on: our outbound SPI of the pair (§1.3.3).
        spi = _SPI.unpack(note.spi)[0]
        old = next((c for c in self.sa.children.values() if c.spi_out == spi), None)
        if old is None:
            raise NotifyError(NotifyType.CHILD_SA_NOT_FOUND, note.spi)
        ours = next((t for t in self.active if isinstance(t, ChildRekey) and t.old is old), None)
        if old.state is not ChildSaState.INSTALLED or (old.rekeyed and ours is None):
            # §2.25: a pair being deleted (or already replaced) is not rekeyed again.
            raise NotifyError(NotifyType.TEMPORARY_FAILURE)
        self.old = old
        self.replaces = old
        super().process_request(header, found, now)

    def build_response(self, out: list[Payload], now: float) -> Status:
        status = super().build_response(out, now)
        new, old = self.child, self.old
        if new is None or old is None:
            return status
        new.replaces_spi = old.spi_in
        ours = next((t for t in self.active if isinstance(t, ChildRekey) and t.old is old), None)
        if ours is not None:
            ours.collision = PeerRekey(new, self.peer_nonce, self.nonce)
        for task in list(self.queued):
            if isinstance(task, ChildRekey) and task.old is old:
                self.queued.remove(task)
        return status


def install_pending(sa: IkeSa, now: float) -> None:
    """Install held-back outbound SAs whose predecessor pair is gone (step 3 above)."""
    for child in list(sa.children.values()):
        spec = child.pending_out
        if spec is None or child.replaces_spi in sa.children:
            continue
        child.pending_out = None
        if child.state is not ChildSaState.INSTALLED:
            continue
        try:
            sa.ctx.backend.add_sa(spec, now)
        except KeyApiError as exc:
            log.warning("%r: new outbound SA of %s not installed: %s", sa, child.name, exc)
            with contextlib.suppress(KeyApiError):
                sa.ctx.backend.del_sa(spec.dst, spec.spi)

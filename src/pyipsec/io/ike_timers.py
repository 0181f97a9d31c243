"""The IKE service's periodic duties: IKE SA lifetimes, rekey retries and DPD.

``IkeService`` calls ``tick(now)`` about once a second (``TICK``) and hands every soft
EXPIRE and IKE event through here. What happens on a tick, per established IKE SA of a
configured connection (``ike.lifetimes`` computes the deadlines):

- ``rekey_time`` (minus a random part of ``rand_time``) reached: rekey the IKE SA
  (RFC 7296 §1.3.2; its CHILD SAs move to the new one). Refused or lost: tried again
  after a short random delay (§2.25), until ``over_time`` after the deadline, when the
  IKE SA is deleted (the hard limit).
- ``reauth_time`` reached: reauthentication, break-before-make (§2.8.3): the IKE SA is
  deleted and the connection initiated afresh once the delete is through.
- A CHILD SA whose soft lifetime fired (the engine's soft EXPIRE started its rekey) and
  that is still not replaced after a random delay is rekeyed again: the peer may have
  answered TEMPORARY_FAILURE (§2.25) or the exchange may have failed.
- DPD (§1.4): ``dpd_delay`` seconds without hearing from the peer send an empty
  INFORMATIONAL. It is answered, or the retransmissions give up, or — sooner — no
  answer within ``dpd_timeout`` (when set; strongSwan uses it for IKEv1 only, we use
  it for IKEv2 as an upper bound on the wait) declares the peer dead. Either way the
  IKE SA and its CHILD SAs are deleted and each child's ``dpd_action`` applies:
  ``clear`` (nothing more), ``trap`` (trap policies: the next packet negotiates again)
  or ``restart`` (initiate at once, and again while the peer stays unreachable).
- ``close_action`` (``on_peer_close``): the peer deleted a CHILD SA, or the IKE SA with
  it, on its own (the manager tells that apart from the end of a rekey or a delete
  crossing ours): ``trap`` installs the trap policies, ``start`` creates it again.

Nothing here opens a socket or reads a clock: the service passes ``now``.
"""

from __future__ import annotations

import logging
import secrets
from typing import TYPE_CHECKING, Any

from pyipsec.engine.events import Expire
from pyipsec.errors import ConfigError
from pyipsec.ike.lifetimes import LifetimeTracker, Pick
from pyipsec.ike.v2.events import IkeSaDeleted
from pyipsec.ike.v2.ike_sa import ChildSa, ChildSaState, IkeSa, IkeSaState
from pyipsec.ike.v2.manager import PeerClose
from pyipsec.ike.v2.task_manager import TaskManager
from pyipsec.ike.v2.tasks.child_rekey import ChildRekey
from pyipsec.ike.v2.tasks.delete import DeleteIke
from pyipsec.ike.v2.tasks.dpd import Dpd

if TYPE_CHECKING:
    from pyipsec.io.ike_service import IkeService

log = logging.getLogger("pyipsec.ike")

TICK = 1.0  # seconds between checks


class IkeTimers:
    """Lifetimes, retries and DPD for the IKE SAs of one ``IkeService``."""

    def __init__(self, service: IkeService, pick: Pick = secrets.randbelow) -> None:
        self.service = service
        self.tracker = LifetimeTracker(pick)
        self._dpd_sent: dict[int, tuple[IkeSa, float]] = {}
        self._reauth: dict[bytes, str | None] = {}  # spi_i -> child to initiate again
        # close_action = start of a closed IKE SA: its spi_i -> the IKE SA started again.
        self._restarted: dict[bytes, IkeSa] = {}
        self.counters = dict.fromkeys(
            ("ike_rekeys", "ike_reauths", "ike_expired", "child_retries", "dpd_sent", "dpd_dead"),
            0,
        )

    # -- the tick -----------------------------------------------------------------------
    def tick(self, now: float) -> None:
        manager = self.service.manager
        sas = manager.ike_sas
        self._restarted.clear()  # the closes of one IKE SA all come in one pump
        alive: list[object] = []
        for sa in sas:
            if sa.state is not IkeSaState.ESTABLISHED:
                continue
            alive.append(sa)
            alive.extend(sa.children.values())
            conn = self.service.connections.get(sa.name)
            if conn is None:
                continue
            tm = manager.task_manager(sa)
            if any(isinstance(t, DeleteIke) for t in (*tm.active, *tm.queued)):
                continue
            self.tracker.track(sa, conn.source, sa.established_at or now)
            if not self._replaced(sa, sas):
                self._lifetime(sa, now)
            if sa.state is IkeSaState.ESTABLISHED:
                self._dpd(sa, tm, conn.source.dpd_delay, conn.source.dpd_timeout, now)
        self._retry_children(sas, now)
        self.tracker.keep_only(alive)
        alive_ids = {id(x) for x in alive}
        for ident in [i for i, (sa, _) in self._dpd_sent.items() if id(sa) not in alive_ids]:
            del self._dpd_sent[ident]

    @staticmethod
    def _replaced(sa: IkeSa, sas: list[IkeSa]) -> bool:
        """A newer IKE SA with the same peer exists: ``sa`` was rekeyed and waits for its
        Delete, it must not be rekeyed itself (§2.18)."""
        up = sa.established_at or 0.0
        return any(
            other is not sa
            and other.state is IkeSaState.ESTABLISHED
            and other.name == sa.name
            and other.remote == sa.remote
            and (other.established_at or 0.0) > up
            for other in sas
        )

    def _lifetime(self, sa: IkeSa, now: float) -> None:
        manager = self.service.manager
        due = self.tracker.due(sa, now)
        if due is None:
            return
        if due == "delete":
            # over_time after the rekey/reauth deadline and still here: the hard limit.
            log.info("%r: IKE SA lifetime over (rekeying never completed), deleting", sa)
            self.counters["ike_expired"] += 1
            self.tracker.forget(sa)
            manager.delete_ike(sa, now)
        elif due == "reauth":
            log.info("%r: reauthenticating (delete, then initiate again)", sa)
            self.counters["ike_reauths"] += 1
            self._reauth[sa.spi_i] = next((c.name for c in sa.children.values()), None)
            self.tracker.forget(sa)
            manager.delete_ike(sa, now)
        else:
            if manager.rekey_ike(sa, now):
                log.info("%r: rekeying the IKE SA", sa)
                self.counters["ike_rekeys"] += 1
            self.tracker.tried(sa, now)

    def _retry_children(self, sas: list[IkeSa], now: float) -> None:
        manager = self.service.manager
        for item in self.tracker.child_retry_due(now):
            owner = next((sa for sa in sas if any(c is item for c in sa.children.values())), None)
            if (
                owner is None
                or not isinstance(item, ChildSa)
                or item.rekeyed
                or item.state is not ChildSaState.INSTALLED
            ):
                self.tracker.done_with_child(item)
                continue
            tm = manager.task_manager(owner)
            if any(isinstance(t, ChildRekey) and t.old is item for t in (*tm.active, *tm.queued)):
                continue  # still under way
            if manager.rekey_child(owner, item, now):
                log.info("%r: CHILD SA %s %08x not rekeyed yet, trying again", owner,
                         item.name, item.spi_in)  # fmt: skip
                self.counters["child_retries"] += 1

    def _dpd(self, sa: IkeSa, tm: TaskManager, delay: float, timeout: float, now: float) -> None:
        if delay <= 0:
            return
        sent = self._dpd_sent.get(id(sa))
        if sent is not None and sent[0] is sa:
            if any(isinstance(t, Dpd) for t in tm.active):
                if timeout > 0 and now - sent[1] >= timeout:
                    log.info("%r: no answer to DPD within dpd_timeout %gs: peer dead", sa, timeout)
                    self.counters["dpd_dead"] += 1
                    self._give_up(tm, now)
                return
            del self._dpd_sent[id(sa)]
        if tm.active or tm.queued or tm.in_flight is not None:
            return
        if now - sa.last_heard >= delay:
            self.service.manager.dpd(sa, now)
            self._dpd_sent[id(sa)] = (sa, now)
            self.counters["dpd_sent"] += 1

    def _give_up(self, tm: TaskManager, now: float) -> None:
        """End the exchange in flight as if its last retransmission went unanswered."""
        flight = tm.in_flight
        if flight is not None:
            flight.sent = tm.settings.tries
            flight.deadline = now
        self.service.manager.handle_timer(now)

    # -- events ----------------------------------------------------------------------------
    def on_expire(self, event: Expire, now: float) -> None:
        """Before the manager starts the rekey of a soft EXPIRE: remember the pair, so a
        rekey that does not happen is tried again."""
        if event.hard:
            return
        for sa in self.service.manager.ike_sas:
            for child in sa.children.values():
                if event.sa.spi in (child.spi_in, child.spi_out):
                    self.tracker.want_rekey(child, now)
                    return

    def on_ike_deleted(self, event: IkeSaDeleted, now: float) -> None:
        """Reauthentication's second half, and the ``dpd_action`` of a dead peer."""
        service = self.service
        conn = service.connections.get(event.name)
        if event.spi_i in self._reauth:
            first = self._reauth.pop(event.spi_i)
            if conn is not None and not self._has_sa(conn.name):
                self._initiate(conn.name, first, "reauthentication")
            return
        if conn is None or event.reason != "timeout" or self._has_sa(conn.name):
            return
        restart = next((c for c in conn.children if c.dpd_action == "restart"), None)
        if restart is not None:
            log.info("%s: peer unreachable, restarting (dpd_action = restart)", conn.name)
            self._initiate(conn.name, restart.name, "restart")
        for child in conn.children:
            if child.dpd_action != "trap" or (conn.name, child.name) in service.traps:
                continue
            log.info("%s/%s: peer unreachable, trap policies installed (dpd_action = trap)",
                     conn.name, child.name)  # fmt: skip
            try:
                service.traps[(conn.name, child.name)] = service.manager.install_trap(
                    conn.name, child.name
                )
            except ConfigError as exc:
                log.error("%s/%s: trap not installed: %s", conn.name, child.name, exc)

    def on_peer_close(self, close: PeerClose, now: float) -> None:
        """swanctl's ``close_action`` for a CHILD SA the peer closed (the manager has
        already left out deletes that end a rekey or cross one of ours): ``trap``
        installs its trap policies, ``start`` creates it again, over the same IKE SA
        when only the CHILD SA went, else over a new one (several CHILD SAs of one
        closed IKE SA share the new IKE SA)."""
        service = self.service
        conn = service.connections.get(close.name)
        child = conn.child(close.child) if conn is not None else None
        if conn is None or child is None:
            return
        what = "IKE SA" if close.ike else "CHILD SA"
        actions = "|".join(sorted(child.close_action)) or "none"
        log.info("%s/%s: %s closed by the peer, close_action = %s", conn.name, child.name,
                 what, actions)  # fmt: skip
        key = (conn.name, child.name)
        if "trap" in child.close_action and key not in service.traps:
            try:
                service.traps[key] = service.manager.install_trap(conn.name, child.name)
            except ConfigError as exc:
                log.error("%s/%s: trap not installed: %s", conn.name, child.name, exc)
        if "start" not in child.close_action:
            return
        manager = service.manager
        reqid = service.traps.get(key, 0)
        if close.ike:
            again = self._restarted.get(close.spi_i)
            if again is not None and again.state is not IkeSaState.DESTROYED:
                manager.create_child(again, child.name, now, reqid=reqid)
                return
            sa = self._initiate(conn.name, child.name, "close_action = start", reqid=reqid)
            if sa is not None:
                self._restarted[close.spi_i] = sa
            return
        sa = next((s for s in manager.ike_sas if s.spi_i == close.spi_i), None)
        if sa is None or sa.state is not IkeSaState.ESTABLISHED:
            self._initiate(conn.name, child.name, "close_action = start", reqid=reqid)
            return
        try:
            manager.create_child(sa, child.name, now, reqid=reqid)
        except ConfigError as exc:
            log.error("%s/%s: not started again: %s", conn.name, child.name, exc)

    def _has_sa(self, name: str) -> bool:
        return any(
            sa.name == name and sa.state is not IkeSaState.DESTROYED
            for sa in self.service.manager.ike_sas
        )

    def _initiate(self, name: str, child: str | None, why: str, *, reqid: int = 0) -> IkeSa | None:
        service = self.service
        conn = service.connections.get(name)
        if conn is None:
            return None
        try:
            local, remote = service.endpoints(conn)
            return service.manager.initiate(
                name, service.loop.time(), local=local, remote=remote, child=child, reqid=reqid
            )
        except ConfigError as exc:
            log.error("%s: %s failed: %s", name, why, exc)
            return None

    # -- status ----------------------------------------------------------------------------
    def status(self, sa: IkeSa, now: float) -> dict[str, Any]:
        """Seconds to this IKE SA's rekey, reauthentication and hard end (None: never)."""
        conn = self.service.connections.get(sa.name)
        if conn is None or sa.state is not IkeSaState.ESTABLISHED:
            return {}
        d = self.tracker.track(sa, conn.source, sa.established_at or now)
        return {
            "rekey_in": None if d.rekey is None else d.rekey - now,
            "reauth_in": None if d.reauth is None else d.reauth - now,
            "expires_in": None if d.delete is None else d.delete - now,
        }

"""The kernel's xfrm multicasts as our engine events, and a record of what we installed.

``KernelEvents`` turns what a NETLINK_XFRM socket subscribed to XFRMNLGRP_ACQUIRE,
EXPIRE, SA and POLICY receives into the events the embedded engine emits (``Acquire``,
``Expire``, ``SaAdded``, ``SaDeleted``, ``PolicyAdded``, ``PolicyDeleted``), so the
PF_KEY and xfrm servers (and IKE) see the same stream whichever data plane runs:

- a change our own servers made comes back as its notification, which is how
  ``PfkeyServer`` recognises (and skips) the change it has already announced, as it does
  with the engine's events;
- a change made by someone else (``ip xfrm``, another key manager) reaches PF_KEY and
  xfrm.sock clients as it would on a kernel's own PF_KEY/netlink sockets.

The kernel notifies a flush once (FLUSHSA/FLUSHPOLICY) where the engine emits one event
per object removed, and says nothing but EXPIRE when a hard limit deletes a state
(``xfrm_timer_handler``: ``km_state_expired`` then ``__xfrm_state_delete``). To give the
engine's per-object events, ``KernelEvents`` keeps the set of SAs and policies it knows
(seeded from a dump, kept by the notifications) and expands a flush or a hard EXPIRE
into the objects it removed.

``Installed`` is a ``KeyManagementBackend`` in front of another that remembers which SAs
and policies were created through it, so a daemon can remove what it installed, and only
that, when it stops (the choice strongSwan makes for the CHILD_SAs it negotiated).

Nothing here opens a socket: messages in, events out (the daemon does the reading).
"""

from __future__ import annotations

import errno
import ipaddress
import logging
from collections.abc import Iterable

from pyipsec.engine.backend import KeyManagementBackend
from pyipsec.engine.events import (
    Event,
    Expire,
    IPAddress,
    PolicyAdded,
    PolicyDeleted,
    SaAdded,
    SaDeleted,
    SaId,
)
from pyipsec.engine.sad import SadEntry, SASpec
from pyipsec.engine.spd import Policy, Selector
from pyipsec.errors import KeyApiError, PyipsecError
from pyipsec.io.kernel_backend import acquire_from_message, expire_from_message
from pyipsec.keyapi import xfrm_const as c
from pyipsec.keyapi.xfrm import XfrmMessage
from pyipsec.keyapi.xfrm_convert import DIR_NAMES, PROTO_NAMES
from pyipsec.keyapi.xfrm_layout import addr_str
from pyipsec.keyapi.xfrm_structs import (
    UserpolicyId,
    UserpolicyInfo,
    UsersaFlush,
    UsersaId,
    UsersaInfo,
)

log = logging.getLogger("pyipsec.kernel")

# The multicast groups a kernel-backed daemon listens to.
GROUPS = (c.XFRMNLGRP_ACQUIRE, c.XFRMNLGRP_EXPIRE, c.XFRMNLGRP_SA, c.XFRMNLGRP_POLICY)


def _sa_id(daddr: bytes, spi: int, family: int, proto: int) -> SaId | None:
    name = PROTO_NAMES.get(proto)
    if name is None:
        return None  # IPv6 route optimisation states and the like: not ours to report
    return SaId(ipaddress.ip_address(addr_str(daddr, family)), spi, name)


def _state_id(info: UsersaInfo) -> SaId | None:
    return _sa_id(info.id.daddr, info.id.spi, info.family, info.id.proto)


class KernelEvents:
    """Kernel xfrm notifications -> engine events, with the SAs/policies known so far."""

    def __init__(self) -> None:
        self.sas: set[SaId] = set()
        self.policies: dict[int, str] = {}  # index -> direction

    def seed(self, sas: Iterable[SaId], policies: Iterable[Policy]) -> None:
        """Start from the kernel's current SAD/SPD (after a dump; again after an overrun)."""
        self.sas = set(sas)
        self.policies = {p.index: p.direction for p in policies}

    def convert(self, msg: XfrmMessage) -> list[Event]:
        """The events one kernel message stands for (none for what we do not model).

        Raises ``PyipsecError`` for a message whose body does not match its type."""
        t = msg.type
        if t == c.XFRM_MSG_ACQUIRE:
            return [acquire_from_message(msg)]
        if t == c.XFRM_MSG_EXPIRE:
            expire = expire_from_message(msg)
            return [expire, *self._expired(expire)]
        if t in (c.XFRM_MSG_NEWSA, c.XFRM_MSG_UPDSA):
            return self._sa_added(msg)
        if t == c.XFRM_MSG_DELSA:
            return self._sa_deleted(msg)
        if t == c.XFRM_MSG_FLUSHSA:
            return self._sa_flushed(msg)
        if t in (c.XFRM_MSG_NEWPOLICY, c.XFRM_MSG_UPDPOLICY):
            return self._policy_added(msg)
        if t == c.XFRM_MSG_DELPOLICY:
            return self._policy_deleted(msg)
        if t == c.XFRM_MSG_FLUSHPOLICY:
            return self._policies_flushed()
        return []

    # -- SAs ------------------------------------------------------------------------------
    def _expired(self, expire: Expire) -> list[Event]:
        # A hard expiry deletes the state without a DELSA notification.
        if expire.hard and expire.sa in self.sas:
            self.sas.discard(expire.sa)
            return [SaDeleted(expire.sa, "expired")]
        return []

    def _sa_added(self, msg: XfrmMessage) -> list[Event]:
        info = msg.body
        if not isinstance(info, UsersaInfo):
            raise KeyApiError(errno.EINVAL, f"{msg.name} without xfrm_usersa_info")
        sa = _state_id(info)
        if sa is None:
            return []
        known = sa in self.sas
        self.sas.add(sa)
        # UPDSA completes a larval state (GETSPI then UPDATE): the engine's "update".
        return [SaAdded(sa, msg.type == c.XFRM_MSG_UPDSA or known)]

    def _sa_deleted(self, msg: XfrmMessage) -> list[Event]:
        # xfrm_notify_sa: DELSA carries xfrm_usersa_id, the whole state in XFRMA_SA.
        body = msg.body
        if isinstance(body, UsersaId):
            sa = _sa_id(body.daddr, body.spi, body.family, body.proto)
        elif isinstance(body, UsersaInfo):
            sa = _state_id(body)
        else:
            raise KeyApiError(errno.EINVAL, "DELSA without xfrm_usersa_id")
        if sa is None:
            return []
        self.sas.discard(sa)
        return [SaDeleted(sa, "deleted")]

    def _sa_flushed(self, msg: XfrmMessage) -> list[Event]:
        body = msg.body
        proto = body.proto if isinstance(body, UsersaFlush) else 0
        # xfrm_id_proto_match: 0 and IPSEC_PROTO_ANY mean every IPsec protocol.
        name = None if proto in (0, c.IPSEC_PROTO_ANY) else PROTO_NAMES.get(proto)
        gone = sorted(
            (sa for sa in self.sas if name is None or sa.proto == name),
            key=lambda s: (s.dst.version, s.dst, s.spi, s.proto),
        )
        self.sas.difference_update(gone)
        return [SaDeleted(sa, "flushed") for sa in gone]

    # -- policies ---------------------------------------------------------------------------
    def _policy_added(self, msg: XfrmMessage) -> list[Event]:
        info = msg.body
        if not isinstance(info, UserpolicyInfo):
            raise KeyApiError(errno.EINVAL, f"{msg.name} without xfrm_userpolicy_info")
        direction = DIR_NAMES.get(info.dir)
        if direction is None:
            return []  # a per-socket policy: outside the SPD we model
        known = info.index in self.policies
        self.policies[info.index] = direction
        return [PolicyAdded(info.index, msg.type == c.XFRM_MSG_UPDPOLICY or known)]

    def _policy_deleted(self, msg: XfrmMessage) -> list[Event]:
        # xfrm_notify_policy: DELPOLICY carries xfrm_userpolicy_id (index or selector);
        # the whole policy, index included, is in XFRMA_POLICY.
        info = msg.get(c.XFRMA_POLICY)
        if isinstance(info, UserpolicyInfo):
            index, direction = info.index, info.dir
        elif isinstance(msg.body, UserpolicyId):
            index, direction = msg.body.index, msg.body.dir
        else:
            raise KeyApiError(errno.EINVAL, "DELPOLICY without xfrm_userpolicy_id")
        if direction not in DIR_NAMES or not index:
            return []
        self.policies.pop(index, None)
        return [PolicyDeleted(index, "deleted")]

    def _policies_flushed(self) -> list[Event]:
        gone = sorted(self.policies)
        self.policies.clear()
        return [PolicyDeleted(index, "flushed") for index in gone]


class Installed:
    """A ``KeyManagementBackend`` that remembers what was created through it.

    ``sas``/``policies`` hold what this daemon installed and has not seen removed;
    ``forget`` (an event hook) drops what the kernel reports gone, whoever removed it.
    """

    def __init__(self, backend: KeyManagementBackend) -> None:
        self.backend = backend
        self.sas: set[SaId] = set()
        self.policies: set[int] = set()

    # -- bookkeeping ----------------------------------------------------------------------
    def forget(self, event: Event) -> None:
        if isinstance(event, SaDeleted):
            self.sas.discard(event.sa)
        elif isinstance(event, PolicyDeleted):
            self.policies.discard(event.index)

    def remove_all(self) -> tuple[int, int]:
        """Delete every SA and policy still recorded; ``(sas, policies)`` removed.

        One that is already gone is skipped; a refusal is logged, never raised (this
        runs while the daemon stops)."""
        removed_sas = removed_policies = 0
        for index in sorted(self.policies):
            try:
                self.backend.del_policy(index)
                removed_policies += 1
            except PyipsecError as exc:
                log.debug("policy %d not removed: %s", index, exc)
        for sa in sorted(self.sas, key=lambda s: (s.dst.version, s.dst, s.spi, s.proto)):
            try:
                self.backend.del_sa(sa.dst, sa.spi, sa.proto)
                removed_sas += 1
            except PyipsecError as exc:
                log.debug("SA %s not removed: %s", sa, exc)
        self.sas.clear()
        self.policies.clear()
        return removed_sas, removed_policies

    # -- KeyManagementBackend ---------------------------------------------------------------
    def get_spi(
        self,
        src: str | IPAddress,
        dst: str | IPAddress,
        now: float,
        *,
        proto: str = "esp",
        mode: str = "tunnel",
        reqid: int = 0,
        spi_min: int = 0x100,
        spi_max: int = 0xFFFFFFFF,
    ) -> int:
        spi = self.backend.get_spi(
            src, dst, now, proto=proto, mode=mode, reqid=reqid, spi_min=spi_min, spi_max=spi_max
        )
        self.sas.add(SaId(ipaddress.ip_address(dst), spi, proto))
        return spi

    def add_sa(self, spec: SASpec, now: float) -> SadEntry:
        return self._install_sa(spec, now, update=False)

    def update_sa(self, spec: SASpec, now: float) -> SadEntry:
        return self._install_sa(spec, now, update=True)

    def _install_sa(self, spec: SASpec, now: float, *, update: bool) -> SadEntry:
        try:
            install = self.backend.update_sa if update else self.backend.add_sa
            entry = install(spec, now)
        except KeyApiError as exc:
            # PF_KEY can only return the errno; the words ("this kernel cannot run ESP
            # with ...") are for the administrator, so they go to the log. No key in them.
            log.warning("SA %s spi 0x%08x to %s refused: %s", spec.proto, spec.spi, spec.dst, exc)
            raise
        self.sas.add(entry.id)
        return entry

    def del_sa(self, dst: str | IPAddress, spi: int, proto: str = "esp") -> SadEntry:
        entry = self.backend.del_sa(dst, spi, proto)
        self.sas.discard(entry.id)
        return entry

    def get_sa(self, dst: str | IPAddress, spi: int, proto: str = "esp") -> SadEntry:
        return self.backend.get_sa(dst, spi, proto)

    def flush_sa(self, proto: str | None = None) -> int:
        count = self.backend.flush_sa(proto)
        self.sas = {sa for sa in self.sas if proto is not None and sa.proto != proto}
        return count

    def dump_sa(self) -> list[SadEntry]:
        return self.backend.dump_sa()

    def add_policy(self, policy: Policy) -> int:
        index = self.backend.add_policy(policy)
        self.policies.add(index)
        return index

    def update_policy(self, policy: Policy) -> int:
        index = self.backend.update_policy(policy)
        self.policies.add(index)
        return index

    def del_policy(self, index: int) -> Policy:
        policy = self.backend.del_policy(index)
        self.policies.discard(index)
        return policy

    def del_policy_by_selector(self, direction: str, selector: Selector) -> Policy:
        policy = self.backend.del_policy_by_selector(direction, selector)
        self.policies.discard(policy.index)
        return policy

    def get_policy(self, index: int) -> Policy:
        return self.backend.get_policy(index)

    def flush_policy(self, direction: str | None = None) -> int:
        doomed = None
        if direction is not None:
            doomed = {p.index for p in self.backend.dump_policy() if p.direction == direction}
        count = self.backend.flush_policy(direction)
        if doomed is None:
            self.policies.clear()
        else:
            self.policies -= doomed
        return count

    def dump_policy(self) -> list[Policy]:
        return self.backend.dump_policy()

    def next_event(self) -> Event | None:
        return self.backend.next_event()

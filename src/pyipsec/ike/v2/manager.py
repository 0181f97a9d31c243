"""The sans-I/O top of the IKEv2 daemon: every IKE SA, routed by SPI.

The shape is aioquic's: ``receive_datagram(data, local, remote, now)`` feeds one UDP
payload in (io/ has already stripped the non-ESP marker of port 4500, RFC 3948 §2.2),
``datagrams_to_send(now)`` says what to send, ``get_timer()``/``handle_timer(now)``
drive retransmissions and timeouts, ``next_event()`` reports what happened. Nothing
here reads a clock or touches a socket.

Routing (RFC 7296 §2.1, §2.6): an IKE_SA_INIT request with a zero responder SPI is a
new IKE SA, or a retransmission of one we answered (same initiator SPI and address);
anything else is found by our own SPI, which is SPIr when the I flag says the peer is
the original initiator, SPIi otherwise. Unknown SPIs and malformed messages are
dropped (§2.21); when more than ``cookie_threshold`` IKE SAs are half open, new ones
must return a COOKIE first (§2.6), which costs us no state.
"""

from __future__ import annotations

import contextlib
import logging
import struct
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address, ip_address
from itertools import islice

from pyipsec.engine.backend import KeyManagementBackend
from pyipsec.engine.events import Acquire, Expire
from pyipsec.engine.spd import Policy, Selector, Template
from pyipsec.errors import ConfigError, KeyApiError, ParseError
from pyipsec.ike.pools import PoolSet
from pyipsec.ike.traffic_selectors import TrafficSelector, resolve
from pyipsec.ike.v2 import peer_config
from pyipsec.ike.v2.constants import ExchangeType, HeaderFlag, NotifyType
from pyipsec.ike.v2.events import ChildSaDeleted, Endpoint, Event, IkeSaDeleted
from pyipsec.ike.v2.ike_sa import (
    ChildConfigLike,
    ChildSa,
    ChildSaState,
    Context,
    Datagram,
    IkeConfigLike,
    IkeSa,
    IkeSaState,
    NotifyError,
)
from pyipsec.ike.v2.message import (
    IkeHeader,
    IkeMessage,
    InvalidMajorVersion,
    build_message,
    parse_message,
)
from pyipsec.ike.v2.payloads import IdPayload, NotifyPayload, Payload
from pyipsec.ike.v2.task_manager import RetransmitSettings, Task, TaskManager
from pyipsec.ike.v2.tasks.child_create import ChildCreate
from pyipsec.ike.v2.tasks.child_rekey import (
    ChildRekey,
    ChildRekeyResponder,
    install_pending,
    rekey_notify,
)
from pyipsec.ike.v2.tasks.config import ConfigTask, release_virtual_ips, wanted_vips
from pyipsec.ike.v2.tasks.delete import DeleteChild, DeleteIke, Informational
from pyipsec.ike.v2.tasks.dpd import Dpd
from pyipsec.ike.v2.tasks.ike_auth import IkeAuth
from pyipsec.ike.v2.tasks.ike_init import CookieJar, IkeInit, request_nonce
from pyipsec.ike.v2.tasks.ike_rekey import IkeRekey, IkeRekeyResponder, is_ike_rekey

log = logging.getLogger(__name__)
# The fixed part of the IKE header (§3.1), read without checking the version.
_RAW_HEADER = struct.Struct("!8s8sBBBBI")

IKE_PORT = 500
NATT_PORT = 4500


@dataclass(frozen=True, slots=True)
class ManagerSettings:
    retransmit: RetransmitSettings = field(default_factory=RetransmitSettings)
    cookie_threshold: int = 30  # half-open IKE SAs before COOKIEs are demanded (§2.6)
    half_open_timeout: float = 30.0  # seconds a responder waits for IKE_AUTH
    nonce_len: int = 32
    # Unauthenticated error answers (INVALID_IKE_SPI, INVALID_MAJOR_VERSION) per second,
    # and as a burst: §2.21.4 asks that they be rate-limited.
    error_rate: float = 10.0


@dataclass(frozen=True, slots=True)
class PeerClose:
    """The peer closed a CHILD SA (``ike`` False) or the IKE SA that held it (True) on
    its own initiative: not as part of a rekey, nor crossing a delete of ours. What the
    CHILD SA's ``close_action`` is for (swanctl.conf(5))."""

    name: str  # the connection
    child: str  # the CHILD SA's configuration name
    reqid: int
    ike: bool
    spi_i: bytes  # the IKE SA it belonged to


class IkeManager:
    """All IKE SAs of one daemon, over one key-management backend."""

    def __init__(
        self,
        backend: KeyManagementBackend,
        configs: Sequence[IkeConfigLike] = (),
        settings: ManagerSettings | None = None,
    ) -> None:
        self.settings = settings or ManagerSettings()
        self.ctx = Context(backend, nonce_len=self.settings.nonce_len)
        self.configs: dict[str, IkeConfigLike] = {}
        for config in configs:
            self.add_config(config)
        self._sas: dict[bytes, TaskManager] = {}  # by our SPI
        self._half_open: dict[tuple[bytes, str, int], TaskManager] = {}
        self._created: dict[bytes, float] = {}  # responder SAs not yet authenticated
        self.cookies = CookieJar()
        self.pools = PoolSet()  # virtual IPs for connections with ``pools`` (§2.19)
        self.dropped = 0
        self._traps: dict[int, tuple[str, str, list[int]]] = {}  # reqid -> conn, child, policies
        self._error_tokens = self.settings.error_rate
        self._error_time = 0.0
        self.errors_sent = 0
        self._closes: deque[PeerClose] = deque()

    def add_config(self, config: IkeConfigLike) -> None:
        self.configs[config.name] = config

    # -- the sans-I/O interface ------------------------------------------------------

    def initiate(
        self,
        name: str,
        now: float,
        *,
        local: Endpoint | None = None,
        remote: Endpoint | None = None,
        child: str | None = None,
        packet_ts: tuple[TrafficSelector, TrafficSelector] | None = None,
        reqid: int = 0,
    ) -> IkeSa:
        """Start connection ``name``: IKE_SA_INIT, IKE_AUTH and a CHILD SA (``child``, or
        the first one configured) in it."""
        config = self.configs.get(name)
        if config is None:
            raise ConfigError(f"no connection named {name!r}")
        if local is None:
            if not config.local_addrs:
                raise ConfigError(f"connection {name!r} has no local address to initiate from")
            local = (config.local_addrs[0], IKE_PORT)
        if remote is None:
            if not config.remote_addrs:
                raise ConfigError(f"connection {name!r} has no remote address to initiate to")
            remote = (config.remote_addrs[0], IKE_PORT)
        sa = IkeSa(self.ctx, initiator=True, local=local, remote=remote, config=config)
        tm = self._task_manager(sa)
        for task in self._initiator_tasks(sa, child, packet_ts, reqid):
            tm.queue(task)
        self._sas[sa.my_spi] = tm
        tm.initiate(now)
        return sa

    def receive_datagram(self, data: bytes, local: Endpoint, remote: Endpoint, now: float) -> None:
        """One UDP payload from ``remote`` to ``local``; never raises for bad input."""
        try:
            message = parse_message(data)
        except InvalidMajorVersion:
            # §2.5: drop it, and say (rate-limited) which major version we speak.
            self.dropped += 1
            self._error_answer(data, NotifyType.INVALID_MAJOR_VERSION, local, remote, now)
            return
        except ParseError:
            self.dropped += 1  # §2.21: unauthenticated garbage is dropped silently
            return
        header = message.header
        if (
            header.exchange_type == ExchangeType.IKE_SA_INIT
            and not header.is_response
            and not any(header.spi_r)
        ):
            self._init_request(message, local, remote, now)
            return
        # The I flag says who started the IKE SA: if the peer did, our SPI is SPIr.
        my_spi = header.spi_r if header.is_initiator else header.spi_i
        tm = self._sas.get(my_spi)
        if tm is None or tm.sa.initiator == header.is_initiator or tm.sa.spi_i != header.spi_i:
            self.dropped += 1
            if tm is None and message.encrypted is not None:
                # §2.21.4/§1.5: an encrypted request for an IKE SA we do not know (we may
                # have lost our state): a hint to the peer, never for a response.
                self._error_answer(data, NotifyType.INVALID_IKE_SPI, local, remote, now)
            return
        sa = tm.sa
        if any(sa.spi_r) and sa.spi_r != header.spi_r:
            self.dropped += 1
            return
        if sa.initiator and not any(sa.spi_r) and header.exchange_type != ExchangeType.IKE_SA_INIT:
            self.dropped += 1
            return
        if sa.nat and local[1] == NATT_PORT and remote[0] == sa.remote[0] and remote != sa.remote:
            # §2.23: with a NAT the peer moves to port 4500 after IKE_SA_INIT; answer (and
            # encapsulate ESP) where it sends from now.
            sa.local, sa.remote = local, remote
        watch = None
        if header.exchange_type == ExchangeType.INFORMATIONAL and not header.is_response:
            watch = _CloseWatch.of(tm)
        mark = len(self.ctx.events)
        tm.process_message(message, now)
        if watch is not None:
            self._closes.extend(watch.closes(sa, islice(self.ctx.events, mark, None)))
        install_pending(sa, now)
        self._settle(tm)

    def next_close(self) -> PeerClose | None:
        """The next CHILD SA the peer closed on its own (for ``close_action``)."""
        return self._closes.popleft() if self._closes else None

    def datagrams_to_send(self, now: float) -> list[Datagram]:
        out = self.ctx.outbox
        self.ctx.outbox = []
        return out

    def get_timer(self) -> float | None:
        times = [t for t in (tm.get_timer() for tm in self._sas.values()) if t is not None]
        times.extend(t + self.settings.half_open_timeout for t in self._created.values())
        return min(times) if times else None

    def handle_timer(self, now: float) -> None:
        for spi, tm in list(self._sas.items()):
            tm.handle_timer(now)
            created = self._created.get(spi)
            if (
                created is not None
                and now >= created + self.settings.half_open_timeout
                and tm.sa.state is not IkeSaState.ESTABLISHED
            ):
                tm.sa.destroy("timeout")
            self._settle(tm)
            tm.initiate(now)

    def next_event(self) -> Event | None:
        return self.ctx.events.popleft() if self.ctx.events else None

    # -- commands on established IKE SAs ---------------------------------------------

    def create_child(
        self,
        sa: IkeSa,
        child: str,
        now: float,
        *,
        packet_ts: tuple[TrafficSelector, TrafficSelector] | None = None,
        reqid: int = 0,
    ) -> None:
        """Another CHILD SA over ``sa`` (CREATE_CHILD_SA, §1.3.1)."""
        if sa.config is None:
            raise ConfigError("IKE SA without configuration")
        tm = self.task_manager(sa)
        config = _child_config(sa.config, child)
        tm.queue(ChildCreate(sa, True, config, packet_ts=packet_ts, reqid=reqid))
        tm.initiate(now)

    def rekey_child(self, sa: IkeSa, child: ChildSa, now: float) -> bool:
        """Rekey ``child`` (§1.3.3, make before break); False if that is under way already
        or the pair is on its way out."""
        if sa.config is None or sa.state is not IkeSaState.ESTABLISHED:
            return False
        if child.rekeyed or child.state is not ChildSaState.INSTALLED:
            return False
        tm = self.task_manager(sa)
        for task in (*tm.active, *tm.queued):
            if (isinstance(task, ChildRekey) and task.old is child) or (
                isinstance(task, DeleteChild) and task.child is child
            ):
                return False
        config = _child_config(sa.config, child.name)
        tm.queue(ChildRekey(sa, config, child, tm.queue))
        tm.initiate(now)
        return True

    def rekey_ike(self, sa: IkeSa, now: float) -> bool:
        """Rekey the IKE SA itself (§1.3.2): new SPIs and keys, CHILD SAs move over."""
        if sa.config is None or sa.state is not IkeSaState.ESTABLISHED:
            return False
        tm = self.task_manager(sa)
        if any(isinstance(t, IkeRekey) for t in (*tm.active, *tm.queued)):
            return False
        tm.queue(IkeRekey(sa, self._adopt, self._retire, tm.queue))
        tm.initiate(now)
        return True

    def _adopt(self, sa: IkeSa) -> None:
        """A rekeyed IKE SA's successor becomes reachable by its own SPI."""
        self._sas[sa.my_spi] = self._task_manager(sa)

    def _retire(self, sa: IkeSa, now: float) -> None:
        """Delete an IKE SA replaced by rekeying; what was still queued on it is dropped."""
        tm = self._sas.get(sa.my_spi)
        if tm is None or tm.sa is not sa:
            return
        tm.queued.clear()
        tm.queue(DeleteIke(sa))
        if not tm.active:  # else the exchange under way ends first, then this starts
            tm.initiate(now)

    # -- the engine's events: trap policies, expiry ---------------------------------------

    def install_trap(self, name: str, child: str) -> int:
        """Out policies for ``child`` that make the engine ACQUIRE on first traffic.

        Returns the reqid the trap and the CHILD SAs it triggers share. ``dynamic`` is
        the IKE address on both sides, also for a connection with ``vips``: no virtual
        IP exists before the IKE SA does (strongSwan's trap manager does the same).
        The first packet, from the physical address, negotiates; the responder narrows
        TSi to the leased address (§2.19), the CHILD SA's policies cover it and the trap
        stays for the physical address (its later ACQUIREs find the CHILD SA).
        """
        config = self.configs.get(name)
        if config is None or not config.local_addrs or not config.remote_addrs:
            raise ConfigError(f"connection {name!r} cannot be trapped (needs both addresses)")
        child_config = _child_config(config, child)
        me, peer = config.local_addrs[0], config.remote_addrs[0]
        local = resolve(child_config.local_ts, [_ip(me)])
        remote = resolve(child_config.remote_ts, [_ip(peer)])
        reqid = self.ctx.new_reqid()
        tunnel = child_config.mode == "tunnel"
        template = Template(
            mode=child_config.mode,
            src=me if tunnel else None,
            dst=peer if tunnel else None,
            reqid=reqid,
        )
        selectors = [
            Selector(lnet, rnet)
            for lts in local
            for rts in remote
            if lts.version == rts.version
            for lnet in lts.networks()
            for rnet in rts.networks()
        ]
        indices: list[int] = []
        for selector in selectors:
            policy = Policy("out", selector, priority=1100, templates=[template])
            try:
                indices.append(self.ctx.backend.add_policy(policy))
            except KeyApiError as exc:
                # Refused (a policy with these selectors exists): all or nothing.
                for index in indices:
                    with contextlib.suppress(KeyApiError):
                        self.ctx.backend.del_policy(index)
                where = f"{selector.src} -> {selector.dst}"
                raise ConfigError(f"trap policy {where} refused: {exc}") from None
        self._traps[reqid] = (name, child_config.name, indices)
        return reqid

    def uninstall_trap(self, reqid: int) -> None:
        trap = self._traps.pop(reqid, None)
        if trap is None:
            raise ConfigError(f"no trap with reqid {reqid}")
        for index in trap[2]:
            self.ctx.backend.del_policy(index)

    def handle_engine_event(self, event: object, now: float) -> None:
        """React to the backend's ACQUIRE (negotiate) and EXPIRE (replace or forget)."""
        if isinstance(event, Acquire):
            self._acquire(event, now)
        elif isinstance(event, Expire):
            self._expire(event, now)

    def _acquire(self, event: Acquire, now: float) -> None:
        trap = self._traps.get(event.template.reqid)
        if trap is None:
            return  # not ours (a policy someone else installed)
        name, child, _ = trap
        # §2.9: the packet's own selectors go first so the responder can pick its policy.
        packet_ts = (TrafficSelector.host(event.flow_src), TrafficSelector.host(event.flow_dst))
        reqid = event.template.reqid
        for tm in self._sas.values():
            sa = tm.sa
            if sa.name != name or sa.state not in (IkeSaState.CONNECTING, IkeSaState.ESTABLISHED):
                continue
            if any(c.reqid == reqid for c in sa.children.values()) or any(
                isinstance(t, ChildCreate) and t.reqid == reqid for t in (*tm.queued, *tm.active)
            ):
                return  # already there or on its way
            if sa.initiator or sa.state is IkeSaState.ESTABLISHED:
                self.create_child(sa, child, now, packet_ts=packet_ts, reqid=reqid)
                return
        self.initiate(name, now, child=child, packet_ts=packet_ts, reqid=reqid)

    def _expire(self, event: Expire, now: float) -> None:
        for tm in list(self._sas.values()):
            sa = tm.sa
            for found in list(sa.children.values()):
                if event.sa.spi not in (found.spi_in, found.spi_out):
                    continue
                if event.hard:
                    # The SA is gone from the SAD: tell the peer and forget the pair.
                    self.delete_child(sa, found, now)
                else:
                    # Soft (either SA of the pair): rekey it, make before break (§2.8).
                    self.rekey_child(sa, found, now)
                return

    # -- status ----------------------------------------------------------------------------

    def status(self) -> list[dict[str, object]]:
        """A view of every IKE SA and its CHILD SAs, for status commands (no keys)."""
        out: list[dict[str, object]] = []
        for tm in self._sas.values():
            sa = tm.sa
            out.append(
                {
                    "name": sa.name,
                    "state": str(sa.state),
                    "initiator": sa.initiator,
                    "spi_i": sa.spi_i.hex(),
                    "spi_r": sa.spi_r.hex(),
                    "local": f"{sa.local[0]}[{sa.local[1]}]",
                    "remote": f"{sa.remote[0]}[{sa.remote[1]}]",
                    "remote_id": sa.remote_id,
                    "proposal": str(sa.proposal) if sa.proposal is not None else "",
                    "nat_local": sa.nat_local,
                    "nat_remote": sa.nat_remote,
                    "local_vips": [str(a) for a in sa.my_vips],
                    "remote_vips": [str(a) for a in sa.peer_vips],
                    "established_at": sa.established_at,
                    "tasks": [t.name for t in (*tm.active, *tm.queued)],
                    "children": [
                        {
                            "name": c.name,
                            "state": str(c.state),
                            "reqid": c.reqid,
                            "mode": c.mode,
                            "spi_in": f"{c.spi_in:08x}",
                            "spi_out": f"{c.spi_out:08x}",
                            "proposal": c.proposal_text,
                            "local_ts": [str(t) for t in c.local_ts],
                            "remote_ts": [str(t) for t in c.remote_ts],
                        }
                        for c in sa.children.values()
                    ],
                }
            )
        return out

    def delete_child(self, sa: IkeSa, child: ChildSa, now: float) -> None:
        tm = self.task_manager(sa)
        tm.queue(DeleteChild(sa, child))
        tm.initiate(now)

    def delete_ike(self, sa: IkeSa, now: float) -> None:
        """Delete ``sa`` and its CHILD SAs; an IKE SA not yet up is simply dropped."""
        tm = self.task_manager(sa)
        if sa.state is IkeSaState.ESTABLISHED:
            tm.queued.clear()
            tm.queue(DeleteIke(sa))
            tm.initiate(now)
        else:
            tm.queued.clear()
            sa.destroy("deleted")
            self._settle(tm)

    def dpd(self, sa: IkeSa, now: float) -> None:
        """Check that the peer is alive (§1.4): an empty INFORMATIONAL request."""
        tm = self.task_manager(sa)
        tm.queue(Dpd(sa))
        tm.initiate(now)

    # -- views -------------------------------------------------------------------------

    @property
    def ike_sas(self) -> list[IkeSa]:
        return [tm.sa for tm in self._sas.values()]

    def task_manager(self, sa: IkeSa) -> TaskManager:
        tm = self._sas.get(sa.my_spi)
        if tm is None or tm.sa is not sa:
            raise ConfigError("unknown IKE SA")
        return tm

    def half_open(self) -> int:
        return len(self._created)

    # -- internals --------------------------------------------------------------------

    def _task_manager(self, sa: IkeSa) -> TaskManager:
        return TaskManager(sa, self._responder_tasks, self.settings.retransmit)

    def _initiator_tasks(
        self,
        sa: IkeSa,
        child: str | None = None,
        packet_ts: tuple[TrafficSelector, TrafficSelector] | None = None,
        reqid: int = 0,
    ) -> list[Task]:
        tasks: list[Task] = [IkeInit(sa, True), IkeAuth(sa, True)]
        if wanted_vips(sa):
            tasks.append(ConfigTask(sa, True))  # CP(CFG_REQUEST) before the CHILD SA
        config = sa.config
        if config is not None and config.children:
            first = _child_config(config, child)
            tasks.append(
                ChildCreate(sa, True, first, in_ike_auth=True, packet_ts=packet_ts, reqid=reqid)
            )
        return tasks

    def _responder_tasks(self, sa: IkeSa, header: IkeHeader, payloads: list[Payload]) -> list[Task]:
        """The passive tasks for one request: which depends on exchange and state."""
        exchange, state = header.exchange_type, sa.state
        if exchange == ExchangeType.IKE_SA_INIT and state is IkeSaState.CREATED:
            return [IkeInit(sa, False)]
        if exchange == ExchangeType.IKE_AUTH and state is IkeSaState.CONNECTING:
            self._select_by_identity(sa, payloads)
            child = ChildCreate(sa, False, in_ike_auth=True)
            # The CP task assigns the virtual IP before the CHILD SA narrows to it.
            return [IkeAuth(sa, False), ConfigTask(sa, False, self.pools, child), child]
        if exchange == ExchangeType.CREATE_CHILD_SA and state is IkeSaState.ESTABLISHED:
            rekey = rekey_notify(payloads) is not None
            tm = self._sas[sa.my_spi]
            if rekey:
                return [ChildRekeyResponder(sa, tm.active, tm.queued)]
            if is_ike_rekey(payloads):
                return [IkeRekeyResponder(sa, self._adopt, tm.active)]
            return [ChildCreate(sa, False)]
        if exchange == ExchangeType.INFORMATIONAL and state in (
            IkeSaState.ESTABLISHED,
            IkeSaState.DELETING,
        ):
            return [Informational(sa)]
        # An exchange that makes no sense in this state (§2.21: INVALID_SYNTAX).
        raise NotifyError(NotifyType.INVALID_SYNTAX)

    def _find_config(self, local: Endpoint, remote: Endpoint) -> IkeConfigLike | None:
        """IKE_SA_INIT's choice, by address alone: the most precise match (a literal
        address beats ``%any``), the first configured among equals."""
        best, chosen = 0, None
        for config in self.configs.values():
            match = peer_config.address_match(config, local[0], remote[0])
            if match > best:
                best, chosen = match, config
        return chosen

    def _select_by_identity(self, sa: IkeSa, payloads: list[Payload]) -> None:
        """§2.15: IKE_AUTH's IDi (and IDr) may name another connection than the one the
        addresses chose; use the best match from now on (``ike.v2.peer_config``)."""
        ids = [p for p in payloads if isinstance(p, IdPayload)]
        idi = next((p for p in ids if not p.responder), None)
        idr = next((p for p in ids if p.responder), None)
        if idi is None:
            return  # IKE_AUTH answers AUTHENTICATION_FAILED
        better = peer_config.select(self.configs.values(), sa.local[0], sa.remote[0], idi, idr)
        if better is not None and better is not sa.config:
            log.info("%r: peer identity selects connection %s", sa, better.name)
            sa.config = better

    def _init_request(
        self, message: IkeMessage, local: Endpoint, remote: Endpoint, now: float
    ) -> None:
        header = message.header
        if header.message_id != 0:
            self.dropped += 1
            return
        key = (header.spi_i, remote[0], remote[1])
        known = self._half_open.get(key)
        if known is not None:
            known.process_message(message, now)  # a retransmission: the cached answer
            self._settle(known)
            return
        if len(self._created) >= self.settings.cookie_threshold and not self._cookie_ok(
            message, remote
        ):
            nonce = request_nonce(message.payloads)
            if nonce is None:
                self.dropped += 1
                return
            cookie = self.cookies.make(nonce, remote[0], header.spi_i)
            self._stateless(header, NotifyType.COOKIE, cookie, local, remote)
            return
        sa = IkeSa(
            self.ctx,
            initiator=False,
            local=local,
            remote=remote,
            config=self._find_config(local, remote),
            spi_i=header.spi_i,
        )
        tm = self._task_manager(sa)
        self._sas[sa.my_spi] = tm
        self._half_open[key] = tm
        self._created[sa.my_spi] = now
        tm.process_message(message, now)
        self._settle(tm)

    def _initial_contact(self, sa: IkeSa) -> None:
        """§2.4 INITIAL_CONTACT: the peer rebooted; its older IKE SAs with us are stale."""
        for spi, other in list(self._sas.items()):
            old = other.sa
            if old is not sa and old.remote_id == sa.remote_id and old.name == sa.name:
                old.destroy("replaced")
                del self._sas[spi]
                release_virtual_ips(old, self.pools, ())

    def _cookie_ok(self, message: IkeMessage, remote: Endpoint) -> bool:
        first = message.payloads[0] if message.payloads else None
        nonce = request_nonce(message.payloads)
        if not isinstance(first, NotifyPayload) or first.notify_type != NotifyType.COOKIE:
            return False
        if nonce is None:
            return False
        return self.cookies.check(first.data, nonce, remote[0], message.header.spi_i)

    def _stateless(
        self, request: IkeHeader, notify: int, data: bytes, local: Endpoint, remote: Endpoint
    ) -> None:
        header = IkeHeader(
            request.spi_i, bytes(8), request.exchange_type, 0, int(HeaderFlag.RESPONSE)
        )
        packet = build_message(header, [NotifyPayload(notify, data)])
        self.ctx.outbox.append(Datagram(packet, local, remote))

    def _error_answer(
        self, data: bytes, notify: int, local: Endpoint, remote: Endpoint, now: float
    ) -> None:
        """An unprotected one-notify answer outside any IKE SA (§1.5), keeping no state.

        SPIs, exchange type and message ID are the request's, R is set and the version
        is ours (2.0, §2.5). Responses are never answered (that could loop), and the
        answers share a token bucket of ``error_rate`` per second.
        """
        if len(data) < _RAW_HEADER.size:
            return
        spi_i, spi_r, _, _, exchange, flags, message_id = _RAW_HEADER.unpack_from(data)
        if flags & HeaderFlag.RESPONSE:
            return
        rate = self.settings.error_rate
        self._error_tokens = min(rate, self._error_tokens + (now - self._error_time) * rate)
        self._error_time = now
        if self._error_tokens < 1.0:
            return
        self._error_tokens -= 1.0
        # The I flag tells who sent it; we answer as the other side of that IKE SA.
        mine = 0 if flags & HeaderFlag.INITIATOR else int(HeaderFlag.INITIATOR)
        header = IkeHeader(spi_i, spi_r, exchange, message_id, mine | HeaderFlag.RESPONSE)
        packet = build_message(header, [NotifyPayload(notify)])
        self.ctx.outbox.append(Datagram(packet, local, remote))
        self.errors_sent += 1

    def _settle(self, tm: TaskManager) -> None:
        """Forget destroyed SAs; stop counting authenticated ones as half open."""
        sa = tm.sa
        if sa.state is IkeSaState.ESTABLISHED:
            if self._created.pop(sa.my_spi, None) is not None and sa.initial_contact:
                self._initial_contact(sa)
            return
        if sa.state is not IkeSaState.DESTROYED:
            return
        if self._sas.get(sa.my_spi) is tm:
            del self._sas[sa.my_spi]
        release_virtual_ips(sa, self.pools, (other.sa for other in self._sas.values()))
        self._created.pop(sa.my_spi, None)
        for key, other in list(self._half_open.items()):
            if other is tm:
                del self._half_open[key]


def _child_config(config: IkeConfigLike, name: str | None) -> ChildConfigLike:
    for child in config.children:
        if name is None or child.name == name:
            return child
    raise ConfigError(f"connection {config.name!r} has no child {name!r}")


def _ip(text: str) -> IPv4Address | IPv6Address:
    try:
        return ip_address(text)
    except ValueError:
        raise ConfigError(f"not an IP address: {text!r}") from None


@dataclass(frozen=True, slots=True)
class _CloseWatch:
    """What of one IKE SA was on its way out by our own doing before a peer's request.

    A Delete from the peer for those is a crossing delete (§1.4.1) or the end of a rekey
    (§2.8), never a close: strongSwan applies ``close_action`` only when the peer closes
    a CHILD SA that nothing of ours was replacing or deleting.
    """

    children: frozenset[int]  # inbound SPIs of every CHILD SA before the request
    ours: frozenset[int]  # those we delete or rekey ourselves
    ike_ours: bool  # we delete or rekey the IKE SA

    @classmethod
    def of(cls, tm: TaskManager) -> _CloseWatch:
        sa = tm.sa
        tasks = (*tm.active, *tm.queued)
        ours = {
            c.spi_in
            for c in sa.children.values()
            if c.rekeyed or c.state is not ChildSaState.INSTALLED
        }
        for task in tasks:
            if isinstance(task, DeleteChild):
                ours.add(task.child.spi_in)
            elif isinstance(task, ChildRekey):
                ours.add(task.old.spi_in)
        ike_ours = sa.state is IkeSaState.DELETING or any(
            isinstance(t, DeleteIke | IkeRekey) for t in tasks
        )
        return cls(frozenset(sa.children), frozenset(ours), ike_ours)

    def closes(self, sa: IkeSa, events: Iterable[Event]) -> list[PeerClose]:
        """The peer's closes among the events its request caused."""
        found = list(events)
        ike = any(
            isinstance(e, IkeSaDeleted) and e.spi_i == sa.spi_i and e.reason == "peer-deleted"
            for e in found
        )
        if ike and self.ike_ours:
            return []
        out: dict[tuple[str, int], PeerClose] = {}
        for e in found:
            if not isinstance(e, ChildSaDeleted) or e.spi_in not in self.children:
                continue
            if e.spi_in in self.ours or (e.name, e.reqid) in out:
                continue
            if e.reason == "peer-deleted":
                # A newer pair of the same reqid is still there: the peer ended a rekey.
                if any(
                    c.reqid == e.reqid and c.state is ChildSaState.INSTALLED
                    for c in sa.children.values()
                ):
                    continue
            elif not (ike and e.reason == "ike-deleted"):
                continue
            out[(e.name, e.reqid)] = PeerClose(sa.name, e.name, e.reqid, ike, sa.spi_i)
        return list(out.values())


def _installed(child: ChildSa) -> bool:
    return child.state is ChildSaState.INSTALLED

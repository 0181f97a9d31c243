"""IKE inside the daemon: the sans-I/O ``IkeManager`` driven from the daemon's loop.

What this glue does (the manager does everything else):

- UDP port 500: sockets of our own (SO_MARK, so IKE to a protected peer leaves by the
  normal routes, and ``IP_PKTINFO`` to learn which local address the peer used). Port
  4500 comes with the data plane (``io.ike_plane.IkePlane``): on the embedded one it
  belongs to the daemon (shared with ESP-in-UDP, RFC 3948), which hands us what follows
  the non-ESP marker (``Daemon.ike_hook``); on the kernel's, the sockets are our own,
  with UDP_ENCAP_ESPINUDP so the kernel keeps the ESP. Either way we send with the
  marker put back (§2.2).
- Timers: one loop timer at ``manager.get_timer()``, re-armed after every change.
- Engine events (ACQUIRE, EXPIRE) -> ``manager.handle_engine_event``; the IKE events
  (SA up, down, failed) are logged, with names and SPIs, never keys.
- Configuration: a swanctl.conf (``config.swanctl``) mapped by ``ike.config_adapter``;
  ``start_action = start`` initiates, ``trap`` installs trap policies; ``reload()``
  (SIGHUP) re-reads the file, keeps the IKE SAs of connections still there, removes the
  traps of those gone.
- ``--ike-keylog DIR`` (off by default): IKE and ESP keys in Wireshark's decryption
  tables (``io.keylog_files``), for debugging.
- Lifetimes, rekey retries, reauthentication and DPD: ``io.ike_timers``, once a second.
- control.sock commands: ``ike-up`` (name, child), ``ike-down`` (name), ``ike-status``,
  ``ike-reload``; ``status`` gains an ``ike`` section.
- Virtual IPs (RFC 7296 §2.19): ``pools`` of the file go to the manager; an address a
  peer assigns us goes on the TUN while its IKE SA lives (``io.vip``).
- NAT keepalives (RFC 3948 §2.3, §4): behind a NAT, a single 0xFF octet on the IKE SA's
  port-4500 path every ``keepalive_interval`` seconds (20, strongSwan's default;
  ``PYIPSEC_NAT_KEEPALIVE`` in the daemon's environment changes it), so the NAT keeps
  the mapping ESP-in-UDP and IKE use.

``IkeService`` itself only needs a loop (``call_at``/``time``) and a ``Transport``, so
tests run it over fake ones; ``attach_ike(daemon, path, plane=...)`` wires the real
sockets into any daemon with the ``io.ike_plane.DaemonLike`` face: the embedded
``Daemon`` (the default plane) or ``KernelDaemon`` (``io.ike_plane.kernel_plane``).
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import logging
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from pyipsec.config.swanctl import SwanctlConfig, load_swanctl
from pyipsec.engine.backend import KeyManagementBackend
from pyipsec.engine.events import Acquire, Expire
from pyipsec.errors import ConfigError
from pyipsec.ike.config_adapter import EngineConnection, adapt, utc_now
from pyipsec.ike.v2.events import (
    ChildSaDeleted,
    ChildSaFailed,
    ChildSaInstalled,
    Endpoint,
    Event,
    IkeSaDeleted,
    IkeSaEstablished,
    VirtualIpAssigned,
    VirtualIpReleased,
)
from pyipsec.ike.v2.ike_sa import IkeSa, IkeSaState
from pyipsec.ike.v2.manager import IKE_PORT, NATT_PORT, IkeManager, ManagerSettings
from pyipsec.io.ike_plane import (
    NON_ESP_MARKER,
    DaemonLike,
    IkePlane,
    embedded_plane,
    read_natt,
)
from pyipsec.io.ike_timers import TICK, IkeTimers
from pyipsec.io.keylog_files import KeyLogFiles
from pyipsec.io.sockets import SO_MARK, recv_with_pktinfo

log = logging.getLogger("pyipsec.ike")

IP_PKTINFO = 8
IPV6_RECVPKTINFO = 49
IPV6_PKTINFO = 50
EVENT_HISTORY = 64  # IKE events kept for ``ike-status``
NAT_KEEPALIVE = 20.0  # RFC 3948 §4: seconds between keepalives (strongSwan's keep_alive)
SHUTDOWN_BOUND = 1.0  # seconds the Deletes sent on shutdown may wait for answers
KEEPALIVE = b"\xff"  # RFC 3948 §2.3: the NAT-keepalive packet is this one octet


class Loop(Protocol):
    """What the service needs of an event loop (``SelectorLoop`` has it)."""

    def time(self) -> float: ...

    def call_at(self, when: float, callback: Callable[..., object], *args: Any) -> Any: ...


class Transport(Protocol):
    """Sends one IKE message; ``src``/``dst`` are (address, port) pairs."""

    def send(self, data: bytes, src: Endpoint, dst: Endpoint) -> None: ...


class VirtualIpInstaller(Protocol):
    """Where our virtual IPs go (``io.vip.VirtualIps``); addresses as text."""

    def add(self, text: str) -> bool: ...

    def remove(self, text: str) -> bool: ...


class IkeService:
    """One ``IkeManager`` on a loop and a transport, with a swanctl configuration."""

    def __init__(
        self,
        backend: KeyManagementBackend,
        loop: Loop,
        transport: Transport,
        *,
        settings: ManagerSettings | None = None,
        after_change: Callable[[], None] = lambda: None,
        source_address: Callable[[str], str | None] = lambda peer: None,
        virtual_ips: VirtualIpInstaller | None = None,
        keepalive: Callable[[Endpoint, Endpoint], None] | None = None,
        keepalive_interval: float = NAT_KEEPALIVE,
    ) -> None:
        self.manager = IkeManager(backend, (), settings)
        self.loop = loop
        self.transport = transport
        self.after_change = after_change
        self.source_address = source_address
        self.config_path: Path | None = None
        self.connections: dict[str, EngineConnection] = {}
        self.traps: dict[tuple[str, str], int] = {}  # (connection, child) -> reqid
        self.history: list[dict[str, Any]] = []
        self.send_errors = 0
        self.natt_strays = 0  # non-IKE datagrams on our own port-4500 sockets
        self._timer: Any = None
        self._timer_at: float | None = None
        self._tick_timer: Any = None
        self.timers = IkeTimers(self)  # lifetimes, rekey retries, DPD (io.ike_timers)
        self.virtual_ips = virtual_ips
        self.keepalive = keepalive  # sends KEEPALIVE from the first endpoint to the second
        self.keepalive_interval = keepalive_interval
        self.keepalives_sent = 0
        self._keepalive_timer: Any = None

    # -- configuration ------------------------------------------------------------------
    def load_file(self, path: str | Path) -> None:
        """Read a swanctl.conf and apply it (SwanctlError names file and line)."""
        self.config_path = Path(path)
        config = load_swanctl(self.config_path)
        for warning in config.warnings:
            log.warning("%s", warning)
        self.apply(config)

    def reload(self) -> None:
        if self.config_path is None:
            log.info("no --config file: nothing to reload")
            return
        try:
            self.load_file(self.config_path)
        except ConfigError as exc:
            # A broken edit must not take the running tunnels down: keep the old set.
            log.error("reload failed, configuration unchanged: %s", exc)
            return
        log.info("reloaded %s: %d connections", self.config_path, len(self.connections))

    def apply(self, config: SwanctlConfig) -> None:
        """Use ``config``'s connections: start or trap what asks for it."""
        new = {c.name: c for c in adapt(config, utc_now)}
        now = self.loop.time()
        for key, reqid in list(self.traps.items()):
            conn = new.get(key[0])
            if conn is None or conn.child(key[1]) is None or conn != self.connections.get(key[0]):
                self._untrap(key, reqid)
        for name in set(self.connections) - set(new):
            self.manager.configs.pop(name, None)
        old = self.connections
        self.connections = new
        self.manager.pools.update(config.pools)  # unchanged pools keep their leases
        for conn in new.values():
            self.manager.add_config(conn)
        for conn in new.values():
            changed = old.get(conn.name) != conn
            for child in conn.children:
                if "trap" in child.start_action and (conn.name, child.name) not in self.traps:
                    try:
                        self.traps[(conn.name, child.name)] = self.manager.install_trap(
                            conn.name, child.name
                        )
                    except ConfigError as exc:
                        log.error("%s/%s: trap not installed: %s", conn.name, child.name, exc)
                if "start" in child.start_action and changed and not self._has_sa(conn.name):
                    try:
                        self.initiate(conn.name, child.name, now=now)
                    except ConfigError as exc:
                        log.error("%s: not started: %s", conn.name, exc)
        if self._tick_timer is None and new:
            self._tick_timer = self.loop.call_at(now + TICK, self._tick)
        if self._keepalive_timer is None and self.keepalive is not None:
            self._keepalive_timer = self.loop.call_at(
                now + self.keepalive_interval, self._send_keepalives
            )
        self.pump()

    def _send_keepalives(self) -> None:
        """RFC 3948 §4: the side behind a NAT keeps its mapping alive on port 4500."""
        self._keepalive_timer = None
        send = self.keepalive
        if send is None:
            return
        now = self.loop.time()
        for sa in self.manager.ike_sas:
            if not sa.nat_local or sa.local[1] != NATT_PORT or sa.state is IkeSaState.DESTROYED:
                continue
            try:
                send(sa.local, sa.remote)
                self.keepalives_sent += 1
            except OSError as exc:
                self.send_errors += 1
                log.debug("NAT keepalive %s -> %s: %s", sa.local, sa.remote, exc)
        self._keepalive_timer = self.loop.call_at(
            now + self.keepalive_interval, self._send_keepalives
        )

    def _tick(self) -> None:
        """IKE SA lifetimes, rekey retries and DPD (``io.ike_timers``), once a ``TICK``."""
        self._tick_timer = None
        now = self.loop.time()
        self.timers.tick(now)
        if self.connections:
            self._tick_timer = self.loop.call_at(now + TICK, self._tick)
        self.pump()

    def _untrap(self, key: tuple[str, str], reqid: int) -> None:
        del self.traps[key]
        with contextlib.suppress(ConfigError):
            self.manager.uninstall_trap(reqid)

    def _has_sa(self, name: str) -> bool:
        return any(
            sa.name == name and sa.state is not IkeSaState.DESTROYED for sa in self.manager.ike_sas
        )

    # -- commands -------------------------------------------------------------------------
    def initiate(self, name: str, child: str | None = None, *, now: float | None = None) -> IkeSa:
        conn = self.connections.get(name)
        if conn is None:
            raise ConfigError(f"no connection named {name!r}")
        if child is not None and conn.child(child) is None:
            raise ConfigError(f"connection {name!r} has no child {child!r}")
        local, remote = self.endpoints(conn)
        sa = self.manager.initiate(
            name,
            self.loop.time() if now is None else now,
            local=local,
            remote=remote,
            child=child,
        )
        peer, port = remote
        log.info("%s: initiating to %s[%d]", name, peer, port)
        self.pump()
        return sa

    def endpoints(self, conn: EngineConnection) -> tuple[Endpoint, Endpoint]:
        if not conn.remote_addrs:
            raise ConfigError(f"connection {conn.name!r} has no remote address to initiate to")
        peer = conn.remote_addrs[0]
        local = conn.local_addrs[0] if conn.local_addrs else self.source_address(peer)
        if local is None:
            raise ConfigError(f"connection {conn.name!r}: no local address reaches {peer}")
        return (local, conn.source.local_port), (peer, conn.source.remote_port)

    def terminate(self, name: str) -> int:
        """Delete every IKE SA of connection ``name``; how many there were."""
        if name not in self.connections:
            raise ConfigError(f"no connection named {name!r}")
        now = self.loop.time()
        found = [sa for sa in self.manager.ike_sas if sa.name == name]
        for sa in found:
            self.manager.delete_ike(sa, now)
        self.pump()
        return len(found)

    def shutdown(self, bound: float = SHUTDOWN_BOUND) -> int:
        """Delete every IKE SA before the sockets close; how many Deletes were sent.

        As strongSwan does on shutdown: one INFORMATIONAL Delete per established IKE SA
        (RFC 7296 §1.4.1), so no peer keeps an orphan. Answers are awaited on the loop
        (when it can run one round at a time, ``run_once``) for ``bound`` seconds in
        all, never more: a dead peer must not hold up the exit. IKE SAs still being set
        up are dropped; what they and the unanswered ones installed is removed by the
        data plane's close hooks."""
        now = self.loop.time()
        deleting: list[IkeSa] = []
        for sa in list(self.manager.ike_sas):
            if sa.state is IkeSaState.DESTROYED:
                continue
            if sa.state in (IkeSaState.ESTABLISHED, IkeSaState.DELETING):
                log.info("%s: deleting IKE SA %s_i on shutdown", sa.name, sa.spi_i.hex())
                deleting.append(sa)
            if sa.state is not IkeSaState.DELETING:
                self.manager.delete_ike(sa, now)
        self.pump()
        run_once: Callable[[float], object] | None = getattr(self.loop, "run_once", None)
        deadline = now + bound
        while run_once is not None:
            waiting = sum(sa.state is not IkeSaState.DESTROYED for sa in deleting)
            left = deadline - self.loop.time()
            if not waiting:
                break
            if left <= 0:
                log.info("shutdown: %d IKE SA Delete(s) unanswered", waiting)
                break
            run_once(left)
        return len(deleting)

    def status(self) -> dict[str, Any]:
        now = self.loop.time()
        sas = self.manager.status()
        for item, sa in zip(sas, self.manager.ike_sas, strict=True):
            up = sa.established_at
            item["established_for"] = None if up is None else now - up
            conn = self.connections.get(sa.name)
            item["local_id"] = conn.local_identity(sa.local[0]) if conn else sa.local[0]
            item.update(self.timers.status(sa, now))
        return {
            "connections": [
                {
                    "name": c.name,
                    "local_addrs": list(c.local_addrs),
                    "remote_addrs": list(c.remote_addrs),
                    "auth": c.credential.method,
                    "children": [
                        {"name": ch.name, "start_action": sorted(ch.start_action)}
                        for ch in c.children
                    ],
                }
                for c in self.connections.values()
            ],
            "ike_sas": sas,
            "traps": [{"name": n, "child": c, "reqid": r} for (n, c), r in self.traps.items()],
            "events": self.history[-16:],
            "dropped": self.manager.dropped,
            "keepalives_sent": self.keepalives_sent,
            "pools": [
                {
                    "name": p.name,
                    "range": f"{p.first}-{p.last}",
                    "online": p.online,
                    "offline": p.offline,
                    "leases": [
                        {"address": str(x.address), "identity": x.identity, "online": x.online}
                        for x in p.leases()
                    ],
                }
                for p in self.manager.pools
            ],
        }

    def commands(self) -> dict[str, Callable[[dict[str, Any]], object]]:
        """control.sock commands (``JsonControlHandler`` table entries)."""

        def up(req: dict[str, Any]) -> object:
            name, child = req.get("name"), req.get("child")
            if not isinstance(name, str) or not (child is None or isinstance(child, str)):
                raise ConfigError('ike-up needs {"name": CONNECTION[, "child": CHILD]}')
            sa = self.initiate(name, child)
            return {"name": name, "spi_i": sa.spi_i.hex()}

        def down(req: dict[str, Any]) -> object:
            name = req.get("name")
            if not isinstance(name, str):
                raise ConfigError('ike-down needs {"name": CONNECTION}')
            return {"name": name, "deleted": self.terminate(name)}

        def reload(req: dict[str, Any]) -> object:
            self.reload()
            return {"connections": sorted(self.connections)}

        return {
            "ike-up": up,
            "ike-down": down,
            "ike-status": lambda req: self.status(),
            "ike-reload": reload,
        }

    # -- I/O entry points -----------------------------------------------------------------
    def receive(self, data: bytes, local: Endpoint, remote: Endpoint) -> None:
        """One IKE message (without the non-ESP marker) from ``remote`` to ``local``."""
        self.manager.receive_datagram(data, local, remote, self.loop.time())
        self.pump()

    def on_engine_event(self, event: object) -> None:
        if isinstance(event, Acquire | Expire):
            now = self.loop.time()
            if isinstance(event, Expire):
                self.timers.on_expire(event, now)  # a rekey that does not happen is retried
            self.manager.handle_engine_event(event, now)
            self.pump()

    def pump(self) -> None:
        """Send what the manager produced, report its events, re-arm the timer."""
        now = self.loop.time()
        while True:
            datagrams = self.manager.datagrams_to_send(now)
            for datagram in datagrams:
                try:
                    self.transport.send(datagram.data, datagram.src, datagram.dst)
                except OSError as exc:
                    # A lost datagram is retransmitted by the manager; just count it.
                    self.send_errors += 1
                    log.debug("IKE send %s -> %s: %s", datagram.src, datagram.dst, exc)
            reported = False
            while (event := self.manager.next_event()) is not None:
                self._report(event, now)
                reported = True
            while (close := self.manager.next_close()) is not None:
                self.timers.on_peer_close(close, now)  # close_action
                reported = True
            if not datagrams and not reported:
                break  # a report may have started something (restart): send it too
        self.after_change()
        self._arm()

    def _arm(self) -> None:
        when = self.manager.get_timer()
        if when is None or (self._timer_at is not None and self._timer_at <= when):
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = when
        self._timer = self.loop.call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = self._timer_at = None
        self.manager.handle_timer(self.loop.time())
        self.pump()

    def _report(self, event: Event, now: float) -> None:
        entry: dict[str, Any] = {"time": now, "event": type(event).__name__}
        if isinstance(event, IkeSaEstablished):
            log.info(
                "%s: IKE SA %s_i %s_r established %s[%d] <-> %s[%d], peer %s",
                event.name, event.spi_i.hex(), event.spi_r.hex(), event.local[0],
                event.local[1], event.remote[0], event.remote[1], event.remote_id,
            )  # fmt: skip
            entry.update(name=event.name, spi_i=event.spi_i.hex(), remote_id=event.remote_id)
        elif isinstance(event, IkeSaDeleted):
            log.info(
                "%s: IKE SA %s_i %s_r gone (%s%s)", event.name, event.spi_i.hex(),
                event.spi_r.hex(), event.reason, f", notify {event.notify}" if event.notify else "",
            )  # fmt: skip
            entry.update(name=event.name, spi_i=event.spi_i.hex(), reason=event.reason)
            self.timers.on_ike_deleted(event, now)
        elif isinstance(event, ChildSaInstalled):
            log.info(
                "%s/%s: CHILD SA installed, spi in %08x out %08x, %s, %s === %s",
                event.ike_name, event.name, event.spi_in, event.spi_out, event.proposal,
                ",".join(map(str, event.local_ts)), ",".join(map(str, event.remote_ts)),
            )  # fmt: skip
            entry.update(name=event.ike_name, child=event.name, spi_in=f"{event.spi_in:08x}")
        elif isinstance(event, ChildSaFailed):
            log.warning("%s/%s: CHILD SA failed (notify %d)", event.ike_name, event.name,
                        event.notify)  # fmt: skip
            entry.update(name=event.ike_name, child=event.name, notify=event.notify)
        elif isinstance(event, ChildSaDeleted):
            log.info("%s/%s: CHILD SA %08x/%08x deleted (%s)", event.ike_name, event.name,
                     event.spi_in, event.spi_out, event.reason)  # fmt: skip
            entry.update(name=event.ike_name, child=event.name, reason=event.reason)
        elif isinstance(event, VirtualIpAssigned | VirtualIpReleased):
            self._virtual_ip(event)
            entry.update(name=event.name, address=event.address, peer=event.peer)
        self.history.append(entry)
        del self.history[:-EVENT_HISTORY]

    def _virtual_ip(self, event: VirtualIpAssigned | VirtualIpReleased) -> None:
        assigned = isinstance(event, VirtualIpAssigned)
        if event.peer:
            log.info("%s: virtual IP %s %s %s", event.name, event.address,
                     "leased to" if assigned else "released by", event.identity)  # fmt: skip
            return
        dns = f", DNS {', '.join(event.dns)}" if isinstance(event, VirtualIpAssigned) else ""
        log.info("%s: our virtual IP %s %s%s", event.name, event.address,
                 "assigned" if assigned else "released", dns)  # fmt: skip
        installer = self.virtual_ips
        if installer is None:
            return
        try:
            if assigned:
                installer.add(event.address)
            else:
                installer.remove(event.address)
        except ConfigError as exc:
            log.error("%s: virtual IP %s: %s", event.name, event.address, exc)


# ======================================================================== real I/O ====
def _pktinfo(src: str) -> list[tuple[int, int, bytes]]:
    """Ancillary data that sends from ``src`` (ip(7) IP_PKTINFO, RFC 3542 §6.1)."""
    packed = socket.inet_pton(socket.AF_INET6 if ":" in src else socket.AF_INET, src)
    if len(packed) == 16:
        return [(socket.IPPROTO_IPV6, IPV6_PKTINFO, packed + bytes(4))]
    return [(socket.IPPROTO_IP, IP_PKTINFO, bytes(4) + packed + bytes(4))]


class UdpTransport:
    """Port 500 sockets of our own, and the daemon's port-4500 sockets for NAT-T."""

    def __init__(
        self,
        mark: int,
        natt: dict[str, socket.socket],
        *,
        port: int = IKE_PORT,
        natt_port: int = NATT_PORT,
        ipv6: bool = True,
    ) -> None:
        self.mark = mark
        self.port = port
        self.natt_port = natt_port
        self.natt = natt  # "udp4"/"udp6" -> the daemon's sockets on natt_port
        self.sockets: dict[str, socket.socket] = {}
        try:
            self._open("udp4", socket.AF_INET)
            if ipv6:
                self._open("udp6", socket.AF_INET6)
        except BaseException:
            self.close()
            raise

    def _open(self, name: str, family: int) -> None:
        flags = socket.SOCK_DGRAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC
        sock = socket.socket(family, flags, socket.IPPROTO_UDP)
        self.sockets[name] = sock
        sock.setsockopt(socket.SOL_SOCKET, SO_MARK, self.mark)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVPKTINFO, 1)
            sock.bind(("::", self.port))
        else:
            sock.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
            sock.bind(("0.0.0.0", self.port))  # noqa: S104 - IKE from any peer

    def close(self) -> None:
        for sock in self.sockets.values():
            with contextlib.suppress(OSError):
                sock.close()
        self.sockets.clear()

    def send(self, data: bytes, src: Endpoint, dst: Endpoint) -> None:
        name = "udp6" if ":" in dst[0] else "udp4"
        if src[1] == self.natt_port or dst[1] == self.natt_port:
            sock = self.natt.get(name)
            data = NON_ESP_MARKER + data  # RFC 3948 §2.2
        else:
            sock = self.sockets.get(name)
        if sock is None:
            raise OSError(errno.EAFNOSUPPORT, f"no {name} socket")
        sock.sendmsg([data], _pktinfo(src[0]), 0, dst)

    def readers(self) -> list[socket.socket]:
        return list(self.sockets.values())

    def send_keepalive(self, src: Endpoint, dst: Endpoint) -> None:
        """A NAT keepalive (RFC 3948 §2.3) on the port-4500 socket: no non-ESP marker."""
        sock = self.natt.get("udp6" if ":" in dst[0] else "udp4")
        if sock is None:
            raise OSError(errno.EAFNOSUPPORT, "no NAT-T socket")
        sock.sendmsg([KEEPALIVE], _pktinfo(src[0]), 0, dst)


def route_source(mark: int) -> Callable[[str], str | None]:
    """The local address the kernel would send from to ``peer`` (by the marked routes)."""

    def source(peer: str) -> str | None:
        family = socket.AF_INET6 if ":" in peer else socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, SO_MARK, mark)
            try:
                probe.connect((peer, IKE_PORT))  # no packet is sent: UDP connect only routes
            except OSError:
                return None
            return str(probe.getsockname()[0])

    return source


def _text(packed: bytes) -> str:
    return str(ipaddress.ip_address(packed))


def attach_ike(
    daemon: DaemonLike,
    config: str | Path,
    settings: ManagerSettings | None = None,
    *,
    plane: IkePlane | None = None,
) -> IkeService:
    """Run IKE in ``daemon`` with the swanctl file ``config`` (errors name file:line).

    ``plane`` says what IKE keys and which sockets it uses (``io.ike_plane``); by default
    the embedded data plane of an ``io.daemon.Daemon``."""
    if plane is None:
        plane = embedded_plane(daemon)
    opts = daemon.options
    mark = opts.mark
    try:
        transport = UdpTransport(mark, plane.natt, natt_port=opts.port, ipv6=opts.ipv6)
    except OSError as exc:
        _close_plane(plane)
        raise ConfigError(f"cannot open the IKE port {IKE_PORT}: {exc.strerror}") from exc
    try:
        service = _attach(daemon, config, settings, plane, transport)
    except BaseException:
        transport.close()
        _close_plane(plane)
        raise
    log.info("IKE on the %s data plane: %s", plane.name, config)
    return service


def _close_plane(plane: IkePlane) -> None:
    for hook in plane.close_hooks:
        with contextlib.suppress(Exception):
            hook()


def _attach(
    daemon: DaemonLike,
    config: str | Path,
    settings: ManagerSettings | None,
    plane: IkePlane,
    transport: UdpTransport,
) -> IkeService:
    mark = daemon.options.mark
    loop = daemon.loop
    if plane.prepare_socket is not None:
        for sock in transport.readers():
            plane.prepare_socket(sock)
    try:
        interval = float(os.environ.get("PYIPSEC_NAT_KEEPALIVE", NAT_KEEPALIVE))
    except ValueError:
        raise ConfigError("PYIPSEC_NAT_KEEPALIVE must be a number of seconds") from None
    if not interval > 0:
        raise ConfigError("PYIPSEC_NAT_KEEPALIVE must be positive")
    vips = plane.virtual_ips
    service = IkeService(
        plane.backend,
        loop,
        transport,
        settings=settings,
        after_change=daemon.after_key_management,
        source_address=route_source(mark),
        virtual_ips=vips,
        keepalive=transport.send_keepalive,
        keepalive_interval=interval,
    )
    keylog: KeyLogFiles | None = None
    try:
        keylog_dir = daemon.options.ike_keylog
        if keylog_dir is not None:
            # Before the file is applied: an SA started at once has its keys logged too.
            keylog = KeyLogFiles(keylog_dir)
            service.manager.ctx.keylog = keylog.keylog
            log.warning("IKE key log on: SA keys are written to %s (debugging only)", keylog_dir)
        # The plane's hooks before the file: a trap it installs is recorded at once.
        daemon.event_hooks.extend(plane.event_hooks)
        service.load_file(config)
    except BaseException:
        if keylog is not None:
            keylog.close()
        raise
    if keylog is not None:
        daemon.close_hooks.append(keylog.close)

    def read(sock: socket.socket) -> None:
        for data, src, dst, sport, _ in recv_with_pktinfo(sock):
            with contextlib.suppress(ValueError):
                service.manager.receive_datagram(
                    data, (_text(dst), transport.port), (_text(src), sport), loop.time()
                )
        service.pump()

    for sock in transport.readers():
        loop.add_reader(sock.fileno(), read, sock)

    def from_natt(payload: bytes, src: bytes, dst: bytes, sport: int, dport: int) -> None:
        with contextlib.suppress(ValueError):
            service.receive(payload, (_text(dst), dport), (_text(src), sport))

    if plane.set_natt_hook is not None:
        plane.set_natt_hook(from_natt)
    else:
        # Our own encap sockets (kernel data plane): IKE reads them itself.
        def read_own(sock: socket.socket) -> None:
            service.natt_strays += read_natt(sock, transport.natt_port, from_natt)

        for sock in plane.natt.values():
            loop.add_reader(sock.fileno(), read_own, sock)
    daemon.event_hooks.append(service.on_engine_event)
    daemon.reload_hooks.append(service.reload)

    def delete_all() -> None:
        try:
            service.shutdown()
        except Exception:  # a bug here must not keep the rest of the teardown from running
            log.exception("deleting the IKE SAs on shutdown failed")

    # Before the sockets close: a Delete for every IKE SA (shutdown()).
    daemon.close_hooks.append(delete_all)
    daemon.close_hooks.append(transport.close)
    if vips is not None:
        daemon.close_hooks.append(vips.clear)
    daemon.close_hooks.extend(plane.close_hooks)
    _add_commands(daemon, service)
    return service


def _add_commands(daemon: DaemonLike, service: IkeService) -> None:
    control = daemon.control
    if control is None:
        return
    handler = control.handler
    commands = getattr(handler, "commands", None)
    if not isinstance(commands, dict):
        return
    commands.update(service.commands())
    base = commands.get("status")
    if base is None:
        return

    def status(req: dict[str, Any]) -> object:
        doc = base(req)
        if isinstance(doc, dict):
            doc["ike"] = service.status()
        return doc

    commands["status"] = status

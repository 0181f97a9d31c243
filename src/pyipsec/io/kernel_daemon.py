"""``pyipsec daemon --data-plane kernel``: the control plane over the Linux kernel's SAD/SPD.

``KernelDaemon`` is the ``Daemon`` of ``io.daemon`` without a data path: no TUN, no ESP
sockets, no policy routing. The kernel encrypts, decrypts and looks policies up itself;
the daemon only keys it, as strongSwan's charon does over xfrm netlink. It keeps the
same outside face, so every client works unchanged against either data plane:

- ``control.sock``: ``status`` (SAs and policies from the kernel's dumps, its
  GETSADINFO/GETSPDINFO counters and ``/proc/net/xfrm_stat``; see ``io.kernel_status``)
  and ``ping``;
- ``pfkey.sock`` and ``xfrm.sock``: the PF_KEY and xfrm servers, in front of a
  ``KernelBackend`` instead of the engine (ARCHITECTURE rule 3);
- events: one NETLINK_XFRM socket joined to XFRMNLGRP_ACQUIRE, EXPIRE, SA and POLICY;
  ``io.kernel_events`` turns what it reads into the engine's events, which go to the
  PF_KEY server (ACQUIRE to registered sockets, EXPIRE, changes made by others), to
  xfrm.sock subscribers, and to ``event_hooks`` (where IKE listens);
- the pid file, SIGTERM/SIGINT (stop), SIGHUP (``reload_hooks``): ``io.daemon_base``,
  shared with ``Daemon``.

Why a class of its own rather than a data-plane object inside ``Daemon``: nearly all of
``Daemon`` is the data path (TUN, sockets, MTU, routes) and what they need from the
engine; here none of it exists, and the part both share is small: the loop, the three
servers and the lifecycle, which both take from ``io.daemon_base.DaemonBase``. Sharing
the rest through a flag would put ``if kernel`` in every data-path method.

What stays in the kernel when the daemon stops. By default nothing is removed: the SAs
and policies in the kernel belong to the administrator who added them through
``pyipsec setkey``/``pyipsec xfrm``, exactly as if setkey had talked to the kernel
directly (racoon and setkey behave so; an admin restarting the daemon expects the
tunnels to keep running). With ``remove_on_exit`` (``--remove-on-exit``) the daemon
removes what was installed *through it* since it started, and only that, as strongSwan
does for the CHILD_SAs and policies it installed: kernel state added by ``ip xfrm`` or
present before the daemon started is never touched, and nothing is ever flushed.

IKE (``--config FILE``, swanctl.conf): ``io.ike_service.attach_ike`` with the kernel's
plane (``io.ike_plane.kernel_plane``). IKE installs its CHILD SAs, their policies and its
trap policies through the same ``KernelBackend``; the kernel's ACQUIRE and EXPIRE reach
it through ``event_hooks``; SIGHUP re-reads the file; control.sock gains ``ike-up``,
``ike-down``, ``ike-status``, ``ike-reload`` and an ``ike`` section in ``status``. IKE
runs on UDP 500 and on a port-4500 socket of its own with UDP_ENCAP_ESPINUDP set, so the
kernel decapsulates ESP-in-UDP itself and passes IKE up behind the non-ESP marker (RFC
3948 §2.2). On a kernel without ESP the IKE SA still comes up and the CHILD SA is
refused (the log says "this kernel cannot run ESP with ..."); the daemon keeps running.
What IKE installed is removed when the daemon stops; routes and virtual IPs: see
``io.ike_plane``.
"""

from __future__ import annotations

import errno
import logging
import os
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from pyipsec.engine.events import Acquire, Event, Expire
from pyipsec.errors import ConfigError, PyipsecError
from pyipsec.io.daemon import DaemonOptions, SelectorLoop
from pyipsec.io.daemon_base import DaemonBase
from pyipsec.io.ike_plane import kernel_plane
from pyipsec.io.ike_service import IkeService, attach_ike
from pyipsec.io.kernel_backend import KernelBackend
from pyipsec.io.kernel_events import GROUPS, Installed, KernelEvents
from pyipsec.io.kernel_status import kernel_status
from pyipsec.io.netlink_socket import XfrmSocket
from pyipsec.keyapi.pfkey_server import PfkeyServer
from pyipsec.keyapi.xfrm_server import XfrmServer

log = logging.getLogger("pyipsec.daemon")

BATCH = 64  # kernel datagrams read per readiness callback before the loop turns again


class KernelDaemon(DaemonBase):
    """The key-management daemon for the kernel data plane (see the module docstring).

    ``backend`` and ``events`` let a test pass its own sockets; by default both are
    opened on the kernel of the current network namespace at ``start``.
    """

    def __init__(
        self,
        options: DaemonOptions,
        *,
        remove_on_exit: bool = False,
        backend: KernelBackend | None = None,
        events: XfrmSocket | None = None,
    ) -> None:
        super().__init__(options, SelectorLoop())
        self.remove_on_exit = remove_on_exit
        self.kernel: KernelBackend | None = backend
        self.events_sock: XfrmSocket | None = events
        # What the PF_KEY and xfrm servers call: the kernel, with a record of what they
        # installed (IKE keeps its own record: io.ike_plane).
        self.backend: Installed | None = None
        self.mirror = KernelEvents()
        self.batch_hooks: list[Callable[[list[Event]], None]] = []
        self.counters: dict[str, int] = dict.fromkeys(
            ("kernel_events", "kernel_overruns", "kernel_bad_messages"), 0
        )
        self._pending: deque[Event] = deque()
        self.ike: IkeService | None = None

    # -- lifetime (the rest is io.daemon_base) --------------------------------------
    def _start(self) -> None:
        opts = self.options
        run_dir = self._claim_run_dir()
        try:
            if self.kernel is None:
                self.kernel = KernelBackend(listen=False)
            if self.events_sock is None:
                self.events_sock = XfrmSocket()
            # Subscribe before the first dump, so no change falls between the two.
            self.events_sock.subscribe(GROUPS)
        except OSError as exc:
            raise ConfigError(f"cannot use the kernel's xfrm netlink: {exc.strerror}") from exc
        kernel = self.kernel
        self.backend = Installed(kernel)
        self.mirror.seed((e.id for e in kernel.dump_sa()), kernel.dump_policy())
        self.loop.add_reader(self.events_sock.fileno(), self._on_kernel)
        self._serve_control()
        self._serve_key_apis(self.backend)
        self.event_hooks.append(self.backend.forget)
        if opts.config is not None:
            # IKE keys the kernel directly, not through ``self.backend``: what it installs
            # is its own to remove (io.ike_plane), not the administrator's.
            self.ike = attach_ike(self, opts.config, plane=kernel_plane(opts, kernel))
        self._install_signal_handlers()
        self._write_pid_file()
        log.info("running: kernel data plane, run dir %s", run_dir)

    def _serve_key_apis(self, backend: Installed) -> None:
        """pfkey.sock and xfrm.sock onto the kernel (as ``io.keyapis`` does for the engine)."""
        # The kernel dates SAs in wall-clock seconds (xfrm_lifetime_cur.add_time), so both
        # servers' "now" is the wall clock, not the engine's monotonic one.
        pfkey = PfkeyServer(
            backend, now=time.time, wall=time.time, after_change=self.after_key_management
        )
        pfkey_sock = self.add_server("pfkey.sock", pfkey)
        pfkey.attach(lambda: pfkey_sock.connections)
        self.event_hooks.append(pfkey.on_event)
        xfrm = XfrmServer(backend, time.time)
        xfrm_sock = self.add_server("xfrm.sock", xfrm)

        def publish(events: list[Event]) -> None:
            # A batch at once: a flush is one FLUSHSA/FLUSHPOLICY, as the kernel sends it.
            xfrm.publish(xfrm_sock, events)

        self.batch_hooks.append(publish)

    def _close_resources(self) -> None:
        if self.remove_on_exit and self.backend is not None:
            sas, policies = self.backend.remove_all()
            log.info("removed what this daemon installed: %d SAs, %d policies", sas, policies)
        if self.events_sock is not None:
            self.events_sock.close()
        if self.kernel is not None:
            self.kernel.close()

    # -- kernel events --------------------------------------------------------------
    def after_key_management(self) -> None:
        """After a request changed the kernel: its notifications are already queued on
        the event socket (xfrm_user notifies before it ACKs), so hand them out now."""
        self._on_kernel()

    def next_event(self) -> Event | None:
        """The next event read from the kernel and not yet handed to the hooks."""
        return self._pending.popleft() if self._pending else None

    def _on_kernel(self) -> None:
        sock = self.events_sock
        if sock is None:
            return
        for _ in range(BATCH):
            try:
                messages = sock.receive(timeout=0)
            except OSError as exc:
                if exc.errno != errno.ENOBUFS:
                    log.warning("kernel event socket: %s", exc.strerror)
                    break
                # Notifications were lost: what we know of the SAD/SPD may be stale.
                self.counters["kernel_overruns"] += 1
                log.warning("kernel events overran the socket buffer; re-reading SAD/SPD")
                self._resync()
                continue
            except PyipsecError as exc:
                self.counters["kernel_bad_messages"] += 1
                log.warning("kernel event not understood: %s", exc)
                continue
            if not messages:
                break
            for msg in messages:
                try:
                    self._pending.extend(self.mirror.convert(msg))
                except PyipsecError as exc:
                    self.counters["kernel_bad_messages"] += 1
                    log.warning("kernel %s not understood: %s", msg.name, exc)
        self._drain_events()

    def _resync(self) -> None:
        if self.kernel is None:
            return
        try:
            self.mirror.seed((e.id for e in self.kernel.dump_sa()), self.kernel.dump_policy())
        except (OSError, PyipsecError) as exc:
            log.warning("re-reading the kernel's SAD/SPD failed: %s", exc)

    def _drain_events(self) -> None:
        batch: list[Event] = []
        while (event := self.next_event()) is not None:
            self.counters["kernel_events"] += 1
            batch.append(event)
            if isinstance(event, Acquire):
                log.info("ACQUIRE %s -> %s (policy %d)", event.src, event.dst, event.policy_index)
            elif isinstance(event, Expire):
                log.info("%s EXPIRE %s", "hard" if event.hard else "soft", event.sa)
            for hook in self.event_hooks:
                hook(event)
        if batch:
            for batch_hook in self.batch_hooks:
                batch_hook(batch)

    # -- status -----------------------------------------------------------------------
    def _cmd_status(self, request: dict[str, Any]) -> object:
        if self.kernel is None:
            raise ConfigError("the daemon is not running")
        installed = self.backend
        extra: dict[str, Any] = {
            "daemon": {
                "pid": os.getpid(),
                "uptime": time.time() - self._started,
                "data_plane": "kernel",
                "tun": None,
                "tun_mtu": None,
                "installed": {
                    "sas": len(installed.sas) if installed else 0,
                    "policies": len(installed.policies) if installed else 0,
                },
                "remove_on_exit": self.remove_on_exit,
                "io": {k: v for k, v in self.counters.items() if v},
            }
        }
        try:
            return kernel_status(self.kernel.sock, time.time(), extra)
        except OSError as exc:
            raise ConfigError(f"reading the kernel's SAD/SPD failed: {exc}") from exc

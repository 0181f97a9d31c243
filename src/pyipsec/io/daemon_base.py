"""The lifecycle both daemons share: run dir and pid file, signals, the local servers.

``io.daemon.Daemon`` (the embedded data plane) and ``io.kernel_daemon.KernelDaemon`` (the
kernel's) differ in what they bring up and tear down; how they start, stop, answer
signals, serve sockets in the run dir and guard it with a pid file is the same, and lives
here so that a fix to it lands in both.

A subclass sets up its own resources in ``_start`` (calling ``_claim_run_dir`` first and
``_install_signal_handlers`` and ``_write_pid_file`` when it is up), releases them in
``_close_resources``, and answers ``status`` in ``_cmd_status``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyipsec.engine.events import Event
from pyipsec.errors import ConfigError
from pyipsec.io.control import Handler, JsonControlHandler, SeqpacketServer

if TYPE_CHECKING:
    # Only for the annotations: io.daemon imports this module.
    from pyipsec.io.daemon import DaemonOptions, SelectorLoop

log = logging.getLogger("pyipsec.daemon")

PID_FILE = "pyipsec.pid"


class DaemonBase(ABC):
    """Start/stop, signals, pid file and the local socket servers of a daemon."""

    def __init__(self, options: DaemonOptions, loop: SelectorLoop) -> None:
        self.options = options
        self.loop = loop
        self.control: SeqpacketServer | None = None
        self.servers: list[SeqpacketServer] = []
        self.event_hooks: list[Callable[[Event], None]] = []
        self.reload_hooks: list[Callable[[], None]] = []  # SIGHUP (io.ike_service: --config)
        self.close_hooks: list[Callable[[], None]] = []
        self._pid_file = Path(options.run_dir) / PID_FILE
        self._started = time.time()
        self._closing = False

    # -- what a subclass provides ---------------------------------------------------
    @abstractmethod
    def _start(self) -> None:
        """Bring the daemon's resources up (see the module docstring for the order)."""

    @abstractmethod
    def _cmd_status(self, request: dict[str, Any]) -> object:
        """The answer to control.sock's ``status``."""

    @abstractmethod
    def _close_resources(self) -> None:
        """Release what ``_start`` built, after the servers and before the pid file."""

    # -- lifetime -------------------------------------------------------------------
    def start(self) -> None:
        """Bring everything up; on any failure, what was built is torn down again."""
        try:
            self._start()
        except BaseException:
            self.close()
            raise

    def run(self) -> None:
        """Start, serve until SIGTERM/SIGINT (or ``stop``), then tear everything down."""
        self.start()
        try:
            self.loop.run_forever()
        finally:
            self.close()

    def stop(self) -> None:
        self.loop.stop()

    def close(self) -> None:
        """Tear down in reverse order; safe to call twice and after a failed start."""
        if self._closing:
            return
        self._closing = True
        for hook in self.close_hooks:
            hook()
        for server in self.servers:
            server.close()
        self.servers.clear()
        self._close_resources()
        with contextlib.suppress(FileNotFoundError):
            # Another daemon may have claimed the run dir since: its file is not ours.
            if self._pid_file.read_text().strip() == str(os.getpid()):
                self._pid_file.unlink()
        self.loop.close()
        log.info("stopped")

    def add_server(self, name: str, handler: Handler) -> SeqpacketServer:
        """Serve ``handler`` on ``RUN_DIR/name`` (how pfkey.sock and xfrm.sock plug in)."""
        server = SeqpacketServer(
            Path(self.options.run_dir) / name,
            handler,
            self.loop,
            allowed_uids=self.options.allowed_uids,
            name=name.removesuffix(".sock"),
        )
        server.start()
        self.servers.append(server)
        return server

    # -- pieces of _start -----------------------------------------------------------
    def _claim_run_dir(self) -> Path:
        """Create the run dir (0700) and refuse it if a live daemon's pid file is there."""
        run_dir = Path(self.options.run_dir)
        run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            pid = int(self._pid_file.read_text().split()[0])
        except (FileNotFoundError, ValueError, IndexError):
            return run_dir
        if pid != os.getpid() and _alive(pid):
            raise ConfigError(f"a daemon (pid {pid}) already uses {self.options.run_dir}")
        return run_dir

    def _serve_control(self) -> None:
        """control.sock: ``status`` and ``ping``."""
        handler = JsonControlHandler({"status": self._cmd_status, "ping": lambda req: "pong"})
        self.control = self.add_server("control.sock", handler)

    def _install_signal_handlers(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            self.loop.add_signal_handler(sig, self._on_stop_signal, sig)
        self.loop.add_signal_handler(signal.SIGHUP, self._on_reload)

    def _write_pid_file(self) -> None:
        self._pid_file.write_text(f"{os.getpid()}\n")

    # -- signals --------------------------------------------------------------------
    def _on_stop_signal(self, sig: int) -> None:
        log.info("%s: shutting down", signal.Signals(sig).name)
        self.loop.stop()

    def _on_reload(self) -> None:
        log.info("SIGHUP: reloading")
        for hook in self.reload_hooks:
            hook()


def _alive(pid: int) -> bool:
    """Whether a process ``pid`` exists (one we may not signal exists too)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

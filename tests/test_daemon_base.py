"""io.daemon_base: the lifecycle both daemons share, on a daemon with nothing of its own.

Runs without root: the run dir is a temporary folder, the servers are local sockets in it.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import pytest

from pyipsec.errors import ConfigError
from pyipsec.io.control import request
from pyipsec.io.daemon import DaemonOptions, SelectorLoop
from pyipsec.io.daemon_base import DaemonBase


class Bare(DaemonBase):
    """A daemon whose own resources are a log of what was done to them."""

    def __init__(self, run_dir: Path, *, fail_in_start: bool = False) -> None:
        super().__init__(
            DaemonOptions(run_dir=run_dir, allowed_uids=(os.getuid(),)), SelectorLoop()
        )
        self.fail_in_start = fail_in_start
        self.log: list[str] = []
        self.close_hooks.append(lambda: self.log.append("close hook"))

    def _start(self) -> None:
        self._claim_run_dir()
        self.log.append("started")
        self._serve_control()
        if self.fail_in_start:
            raise ConfigError("refused on purpose")
        self._write_pid_file()

    def _close_resources(self) -> None:
        # The servers are closed before the daemon's own resources.
        self.log.append(f"resources closed, {len(self.servers)} servers left")

    def _cmd_status(self, request: dict[str, Any]) -> object:
        return {"bare": True}


def test_start_writes_the_pid_file_and_close_removes_it_once(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    daemon = Bare(run_dir)
    daemon.start()
    assert (run_dir.stat().st_mode & 0o777) == 0o700
    assert (run_dir / "pyipsec.pid").read_text() == f"{os.getpid()}\n"
    assert daemon.control is not None and daemon.servers == [daemon.control]
    daemon.close()
    daemon.close()  # the second call does nothing
    assert daemon.log == ["started", "close hook", "resources closed, 0 servers left"]
    assert not (run_dir / "pyipsec.pid").exists()


def test_control_socket_answers_status_and_ping(tmp_path: Path) -> None:
    daemon = Bare(tmp_path)
    daemon.start()
    replies: list[object] = []

    def client() -> None:
        for cmd in ("status", "ping"):
            replies.append(request(tmp_path / "control.sock", {"cmd": cmd}))

    thread = threading.Thread(target=client)
    try:
        thread.start()
        for _ in range(200):  # the daemon's loop, here, until the client is done
            if not thread.is_alive():
                break
            daemon.loop.run_once(0.02)
    finally:
        thread.join()
        daemon.close()
    assert replies == [{"bare": True}, "pong"]


def test_a_failed_start_tears_down_what_was_built(tmp_path: Path) -> None:
    daemon = Bare(tmp_path, fail_in_start=True)
    with pytest.raises(ConfigError, match="on purpose"):
        daemon.start()
    assert daemon.log == ["started", "close hook", "resources closed, 0 servers left"]
    assert not (tmp_path / "control.sock").exists()
    assert not (tmp_path / "pyipsec.pid").exists()


def test_a_live_pid_file_is_refused_and_kept(tmp_path: Path) -> None:
    (tmp_path / "pyipsec.pid").write_text(f"{os.getppid()}\n")  # alive, and not us
    daemon = Bare(tmp_path)
    with pytest.raises(ConfigError, match=f"pid {os.getppid()}"):
        daemon.start()
    assert "started" not in daemon.log
    assert (tmp_path / "pyipsec.pid").read_text() == f"{os.getppid()}\n"


@pytest.mark.parametrize("content", ["", "not a pid\n", "999999999\n"])
def test_a_stale_or_garbled_pid_file_is_taken_over(tmp_path: Path, content: str) -> None:
    (tmp_path / "pyipsec.pid").write_text(content)
    daemon = Bare(tmp_path)
    daemon.start()
    try:
        assert (tmp_path / "pyipsec.pid").read_text() == f"{os.getpid()}\n"
    finally:
        daemon.close()


def test_close_leaves_a_pid_file_another_daemon_wrote(tmp_path: Path) -> None:
    daemon = Bare(tmp_path)
    daemon.start()
    (tmp_path / "pyipsec.pid").write_text(f"{os.getppid()}\n")  # claimed by someone else
    daemon.close()
    assert (tmp_path / "pyipsec.pid").read_text() == f"{os.getppid()}\n"


def test_reload_runs_the_reload_hooks(tmp_path: Path) -> None:
    daemon = Bare(tmp_path)
    calls: list[int] = []
    daemon.reload_hooks.append(lambda: calls.append(1))
    daemon._on_reload()
    daemon._on_reload()
    assert calls == [1, 1]
    daemon.close()

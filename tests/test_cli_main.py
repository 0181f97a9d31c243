"""cli/main: argument parsing, run-dir lookup, the subcommand registry, status output."""

from __future__ import annotations

import argparse
import json
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from pyipsec.cli import main as cli
from pyipsec.io.control import JsonControlHandler, SeqpacketServer
from pyipsec.io.daemon import SelectorLoop


def test_daemon_arguments() -> None:
    args = cli.build_parser().parse_args(
        ["daemon", "--run-dir", "/tmp/x", "--tun", "t0", "--foreground", "--log", "DEBUG"]
    )
    assert (args.run_dir, args.tun, args.foreground, args.log) == ("/tmp/x", "t0", True, "debug")
    assert args.runner is cli.run_daemon


def test_bad_arguments_exit_with_usage(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["daemon", "--log", "loud"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit):
        cli.main([])
    assert "usage" in capsys.readouterr().err


def test_run_dir_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYIPSEC_RUN_DIR", raising=False)
    assert cli.run_dir(argparse.Namespace(run_dir=None)) == Path("/run/pyipsec")
    monkeypatch.setenv("PYIPSEC_RUN_DIR", "/tmp/env")
    assert cli.run_dir(argparse.Namespace(run_dir=None)) == Path("/tmp/env")
    assert cli.run_dir(argparse.Namespace(run_dir="/tmp/flag")) == Path("/tmp/flag")


def test_adding_a_subcommand_is_one_function(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "_COMMANDS", dict(cli._COMMANDS))

    @cli.subcommand("hello", "say hello")
    def _hello(parser: argparse.ArgumentParser) -> cli.Runner:
        parser.add_argument("--to", default="world")
        return lambda args: 7 if args.to == "you" else 0

    assert cli.main(["hello", "--to", "you"]) == 7
    assert "hello" in cli.build_parser().format_help()


def test_status_without_daemon(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["status", "--run-dir", str(tmp_path)]) == 3
    assert "no daemon" in capsys.readouterr().err


SAMPLE: dict[str, Any] = {
    "daemon": {"pid": 42, "uptime": 3725, "tun": "ipsec0", "tun_mtu": 1422, "io": {"net_rx": 5}},
    "sas": [
        {
            "spi": 0x1001, "src": "192.0.2.1", "dst": "192.0.2.2", "mode": "tunnel",
            "enc": "aes128", "integ": "sha256", "encap": [4500, 4500], "state": "mature",
            "counters": {"packets": 3, "bytes": 252},
            "lifetime_left": {"soft": None, "hard": 90.5},
        }
    ],
    "policies": [
        {
            "direction": "out", "src": "198.51.100.1/32", "dst": "203.0.113.1/32",
            "proto": None, "action": "protect", "hits": 3,
            "templates": [
                {"proto": "esp", "mode": "tunnel", "src": "192.0.2.1", "dst": "192.0.2.2"}
            ],
        }
    ],
    "stats": {"out_packets": 3},
}  # fmt: skip


def test_format_status_reads_at_a_glance() -> None:
    text = cli.format_status(SAMPLE)
    assert "daemon pid 42, up 1h02m, tun ipsec0 mtu 1422" in text
    assert (
        "192.0.2.1 -> 192.0.2.2 spi 0x00001001 tunnel aes128+sha256 udp 4500->4500 [mature] "
        "3 pkts 252 bytes, rekey in -, expires in 90s"
    ) in text
    assert "out 198.51.100.1/32 -> 203.0.113.1/32 protect esp/tunnel 192.0.2.1-192.0.2.2" in text
    assert "(3 hits)" in text
    assert "out_packets" in text and "net_rx" in text


def test_status_json_over_a_real_socket(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    loop = SelectorLoop()
    server = SeqpacketServer(
        tmp_path / "control.sock",
        JsonControlHandler({"status": lambda req: SAMPLE}),
        loop,
        allowed_uids=[os.getuid()],
    )
    server.start()
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            loop.run_once(0.02)

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        assert cli.main(["status", "--json", "--run-dir", str(tmp_path)]) == 0
        assert json.loads(capsys.readouterr().out) == SAMPLE
        assert cli.main(["status", "--run-dir", str(tmp_path)]) == 0
        assert "spi 0x00001001" in capsys.readouterr().out
    finally:
        stop.set()
        thread.join()
        server.close()
        loop.close()


def test_log_target_syslog_and_its_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    import logging
    import logging.handlers

    args = cli.build_parser().parse_args(["daemon", "--log-target", "syslog"])
    assert args.log_target == "syslog"
    made: list[tuple[object, int]] = []

    class FakeSysLog(logging.Handler):
        LOG_DAEMON = logging.handlers.SysLogHandler.LOG_DAEMON

        def __init__(self, address: object, facility: int) -> None:
            super().__init__()
            made.append((address, facility))

    monkeypatch.setattr(logging.handlers, "SysLogHandler", FakeSysLog)
    monkeypatch.setattr(cli.os.path, "exists", lambda path: path == "/dev/log")
    cli.setup_logging("info", "syslog")
    (handler,) = logging.getLogger("pyipsec").handlers
    assert isinstance(handler, FakeSysLog)
    assert made == [("/dev/log", logging.handlers.SysLogHandler.LOG_DAEMON)]
    monkeypatch.setattr(cli.os.path, "exists", lambda path: False)
    cli.setup_logging("info", "syslog")  # no syslog socket here: stderr it is
    (handler,) = logging.getLogger("pyipsec").handlers
    assert isinstance(handler, logging.StreamHandler)

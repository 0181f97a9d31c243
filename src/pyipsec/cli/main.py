"""The ``pyipsec`` command: one program, one subcommand per job.

Adding a subcommand is one function: decorate a function that declares its arguments on
the parser it is given and returns the function that runs it::

    @subcommand("setkey", "manage SAs and policies (setkey syntax)")
    def _setkey(parser: argparse.ArgumentParser) -> Runner:
        parser.add_argument("-f", dest="file")
        return lambda args: run_setkey(args)   # returns the exit status

Client commands find their daemon by ``--run-dir``, else ``$PYIPSEC_RUN_DIR``, else
``/run/pyipsec`` (``run_dir(args)``).
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import logging.handlers
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyipsec.errors import ConfigError, PyipsecError

if TYPE_CHECKING:
    from pyipsec.engine.processor import Engine

DEFAULT_RUN_DIR = "/run/pyipsec"
LOG_FORMAT = "%(asctime)s %(levelname)-7s [%(subsystem)s] %(message)s"

Runner = Callable[[argparse.Namespace], int]
Setup = Callable[[argparse.ArgumentParser], Runner]
_COMMANDS: dict[str, tuple[str, Setup]] = {}
_COMMAND_MODULES = ("pyipsec.cli.ike_cmd",)  # modules whose @subcommand run at import
# Extra sections of ``pyipsec status`` (e.g. IKE SAs): doc -> lines, appended in order.
STATUS_SECTIONS: list[Callable[[dict[str, Any]], list[str]]] = []


def subcommand(name: str, help_text: str) -> Callable[[Setup], Setup]:
    """Register a subcommand (see the module docstring)."""

    def register(setup: Setup) -> Setup:
        _COMMANDS[name] = (help_text, setup)
        return setup

    return register


def run_dir(args: argparse.Namespace) -> Path:
    """The daemon's run directory: --run-dir, $PYIPSEC_RUN_DIR, or /run/pyipsec."""
    explicit = getattr(args, "run_dir", None)
    return Path(explicit or os.environ.get("PYIPSEC_RUN_DIR") or DEFAULT_RUN_DIR)


def _add_run_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--run-dir",
        metavar="DIR",
        help=f"the daemon's directory (default: $PYIPSEC_RUN_DIR or {DEFAULT_RUN_DIR})",
    )


class _SubsystemFilter(logging.Filter):
    """Adds ``subsystem``: the logger name without the ``pyipsec.`` prefix."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.subsystem = record.name.removeprefix("pyipsec.")
        return True


SYSLOG_FORMAT = "pyipsec[%(process)d]: %(levelname)s [%(subsystem)s] %(message)s"


def setup_logging(level: str, target: str = "stderr") -> None:
    """Log to stderr, or to syslog (``/dev/log``, facility daemon) with the same
    subsystem tags; syslog falls back to stderr where there is no syslog socket."""
    handler: logging.Handler
    if target == "syslog" and os.path.exists("/dev/log"):
        handler = logging.handlers.SysLogHandler(
            "/dev/log", facility=logging.handlers.SysLogHandler.LOG_DAEMON
        )
        handler.setFormatter(logging.Formatter(SYSLOG_FORMAT))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.addFilter(_SubsystemFilter())
    root = logging.getLogger("pyipsec")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False


# ------------------------------------------------------------------------- daemon ----
@subcommand("daemon", "run the IPsec daemon (TUN data plane, control sockets)")
def _daemon(parser: argparse.ArgumentParser) -> Runner:
    _add_run_dir(parser)
    parser.add_argument(
        "--config",
        metavar="FILE",
        type=Path,
        help="swanctl.conf-style file: IKE connections (either data plane)",
    )
    parser.add_argument("--tun", default="pyipsec0", metavar="NAME", help="TUN device name")
    parser.add_argument(
        "--data-plane",
        choices=["embedded", "kernel"],
        default="embedded",
        help="the embedded engine on a TUN, or the Linux kernel's xfrm (default: embedded)",
    )
    parser.add_argument(
        "--remove-on-exit",
        action="store_true",
        help="kernel data plane: on exit, remove the SAs/policies installed through the "
        "daemon's pfkey.sock/xfrm.sock (what IKE installs is always removed)",
    )
    parser.add_argument(
        "--foreground", action="store_true", help="stay attached (default: detach when ready)"
    )
    parser.add_argument(
        "--ike-keylog",
        metavar="DIR",
        type=Path,
        help="debugging only: write IKE and ESP keys to DIR/ikev2_decryption_table and "
        "DIR/esp_sa (Wireshark's tables, root-only files); off by default",
    )
    parser.add_argument(
        "--log",
        default="info",
        choices=["debug", "info", "warning", "error"],
        type=str.lower,
        help="log level",
    )
    parser.add_argument(
        "--log-target",
        default="stderr",
        choices=["stderr", "syslog"],
        help="where the log goes (default stderr; syslog: /dev/log, facility daemon)",
    )
    return run_daemon


def run_daemon(args: argparse.Namespace, engine: Engine | None = None) -> int:
    """Run the daemon; ``engine`` lets a launcher pre-load SAs and policies."""
    from pyipsec.io.daemon import Daemon, DaemonOptions
    from pyipsec.io.kernel_daemon import KernelDaemon

    setup_logging(args.log, args.log_target)
    options = DaemonOptions(
        run_dir=run_dir(args),
        tun=args.tun,
        config=args.config,
        ike_keylog=getattr(args, "ike_keylog", None),
    )
    daemon: Daemon | KernelDaemon
    if getattr(args, "data_plane", "embedded") == "kernel":
        if engine is not None:
            raise ConfigError("a pre-loaded engine needs --data-plane embedded")
        daemon = KernelDaemon(options, remove_on_exit=getattr(args, "remove_on_exit", False))
    else:
        daemon = Daemon(options, engine)
    if args.foreground:
        daemon.run()
        return 0
    # Detach only once everything is up, so "pyipsec daemon && pyipsec status" works and
    # a failed start is reported by the command itself.
    ready_r, ready_w = os.pipe()
    if os.fork():
        os.close(ready_w)
        status = os.read(ready_r, 1)
        return 0 if status == b"1" else 1
    os.close(ready_r)
    os.setsid()
    if os.fork():
        os._exit(0)
    try:
        daemon.start()
    except (PyipsecError, OSError) as exc:
        logging.getLogger("pyipsec.daemon").error("start failed: %s", exc)
        os.write(ready_w, b"0")
        os._exit(1)
    os.write(ready_w, b"1")
    os.close(ready_w)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    try:
        daemon.loop.run_forever()
    finally:
        daemon.close()
    return 0


# ------------------------------------------------------------------------- status ----
@subcommand("status", "show SAs, policies and statistics of the running daemon")
def _status(parser: argparse.ArgumentParser) -> Runner:
    _add_run_dir(parser)
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    return run_status


def run_status(args: argparse.Namespace) -> int:
    from pyipsec.io.control import request

    path = run_dir(args) / "control.sock"
    try:
        doc = request(path, {"cmd": "status"})
    except FileNotFoundError:
        print(f"pyipsec: no daemon at {path}", file=sys.stderr)
        return 3
    except (OSError, PyipsecError) as exc:
        print(f"pyipsec: {path}: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(doc, indent=2, sort_keys=True))
    else:
        print(format_status(doc), end="")
    return 0


def _secs(value: object) -> str:
    if not isinstance(value, int | float):
        return "-"
    value = max(0, int(value))
    return f"{value // 3600}h{value // 60 % 60:02d}m" if value >= 3600 else f"{value}s"


def format_status(doc: dict[str, Any]) -> str:
    """The status document for a human: one line per SA and policy, then counters."""
    lines: list[str] = []
    daemon = doc.get("daemon") or {}
    if daemon:
        plane = f"tun {daemon.get('tun')} mtu {daemon.get('tun_mtu')}"
        if daemon.get("data_plane") == "kernel":
            plane = "data plane kernel"
        lines.append(f"daemon pid {daemon.get('pid')}, up {_secs(daemon.get('uptime'))}, {plane}")
    sas = doc.get("sas", [])
    lines.append(f"Security Associations ({len(sas)}):")
    for sa in sas:
        algs = "+".join(a for a in (sa.get("enc"), sa.get("integ")) if a) or "-"
        encap = f" udp {sa['encap'][0]}->{sa['encap'][1]}" if sa.get("encap") else ""
        c = sa.get("counters") or {}
        left = sa.get("lifetime_left") or {}
        lines.append(
            f"  {sa['src']} -> {sa['dst']} spi 0x{sa['spi']:08x} {sa['mode']} {algs}{encap} "
            f"[{sa['state']}] {c.get('packets', 0)} pkts {c.get('bytes', 0)} bytes, "
            f"rekey in {_secs(left.get('soft'))}, expires in {_secs(left.get('hard'))}"
        )
    policies = doc.get("policies", [])
    lines.append(f"Policies ({len(policies)}):")
    for p in policies:
        tmpl = ", ".join(
            f"{t['proto']}/{t['mode']}" + (f" {t['src']}-{t['dst']}" if t.get("src") else "")
            for t in p.get("templates", [])
        )
        proto = "" if p.get("proto") is None else f" proto {p['proto']}"
        lines.append(
            f"  {p['direction']:<3} {p['src']} -> {p['dst']}{proto} {p['action']}"
            f"{' ' + tmpl if tmpl else ''} ({p['hits']} hits)"
        )
    for section in STATUS_SECTIONS:
        lines += section(doc)
    stats = doc.get("stats", {})
    io_stats = daemon.get("io", {}) if daemon else {}
    if stats or io_stats:
        lines.append("Statistics:")
        for name, value in sorted({**stats, **io_stats}.items()):
            lines.append(f"  {name:<24} {value}")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- main ----
def build_parser() -> argparse.ArgumentParser:
    from pyipsec.cli import setkey_cmd, xfrm_cmd  # noqa: F401  (they register themselves)

    for module in _COMMAND_MODULES:
        importlib.import_module(module)
    parser = argparse.ArgumentParser(prog="pyipsec", description="A userspace IPsec stack.")
    subs = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (help_text, setup) in _COMMANDS.items():
        sub = subs.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(runner=setup(sub))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.runner(args)
    except PyipsecError as exc:
        print(f"pyipsec {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    # Run the imported module, not __main__: subcommand modules register themselves on
    # ``pyipsec.cli.main``, which would otherwise be a second copy of this file.
    from pyipsec.cli import main as _cli

    sys.exit(_cli.main())

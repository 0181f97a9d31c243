"""``pyipsec setkey``: ipsec-tools' setkey(8), talking PF_KEY to the daemon.

    pyipsec setkey [--run-dir DIR] -f FILE     apply a setkey file ("-" for stdin)
    pyipsec setkey -c                          apply commands read from stdin
    pyipsec setkey -D [-P] [-p]                dump the SAD (the SPD with -P; ports with -p)
    pyipsec setkey -F [-P]                     flush the SAD (the SPD with -P)
    pyipsec setkey -x                          print PF_KEY messages as they arrive

The daemon is found by ``--run-dir``, else ``$PYIPSEC_RUN_DIR``, else ``/run/pyipsec``;
its ``pfkey.sock`` is a root-only SOCK_SEQPACKET socket carrying one PF_KEY message per
datagram. A file with a syntax error applies nothing; a command the daemon refuses is
reported as ``FILE:LINE: reason`` and the rest goes on, as with setkey. Exit status: 0
when everything applied, 1 otherwise (setkey's convention). Manually keyed AEAD SAs get
a warning on stderr (RFC 4106 §8.1, RFC 7634 §4).

Plugging into ``cli/main.py`` (its ``@subcommand`` registry)::

    @subcommand("setkey", "manage SAs and policies (setkey syntax)")
    def _setkey(parser: argparse.ArgumentParser) -> Runner:
        return setkey_cmd.setup(parser)
"""

from __future__ import annotations

import argparse
import os
import select
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from pyipsec.cli.main import subcommand
from pyipsec.errors import ConfigError, KeyApiError
from pyipsec.keyapi.setkey_client import SetkeyClient, Transport
from pyipsec.keyapi.setkey_commands import Command
from pyipsec.keyapi.setkey_grammar import parse_setkey, static_key_warnings
from pyipsec.keyapi.setkey_lexer import SetkeyError

__all__ = [
    "SocketTransport",
    "add_parser",
    "build_parser",
    "main",
    "resolve_run_dir",
    "run",
    "setup",
]

DEFAULT_RUN_DIR = "/run/pyipsec"
RUN_DIR_ENV = "PYIPSEC_RUN_DIR"
MAX_MESSAGE = 65536


def resolve_run_dir(option: str | None) -> Path:
    """``--run-dir``, else ``$PYIPSEC_RUN_DIR``, else ``/run/pyipsec``."""
    if option:
        return Path(option)
    env = os.environ.get(RUN_DIR_ENV)
    return Path(env) if env else Path(DEFAULT_RUN_DIR)


class SocketTransport:
    """A blocking SOCK_SEQPACKET connection to ``pfkey.sock``."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        try:
            self.sock.connect(os.fspath(path))
        except OSError:
            self.sock.close()
            raise

    def send(self, data: bytes) -> None:
        self.sock.send(data)

    def recv(self, timeout: float) -> bytes | None:
        ready, _, _ = select.select([self.sock], [], [], timeout)
        if not ready:
            return None
        data = self.sock.recv(MAX_MESSAGE)
        if not data:
            raise ConnectionResetError("the daemon closed the PF_KEY socket")
        return data

    def close(self) -> None:
        self.sock.close()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run-dir", help="the daemon's run directory")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("-f", dest="file", metavar="FILE", help="apply a setkey file")
    mode.add_argument("-c", dest="stdin", action="store_true", help="apply stdin")
    mode.add_argument("-D", dest="dump", action="store_true", help="dump the SAD")
    mode.add_argument("-F", dest="flush", action="store_true", help="flush the SAD")
    mode.add_argument("-x", dest="monitor", action="store_true", help="monitor PF_KEY")
    parser.add_argument("-P", dest="policy", action="store_true", help="the SPD, with -D/-F")
    parser.add_argument(
        "-p", dest="ports", action="store_true", help="with -D: show addresses with ports"
    )
    parser.add_argument("-v", dest="verbose", action="store_true", help="say what is done")


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``setkey`` on the ``pyipsec`` command's subparsers."""
    parser = subparsers.add_parser("setkey", help="manage SAs and policies (setkey syntax)")
    add_arguments(parser)
    parser.set_defaults(func=run)


def setup(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    """``cli.main``'s Setup: declare the arguments on ``parser``, return the runner."""
    add_arguments(parser)

    def runner(args: argparse.Namespace) -> int:
        return run(args)

    return runner


@subcommand("setkey", "manage SAs and policies (setkey syntax)")
def _register(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    return setup(parser)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pyipsec setkey", description=__doc__.split("\n")[0])
    add_arguments(parser)
    return parser


def run(
    args: argparse.Namespace,
    *,
    transport: Transport | None = None,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    monitor_count: int | None = None,
) -> int:
    """Run one setkey invocation; returns the exit status. ``transport`` and the streams
    default to the daemon's socket and the process's own."""
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    inp = stdin or sys.stdin
    if not (args.file or args.stdin or args.dump or args.flush or args.monitor):
        err.write("pyipsec setkey: one of -f FILE, -c, -D, -F or -x is needed\n")
        return 1
    if args.policy and not (args.dump or args.flush):
        err.write("pyipsec setkey: -P goes with -D or -F\n")
        return 1
    if getattr(args, "ports", False) and not args.dump:
        err.write("pyipsec setkey: -p goes with -D\n")
        return 1
    commands = None
    filename = "<stdin>"
    if args.file or args.stdin:
        if args.file and args.file != "-":
            filename = args.file
            try:
                text = Path(args.file).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                err.write(f"pyipsec setkey: cannot read {args.file}: {exc}\n")
                return 1
        else:
            text = inp.read()
        try:
            commands = parse_setkey(text, filename)
        except SetkeyError as exc:
            err.write(f"{exc}\n")  # nothing from the file has been applied
            return 1
        for warning in static_key_warnings(commands, filename):
            err.write(f"warning: {warning}\n")
    own: SocketTransport | None = None
    if transport is None:
        path = resolve_run_dir(args.run_dir) / "pfkey.sock"
        try:
            own = SocketTransport(path)
        except OSError as exc:
            err.write(f"pyipsec setkey: cannot reach the daemon at {path}: {exc.strerror}\n")
            return 1
        transport = own
    client = SetkeyClient(transport, pid=os.getpid(), now=lambda: int(time.time()))
    try:
        if commands is not None:
            return _apply(client, commands, filename, args.verbose, out, err)
        if args.dump:
            ports = bool(getattr(args, "ports", False))
            if args.policy:
                out.write(client.spd_text(with_ports=ports))
            else:
                out.write(client.sad_text(with_ports=ports))
            return 0
        if args.flush:
            client.flush(spd=args.policy)
            return 0

        def emit(text: str) -> None:
            out.write(text)
            out.flush()

        client.monitor(emit, monitor_count)
        return 0
    except KeyApiError as exc:
        err.write(f"pyipsec setkey: {os.strerror(exc.errno) if exc.errno else exc}\n")
        return 1
    except ConfigError as exc:
        err.write(f"pyipsec setkey: {exc}\n")
        return 1
    except KeyboardInterrupt:
        return 0
    except OSError as exc:
        err.write(f"pyipsec setkey: {exc}\n")
        return 1
    finally:
        if own is not None:
            own.close()


def _apply(
    client: SetkeyClient,
    commands: list[Command],
    filename: str,
    verbose: bool,
    out: TextIO,
    err: TextIO,
) -> int:
    try:
        client.messages(commands)
    except ConfigError as exc:
        err.write(f"{filename}: {exc}; nothing applied\n")
        return 1
    status = 0
    for result in client.run(commands):
        if result.error:
            err.write(f"{filename}:{result.line}: {result.error}\n")
            status = 1
        else:
            if verbose:
                err.write(f"{filename}:{result.line}: done\n")
            out.write(result.output)
    return status


def main(argv: list[str] | None = None) -> int:
    return run(build_parser().parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())

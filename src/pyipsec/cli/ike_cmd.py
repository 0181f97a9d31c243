"""``pyipsec up NAME`` / ``pyipsec down NAME``, and the IKE part of ``pyipsec status``.

Both talk to the daemon's control.sock (``io.ike_service`` commands). ``up`` asks the
daemon to initiate and, like ``swanctl --initiate``, waits until the IKE SA is
established with its CHILD SA (exit 0), fails (exit 1) or ``--timeout`` passes (exit 2);
``--no-wait`` returns at once. ``down`` deletes the connection's IKE SAs (and with them
their CHILD SAs).
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from pyipsec.cli.main import STATUS_SECTIONS, Runner, run_dir, subcommand
from pyipsec.errors import ConfigError, PyipsecError

POLL = 0.1


def _control(args: argparse.Namespace, doc: dict[str, Any]) -> Any:
    from pyipsec.io.control import request

    sock = run_dir(args) / "control.sock"
    try:
        return request(sock, doc)
    except FileNotFoundError:
        raise ConfigError(f"no daemon at {sock}") from None


def _add_run_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run-dir", metavar="DIR", help="the daemon's directory")


@subcommand("up", "initiate an IKE connection of the daemon's --config")
def _up(parser: argparse.ArgumentParser) -> Runner:
    _add_run_dir(parser)
    parser.add_argument("name", help="connection name (swanctl connections.<name>)")
    parser.add_argument("--child", help="the CHILD SA to create (default: the first)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait")
    parser.add_argument("--no-wait", action="store_true", help="return once initiated")
    return run_up


def _find(status: dict[str, Any], spi_i: str) -> dict[str, Any] | None:
    return next((s for s in status.get("ike_sas", []) if s.get("spi_i") == spi_i), None)


def _failure(status: dict[str, Any], spi_i: str) -> str | None:
    for event in status.get("events", []):
        if event.get("spi_i") == spi_i and event.get("event") == "IkeSaDeleted":
            return str(event.get("reason", "failed"))
    return None


def run_up(args: argparse.Namespace) -> int:
    try:
        started = _control(args, {"cmd": "ike-up", "name": args.name, "child": args.child})
        spi_i = str(started["spi_i"])
        if args.no_wait:
            print(f"{args.name}: initiating (IKE SA {spi_i}_i)")
            return 0
        deadline = time.monotonic() + args.timeout
        while time.monotonic() < deadline:
            status = _control(args, {"cmd": "ike-status"})
            sa = _find(status, spi_i)
            if sa is None:
                print(f"{args.name}: failed ({_failure(status, spi_i) or 'gone'})", file=sys.stderr)
                return 1
            if sa.get("state") == "established" and not sa.get("tasks"):
                print(format_ike_sa(sa), end="")
                return 0
            time.sleep(POLL)
    except (OSError, PyipsecError, KeyError, TypeError) as exc:
        print(f"pyipsec up: {exc}", file=sys.stderr)
        return 1
    print(f"{args.name}: not established after {args.timeout:g}s", file=sys.stderr)
    return 2


@subcommand("down", "delete the IKE SAs (and CHILD SAs) of a connection")
def _down(parser: argparse.ArgumentParser) -> Runner:
    _add_run_dir(parser)
    parser.add_argument("name", help="connection name")
    return run_down


def run_down(args: argparse.Namespace) -> int:
    try:
        result = _control(args, {"cmd": "ike-down", "name": args.name})
    except (OSError, PyipsecError) as exc:
        print(f"pyipsec down: {exc}", file=sys.stderr)
        return 1
    print(f"{args.name}: {result.get('deleted', 0)} IKE SA(s) deleted")
    return 0


# -- status --------------------------------------------------------------------------------
def _secs(value: object) -> str:
    if not isinstance(value, int | float):
        return "-"
    v = max(0, int(value))
    return f"{v // 3600}h{v // 60 % 60:02d}m" if v >= 3600 else f"{v}s"


def format_ike_sa(sa: dict[str, Any]) -> str:
    """One IKE SA and its CHILD SAs, swanctl --list-sas style."""
    role = "initiator" if sa.get("initiator") else "responder"
    lines = [
        f"  {sa.get('name')}: {str(sa.get('state', '?')).upper()}, {sa.get('local')} ... "
        f"{sa.get('remote')}, peer id {sa.get('remote_id') or '-'}",
        f"    {role}, spi {sa.get('spi_i')}_i {sa.get('spi_r')}_r, {sa.get('proposal') or '-'}",
        f"    established {_secs(sa.get('established_for'))} ago, "
        f"rekey in {_secs(sa.get('rekey_in'))}"
        + (", NAT" if sa.get("nat_local") or sa.get("nat_remote") else ""),
    ]
    for child in sa.get("children", []):
        lines.append(
            f"    {child.get('name')}: {str(child.get('state', '?')).upper()}, reqid "
            f"{child.get('reqid')}, {child.get('mode', '').upper()}, spi in "
            f"{child.get('spi_in')} out {child.get('spi_out')}, {child.get('proposal')}"
        )
        local_ts = ",".join(child.get("local_ts", []))
        remote_ts = ",".join(child.get("remote_ts", []))
        lines.append(f"      {local_ts} === {remote_ts}")
    return "\n".join(lines) + "\n"


def status_lines(doc: dict[str, Any]) -> list[str]:
    """The IKE section of ``pyipsec status`` (nothing when the daemon runs no IKE)."""
    ike = doc.get("ike")
    if not isinstance(ike, dict):
        return []
    sas = ike.get("ike_sas", [])
    lines = [f"IKE SAs ({len(sas)}):"]
    for sa in sas:
        lines.append(format_ike_sa(sa).rstrip("\n"))
    conns = ike.get("connections", [])
    if conns:
        names = ", ".join(str(c.get("name")) for c in conns)
        lines.append(f"Connections ({len(conns)}): {names}")
    return lines


STATUS_SECTIONS.append(status_lines)

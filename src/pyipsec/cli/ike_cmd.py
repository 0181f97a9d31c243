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
from collections.abc import Mapping
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
# ``swanctl --list-sas`` condensed: one line per IKE SA, one per CHILD SA under it. The
# CHILD SA's counters and time to rekey are the SAD's (the ``sas`` of ``pyipsec status``),
# joined by SPI; ``ike-status`` alone has no SAD, so they show as "-" there.

SadIndex = Mapping[int, Mapping[str, Any]]


def _secs(value: object) -> str:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "-"
    v = max(0, int(value))
    if v >= 86400:
        return f"{v // 86400}d{v // 3600 % 24:02d}h"
    return f"{v // 3600}h{v // 60 % 60:02d}m" if v >= 3600 else f"{v}s"


def _size(value: object) -> str:
    """Bytes as a human reads them (1023 B, 4.2 KiB, 17.0 MiB ...)."""
    if not isinstance(value, int) or isinstance(value, bool):
        return "-"
    if value < 1024:
        return f"{value} B"
    size = value / 1024
    for unit in ("KiB", "MiB"):
        if size < 1024:
            return f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def _endpoint(address: object, identity: object) -> str:
    ident = str(identity) if identity else ""
    return f"{address} {ident}" if ident and ident != str(address).split("[")[0] else str(address)


def sad_index(doc: Mapping[str, Any]) -> dict[int, Mapping[str, Any]]:
    """The SAs of a ``pyipsec status`` document by SPI (for the CHILD SA lines)."""
    out: dict[int, Mapping[str, Any]] = {}
    for entry in doc.get("sas") or []:
        spi = entry.get("spi") if isinstance(entry, Mapping) else None
        if isinstance(spi, int):
            out[spi] = entry
    return out


def _spi(text: object) -> int | None:
    try:
        return int(str(text), 16)
    except ValueError:
        return None


def _traffic(entry: Mapping[str, Any] | None) -> str:
    if entry is None:
        return "-"
    counters = entry.get("counters") or {}
    packets = counters.get("packets")
    return f"{_size(counters.get('bytes'))} {packets if isinstance(packets, int) else '-'} pkts"


def format_child_sa(child: Mapping[str, Any], sad: SadIndex | None = None) -> str:
    """One CHILD SA: name, state, mode, ESP algorithms, SPIs, selectors, traffic, rekey."""
    sad = sad or {}
    spi_in, spi_out = _spi(child.get("spi_in")), _spi(child.get("spi_out"))
    sa_in = sad.get(spi_in) if spi_in is not None else None
    sa_out = sad.get(spi_out) if spi_out is not None else None
    mode = str(child.get("mode") or "?").upper()
    if any(s is not None and s.get("encap") for s in (sa_in, sa_out)):
        mode += "-in-UDP"  # RFC 3948, as swanctl says it
    soft = [
        left.get("soft")
        for s in (sa_in, sa_out)
        if s is not None and isinstance(left := s.get("lifetime_left"), Mapping)
    ]
    rekey = min((x for x in soft if isinstance(x, int | float)), default=None)
    local_ts = ",".join(child.get("local_ts") or []) or "-"
    remote_ts = ",".join(child.get("remote_ts") or []) or "-"
    return (
        f"{child.get('name')}: {str(child.get('state', '?')).upper()}, reqid "
        f"{child.get('reqid')}, {mode}, {child.get('proposal') or '-'}, spi in "
        f"{child.get('spi_in')} out {child.get('spi_out')}, {local_ts} === {remote_ts}, "
        f"in {_traffic(sa_in)}, out {_traffic(sa_out)}, rekey in {_secs(rekey)}"
    )


def format_ike_sa(sa: Mapping[str, Any], sad: SadIndex | None = None) -> str:
    """One IKE SA (one line) and its CHILD SAs (indented), ``swanctl --list-sas`` style.

    ``*`` marks our SPI's role as in swanctl: ``spi_i*`` when we initiated."""
    mark_i, mark_r = ("*", "") if sa.get("initiator") else ("", "*")
    times = f"rekey in {_secs(sa.get('rekey_in'))}"
    if isinstance(sa.get("reauth_in"), int | float):
        times += f", reauth in {_secs(sa.get('reauth_in'))}"
    times += f", expires in {_secs(sa.get('expires_in'))}"
    extras = ""
    vips = [*(sa.get("local_vips") or []), *(f"{v} (peer)" for v in sa.get("remote_vips") or [])]
    if vips:
        extras += f", vip {' '.join(vips)}"
    if sa.get("nat_local") or sa.get("nat_remote"):
        extras += ", NAT-T"
    line = (
        f"{sa.get('name')}: {str(sa.get('state', '?')).upper()}, "
        f"{_endpoint(sa.get('local'), sa.get('local_id'))} ... "
        f"{_endpoint(sa.get('remote'), sa.get('remote_id'))}, {sa.get('proposal') or '-'}, "
        f"spi {sa.get('spi_i')}_i{mark_i} {sa.get('spi_r')}_r{mark_r}, {times}{extras}"
    )
    lines = [f"  {line}"]
    lines += [f"    {format_child_sa(c, sad)}" for c in sa.get("children") or []]
    return "\n".join(lines) + "\n"


def format_pool(pool: Mapping[str, Any]) -> str:
    """A pool and its leases: ``address identity`` (online, or offline when released)."""
    leases = [
        f"{x.get('address')} {x.get('identity')}{'' if x.get('online') else ' (offline)'}"
        for x in pool.get("leases") or []
    ]
    head = (
        f"  {pool.get('name')}: {pool.get('range')}, {pool.get('online', 0)} online, "
        f"{pool.get('offline', 0)} offline"
    )
    return head + (": " + ", ".join(leases) if leases else "")


def status_lines(doc: dict[str, Any]) -> list[str]:
    """The IKE section of ``pyipsec status`` (nothing when the daemon runs no IKE)."""
    ike = doc.get("ike")
    if not isinstance(ike, dict):
        return []
    sad = sad_index(doc)
    sas = ike.get("ike_sas", [])
    lines = [f"IKE SAs ({len(sas)}):"]
    for sa in sas:
        lines.append(format_ike_sa(sa, sad).rstrip("\n"))
    pools = ike.get("pools") or []
    if pools:
        lines.append(f"Pools ({len(pools)}):")
        lines += [format_pool(p) for p in pools]
    conns = ike.get("connections", [])
    if conns:
        names = ", ".join(str(c.get("name")) for c in conns)
        lines.append(f"Connections ({len(conns)}): {names}")
    return lines


STATUS_SECTIONS.append(status_lines)

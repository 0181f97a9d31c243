"""SAs and policies printed the way ``setkey -D`` and ``setkey -DP`` print them.

The views are plain records (what a PF_KEY dump carries), so the SAD, the SPD, a PF_KEY
reply or the kernel's xfrm state can all be shown in the format people already read and
grep. The layout follows ipsec-tools' libipsec dump routines: tab-indented lines, keys
in groups of four bytes, times as ``Mon DD HH:MM:SS YYYY`` (blank when zero), and the
trailing spaces setkey leaves at a few line ends, so that diffs against real dumps match.

Nothing here reads a clock: the caller passes ``now`` (and a time zone; setkey uses the
local one, which is the default here too).
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from dataclasses import dataclass, field

from pyipsec.keyapi.setkey_commands import (
    PRIORITY_DEFAULT,
    PRIORITY_HIGH,
    PRIORITY_LOW,
    Address,
    IpsecRequest,
    Network,
)

__all__ = [
    "PolicyView",
    "SAView",
    "format_policy",
    "format_sa",
    "format_sad",
    "format_spd",
    "setkey_time",
]

# /etc/protocols names as getprotobynumber() returns them on Linux; others print as
# numbers (255, "any", is not in the file, which is why real dumps show "255").
_PROTOCOL_NAMES = {
    0: "ip",
    1: "icmp",
    2: "igmp",
    4: "ipencap",
    6: "tcp",
    17: "udp",
    41: "ipv6",
    47: "gre",
    50: "esp",
    51: "ah",
    58: "ipv6-icmp",
    89: "ospf",
    103: "pim",
    108: "ipcomp",
    112: "vrrp",
    115: "l2tp",
    132: "sctp",
    135: "mobility-header",
    136: "udplite",
}
_NO_PORTS = frozenset({1, 58, 135, 47})  # ICMP, ICMPv6, MH, GRE: no [port] shown
_MANUAL_REQID_MAX = 0x3FFF  # libipsec prints larger (kernel-chosen) reqids with '#'
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_HEX_LINE_BYTES = 32


@dataclass(frozen=True, slots=True)
class SAView:
    """What ``setkey -D`` shows of one SA. Times are seconds since the epoch, 0 = never."""

    src: Address
    dst: Address
    protocol: str  # esp, ah, ipcomp, tcp
    spi: int
    mode: str = "any"
    reqid: int = 0
    ealgo: str | None = None
    ekey: bytes = field(default=b"", repr=False)
    aalgo: str | None = None
    akey: bytes = field(default=b"", repr=False)
    calgo: str | None = None
    seq: int = 0
    replay: int = 0
    flags: int = 0
    state: str = "mature"
    created: int = 0
    last_used: int = 0
    hard_add_time: int = 0
    soft_add_time: int = 0
    hard_use_time: int = 0
    soft_use_time: int = 0
    current_bytes: int = 0
    hard_bytes: int = 0
    soft_bytes: int = 0
    allocations: int = 0
    hard_allocations: int = 0
    soft_allocations: int = 0
    nat_t: bool = False
    sport: int = 0  # NAT-T source port, or the address port with ``with_ports``
    dport: int = 0
    nat_oa: Address | None = None
    sadb_seq: int = 0
    pid: int = 0
    refcnt: int = 0


@dataclass(frozen=True, slots=True)
class PolicyView:
    """What ``setkey -DP`` shows of one policy. ``priority`` is the PF_KEY value."""

    src: Network
    dst: Network
    direction: str  # in, out, fwd (or "in(socket)"/"out(socket)" with per_socket)
    action: str  # discard, none, ipsec, entrust, bypass
    upperspec: int = 255
    sport: int = 0
    dport: int = 0
    icmp_type: int = 0
    icmp_code: int = 0
    priority: int = PRIORITY_DEFAULT
    requests: tuple[IpsecRequest, ...] = ()
    created: int = 0
    last_used: int = 0
    lifetime: int = 0
    validtime: int = 0
    spid: int = 0
    seq: int = 0
    pid: int = 0
    refcnt: int = 0
    per_socket: bool = False


def setkey_time(timestamp: int, tz: datetime.tzinfo | None = None) -> str:
    """``ctime()`` without the weekday: ``Nov  1 06:15:17 2017``; 20 spaces for 0."""
    if timestamp == 0:
        return " " * 20
    try:
        moment = datetime.datetime.fromtimestamp(timestamp, tz or _local_zone())
    except (OverflowError, OSError, ValueError):
        return "?" * 20
    return (
        f"{_MONTHS[moment.month - 1]} {moment.day:2d} "
        f"{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d} {moment.year}"
    )


def _local_zone() -> datetime.tzinfo:
    zone = datetime.datetime.now().astimezone().tzinfo
    return zone if zone is not None else datetime.UTC


def _hexdump(data: bytes) -> str:
    # A space before every 4 bytes and a line break every 32, as libipsec does.
    out: list[str] = []
    for i, byte in enumerate(data):
        if i and i % _HEX_LINE_BYTES == 0:
            out.append("\n")
        if i % 4 == 0:
            out.append(" ")
        out.append(f"{byte:02x}")
    return "".join(out)


def format_sa(
    sa: SAView, now: int, tz: datetime.tzinfo | None = None, with_ports: bool = False
) -> str:
    """One SA in ``setkey -D`` form (``-Dp`` when ``with_ports``), ending with a newline."""
    lines: list[str] = []
    src, dst = str(sa.src), str(sa.dst)
    if with_ports:
        src, dst = f"{src}[{sa.sport}]", f"{dst}[{sa.dport}]"
    elif sa.nat_t:
        # With NAT-T, setkey shows the encapsulation ports after the addresses.
        src, dst = f"{src}[{sa.sport}]", f"{dst}[{sa.dport}]"
    lines.append(f"{src} {dst} ")
    kind = "esp-udp" if sa.nat_t and sa.protocol == "esp" else sa.protocol
    if sa.nat_t and sa.protocol != "esp":
        kind = f"natt+{sa.protocol}"
    lines.append(
        f"\t{kind} mode={sa.mode} spi={sa.spi}(0x{sa.spi:08x}) reqid={sa.reqid}(0x{sa.reqid:08x})"
    )
    if sa.nat_t and sa.nat_oa is not None:
        lines.append(f"\tNAT OA={sa.nat_oa}")
    # libipsec prints "C: name " without a line break, so the seq= line follows on it.
    prefix = ""
    if sa.protocol == "ipcomp":
        prefix = f"\tC: {sa.calgo or 'none'} "
    elif sa.protocol == "esp" and sa.ealgo is not None:
        lines.append(f"\tE: {sa.ealgo} {_hexdump(sa.ekey)}")
    if sa.aalgo is not None:
        lines.append(f"\tA: {sa.aalgo} {_hexdump(sa.akey)}")
    lines.append(
        f"{prefix}\tseq=0x{sa.seq:08x} replay={sa.replay} flags=0x{sa.flags:08x} state={sa.state} "
    )
    diff = now - sa.created if sa.created else 0
    lines += [
        f"\tcreated: {setkey_time(sa.created, tz)}\tcurrent: {setkey_time(now, tz)}",
        f"\tdiff: {diff}(s)\thard: {sa.hard_add_time}(s)\tsoft: {sa.soft_add_time}(s)",
        f"\tlast: {setkey_time(sa.last_used, tz)}\thard: {sa.hard_use_time}(s)"
        f"\tsoft: {sa.soft_use_time}(s)",
        f"\tcurrent: {sa.current_bytes}(bytes)\thard: {sa.hard_bytes}(bytes)"
        f"\tsoft: {sa.soft_bytes}(bytes)",
        f"\tallocated: {sa.allocations}\thard: {sa.hard_allocations}\tsoft: {sa.soft_allocations}",
        f"\tsadb_seq={sa.sadb_seq} pid={sa.pid} refcnt={sa.refcnt}",
    ]
    return "\n".join(lines) + "\n"


def format_sad(
    sas: Iterable[SAView], now: int, tz: datetime.tzinfo | None = None, with_ports: bool = False
) -> str:
    """A whole ``setkey -D``; setkey says "No SAD entries." for an empty database."""
    text = "".join(format_sa(sa, now, tz, with_ports) for sa in sas)
    return text or "No SAD entries.\n"


def _priority(priority: int) -> str:
    # Named after the nearest of high/def/low, with the offset signed the way users
    # type it: a smaller PF_KEY value is a *higher* priority ("def + 5").
    if priority == 0:
        return ""
    if priority < PRIORITY_DEFAULT // 4 * 3:
        base, name = PRIORITY_HIGH, "high"
    elif priority < PRIORITY_DEFAULT // 4 * 5:
        base, name = PRIORITY_DEFAULT, "def"
    else:
        base, name = PRIORITY_LOW, "low"
    offset = base - priority
    if offset == 0:
        return f"prio {name} "
    return f"prio {name} {'+' if offset > 0 else '-'} {abs(offset)} "


def _endpoint(address: Address, port: int, with_ports: bool) -> str:
    return f"{address}[{port}]" if with_ports else str(address)


def _request(request: IpsecRequest, with_ports: bool) -> str:
    addresses = ""
    if request.src is not None and request.dst is not None:
        addresses = (
            f"{_endpoint(request.src, request.sport, with_ports)}-"
            f"{_endpoint(request.dst, request.dport, with_ports)}"
        )
    level = request.level
    if request.reqid:
        mark = "#" if request.reqid > _MANUAL_REQID_MAX else ":"
        level = f"{level}{mark}{request.reqid}"
    return f"{request.protocol}/{request.mode}/{addresses}/{level}"


def _selector(network: Network, port: int, upper: int) -> str:
    prefix = "" if network.prefixlen == network.max_prefixlen else f"/{network.prefixlen}"
    if upper in _NO_PORTS:
        return f"{network.network_address}{prefix}"
    shown = "any" if port == 0 else str(port)
    return f"{network.network_address}{prefix}[{shown}]"


def format_policy(
    policy: PolicyView, tz: datetime.tzinfo | None = None, with_ports: bool = False
) -> str:
    """One policy in ``setkey -DP`` form, ending with a newline."""
    if policy.per_socket:
        head = "(per-socket policy) "
    else:
        upper = _PROTOCOL_NAMES.get(policy.upperspec, str(policy.upperspec))
        if policy.upperspec in (1, 58, 135) and (policy.icmp_type or policy.icmp_code):
            upper += f" {policy.icmp_type},{policy.icmp_code}"
        head = (
            f"{_selector(policy.src, policy.sport, policy.upperspec)} "
            f"{_selector(policy.dst, policy.dport, policy.upperspec)} {upper}"
        )
    rule = f"{policy.direction} {_priority(policy.priority)}{policy.action}"
    if policy.action == "ipsec":
        rule += "".join(f"\n\t{_request(r, with_ports)}" for r in policy.requests)
    lines = [
        head,
        f"\t{rule}",
        f"\tcreated: {setkey_time(policy.created, tz)}  "
        f"lastused: {setkey_time(policy.last_used, tz)}",
        f"\tlifetime: {policy.lifetime}(s) validtime: {policy.validtime}(s)",
        f"\tspid={policy.spid} seq={policy.seq} pid={policy.pid}",
        f"\trefcnt={policy.refcnt}",
    ]
    return "\n".join(lines) + "\n"


def format_spd(
    policies: Iterable[PolicyView], tz: datetime.tzinfo | None = None, with_ports: bool = False
) -> str:
    """A whole ``setkey -DP``; "No SPD entries." when empty."""
    text = "".join(format_policy(p, tz, with_ports) for p in policies)
    return text or "No SPD entries.\n"

"""SPD lookup cost as the database grows: 100, 1,000, 10,000 and 100,000 policies.

The policy sets model a VPN gateway's outbound SPD (see ``build_policy_set``): mostly
host-to-host tunnels (/32 and /128 pairs), some subnet policies with and without
protocol and port ranges, an IKE bypass and a default discard per family. Lookups use
distinct flows throughout (every 5-tuple is looked up once per run), so the decision
cache never answers: what is timed is the tuple-space index itself.

Printed: microseconds per lookup, with the default cache and with no cache, and the
ratio to the 100-policy anchor measured in the same run (goal: <= 3.0 at 100,000).

    .venv/bin/python bench/spd.py [--sizes 100,1000,10000,100000] [--flows 20000]

``build_policy_set`` and ``build_flows`` are meant for reuse by other benchmarks
(the processor benchmark runs packets through the same SPDs).
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import time
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

from pyipsec.engine.spd import Policy, SecurityPolicyDatabase, Selector, Template

GATEWAY_V4 = IPv4Address("192.0.2.1")
GATEWAY_V6 = IPv6Address("2001:db8::1")
V4_LOCAL = [IPv4Network("198.51.100.0/24"), IPv4Network("192.0.2.0/24")]
V4_REMOTE = IPv4Network("203.0.113.0/24")
V6_LOCAL = IPv6Network("2001:db8:1::/48")
V6_REMOTE = IPv6Network("2001:db8:2::/48")
TCP, UDP = 6, 17

# Share of each kind of policy in a set (the rest are the fixed policies).
MIX = {"v4_host": 0.80, "v6_host": 0.08, "v4_subnet": 0.07, "v6_subnet": 0.05}


@dataclass(frozen=True, slots=True)
class Flow:
    """One packet's lookup key, as the processor would pass it to ``lookup_packed``."""

    src: bytes
    dst: bytes
    proto: int
    sport: int | None
    dport: int | None


def _priority(selector: Selector) -> int:
    # strongSwan's idea: the more specific the selector, the lower (better) the number.
    width = 32 if selector.family == 4 else 128
    specificity = (selector.src_len + selector.dst_len) * 256 // (2 * width)
    extra = (
        (selector.proto is not None) + (selector.sport is not None) + (selector.dport is not None)
    )
    return 10_000 - 4 * specificity - extra


def _tunnel(src: IPv4Address | IPv6Address, dst: IPv4Address | IPv6Address) -> Template:
    return Template(proto="esp", mode="tunnel", src=str(src), dst=str(dst), reqid=1)


def _fixed_policies() -> list[tuple[Selector, str]]:
    return [
        (Selector(str(GATEWAY_V4), "0.0.0.0/0", UDP, 500), "bypass"),
        (Selector(str(GATEWAY_V4), "0.0.0.0/0", UDP, 4500), "bypass"),
        (Selector(str(GATEWAY_V6), "::/0", UDP, 500), "bypass"),
        (Selector("0.0.0.0/0", "0.0.0.0/0"), "discard"),
        (Selector("::/0", "::/0"), "discard"),
    ]


# What subnet policies restrict beyond addresses: (proto, sport, dport).
_VARIANTS: list[tuple[int | None, tuple[int, int] | None, tuple[int, int] | None]] = [
    (None, None, None),
    (TCP, None, (443, 443)),
    (UDP, None, (53, 53)),
    (TCP, (1024, 65535), (8000, 8099)),
]


def _v4_subnet(rng: random.Random) -> Selector:
    # Subnets are small (the documentation prefixes are only three /24s), host-to-subnet
    # included; a pair of networks carries at most the few variants above.
    slen, dlen = rng.choice([(28, 28), (29, 29), (30, 30), (29, 30), (32, 28)])
    local = rng.choice(V4_LOCAL).network_address + rng.randrange(256)
    remote = V4_REMOTE.network_address + rng.randrange(256)
    proto, sport, dport = rng.choice(_VARIANTS)
    return Selector(f"{local}/{slen}", f"{remote}/{dlen}", proto, sport, dport)


def _v6_subnet(rng: random.Random) -> Selector:
    slen, dlen = rng.choice([(64, 64), (56, 64), (48, 64)])
    local = V6_LOCAL.network_address + (rng.randrange(1 << 16) << 64)
    remote = V6_REMOTE.network_address + (rng.randrange(1 << 16) << 64)
    proto, sport, dport = rng.choice(_VARIANTS)
    return Selector(f"{local}/{slen}", f"{remote}/{dlen}", proto, sport, dport)


def build_policy_set(n: int, seed: int = 1) -> list[Policy]:
    """``n`` distinct outbound policies of a gateway (see the module docstring)."""
    rng = random.Random(seed)
    selectors: dict[Selector, str] = {}
    for sel, action in _fixed_policies():
        selectors[sel] = action
    counts = {kind: int(share * n) for kind, share in MIX.items()}
    counts["v4_host"] += n - len(selectors) - sum(counts.values())
    v4_local = [a for net in V4_LOCAL for a in net]
    for pair in rng.sample(range(len(v4_local) * V4_REMOTE.num_addresses), counts["v4_host"]):
        local, remote = v4_local[pair // 256], V4_REMOTE.network_address + pair % 256
        selectors[Selector(str(local), str(remote))] = "protect"
    for pair in rng.sample(range(1 << 24), counts["v6_host"]):
        local6 = V6_LOCAL.network_address + (pair >> 12)
        remote6 = V6_REMOTE.network_address + (pair & 0xFFF)
        selectors[Selector(str(local6), str(remote6))] = "protect"
    for kind, make in (("v4_subnet", _v4_subnet), ("v6_subnet", _v6_subnet)):
        wanted = len(selectors) + counts[kind]
        while len(selectors) < wanted:
            selectors.setdefault(make(rng), "protect")
    policies = []
    for sel, action in selectors.items():
        if action == "protect":
            peer = GATEWAY_V4 + 1 if sel.family == 4 else GATEWAY_V6 + 1
            gateway = GATEWAY_V4 if sel.family == 4 else GATEWAY_V6
            templates = [_tunnel(gateway, peer)]
        else:
            templates = []
        priority = _priority(sel) if action != "discard" else 20_000
        policies.append(Policy("out", sel, action, priority, templates))
    return policies


def _pick_port(ports: tuple[int, int] | None, rng: random.Random) -> int:
    return rng.randint(1024, 65535) if ports is None else rng.randint(*ports)


def build_flows(policies: list[Policy], count: int, seed: int = 2) -> list[Flow]:
    """``count`` distinct flows: 90% inside a random policy's selector, 10% matching none
    but the default discard (the worst case: every group is probed)."""
    rng = random.Random(seed)
    protect = [p for p in policies if p.action == "protect"]
    seen: set[Flow] = set()
    flows: list[Flow] = []
    while len(flows) < count:
        if rng.random() < 0.9:
            sel = rng.choice(protect).selector
            src_net, dst_net = sel.src_net, sel.dst_net
            src = src_net.network_address + rng.randrange(src_net.num_addresses)
            dst = dst_net.network_address + rng.randrange(dst_net.num_addresses)
            proto = sel.proto if sel.proto is not None else rng.choice((TCP, UDP))
            sport = _pick_port(sel.sport_range, rng)
            dport = _pick_port(sel.dport_range, rng)
            flow = Flow(src.packed, dst.packed, proto, sport, dport)
        else:
            # From the local side to outside every selector but the defaults.
            src = IPv4Address("198.51.100.0") + rng.randrange(256)
            dst = IPv4Address("10.0.0.0") + rng.randrange(1 << 24)
            flow = Flow(src.packed, dst.packed, TCP, rng.randint(1024, 65535), 443)
        if flow not in seen:
            seen.add(flow)
            flows.append(flow)
    return flows


def build_spd(policies: list[Policy], cache_size: int = 4096) -> SecurityPolicyDatabase:
    spd = SecurityPolicyDatabase(cache_size=cache_size)
    for policy in policies:
        spd.add(policy)
    return spd


def time_lookups(spd: SecurityPolicyDatabase, flows: list[Flow]) -> float:
    """Microseconds per lookup over ``flows`` (each looked up once)."""
    lookup = spd.lookup_packed
    gc.disable()
    try:
        start = time.perf_counter()
        for f in flows:
            lookup("out", f.src, f.dst, f.proto, f.sport, f.dport)
        return (time.perf_counter() - start) / len(flows) * 1e6
    finally:
        gc.enable()


@dataclass
class _Case:
    size: int
    groups: int
    add_us: float
    matched: float
    spds: dict[str, SecurityPolicyDatabase]
    flows: list[Flow]
    samples: dict[str, list[float]]


def _prepare(n: int, flow_count: int) -> _Case:
    policies = build_policy_set(n)
    start = time.perf_counter()
    cached = build_spd(policies)
    add_us = (time.perf_counter() - start) / n * 1e6
    bare = build_spd(policies, cache_size=0)
    flows = build_flows(policies, flow_count)
    protected = 0
    for f in flows[:2000]:
        policy = bare.lookup_packed("out", f.src, f.dst, f.proto, f.sport, f.dport)
        protected += policy is not None and policy.action == "protect"
    groups = sum(t.groups() for tables in bare._tables.values() for t in tables)
    return _Case(
        n,
        groups,
        add_us,
        protected / min(2000, len(flows)),
        {"cache": cached, "no cache": bare},
        flows,
        {"cache": [], "no cache": []},
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--sizes", default="100,1000,10000,100000")
    parser.add_argument("--flows", type=int, default=10_000, help="lookups per round")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    cases = [_prepare(n, args.flows * args.rounds) for n in sizes]
    # The machine is shared and noisy: rounds visit every size in turn, so a burst of
    # load hits all sizes alike, and the median of the rounds is kept. Each round uses
    # flows no earlier round used, so the decision cache never answers.
    for r in range(args.rounds):
        for case in cases:
            chunk = case.flows[r * args.flows : (r + 1) * args.flows]
            for name, spd in case.spds.items():
                case.samples[name].append(time_lookups(spd, chunk))
    anchor = {name: statistics.median(cases[0].samples[name]) for name in cases[0].samples}
    print(
        f"{'policies':>9} {'groups':>6} {'add us':>7} {'protect':>8} "
        f"{'lookup us':>10} {'ratio':>6} {'no-cache us':>12} {'ratio':>6}"
    )
    for case in cases:
        cached = statistics.median(case.samples["cache"])
        bare = statistics.median(case.samples["no cache"])
        print(
            f"{case.size:>9} {case.groups:>6} {case.add_us:>7.1f} {case.matched:>8.0%} "
            f"{cached:>10.2f} {cached / anchor['cache']:>6.2f} "
            f"{bare:>12.2f} {bare / anchor['no cache']:>6.2f}"
        )


if __name__ == "__main__":
    main()

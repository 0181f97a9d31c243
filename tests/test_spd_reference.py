"""The SPD's indexed lookup against a naive linear SPD, on random policy sets and packets.

The reference below is the RFC 4301 §4.4.1 picture taken literally: one list per
direction, scanned in full, matching each selector field by field from the raw values
the policy was made of (``ipaddress`` membership, inclusive port ranges, ANY when a range
is absent or covers everything), the lowest (priority, insertion order) winning.

Ports follow Linux (xfrm_selector_match with xfrm_flowi_sport/dport) rather than RFC
4301's OPAQUE: any selector but GRE's and MH's may name ports, protocol ANY included,
and a packet without ports is compared as ports 0.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass
from ipaddress import ip_address, ip_network

from hypothesis import given, settings
from hypothesis import strategies as st

from pyipsec.engine.spd import Policy, SecurityPolicyDatabase, Selector, Template
from pyipsec.errors import KeyApiError

V4_POOL = [
    "198.51.100.0",
    "198.51.100.1",
    "198.51.100.2",
    "198.51.100.130",
    "203.0.113.5",
    "203.0.113.200",
    "192.0.2.1",
]
V6_POOL = ["2001:db8::", "2001:db8::1", "2001:db8::8000:0:0:1", "2001:db8:1::1", "2001:db8:ff::2"]
V4_PREFIXES = [0, 1, 8, 16, 24, 25, 31, 32]
V6_PREFIXES = [0, 32, 48, 64, 127, 128]
PORT_POINTS = [0, 1, 53, 80, 443, 1024, 65535]
ICMP_POINTS = [0, 3, 8, 255]
SEL_PROTOS = [None, 1, 6, 17, 47, 50, 58, 132]
PKT_PROTOS = [1, 6, 17, 47, 50, 58, 132]
PORTED = {6, 17, 132, 136}
NO_PORT_SELECTORS = {47, 135}  # GRE key and MH type: Linux reads them, we do not
ICMPS = {1, 58}
DIRS = ["in", "out", "fwd"]
DEVS = [None, "eth0", "eth1"]
TEMPLATE = Template(mode="transport")


@dataclass
class RawPolicy:
    """What a random policy was made of, before any normalisation by the SPD."""

    direction: str
    family: int
    src: str
    dst: str
    proto: int | None
    sport: tuple[int, int] | None
    dport: tuple[int, int] | None
    dev: str | None
    priority: int
    action: str

    def build(self) -> Policy:
        selector = Selector(self.src, self.dst, self.proto, self.sport, self.dport, self.dev)
        templates = [TEMPLATE] if self.action == "protect" else []
        return Policy(self.direction, selector, self.action, self.priority, templates)


@dataclass
class Packet:
    direction: str
    src: str
    dst: str
    proto: int
    sport: int | None
    dport: int | None
    dev: str | None


@st.composite
def raw_policies(draw: st.DrawFn) -> RawPolicy:
    family = draw(st.sampled_from([4, 6]))
    pool, prefixes = (V4_POOL, V4_PREFIXES) if family == 4 else (V6_POOL, V6_PREFIXES)
    src = f"{draw(st.sampled_from(pool))}/{draw(st.sampled_from(prefixes))}"
    dst = f"{draw(st.sampled_from(pool))}/{draw(st.sampled_from(prefixes))}"
    proto = draw(st.sampled_from(SEL_PROTOS))
    sport = dport = None
    if proto not in NO_PORT_SELECTORS:
        # Protocol ANY and ESP take ports too (Linux does); ICMP's are type and code.
        points = ICMP_POINTS if proto in ICMPS else PORT_POINTS
        ranges = st.none() | st.tuples(st.sampled_from(points), st.sampled_from(points)).map(
            lambda pair: (min(pair), max(pair))
        )
        sport = draw(ranges)
        dport = draw(ranges)
    return RawPolicy(
        direction=draw(st.sampled_from(DIRS)),
        family=family,
        src=src,
        dst=dst,
        proto=proto,
        sport=sport,
        dport=dport,
        dev=draw(st.sampled_from(DEVS)),
        priority=draw(st.integers(0, 3)),
        action=draw(st.sampled_from(["protect", "bypass", "discard"])),
    )


@st.composite
def packets(draw: st.DrawFn) -> Packet:
    pool = draw(st.sampled_from([V4_POOL, V6_POOL]))
    proto = draw(st.sampled_from(PKT_PROTOS))
    points = ICMP_POINTS if proto in ICMPS else [*PORT_POINTS, 2, 79, 81, 1023, 8]
    ports = st.none() | st.sampled_from(points)
    has_ports = proto in PORTED or proto in ICMPS
    return Packet(
        direction=draw(st.sampled_from(DIRS)),
        src=draw(st.sampled_from(pool)),
        dst=draw(st.sampled_from(pool)),
        proto=proto,
        sport=draw(ports) if has_ports else None,
        dport=draw(ports) if has_ports else None,
        dev=draw(st.sampled_from(DEVS)),
    )


class ReferenceSpd:
    """A linear SPD: everything scanned, nothing indexed, nothing cached."""

    def __init__(self) -> None:
        # index -> (raw policy, insertion order)
        self.entries: dict[int, tuple[RawPolicy, int]] = {}
        self.seq = 0

    def _next(self) -> int:
        self.seq += 1
        return self.seq

    def find(self, raw: RawPolicy) -> int | None:
        key = _identity(raw)
        for index, (other, _) in self.entries.items():
            if _identity(other) == key:
                return index
        return None

    def add(self, index: int, raw: RawPolicy) -> None:
        self.entries[index] = (raw, self._next())

    def update(self, index: int, raw: RawPolicy) -> None:
        old, seq = self.entries[index]
        # xfrm re-inserts a policy whose priority changed after its new equals.
        self.entries[index] = (raw, seq if old.priority == raw.priority else self._next())

    def lookup(self, pkt: Packet) -> int | None:
        best: tuple[int, int, int] | None = None
        for index, (raw, seq) in self.entries.items():
            if _matches(raw, pkt) and (best is None or (raw.priority, seq) < best[:2]):
                best = (raw.priority, seq, index)
        return None if best is None else best[2]


def _is_any(ports: tuple[int, int] | None, proto: int | None) -> bool:
    top = 255 if proto in ICMPS else 65535
    return ports is None or ports == (0, top)


def _identity(raw: RawPolicy) -> tuple[object, ...]:
    return (
        raw.direction,
        ip_network(raw.src, strict=False),
        ip_network(raw.dst, strict=False),
        raw.proto,
        None if _is_any(raw.sport, raw.proto) else raw.sport,
        None if _is_any(raw.dport, raw.proto) else raw.dport,
        raw.dev,
    )


def _port_ok(ports: tuple[int, int] | None, proto: int | None, value: int | None) -> bool:
    if _is_any(ports, proto):
        return True
    assert ports is not None
    # Linux zeroes the flow's ports when the packet shows none (xfrm_flowi_sport's
    # default), where RFC 4301 §4.4.1.1 would have OPAQUE match only ANY.
    return ports[0] <= (0 if value is None else value) <= ports[1]


def _matches(raw: RawPolicy, pkt: Packet) -> bool:
    if raw.direction != pkt.direction:
        return False
    src, dst = ip_address(pkt.src), ip_address(pkt.dst)
    if src.version != raw.family:
        return False
    if src not in ip_network(raw.src, strict=False) or dst not in ip_network(raw.dst, False):
        return False
    if raw.proto is not None and raw.proto != pkt.proto:
        return False
    if not _port_ok(raw.sport, raw.proto, pkt.sport):
        return False
    if not _port_ok(raw.dport, raw.proto, pkt.dport):
        return False
    return raw.dev is None or raw.dev == pkt.dev


operations = st.one_of(
    st.tuples(st.just("add"), raw_policies()),
    st.tuples(st.just("update"), raw_policies()),
    st.tuples(st.just("delete"), st.integers(0, 1000)),
    st.tuples(st.just("flush"), st.sampled_from([None, *DIRS])),
    st.tuples(st.just("lookup"), packets()),
    st.tuples(st.just("lookup"), packets()),
)


def _check(spd: SecurityPolicyDatabase, ref: ReferenceSpd, pkt: Packet) -> None:
    want = ref.lookup(pkt)
    got = spd.lookup(pkt.direction, pkt.src, pkt.dst, pkt.proto, pkt.sport, pkt.dport, pkt.dev)
    assert (None if got is None else got.index) == want, pkt
    packed = spd.lookup_packed(
        pkt.direction,
        ip_address(pkt.src).packed,
        ip_address(pkt.dst).packed,
        pkt.proto,
        pkt.sport,
        pkt.dport,
        pkt.dev,
    )
    assert packed is got
    if want is not None:
        assert got is not None and got == spd.get(want)
        assert got.priority == ref.entries[want][0].priority


def _apply(spd: SecurityPolicyDatabase, ref: ReferenceSpd, op: str, arg: object) -> None:
    if op == "add":
        assert isinstance(arg, RawPolicy)
        existing = ref.find(arg)
        try:
            index = spd.add(arg.build())
        except KeyApiError as exc:
            assert exc.errno == errno.EEXIST and existing is not None
        else:
            assert existing is None
            ref.add(index, arg)
    elif op == "update":
        assert isinstance(arg, RawPolicy)
        existing = ref.find(arg)
        index = spd.update(arg.build())
        if existing is None:
            ref.add(index, arg)
        else:
            assert index == existing
            ref.update(index, arg)
    elif op == "delete":
        assert isinstance(arg, int)
        if ref.entries:
            index = sorted(ref.entries)[arg % len(ref.entries)]
            assert spd.delete(index).index == index
            del ref.entries[index]
    elif op == "flush":
        assert arg is None or isinstance(arg, str)
        doomed = [i for i, (raw, _) in ref.entries.items() if arg in (None, raw.direction)]
        assert spd.flush(arg) == len(doomed)
        for index in doomed:
            del ref.entries[index]
    else:
        assert isinstance(arg, Packet)
        _check(spd, ref, arg)


@settings(max_examples=300, deadline=None)
@given(st.lists(operations, max_size=60))
def test_lookup_equals_reference_through_changes(ops: list[tuple[str, object]]) -> None:
    spd = SecurityPolicyDatabase()
    ref = ReferenceSpd()
    for op, arg in ops:
        _apply(spd, ref, op, arg)
        assert len(spd) == len(ref.entries)
    # dump() lists each direction in lookup order.
    order = sorted(
        ref.entries.items(),
        key=lambda kv: (DIRS.index(kv[1][0].direction), kv[1][0].priority, kv[1][1]),
    )
    assert [p.index for p in spd.dump()] == [index for index, _ in order]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(raw_policies(), min_size=50, max_size=250),
    st.lists(st.integers(0, 10_000), max_size=40),
    st.lists(packets(), min_size=20, max_size=60),
)
def test_lookup_equals_reference_on_large_sets(
    raws: list[RawPolicy], deletions: list[int], pkts: list[Packet]
) -> None:
    spd = SecurityPolicyDatabase(cache_size=0)
    ref = ReferenceSpd()
    for raw in raws:
        _apply(spd, ref, "add", raw)
    for pick in deletions:
        _apply(spd, ref, "delete", pick)
    for pkt in pkts:
        _check(spd, ref, pkt)


def test_reference_agrees_with_a_hand_example() -> None:
    # The reference itself, on a case worked out by hand: a /24 TCP 443 protect at
    # priority 1 beats an older ANY bypass at priority 2 only for port 443.
    ref = ReferenceSpd()
    ref.add(10, RawPolicy("out", 4, "0.0.0.0/0", "0.0.0.0/0", None, None, None, None, 2, "bypass"))
    ref.add(
        11,
        RawPolicy(
            "out", 4, "198.51.100.0/24", "0.0.0.0/0", 6, None, (443, 443), None, 1, "protect"
        ),
    )
    web = Packet("out", "198.51.100.1", "203.0.113.5", 6, 1000, 443, None)
    mail = Packet("out", "198.51.100.1", "203.0.113.5", 6, 1000, 25, None)
    fragment = Packet("out", "198.51.100.1", "203.0.113.5", 6, None, None, None)
    assert [ref.lookup(p) for p in (web, mail, fragment)] == [11, 10, 10]


def test_reference_agrees_with_the_setkey_manual_example() -> None:
    # setkey(8)'s "spdadd 10.0.11.41/32[21] 10.0.11.33/32[any] any": source port 21,
    # any protocol, worked out by hand with Linux's rule (ICMP type as the source port,
    # ports 0 when the packet has none). A second policy from ports 0-9 catches those.
    ref = ReferenceSpd()
    ref.add(
        1,
        RawPolicy(
            "out", 4, "192.0.2.41/32", "192.0.2.33/32", None, (21, 21), None, None, 1, "protect"
        ),
    )
    ref.add(
        2,
        RawPolicy(
            "out", 4, "192.0.2.41/32", "192.0.2.33/32", None, (0, 9), None, None, 2, "bypass"
        ),
    )
    flows = [(6, 21, 80), (17, 21, 53), (1, 21, 0), (1, 8, 0), (50, None, None), (6, 80, 21)]
    got = [ref.lookup(Packet("out", "192.0.2.41", "192.0.2.33", *flow, None)) for flow in flows]
    assert got == [1, 1, 1, 2, 2, None]

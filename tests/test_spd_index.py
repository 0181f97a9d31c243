"""Tests of the tuple-space index itself: grouping, probe order, removal."""

from __future__ import annotations

from ipaddress import IPv4Address

from pyipsec.engine.spd_index import (
    CHECK_DEV,
    CHECK_DPORT,
    CHECK_PROTO,
    CHECK_SPORT,
    IndexEntry,
    TupleSpaceTable,
)


def addr(text: str) -> int:
    return int(IPv4Address(text))


def entry(key: int, src: str, slen: int, dst: str, dlen: int, **kw: object) -> IndexEntry[str]:
    return IndexEntry(
        key, f"k{key}", src=addr(src), slen=slen, dst=addr(dst), dlen=dlen, width=32, **kw
    )  # type: ignore[arg-type]


def find(table: TupleSpaceTable[str], src: str, dst: str, **kw: object) -> str | None:
    args = {"proto": 6, "sport": 1000, "dport": 443, "dev": None} | kw
    hit = table.lookup(addr(src), addr(dst), **args)  # type: ignore[arg-type]
    return None if hit is None else hit.value


def test_checks_flags() -> None:
    plain = entry(1, "198.51.100.0", 24, "0.0.0.0", 0)
    assert plain.checks == 0
    full = entry(2, "198.51.100.0", 24, "0.0.0.0", 0, proto=6, sport=(1, 2), dport=(3, 4), dev="e")
    assert full.checks == CHECK_PROTO | CHECK_SPORT | CHECK_DPORT | CHECK_DEV


def test_one_group_per_prefix_length_pair() -> None:
    table: TupleSpaceTable[str] = TupleSpaceTable(32)
    table.add(entry(1, "198.51.100.1", 32, "203.0.113.1", 32))
    table.add(entry(2, "198.51.100.2", 32, "203.0.113.1", 32))
    table.add(entry(3, "198.51.100.0", 24, "203.0.113.0", 24))
    table.add(entry(4, "198.51.100.7", 24, "203.0.113.0", 24))  # same bucket as 3
    assert table.groups() == 2
    assert len(table) == 4
    assert find(table, "198.51.100.2", "203.0.113.1") == "k2"
    assert find(table, "198.51.100.9", "203.0.113.1") == "k3"


def test_best_key_wins_across_groups_and_probe_plan_follows_removals() -> None:
    table: TupleSpaceTable[str] = TupleSpaceTable(32)
    broad = entry(5, "0.0.0.0", 0, "0.0.0.0", 0)
    narrow = entry(9, "198.51.100.1", 32, "203.0.113.1", 32)
    table.add(narrow)
    table.add(broad)
    assert find(table, "198.51.100.1", "203.0.113.1") == "k5"
    table.remove(broad)
    assert find(table, "198.51.100.1", "203.0.113.1") == "k9"
    assert table.groups() == 1
    table.remove(narrow)
    assert find(table, "198.51.100.1", "203.0.113.1") is None
    assert len(table) == 0


def test_removing_a_groups_best_entry_replans() -> None:
    table: TupleSpaceTable[str] = TupleSpaceTable(32)
    first = entry(1, "198.51.100.0", 24, "0.0.0.0", 0, proto=17)
    table.add(first)
    table.add(entry(50, "198.51.100.0", 24, "0.0.0.0", 0))
    table.add(entry(10, "0.0.0.0", 0, "0.0.0.0", 0))
    assert find(table, "198.51.100.1", "192.0.2.1", proto=17) == "k1"
    assert find(table, "198.51.100.1", "192.0.2.1") == "k10"
    table.remove(first)
    # The /24 group's best key is now 50: the /0 group (10) must be probed first.
    assert find(table, "198.51.100.1", "192.0.2.1", proto=17) == "k10"
    # A better entry in the /24 group moves it ahead again; were the probe plan not
    # updated, the /0 hit would prune the /24 group and answer k10.
    table.add(entry(5, "198.51.100.0", 24, "0.0.0.0", 0))
    assert find(table, "198.51.100.1", "192.0.2.1") == "k5"


def test_heap_stays_bounded_under_churn() -> None:
    table: TupleSpaceTable[str] = TupleSpaceTable(32)
    keep = entry(10**6, "198.51.100.0", 24, "0.0.0.0", 0)
    table.add(keep)
    for key in range(1, 2000):
        e = entry(key, "198.51.100.0", 24, "0.0.0.0", 0, proto=key % 200)
        table.add(e)
        assert find(table, "198.51.100.1", "192.0.2.1", proto=key % 200) == f"k{key}"
        table.remove(e)
    group = next(iter(table._groups.values()))
    assert len(group.heap) <= 2 * len(group.live) + 64
    assert find(table, "198.51.100.1", "192.0.2.1", proto=3) == f"k{10**6}"


def test_port_and_dev_checks() -> None:
    table: TupleSpaceTable[str] = TupleSpaceTable(32)
    table.add(entry(1, "0.0.0.0", 0, "0.0.0.0", 0, proto=6, sport=(1000, 1000), dev="eth0"))
    table.add(entry(2, "0.0.0.0", 0, "0.0.0.0", 0, proto=6, dport=(400, 500)))
    assert find(table, "192.0.2.1", "192.0.2.2", dev="eth0") == "k1"
    assert find(table, "192.0.2.1", "192.0.2.2", dev="eth1") == "k2"
    assert find(table, "192.0.2.1", "192.0.2.2", dev="eth1", dport=501) is None
    assert find(table, "192.0.2.1", "192.0.2.2", dev="eth0", sport=None, dport=None) is None


def test_missing_ports_are_compared_as_zero() -> None:
    # Linux's flow of a packet without ports has sport = dport = 0: a range holding 0
    # matches it, one without 0 does not; an entry without port checks always does.
    table: TupleSpaceTable[str] = TupleSpaceTable(32)
    table.add(entry(1, "0.0.0.0", 0, "0.0.0.0", 0, sport=(1, 65535)))
    table.add(entry(2, "0.0.0.0", 0, "0.0.0.0", 0, sport=(0, 0), dport=(0, 9)))
    table.add(entry(3, "0.0.0.0", 0, "0.0.0.0", 0, dport=(1, 19)))
    table.add(entry(4, "0.0.0.0", 0, "0.0.0.0", 0))
    assert find(table, "192.0.2.1", "192.0.2.2", proto=50, sport=None, dport=None) == "k2"
    assert find(table, "192.0.2.1", "192.0.2.2", sport=0, dport=9) == "k2"
    assert find(table, "192.0.2.1", "192.0.2.2", sport=None, dport=20) == "k4"
    assert find(table, "192.0.2.1", "192.0.2.2", sport=None, dport=10) == "k3"
    assert find(table, "192.0.2.1", "192.0.2.2", sport=5, dport=None) == "k1"

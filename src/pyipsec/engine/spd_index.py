"""Tuple-space index behind the SPD lookup.

A linear scan of the SPD (RFC 4301 §4.4.1 describes the SPD as an ordered list) costs
one comparison per policy; a gateway with 100,000 host-pair tunnels cannot afford that
per packet. The index here is a tuple-space search: entries are grouped by their
(source prefix length, destination prefix length) pair, and inside a group by the masked
(source, destination) addresses, so a lookup costs one dict probe per group plus a check
of the few entries that share exactly those networks.

Order is kept as an int ``key`` per entry, ``(priority << 64) | seq``: the lowest key
wins, which is "lowest priority number first, then earliest inserted" (the Linux xfrm
tie-break). Groups are probed in the order of their best key, so once a match is found
every group whose best key is worse is skipped without a probe.

This module knows nothing about policies: it stores an opaque value per entry. One
``TupleSpaceTable`` serves one (direction, address family) pair.
"""

from __future__ import annotations

import heapq
from bisect import insort
from typing import Generic, TypeVar

__all__ = [
    "CHECK_DEV",
    "CHECK_DPORT",
    "CHECK_PROTO",
    "CHECK_SPORT",
    "IndexEntry",
    "TupleSpaceTable",
]

T = TypeVar("T")

# Bits of IndexEntry.checks: which constraints beyond the addresses an entry carries.
# An entry with checks == 0 matches every packet that reaches its bucket.
CHECK_PROTO = 1
CHECK_SPORT = 2
CHECK_DPORT = 4
CHECK_DEV = 8

# Larger than any real key (priority < 2**32, seq < 2**64).
_NO_KEY = 1 << 200


class IndexEntry(Generic[T]):
    """One indexed policy: its order key, its non-address constraints and its value.

    Port bounds are inclusive. ``checks`` says which constraints apply, so that the
    common case (addresses only, or addresses and protocol) is decided with one or two
    integer tests.
    """

    __slots__ = (
        "bucket_key",
        "checks",
        "dev",
        "dlen",
        "dport_hi",
        "dport_lo",
        "key",
        "proto",
        "slen",
        "sport_hi",
        "sport_lo",
        "value",
    )

    def __init__(
        self,
        key: int,
        value: T,
        *,
        src: int,
        slen: int,
        dst: int,
        dlen: int,
        width: int,
        proto: int | None = None,
        sport: tuple[int, int] | None = None,
        dport: tuple[int, int] | None = None,
        dev: str | None = None,
    ) -> None:
        self.key = key
        self.value = value
        self.slen = slen
        self.dlen = dlen
        self.bucket_key = ((src & _mask(slen, width)) << width) | (dst & _mask(dlen, width))
        checks = 0
        self.proto = -1
        if proto is not None:
            checks |= CHECK_PROTO
            self.proto = proto
        self.sport_lo, self.sport_hi = (0, -1) if sport is None else sport
        if sport is not None:
            checks |= CHECK_SPORT
        self.dport_lo, self.dport_hi = (0, -1) if dport is None else dport
        if dport is not None:
            checks |= CHECK_DPORT
        self.dev = dev
        if dev is not None:
            checks |= CHECK_DEV
        self.checks = checks


def _mask(length: int, width: int) -> int:
    return ((1 << length) - 1) << (width - length)


class _Group(Generic[T]):
    """All entries with one (source prefix length, destination prefix length)."""

    __slots__ = ("buckets", "dmask", "heap", "live", "smask")

    def __init__(self, slen: int, dlen: int, width: int) -> None:
        self.smask = _mask(slen, width)
        self.dmask = _mask(dlen, width)
        self.buckets: dict[int, list[IndexEntry[T]]] = {}
        # Min-heap of keys with lazy deletion: ``live`` holds the keys still present.
        # The heap only gives the group's best key, which orders the probes.
        self.heap: list[int] = []
        self.live: set[int] = set()

    def best_key(self) -> int:
        heap = self.heap
        live = self.live
        while heap and heap[0] not in live:
            heapq.heappop(heap)
        return heap[0] if heap else _NO_KEY

    def add(self, entry: IndexEntry[T]) -> None:
        bucket = self.buckets.get(entry.bucket_key)
        if bucket is None:
            self.buckets[entry.bucket_key] = [entry]
        else:
            insort(bucket, entry, key=_entry_key)
        self.live.add(entry.key)
        heapq.heappush(self.heap, entry.key)

    def remove(self, entry: IndexEntry[T]) -> None:
        bucket = self.buckets[entry.bucket_key]
        for i, candidate in enumerate(bucket):
            if candidate is entry:
                del bucket[i]
                break
        if not bucket:
            del self.buckets[entry.bucket_key]
        self.live.discard(entry.key)
        # Keep the lazily deleted keys from piling up in the heap.
        if len(self.heap) > 2 * len(self.live) + 64:
            self.heap = list(self.live)
            heapq.heapify(self.heap)


def _entry_key(entry: IndexEntry[T]) -> int:
    return entry.key


class TupleSpaceTable(Generic[T]):
    """The entries of one direction and address family (``width`` 32 or 128 bits)."""

    __slots__ = ("_groups", "_order", "width")

    def __init__(self, width: int) -> None:
        self.width = width
        self._groups: dict[tuple[int, int], _Group[T]] = {}
        # Probe plan: (best key, src mask, dst mask, buckets) per group, best key first.
        self._order: list[tuple[int, int, int, dict[int, list[IndexEntry[T]]]]] = []

    def __len__(self) -> int:
        return sum(len(group.live) for group in self._groups.values())

    def add(self, entry: IndexEntry[T]) -> None:
        shape = (entry.slen, entry.dlen)
        group = self._groups.get(shape)
        if group is None:
            group = self._groups[shape] = _Group(entry.slen, entry.dlen, self.width)
        before = group.best_key()
        group.add(entry)
        if entry.key < before:
            self._replan()

    def remove(self, entry: IndexEntry[T]) -> None:
        shape = (entry.slen, entry.dlen)
        group = self._groups[shape]
        before = group.best_key()
        group.remove(entry)
        if not group.live:
            del self._groups[shape]
            self._replan()
        elif entry.key == before:
            self._replan()

    def clear(self) -> None:
        self._groups.clear()
        self._order = []

    def groups(self) -> int:
        """How many groups a lookup may probe (for tests and benchmarks)."""
        return len(self._groups)

    def _replan(self) -> None:
        plan = [
            (group.best_key(), group.smask, group.dmask, group.buckets)
            for group in self._groups.values()
        ]
        plan.sort(key=_plan_key)
        self._order = plan

    def lookup(
        self,
        src: int,
        dst: int,
        proto: int,
        sport: int | None,
        dport: int | None,
        dev: str | None,
    ) -> IndexEntry[T] | None:
        """The entry with the lowest key that matches the packet, or None.

        ``sport``/``dport`` None means the packet has no ports to show (a protocol
        without ports, or a fragment). It is compared as port 0, as Linux compares
        its zeroed flow (xfrm_flowi_sport's default): a range holding 0 matches it.
        """
        # ``or 0``: None -> 0 once per lookup rather than a test per checked entry.
        sport = sport or 0
        dport = dport or 0
        best: IndexEntry[T] | None = None
        best_key = _NO_KEY
        width = self.width
        for group_key, smask, dmask, buckets in self._order:
            if group_key >= best_key:
                # Groups are sorted by best key: none of the rest can do better.
                break
            bucket = buckets.get(((src & smask) << width) | (dst & dmask))
            if bucket is None:
                continue
            for entry in bucket:
                if entry.key >= best_key:
                    break
                checks = entry.checks
                if checks:
                    if checks & CHECK_PROTO and entry.proto != proto:
                        continue
                    if checks & CHECK_SPORT and not entry.sport_lo <= sport <= entry.sport_hi:
                        continue
                    if checks & CHECK_DPORT and not entry.dport_lo <= dport <= entry.dport_hi:
                        continue
                    if checks & CHECK_DEV and entry.dev != dev:
                        continue
                best = entry
                best_key = entry.key
                break
        return best


def _plan_key(item: tuple[int, int, int, dict[int, list[IndexEntry[T]]]]) -> int:
    return item[0]

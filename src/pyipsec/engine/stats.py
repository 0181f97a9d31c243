"""Engine-wide statistics, named as the kernel's ``/proc/net/xfrm_stat`` counters.

Besides the kernel's error counters we keep a few totals of our own (lower-case names), so
``pyipsec status`` can show at a glance what the engine did.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping

from pyipsec.errors import Reason

# Every counter the kernel shows in /proc/net/xfrm_stat, in its order, so a dump of ours
# reads like the kernel's even where a counter stays zero.
KERNEL_COUNTERS: tuple[str, ...] = (
    Reason.IN_ERROR,
    Reason.IN_BUFFER_ERROR,
    Reason.IN_HDR_ERROR,
    Reason.IN_NO_STATES,
    Reason.IN_STATE_PROTO_ERROR,
    Reason.IN_STATE_MODE_ERROR,
    Reason.IN_STATE_SEQ_ERROR,
    Reason.IN_STATE_EXPIRED,
    Reason.IN_STATE_MISMATCH,
    Reason.IN_STATE_INVALID,
    Reason.IN_TMPL_MISMATCH,
    Reason.IN_NO_POLS,
    Reason.IN_POL_BLOCK,
    Reason.IN_POL_ERROR,
    Reason.OUT_ERROR,
    "XfrmOutBundleGenError",
    "XfrmOutBundleCheckError",
    Reason.OUT_NO_STATES,
    Reason.OUT_STATE_PROTO_ERROR,
    Reason.OUT_STATE_MODE_ERROR,
    Reason.OUT_STATE_SEQ_ERROR,
    Reason.OUT_STATE_EXPIRED,
    Reason.OUT_POL_BLOCK,
    "XfrmOutPolDead",
    Reason.OUT_POL_ERROR,
    Reason.FWD_HDR_ERROR,
    Reason.OUT_STATE_INVALID,
    Reason.ACQUIRE_ERROR,
)

# Our own totals and non-error drops.
OWN_COUNTERS: tuple[str, ...] = (
    "in_packets",  # ESP packets decapsulated and accepted
    "in_bytes",
    "out_packets",  # packets encapsulated
    "out_bytes",
    "bypass_in",  # plain packets accepted by policy (or no policy)
    "bypass_out",
    "acquires",  # ACQUIRE events emitted
    "queued",  # packets held waiting for an SA
    "queue_overflow",  # held packets dropped because the queue was full
    "queue_expired",  # held packets dropped because no SA came in time
    Reason.DUMMY,
    Reason.NAT_KEEPALIVE,
)


class ChangeEpoch:
    """A change counter that several databases bump (the engine's SAD and SPD), so a
    cache of decisions that depends on all of them checks one number per packet."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0


# Counted for every packet that goes through: kept as plain attributes of the slotted
# EngineStats (an attribute update costs about a third of a dict item update).
HOT_COUNTERS: frozenset[str] = frozenset(("in_packets", "in_bytes", "out_packets", "out_bytes"))
_ORDER: tuple[str, ...] = KERNEL_COUNTERS + OWN_COUNTERS


class EngineStats(MutableMapping[str, int]):
    """The engine's counters as a mapping that always holds every known name (zero until
    used); an unknown name reads as zero and is added when set. The per-packet totals are
    also attributes (``stats.in_packets += 1``), which the processor's hot paths use."""

    __slots__ = ("_other", "in_bytes", "in_packets", "out_bytes", "out_packets")

    def __init__(self) -> None:
        self.in_packets = 0
        self.in_bytes = 0
        self.out_packets = 0
        self.out_bytes = 0
        self._other: dict[str, int] = {n: 0 for n in _ORDER if n not in HOT_COUNTERS}

    def __getitem__(self, key: str) -> int:
        if key in HOT_COUNTERS:
            return int(getattr(self, key))
        return self._other.get(key, 0)

    def __setitem__(self, key: str, value: int) -> None:
        if key in HOT_COUNTERS:
            setattr(self, key, value)
        else:
            self._other[key] = value

    def __delitem__(self, key: str) -> None:
        """Known names go back to zero (they are always present); others go away."""
        if key in HOT_COUNTERS:
            setattr(self, key, 0)
        elif key in _ORDER:
            self._other[key] = 0
        else:
            del self._other[key]

    def __contains__(self, key: object) -> bool:
        return key in HOT_COUNTERS or key in self._other

    def __iter__(self) -> Iterator[str]:
        yield from _ORDER
        yield from (n for n in self._other if n not in _ORDER)

    def __len__(self) -> int:
        return len(self._other) + len(HOT_COUNTERS)

    def __repr__(self) -> str:
        return f"EngineStats({dict(self.items())!r})"

    def get(self, key: str, default: int = 0) -> int:  # type: ignore[override]
        if key in HOT_COUNTERS:
            return int(getattr(self, key))
        return self._other.get(key, default)

    def count(self, name: str, n: int = 1) -> None:
        self[name] = self[name] + n

    def kernel_view(self) -> dict[str, int]:
        """The counters the kernel has, in its order (for an xfrm_stat-style dump)."""
        return {name: self[name] for name in KERNEL_COUNTERS}

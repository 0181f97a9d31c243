"""Engine-wide statistics, named as the kernel's ``/proc/net/xfrm_stat`` counters.

Besides the kernel's error counters we keep a few totals of our own (lower-case names), so
``pyipsec status`` can show at a glance what the engine did.
"""

from __future__ import annotations

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


class EngineStats(dict[str, int]):
    """A dict of counters that always holds every known name (zero until used)."""

    def __init__(self) -> None:
        super().__init__(dict.fromkeys(KERNEL_COUNTERS + OWN_COUNTERS, 0))

    def __missing__(self, key: str) -> int:
        return 0

    def count(self, name: str, n: int = 1) -> None:
        self[name] = self.get(name, 0) + n

    def kernel_view(self) -> dict[str, int]:
        """The counters the kernel has, in its order (for an xfrm_stat-style dump)."""
        return {name: self[name] for name in KERNEL_COUNTERS}

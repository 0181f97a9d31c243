"""Events the engine emits for key managers (PF_KEY, xfrm, IKE) and the daemon.

Frozen, slotted dataclasses, drained by the caller with ``Engine.next_event()``: the engine
never calls out. The names follow the kernel's messages (ACQUIRE, EXPIRE, NEWSA, DELSA, ...).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address

from pyipsec.engine.spd import Template

IPAddress = IPv4Address | IPv6Address


@dataclass(frozen=True, slots=True)
class SaId:
    """An SA's identity in the SAD: (destination, SPI, protocol), as RFC 4301 §4.1 has it."""

    dst: IPAddress
    spi: int
    proto: str = "esp"

    def __str__(self) -> str:
        return f"{self.proto} spi 0x{self.spi:08x} dst {self.dst}"


@dataclass(frozen=True, slots=True)
class Acquire:
    """No SA for an outbound template: a key manager should negotiate one (RFC 2367 §3.1.6).

    ``src``/``dst`` are the SA endpoints wanted (the template's tunnel endpoints, or the
    packet's addresses in transport mode); the ``flow_*`` fields describe the packet that
    triggered it, for traffic-selector narrowing.
    """

    seq: int
    policy_index: int
    template: Template
    src: IPAddress
    dst: IPAddress
    flow_src: IPAddress
    flow_dst: IPAddress
    flow_proto: int
    flow_sport: int | None
    flow_dport: int | None


@dataclass(frozen=True, slots=True)
class Expire:
    """An SA hit its soft (rekey now) or hard (deleted) lifetime (RFC 2367 §3.1.8)."""

    sa: SaId
    src: IPAddress
    reqid: int
    hard: bool
    cause: str  # "bytes" | "packets" | "add_time" | "use_time" | "seq" | "larval"


@dataclass(frozen=True, slots=True)
class SaAdded:
    sa: SaId
    update: bool  # True when a larval SA (GETSPI) was completed or an SA was updated


@dataclass(frozen=True, slots=True)
class SaDeleted:
    sa: SaId
    reason: str  # "deleted" | "expired" | "flushed" | "larval-expired"


@dataclass(frozen=True, slots=True)
class PolicyAdded:
    index: int
    update: bool


@dataclass(frozen=True, slots=True)
class PolicyDeleted:
    index: int
    reason: str  # "deleted" | "flushed"


Event = Acquire | Expire | SaAdded | SaDeleted | PolicyAdded | PolicyDeleted


class EventQueue:
    """A bounded FIFO of events; the oldest are dropped (and counted) if nobody drains it."""

    __slots__ = ("_queue", "dropped")

    def __init__(self, limit: int = 4096) -> None:
        self._queue: deque[Event] = deque(maxlen=limit)
        self.dropped = 0

    def put(self, event: Event) -> None:
        if len(self._queue) == self._queue.maxlen:
            self.dropped += 1
        self._queue.append(event)

    def get(self) -> Event | None:
        return self._queue.popleft() if self._queue else None

    def __len__(self) -> int:
        return len(self._queue)

"""What the engine tells its caller to do with a packet: plain data, no callbacks.

NamedTuples rather than dataclasses: one is made per packet on the hot path, and a tuple
is the cheapest object Python builds.
"""

from __future__ import annotations

from typing import NamedTuple


class Transmit(NamedTuple):
    """Send ``data`` to a peer: the ESP packet as it follows the outer IP header, or the UDP
    payload when ``encap`` is ``(sport, dport)`` (RFC 3948). The caller adds the outer
    header (a raw or UDP socket does)."""

    data: bytes
    src: str  # local outer address (the SA's source)
    dst: str  # peer's outer address
    encap: tuple[int, int] | None
    spi: int


class Deliver(NamedTuple):
    """An inbound packet accepted: hand it to the local stack (write it to the TUN)."""

    packet: bytes
    spi: int  # 0 for a plain packet accepted by policy


class Bypass(NamedTuple):
    """An outbound packet allowed in the clear: send it on by the normal routes."""

    packet: bytes


class Drop(NamedTuple):
    """The packet was dropped; ``reason`` is an ``errors.Reason`` value (already counted)."""

    reason: str


class Hold(NamedTuple):
    """The packet waits for an SA a key manager was asked for (ACQUIRE)."""

    acquire_seq: int


Action = Transmit | Deliver | Bypass | Drop | Hold

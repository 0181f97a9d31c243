"""Events the IKEv2 engine reports to its caller (the daemon, status views, tests).

Frozen, slotted dataclasses, drained with ``IkeManager.next_event()``: the engine never
calls out. They carry names, SPIs and selectors, never key material.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyipsec.ike.traffic_selectors import TrafficSelector

Endpoint = tuple[str, int]  # (IP address text, UDP port)


@dataclass(frozen=True, slots=True)
class IkeSaEstablished:
    name: str
    spi_i: bytes
    spi_r: bytes
    local: Endpoint
    remote: Endpoint
    initiator: bool
    remote_id: str


@dataclass(frozen=True, slots=True)
class IkeSaDeleted:
    """An IKE SA is gone. ``reason``: deleted, peer-deleted, timeout, auth-failed,
    no-proposal, failed (with ``notify`` the error notification that ended it, if any)."""

    name: str
    spi_i: bytes
    spi_r: bytes
    reason: str
    notify: int = 0


@dataclass(frozen=True, slots=True)
class ChildSaInstalled:
    name: str
    ike_name: str
    reqid: int
    spi_in: int
    spi_out: int
    mode: str
    local_ts: tuple[TrafficSelector, ...]
    remote_ts: tuple[TrafficSelector, ...]
    proposal: str


@dataclass(frozen=True, slots=True)
class ChildSaFailed:
    """A CHILD SA could not be created; ``notify`` is the error (RFC 7296 §3.10.1)."""

    name: str
    ike_name: str
    notify: int


@dataclass(frozen=True, slots=True)
class ChildSaDeleted:
    name: str
    ike_name: str
    reqid: int
    spi_in: int
    spi_out: int
    reason: str  # "deleted" | "peer-deleted" | "ike-deleted"


@dataclass(frozen=True, slots=True)
class VirtualIpAssigned:
    """A virtual IP in use (RFC 7296 §2.19): ``peer`` False: ours, given by the peer (io/
    installs it); True: one of our pools' addresses leased to ``identity``."""

    name: str
    spi_i: bytes
    address: str
    peer: bool
    identity: str
    dns: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class VirtualIpReleased:
    """The IKE SA that used a virtual IP is gone (``peer`` as in ``VirtualIpAssigned``)."""

    name: str
    spi_i: bytes
    address: str
    peer: bool
    identity: str


Event = (
    IkeSaEstablished
    | IkeSaDeleted
    | ChildSaInstalled
    | ChildSaFailed
    | ChildSaDeleted
    | VirtualIpAssigned
    | VirtualIpReleased
)

"""Shared helpers for the IKEv2 engine tests: config stand-ins and an in-memory wire.

``ike.connection`` is being written; until it lands these small dataclasses provide what
``IkeConfigLike``/``ChildConfigLike`` ask for.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from pyipsec.engine.processor import Engine
from pyipsec.ike.proposals import Proposal, parse_proposals
from pyipsec.ike.traffic_selectors import TsSpec, parse_ts_list
from pyipsec.ike.v2.constants import ProtocolId
from pyipsec.ike.v2.ike_sa import Datagram
from pyipsec.ike.v2.manager import IkeManager, ManagerSettings
from pyipsec.ike.v2.task_manager import RetransmitSettings

GW_A, GW_B = "192.0.2.1", "192.0.2.2"
NET_A, NET_B = "198.51.100.0/24", "203.0.113.0/24"
HOST_A, HOST_B = "198.51.100.7", "203.0.113.9"
PSK = b"a shared secret of decent length"


@dataclass(frozen=True)
class Child:
    name: str = "net"
    esp_proposals: tuple[Proposal, ...] = ()
    local_ts: tuple[TsSpec, ...] = ()
    remote_ts: tuple[TsSpec, ...] = ()
    mode: str = "tunnel"


@dataclass(frozen=True)
class Conn:
    name: str = "gw"
    local_addrs: tuple[str, ...] = ()
    remote_addrs: tuple[str, ...] = ()
    proposals: tuple[Proposal, ...] = ()
    local_id: str | None = None
    remote_id: str | None = None
    psk: bytes = field(default=PSK, repr=False)
    children: tuple[Child, ...] = ()


def ike(*items: str) -> tuple[Proposal, ...]:
    return parse_proposals(items, ProtocolId.IKE)


def esp(*items: str) -> tuple[Proposal, ...]:
    return parse_proposals(items, ProtocolId.ESP)


def child(local: str, remote: str, proposals: str = "aes128gcm16", **kw: object) -> Child:
    return Child(
        esp_proposals=esp(*proposals.split(",")),
        local_ts=parse_ts_list(local.split(",")),
        remote_ts=parse_ts_list(remote.split(",")),
        **kw,  # type: ignore[arg-type]
    )


def conn(
    me: str,
    peer: str,
    proposals: str = "aes128gcm16-prfsha256-x25519",
    children: tuple[Child, ...] = (),
    **kw: object,
) -> Conn:
    return Conn(
        local_addrs=(me,),
        remote_addrs=(peer,),
        proposals=ike(*proposals.split(",")),
        children=children,
        **kw,  # type: ignore[arg-type]
    )


FAST = RetransmitSettings(timeout=1.0, base=2.0, tries=3)


class Pair:
    """Two managers, each over its own Engine, joined by an in-memory wire."""

    def __init__(
        self,
        conf_a: Conn,
        conf_b: Conn,
        settings_a: ManagerSettings | None = None,
        settings_b: ManagerSettings | None = None,
    ) -> None:
        self.engine_a = Engine(local_addresses=[GW_A, HOST_A])
        self.engine_b = Engine(local_addresses=[GW_B, HOST_B])
        self.a = IkeManager(self.engine_a, [conf_a], settings_a or ManagerSettings(retransmit=FAST))
        self.b = IkeManager(self.engine_b, [conf_b], settings_b or ManagerSettings(retransmit=FAST))
        self.wire: list[tuple[str, Datagram]] = []  # every datagram sent, with its sender

    def pump(
        self, now: float, keep: Callable[[str, Datagram], bool] | None = None, rounds: int = 20
    ) -> int:
        """Deliver everything in flight until quiet; ``keep`` False drops a datagram."""
        moved = 0
        for _ in range(rounds):
            progress = False
            for name, src, dst in (("a", self.a, self.b), ("b", self.b, self.a)):
                for d in src.datagrams_to_send(now):
                    self.wire.append((name, d))
                    progress = True
                    moved += 1
                    if keep is None or keep(name, d):
                        dst.receive_datagram(d.data, d.dst, d.src, now)
            if not progress:
                break
        return moved

    def events(self, side: str) -> list[object]:
        mgr = self.a if side == "a" else self.b
        out: list[object] = []
        while (ev := mgr.next_event()) is not None:
            out.append(ev)
        return out

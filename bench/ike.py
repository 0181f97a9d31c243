"""IKE_SA + first CHILD_SA established per second between two pyipsec instances in one
process (no sockets), PSK + x25519 + aes128gcm16, against the DH floor: the same count
of bare `cryptography` X25519 exchanges (two key pairs, both shared secrets), measured
in the same run. Each handshake is four messages (IKE_SA_INIT, IKE_AUTH) and installs
two ESP SAs per side into an embedded Engine.

Run: .venv/bin/python bench/ike.py [--count N] [--runs R]

The ratio is what counts (the machine may be shared): handshakes per second divided by
DH exchanges per second. The goal is >= 500 IKE+CHILD SAs per second per core.
(ECDSA-256 certificates come with ike/v2/auth.py.)
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric import x25519

from pyipsec.engine.processor import Engine
from pyipsec.ike.proposals import Proposal, parse_proposals
from pyipsec.ike.traffic_selectors import TsSpec, parse_ts_list
from pyipsec.ike.v2.constants import ProtocolId
from pyipsec.ike.v2.ike_sa import IkeSaState
from pyipsec.ike.v2.manager import IkeManager

GW_A, GW_B = "192.0.2.1", "192.0.2.2"


@dataclass(frozen=True)
class Child:
    name: str
    esp_proposals: tuple[Proposal, ...]
    local_ts: tuple[TsSpec, ...]
    remote_ts: tuple[TsSpec, ...]
    mode: str = "tunnel"


@dataclass(frozen=True)
class Conn:
    name: str
    local_addrs: tuple[str, ...]
    remote_addrs: tuple[str, ...]
    proposals: tuple[Proposal, ...]
    children: tuple[Child, ...]
    local_id: str | None = None
    remote_id: str | None = None
    psk: bytes = field(default=b"benchmark pre-shared key", repr=False)


def config(me: str, peer: str, local: str, remote: str) -> Conn:
    child = Child(
        "net",
        parse_proposals(["aes128gcm16"], ProtocolId.ESP),
        parse_ts_list([local]),
        parse_ts_list([remote]),
    )
    ike = parse_proposals(["aes128gcm16-prfsha256-x25519"], ProtocolId.IKE)
    return Conn("gw", (me,), (peer,), ike, (child,))


def handshakes(count: int) -> float:
    """Seconds for ``count`` IKE SA + CHILD SA establishments."""
    a = IkeManager(Engine([GW_A]), [config(GW_A, GW_B, "198.51.100.0/24", "203.0.113.0/24")])
    b = IkeManager(Engine([GW_B]), [config(GW_B, GW_A, "203.0.113.0/24", "198.51.100.0/24")])
    start = time.perf_counter()
    for _ in range(count):
        sa = a.initiate("gw", 0.0)
        moving = True
        while moving:
            moving = False
            for src, dst in ((a, b), (b, a)):
                for d in src.datagrams_to_send(0.0):
                    dst.receive_datagram(d.data, d.dst, d.src, 0.0)
                    moving = True
        if sa.state is not IkeSaState.ESTABLISHED or len(sa.children) != 1:
            raise SystemExit("handshake failed")
    return time.perf_counter() - start


def dh_floor(count: int) -> float:
    """Seconds for ``count`` bare X25519 exchanges (two key pairs, two shared secrets)."""
    start = time.perf_counter()
    for _ in range(count):
        one = x25519.X25519PrivateKey.generate()
        two = x25519.X25519PrivateKey.generate()
        s1 = one.exchange(two.public_key())
        s2 = two.exchange(one.public_key())
        if s1 != s2:
            raise SystemExit("X25519 disagrees")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    handshakes(20)  # warm up imports and caches
    rates, ratios = [], []
    for _ in range(args.runs):
        ike_s = handshakes(args.count)
        dh_s = dh_floor(args.count)
        rates.append(args.count / ike_s)
        ratios.append(dh_s / ike_s)
        print(
            f"{args.count} IKE+CHILD SAs in {ike_s:.3f} s = {args.count / ike_s:8.1f}/s; "
            f"X25519 floor {args.count / dh_s:8.1f}/s; ratio {dh_s / ike_s:.4f}"
        )
    print(
        f"median: {statistics.median(rates):.1f} IKE+CHILD SAs/s "
        f"(goal >= 500), ratio to the DH floor {statistics.median(ratios):.4f}"
    )


if __name__ == "__main__":
    main()

"""What the engine adds to bare ESP: packets/s through ``Engine.outbound`` + ``inbound_esp``
against ``SecurityAssociation.encapsulate`` + ``decapsulate`` on the same packets.

Two engines (a gateway pair) hold a tunnel policy pair among a gateway-sized SPD of
other policies (``bench/spd.py``'s ``build_policy_set``), so the SPD lookups on both
sides (outbound, and the inbound policy check after decryption) are real lookups. The
packets are UDP datagrams of 1,000 distinct flows, cycled, so the decision cache works
as it would on a busy gateway. Printed: microseconds per packet each way, and the ratio
of the engine's round trip to the bare SAs' round trip (goal: <= 1.5, the processor
adding at most 50% to the ESP cost). Runs alternate and the best of each is kept.

    .venv/bin/python bench/processor.py [--packets 50000] [--policies 1000] [--runs 5]
"""

from __future__ import annotations

import argparse
import gc
import ipaddress
import os
import struct
import sys
import time
from collections.abc import Callable

sys.path.insert(0, os.path.dirname(__file__))

from pyipsec.engine.actions import Deliver, Transmit
from pyipsec.engine.processor import Engine
from pyipsec.engine.sa import SecurityAssociation
from pyipsec.engine.sad import SASpec
from pyipsec.engine.spd import Policy, Selector, Template
from pyipsec.wire.ip import IPv4Header, build_ipv4
from spd import build_policy_set

GW_A, GW_B = "192.0.2.1", "192.0.2.2"
NET_A, NET_B = "198.51.100.0/24", "203.0.113.0/24"
SPI = 0x1001
ALGS = {
    "aes128gcm16": {"enc": "aes128gcm16", "enc_key": bytes(range(20))},
    "aes128+sha256": {
        "enc": "aes128",
        "enc_key": bytes(range(16)),
        "integ": "sha256",
        "integ_key": bytes(range(32)),
    },
}


def udp_packet(src: str, dst: str, sport: int, size: int) -> bytes:
    payload = bytes(size - 28)
    udp = struct.pack("!HHHH", sport, 4500 + 1, 8 + len(payload), 0) + payload
    a, b = ipaddress.ip_address(src).packed, ipaddress.ip_address(dst).packed
    return build_ipv4(IPv4Header(0, 20 + len(udp), 0, 2, 0, 64, 17, 0, a, b)) + udp


def make_engine(local: list[str], policies: list[Policy], out_net: str, in_net: str) -> Engine:
    engine = Engine(local_addresses=local)
    for policy in policies:
        engine.add_policy(policy)
    me, peer = (GW_A, GW_B) if out_net == NET_A else (GW_B, GW_A)
    for direction, src, dst, t_src, t_dst in (
        ("out", out_net, in_net, me, peer),
        ("in", in_net, out_net, peer, me),
        ("fwd", in_net, out_net, peer, me),
    ):
        engine.add_policy(
            Policy(
                direction=direction,
                selector=Selector(src=src, dst=dst),
                priority=100,
                templates=[Template(mode="tunnel", src=t_src, dst=t_dst, reqid=1)],
            )
        )
    return engine


def best(runs: int, fn: Callable[[], float]) -> float:
    return min(fn() for _ in range(runs))


def timed(loop: Callable[[], None]) -> float:
    gc.collect()
    gc.disable()
    try:
        start = time.perf_counter()
        loop()
        return time.perf_counter() - start
    finally:
        gc.enable()


def measure(alg: str, size: int, args: argparse.Namespace) -> tuple[float, float, float, float]:
    keys = ALGS[alg]
    spec = SASpec(spi=SPI, src=GW_A, dst=GW_B, replay_window=0, reqid=1, **keys)  # type: ignore[arg-type]
    noise = build_policy_set(args.policies)
    a = make_engine([GW_A], noise, NET_A, NET_B)
    b = make_engine([GW_B, "203.0.113.1"], [], NET_B, NET_A)
    a.add_sa(spec, 0.0)
    b.add_sa(spec, 0.0)
    packets = [
        udp_packet(f"198.51.100.{1 + i % 200}", "203.0.113.1", 1024 + i, size) for i in range(1000)
    ]
    stream = [packets[i % len(packets)] for i in range(args.packets)]
    src_b, dst_b = ipaddress.ip_address(GW_A).packed, ipaddress.ip_address(GW_B).packed
    # Replay checking off (window 0) on both sides so every run can reuse the packets.
    bare_out = SecurityAssociation(SPI, GW_A, GW_B, replay_window=0, **keys)  # type: ignore[arg-type]
    bare_in = SecurityAssociation(SPI, GW_A, GW_B, replay_window=0, **keys)  # type: ignore[arg-type]
    outers = [bare_out.encapsulate(p) for p in stream]
    esps = []
    for p in stream:
        action = a.outbound(p, 1.0)
        assert isinstance(action, Transmit)
        esps.append(action.data)
    assert isinstance(b.inbound_esp(esps[0], src_b, dst_b, None, 1.0), Deliver)

    def engine_out() -> float:
        out = a.outbound
        return timed(lambda: [out(p, 1.0) for p in stream] and None)

    def engine_in() -> float:
        inb = b.inbound_esp
        return timed(lambda: [inb(e, src_b, dst_b, None, 1.0) for e in esps] and None)

    def sa_out() -> float:
        enc = bare_out.encapsulate
        return timed(lambda: [enc(p) for p in stream] and None)

    def sa_in() -> float:
        dec = bare_in.decapsulate
        return timed(lambda: [dec(o) for o in outers] and None)

    n = args.packets
    results = [best(args.runs, f) / n * 1e6 for f in (engine_out, engine_in, sa_out, sa_in)]
    return results[0], results[1], results[2], results[3]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=50_000)
    parser.add_argument("--policies", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    print(f"{args.packets} packets, {args.policies} other policies, best of {args.runs} runs")
    header = (
        f"{'algorithm':<14} {'size':>5} {'engine out':>11} {'engine in':>10} "
        f"{'SA encap':>9} {'SA decap':>9} {'ratio':>6}"
    )
    print(header)
    print("-" * len(header))
    for alg in ALGS:
        for size in (64, 1400):
            eo, ei, so, si = measure(alg, size, args)
            ratio = (eo + ei) / (so + si)
            print(
                f"{alg:<14} {size:>5} {eo:>9.2f}us {ei:>8.2f}us {so:>7.2f}us {si:>7.2f}us "
                f"{ratio:>6.2f}"
            )
    print("ratio = (engine out + engine in) / (SA encapsulate + decapsulate); goal <= 1.5")


if __name__ == "__main__":
    main()

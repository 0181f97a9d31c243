"""The processor: two engines wired in memory (no sockets), packets both ways, counters exact."""

from __future__ import annotations

import ipaddress

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import IPv6

from pyipsec.engine.actions import Bypass, Deliver, Drop, Hold, Transmit
from pyipsec.engine.events import Acquire, Expire
from pyipsec.engine.lifetime import Lifetime
from pyipsec.engine.processor import HOLD_LIMIT, Engine
from pyipsec.engine.sad import SASpec
from pyipsec.engine.spd import Policy, Selector, Template
from pyipsec.errors import Reason

GW_A, GW_B = "192.0.2.1", "192.0.2.2"
NET_A, NET_B = "198.51.100.0/24", "203.0.113.0/24"
HOST_A, HOST_B = "198.51.100.7", "203.0.113.9"
KEY_AB = bytes(range(16))
KEY_BA = bytes(range(16, 32))
AUTH_AB = bytes(range(32))
AUTH_BA = bytes(range(32, 64))


def packed(addr: str) -> bytes:
    return ipaddress.ip_address(addr).packed


def sa_spec(spi: int, src: str, dst: str, key: bytes, auth: bytes, **kw: object) -> SASpec:
    args: dict[str, object] = {
        "spi": spi,
        "src": src,
        "dst": dst,
        "enc": "aes128",
        "enc_key": key,
        "integ": "sha256",
        "integ_key": auth,
        "replay_window": 64,
    }
    args.update(kw)
    return SASpec(**args)  # type: ignore[arg-type]


def tunnel_policies(engine: Engine, local_net: str, remote_net: str, me: str, peer: str) -> None:
    out_t = Template(proto="esp", mode="tunnel", src=me, dst=peer, reqid=1, level="required")
    in_t = Template(proto="esp", mode="tunnel", src=peer, dst=me, reqid=1, level="required")
    engine.add_policy(
        Policy(
            direction="out",
            selector=Selector(src=local_net, dst=remote_net),
            action="protect",
            priority=100,
            templates=[out_t],
        )
    )
    for direction in ("in", "fwd"):
        engine.add_policy(
            Policy(
                direction=direction,
                selector=Selector(src=remote_net, dst=local_net),
                action="protect",
                priority=100,
                templates=[in_t],
            )
        )


@pytest.fixture
def pair() -> tuple[Engine, Engine]:
    a = Engine(local_addresses=[GW_A, HOST_A])
    b = Engine(local_addresses=[GW_B, HOST_B])
    tunnel_policies(a, NET_A, NET_B, GW_A, GW_B)
    tunnel_policies(b, NET_B, NET_A, GW_B, GW_A)
    a.add_sa(sa_spec(0x1001, GW_A, GW_B, KEY_AB, AUTH_AB, reqid=1), now=0.0)
    b.add_sa(sa_spec(0x1001, GW_A, GW_B, KEY_AB, AUTH_AB, reqid=1), now=0.0)
    a.add_sa(sa_spec(0x2002, GW_B, GW_A, KEY_BA, AUTH_BA, reqid=1), now=0.0)
    b.add_sa(sa_spec(0x2002, GW_B, GW_A, KEY_BA, AUTH_BA, reqid=1), now=0.0)
    return a, b


def carry(sender: Engine, receiver: Engine, packet: bytes, now: float = 1.0) -> Deliver | Drop:
    action = sender.outbound(packet, now)
    assert isinstance(action, Transmit), action
    result = receiver.inbound_esp(
        action.data, packed(action.src), packed(action.dst), action.encap, now
    )
    assert isinstance(result, Deliver | Drop)
    return result


def test_ping_both_ways_with_exact_counters(pair: tuple[Engine, Engine]) -> None:
    a, b = pair
    request = bytes(IP(src=HOST_A, dst=HOST_B, ttl=63) / ICMP(type=8, id=7, seq=1) / (b"x" * 56))
    reply = bytes(IP(src=HOST_B, dst=HOST_A, ttl=63) / ICMP(type=0, id=7, seq=1) / (b"x" * 56))
    for _ in range(5):
        got = carry(a, b, request)
        assert got == Deliver(request, 0x1001)
        got = carry(b, a, reply)
        assert got == Deliver(reply, 0x2002)
    for engine in (a, b):
        assert engine.stats["out_packets"] == 5
        assert engine.stats["in_packets"] == 5
        assert engine.stats["out_bytes"] == 5 * len(request)
        assert all(engine.stats[name] == 0 for name in engine.stats.kernel_view())
    out_sa = a.get_sa(GW_B, 0x1001).sa
    in_sa = b.get_sa(GW_B, 0x1001).sa
    assert out_sa is not None and in_sa is not None
    assert out_sa.counters.packets == in_sa.counters.packets == 5


def test_transmit_names_the_peer(pair: tuple[Engine, Engine]) -> None:
    a, _ = pair
    action = a.outbound(bytes(IP(src=HOST_A, dst=HOST_B) / UDP(sport=1, dport=2)), 0.0)
    assert isinstance(action, Transmit)
    assert (action.src, action.dst, action.encap, action.spi) == (GW_A, GW_B, None, 0x1001)
    assert action.data[:4] == (0x1001).to_bytes(4, "big")


def test_replayed_packet_is_dropped_and_counted(pair: tuple[Engine, Engine]) -> None:
    a, b = pair
    packet = bytes(IP(src=HOST_A, dst=HOST_B) / UDP(sport=5000, dport=53) / b"q")
    action = a.outbound(packet, 0.0)
    assert isinstance(action, Transmit)
    src, dst = packed(GW_A), packed(GW_B)
    assert isinstance(b.inbound_esp(action.data, src, dst, None, 0.0), Deliver)
    assert b.inbound_esp(action.data, src, dst, None, 0.0) == Drop(Reason.IN_STATE_SEQ_ERROR)
    assert b.stats[Reason.IN_STATE_SEQ_ERROR] == 1
    assert carry(a, b, packet) == Deliver(packet, 0x1001)  # traffic goes on


def test_wrong_key_counts_icv_failures(pair: tuple[Engine, Engine]) -> None:
    a, b = pair
    b.del_sa(GW_B, 0x1001)
    b.add_sa(sa_spec(0x1001, GW_A, GW_B, KEY_AB, bytes(32), reqid=1), now=0.0)
    packet = bytes(IP(src=HOST_A, dst=HOST_B) / ICMP())
    for _ in range(3):
        assert carry(a, b, packet) == Drop(Reason.IN_STATE_PROTO_ERROR)
    assert b.stats[Reason.IN_STATE_PROTO_ERROR] == 3
    assert b.stats["in_packets"] == 0


def test_unknown_spi_and_garbage(pair: tuple[Engine, Engine]) -> None:
    _, b = pair
    src, dst = packed(GW_A), packed(GW_B)
    assert b.inbound_esp(b"\x00\x00\x99\x99" + bytes(40), src, dst, None, 0.0) == Drop(
        Reason.IN_NO_STATES
    )
    assert b.inbound_esp(b"\x01\x02", src, dst, None, 0.0) == Drop(Reason.IN_HDR_ERROR)
    assert b.inbound(b"\x45garbage", 0.0) == Drop(Reason.IN_HDR_ERROR)
    assert b.stats[Reason.IN_NO_STATES] == 1
    assert b.stats[Reason.IN_HDR_ERROR] == 2


def test_encap_mismatch_is_counted(pair: tuple[Engine, Engine]) -> None:
    a, b = pair
    action = a.outbound(bytes(IP(src=HOST_A, dst=HOST_B) / ICMP()), 0.0)
    assert isinstance(action, Transmit)
    got = b.inbound_esp(action.data, packed(GW_A), packed(GW_B), (4500, 4500), 0.0)
    assert got == Drop(Reason.IN_STATE_MISMATCH)


def test_inbound_policy_check_rejects_traffic_outside_the_selectors(
    pair: tuple[Engine, Engine],
) -> None:
    """RFC 4301 §5.2: an SA may only carry what the inbound policy allows it to."""
    a, b = pair
    # A's outbound policy is widened to everything; B's inbound policy is not.
    a.flush_policy("out")
    a.add_policy(
        Policy(
            direction="out",
            selector=Selector(src="0.0.0.0/0", dst="0.0.0.0/0"),
            action="protect",
            priority=100,
            templates=[Template(proto="esp", mode="tunnel", src=GW_A, dst=GW_B, reqid=1)],
        )
    )
    stray = bytes(IP(src="198.51.100.7", dst="192.0.2.200") / ICMP())
    assert carry(a, b, stray) == Drop(Reason.IN_NO_POLS)
    # A policy for the inner packet that names another tunnel: template mismatch.
    b.add_policy(
        Policy(
            direction="fwd",
            selector=Selector(src=NET_A, dst="192.0.2.128/25"),
            action="protect",
            priority=10,
            templates=[Template(proto="esp", mode="tunnel", src="192.0.2.99", dst=GW_B)],
        )
    )
    assert carry(a, b, stray) == Drop(Reason.IN_TMPL_MISMATCH)
    assert b.stats[Reason.IN_NO_POLS] == 1 and b.stats[Reason.IN_TMPL_MISMATCH] == 1


def test_plain_packet_where_esp_is_required_is_dropped(pair: tuple[Engine, Engine]) -> None:
    _, b = pair
    plain = bytes(IP(src=HOST_A, dst=HOST_B) / ICMP())
    assert b.inbound(plain, 0.0) == Drop(Reason.IN_TMPL_MISMATCH)
    other = bytes(IP(src="192.0.2.50", dst=GW_B) / ICMP())
    assert b.inbound(other, 0.0) == Deliver(other, 0)


def test_discard_and_bypass_policies() -> None:
    e = Engine()
    e.add_policy(
        Policy(direction="out", selector=Selector(src=NET_A, dst=NET_B, proto=6), action="discard")
    )
    e.add_policy(
        Policy(
            direction="out", selector=Selector(src=NET_A, dst=NET_B), action="bypass", priority=200
        )
    )
    tcp = bytes(IP(src=HOST_A, dst=HOST_B) / TCP(dport=80))
    udp = bytes(IP(src=HOST_A, dst=HOST_B) / UDP(dport=80))
    assert e.outbound(tcp, 0.0) == Drop(Reason.OUT_POL_BLOCK)
    assert e.outbound(udp, 0.0) == Bypass(udp)
    assert e.stats[Reason.OUT_POL_BLOCK] == 1 and e.stats["bypass_out"] == 1


def test_acquire_is_rate_limited_and_held_packets_are_released() -> None:
    a = Engine(local_addresses=[GW_A])
    tunnel_policies(a, NET_A, NET_B, GW_A, GW_B)
    first = bytes(IP(src=HOST_A, dst=HOST_B) / ICMP(seq=1))
    second = bytes(IP(src="198.51.100.8", dst=HOST_B) / ICMP(seq=2))
    assert isinstance(a.outbound(first, 0.0), Hold)
    assert isinstance(a.outbound(second, 1.0), Hold)
    acquires = [e for e in iter(a.next_event, None) if isinstance(e, Acquire)]
    assert len(acquires) == 1  # one per template while pending, not one per packet
    acq = acquires[0]
    assert (str(acq.src), str(acq.dst)) == (GW_A, GW_B)
    assert str(acq.flow_src) == HOST_A and acq.flow_proto == 1
    assert a.next_timer() == pytest.approx(30.0)
    # The key manager answers: the held packets leave, in order.
    a.add_sa(sa_spec(0x3003, GW_A, GW_B, KEY_AB, AUTH_AB, reqid=1), now=2.0)
    released = list(iter(a.next_released, None))
    assert [type(r) for r in released] == [Transmit, Transmit]
    assert a.stats["queued"] == 2 and a.stats["acquires"] == 1


def test_acquire_repeats_after_expiry_and_hold_queue_is_bounded() -> None:
    a = Engine(local_addresses=[GW_A])
    tunnel_policies(a, NET_A, NET_B, GW_A, GW_B)
    packet = bytes(IP(src=HOST_A, dst=HOST_B) / ICMP())
    results = [a.outbound(packet, 0.0) for _ in range(HOLD_LIMIT + 5)]
    assert sum(isinstance(r, Hold) for r in results) == HOLD_LIMIT
    assert a.stats["queue_overflow"] == 5
    a.handle_timer(30.0)
    assert a.stats["queue_expired"] == HOLD_LIMIT
    a.outbound(packet, 31.0)
    assert a.stats["acquires"] == 2


def test_hard_packet_limit_expires_sa_and_triggers_acquire(pair: tuple[Engine, Engine]) -> None:
    a, b = pair
    a.del_sa(GW_B, 0x1001)
    a.add_sa(
        sa_spec(0x1001, GW_A, GW_B, KEY_AB, AUTH_AB, reqid=1, hard=Lifetime(packets=3)), now=0.0
    )
    list(iter(a.next_event, None))
    packet = bytes(IP(src=HOST_A, dst=HOST_B) / ICMP())
    for _ in range(3):
        assert isinstance(carry(a, b, packet), Deliver)
    expires = [e for e in iter(a.next_event, None) if isinstance(e, Expire)]
    assert len(expires) == 1 and expires[0].hard and expires[0].cause == "packets"
    assert isinstance(a.outbound(packet, 2.0), Hold)  # the SA is gone: ACQUIRE, hold


def test_transport_mode_ipv6_between_hosts() -> None:
    h1, h2 = "2001:db8::1", "2001:db8::2"
    a, b = Engine(local_addresses=[h1]), Engine(local_addresses=[h2])
    for engine, me, peer in ((a, h1, h2), (b, h2, h1)):
        for direction, src, dst in (("out", me, peer), ("in", peer, me)):
            engine.add_policy(
                Policy(
                    direction=direction,
                    selector=Selector(src=src, dst=dst),
                    action="protect",
                    templates=[Template(proto="esp", mode="transport", src=None, dst=None)],
                )
            )
        engine.add_sa(
            sa_spec(0x4004, h1, h2, KEY_AB, AUTH_AB, mode="transport", encap=(4500, 4500)), 0.0
        )
    packet = bytes(IPv6(src=h1, dst=h2, hlim=64) / UDP(sport=1234, dport=4321) / b"hello")
    action = a.outbound(packet, 0.0)
    assert isinstance(action, Transmit) and action.encap == (4500, 4500)
    got = b.inbound_esp(action.data, packed(h1), packed(h2), action.encap, 0.0)
    assert isinstance(got, Deliver)
    assert IPv6(got.packet)[UDP].load == b"hello"
    assert IPv6(got.packet).src == h1


def test_transport_mode_ipv6_with_extension_header_in_front() -> None:
    """ESP goes after hop-by-hop (RFC 4303 §3.1.1); the socket carries only what follows."""
    from scapy.layers.inet6 import IPv6ExtHdrHopByHop

    h1, h2 = "2001:db8::1", "2001:db8::2"
    a, b = Engine(local_addresses=[h1]), Engine(local_addresses=[h2])
    for engine, me, peer in ((a, h1, h2), (b, h2, h1)):
        for direction, src, dst in (("out", me, peer), ("in", peer, me)):
            engine.add_policy(
                Policy(
                    direction=direction,
                    selector=Selector(src=src, dst=dst),
                    action="protect",
                    templates=[Template(proto="esp", mode="transport")],
                )
            )
        engine.add_sa(sa_spec(0x4005, h1, h2, KEY_AB, AUTH_AB, mode="transport"), 0.0)
    packet = bytes(IPv6(src=h1, dst=h2) / IPv6ExtHdrHopByHop() / UDP(sport=7, dport=9) / b"hbh")
    action = a.outbound(packet, 0.0)
    assert isinstance(action, Transmit)
    assert action.data[:4] == (0x4005).to_bytes(4, "big")  # starts at the ESP header
    got = b.inbound_esp(action.data, packed(h1), packed(h2), None, 0.0)
    assert isinstance(got, Deliver)
    assert IPv6(got.packet)[UDP].load == b"hbh"


def test_flow_decisions_follow_policy_changes(pair: tuple[Engine, Engine]) -> None:
    """Per-flow cached decisions never outlive an SPD or SAD change."""
    a, b = pair
    packet = bytes(IP(src=HOST_A, dst=HOST_B) / TCP(sport=1000, dport=22))
    assert isinstance(a.outbound(packet, 0.0), Transmit)
    assert isinstance(a.outbound(packet, 0.0), Transmit)  # from the flow cache
    index = a.add_policy(
        Policy(
            direction="out",
            selector=Selector(src=HOST_A, dst=HOST_B, proto=6, dport=22),
            action="discard",
            priority=1,
        )
    )
    assert a.outbound(packet, 0.0) == Drop(Reason.OUT_POL_BLOCK)
    other_port = bytes(IP(src=HOST_A, dst=HOST_B) / TCP(sport=1000, dport=23))
    assert isinstance(a.outbound(other_port, 0.0), Transmit)
    same_ports_udp = bytes(IP(src=HOST_A, dst=HOST_B) / UDP(sport=1000, dport=22))
    assert isinstance(a.outbound(same_ports_udp, 0.0), Transmit)  # the protocol is in the key
    a.del_policy(index)
    assert isinstance(a.outbound(packet, 0.0), Transmit)
    # The SA goes away: the next packet needs an ACQUIRE, not the cached SA.
    a.del_sa(GW_B, 0x1001)
    assert isinstance(a.outbound(packet, 0.0), Hold)
    # Inbound: a cached "deliver" is withdrawn when the inbound policy goes.
    esp = a.outbound(packet, 0.0)
    assert isinstance(esp, Hold)
    a.add_sa(sa_spec(0x1001, GW_A, GW_B, KEY_AB, AUTH_AB, reqid=1), now=0.0)
    for _ in range(2):
        assert isinstance(carry(a, b, packet), Deliver)
    b.flush_policy("in")
    assert carry(a, b, packet) == Drop(Reason.IN_NO_POLS)


def test_inbound_decision_is_per_sa(pair: tuple[Engine, Engine]) -> None:
    """A flow allowed through one SA is not thereby allowed through another."""
    a, b = pair
    packet = bytes(IP(src=HOST_A, dst=HOST_B) / UDP(sport=7, dport=9))
    assert isinstance(carry(a, b, packet), Deliver)
    # A second SA to B whose endpoints the inbound template does not name.
    rogue = sa_spec(0x5005, "192.0.2.99", GW_B, KEY_AB, AUTH_AB, reqid=1)
    b.add_sa(rogue, now=0.0)
    sender = Engine()
    sender.add_sa(rogue, now=0.0)
    esp = sender.sad.get(GW_B, 0x5005).sa
    assert esp is not None
    data = esp.esp_encrypt(packet, 4)
    got = b.inbound_esp(data, packed("192.0.2.99"), packed(GW_B), None, 0.0)
    assert got == Drop(Reason.IN_TMPL_MISMATCH)
    assert isinstance(carry(a, b, packet), Deliver)


def test_policy_counters_through_the_flow_caches(pair: tuple[Engine, Engine]) -> None:
    """Cached decisions still count every packet to the policy that matched it, and a
    policy replaced by update_policy starts from zero (its predecessor is not fed)."""
    a, b = pair
    packet = bytes(IP(src=HOST_A, dst=HOST_B) / UDP(sport=5, dport=6) / (b"y" * 30))
    out_index = a.spd.get_by_selector("out", Selector(src=NET_A, dst=NET_B)).index
    in_index = b.spd.get_by_selector("in", Selector(src=NET_A, dst=NET_B)).index
    for _ in range(4):
        assert isinstance(carry(a, b, packet, now=2.0), Deliver)
    out_stats, in_stats = a.spd.stats(out_index), b.spd.stats(in_index)
    assert (out_stats.hits, out_stats.bytes, out_stats.last_use) == (4, 4 * len(packet), 2.0)
    assert (in_stats.hits, in_stats.bytes, in_stats.last_use) == (4, 4 * len(packet), 2.0)
    old = b.spd.get(in_index)
    b.update_policy(
        Policy(
            direction="in",
            selector=old.selector,
            action="protect",
            priority=old.priority,
            templates=list(old.templates),
            index=in_index,
        )
    )
    assert isinstance(carry(a, b, packet, now=3.0), Deliver)
    assert isinstance(carry(a, b, packet, now=3.0), Deliver)
    fresh = b.spd.stats(in_index)
    assert (fresh.hits, fresh.last_use) == (2, 3.0)
    assert in_stats.hits == 4  # the replaced policy's counters stay as they were
    assert a.spd.stats(out_index).hits == 6


def test_flow_cache_keys_tell_fragments_and_icmp_types_apart(pair: tuple[Engine, Engine]) -> None:
    """A later fragment never takes the decision cached for its flow's first packet (its
    "ports" are payload bytes), and ICMP type/code are part of the key."""
    a, _ = pair
    for selector in (
        Selector(src=HOST_A, dst=HOST_B, proto=17, dport=53),
        Selector(src=HOST_A, dst=HOST_B, proto=1, sport=8),  # ICMP echo request
    ):
        a.add_policy(Policy(direction="out", selector=selector, action="discard", priority=1))
    dns = bytes(IP(src=HOST_A, dst=HOST_B) / UDP(sport=53, dport=53) / (b"q" * 20))
    later = bytes(IP(src=HOST_A, dst=HOST_B, proto=17, frag=3) / dns[20:44])
    assert later[20:24] == dns[20:24]  # looks like the same ports
    echo = bytes(IP(src=HOST_A, dst=HOST_B) / ICMP(type=8))
    echo_reply = bytes(IP(src=HOST_A, dst=HOST_B) / ICMP(type=0))
    for _ in range(2):  # the second round comes from the flow cache
        assert a.outbound(dns, 0.0) == Drop(Reason.OUT_POL_BLOCK)
        assert isinstance(a.outbound(later, 0.0), Transmit)
        assert a.outbound(echo, 0.0) == Drop(Reason.OUT_POL_BLOCK)
        assert isinstance(a.outbound(echo_reply, 0.0), Transmit)


def test_flow_cache_tcp_and_udp_of_one_address_and_port_pair(pair: tuple[Engine, Engine]) -> None:
    """TCP and UDP packets with the same addresses and ports, alternating: each keeps its
    own decision however often they take each other's cache slot, both ways."""
    a, b = pair
    a.add_policy(
        Policy(
            direction="out",
            selector=Selector(src=HOST_A, dst=HOST_B, proto=6, dport=80),
            action="discard",
            priority=1,
        )
    )
    tcp = bytes(IP(src=HOST_A, dst=HOST_B) / TCP(sport=4000, dport=80))
    udp = bytes(IP(src=HOST_A, dst=HOST_B) / UDP(sport=4000, dport=80))
    assert tcp[12:24] == udp[12:24]
    # Inbound at b: both protocols of another port pair, each its own cached decision.
    tcp81 = bytes(IP(src=HOST_A, dst=HOST_B) / TCP(sport=4000, dport=81))
    udp81 = bytes(IP(src=HOST_A, dst=HOST_B) / UDP(sport=4000, dport=81))
    for _ in range(3):
        assert a.outbound(tcp, 0.0) == Drop(Reason.OUT_POL_BLOCK)
        assert carry(a, b, udp) == Deliver(udp, 0x1001)
        assert carry(a, b, tcp81) == Deliver(tcp81, 0x1001)
        assert carry(a, b, udp81) == Deliver(udp81, 0x1001)
    assert a.stats[Reason.OUT_POL_BLOCK] == 3
    assert b.stats["in_packets"] == 9
    assert b.spd.stats(b.spd.get_by_selector("in", Selector(src=NET_A, dst=NET_B)).index).hits == 9


def test_flow_caches_follow_changes_made_on_the_databases_directly(
    pair: tuple[Engine, Engine],
) -> None:
    """The SAD and SPD share one change counter with the engine: a change made on either
    database object itself (not through the engine) still invalidates cached decisions."""
    a, b = pair
    packet = bytes(IP(src=HOST_A, dst=HOST_B) / UDP(sport=1, dport=2))
    for _ in range(2):
        assert carry(a, b, packet) == Deliver(packet, 0x1001)
    index = b.spd.get_by_selector("in", Selector(src=NET_A, dst=NET_B)).index
    b.spd.delete(index)
    assert carry(a, b, packet) == Drop(Reason.IN_NO_POLS)
    a.sad.delete(GW_B, 0x1001)
    assert isinstance(a.outbound(packet, 0.0), Hold)

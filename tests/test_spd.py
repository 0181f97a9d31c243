"""Tests of the SPD: selectors, ordering, the kernel-shaped API and the decision cache."""

from __future__ import annotations

import errno
from ipaddress import IPv4Address, IPv4Network, IPv6Network

import pytest

from pyipsec.engine.spd import (
    Policy,
    PolicyStats,
    SecurityPolicyDatabase,
    Selector,
    Template,
)
from pyipsec.errors import ConfigError, KeyApiError, ParseError

TCP, UDP, ICMP, ICMPV6, ESP, GRE, MH = 6, 17, 1, 58, 50, 47, 135
TUNNEL = Template(proto="esp", mode="tunnel", src="192.0.2.1", dst="192.0.2.2", reqid=1)
TRANSPORT = Template(proto="esp", mode="transport", reqid=2)


def protect(direction: str, selector: Selector, priority: int = 100) -> Policy:
    return Policy(direction, selector, "protect", priority, [TUNNEL])


def bypass(direction: str, selector: Selector, priority: int = 100) -> Policy:
    return Policy(direction, selector, "bypass", priority)


def discard(direction: str, selector: Selector, priority: int = 100) -> Policy:
    return Policy(direction, selector, "discard", priority)


# -- the example of the API ---------------------------------------------------------


def test_api_example() -> None:
    spd = SecurityPolicyDatabase()
    index = spd.add(
        Policy(
            direction="out",
            selector=Selector(
                src="198.51.100.0/24", dst="203.0.113.0/24", proto=6, sport=None, dport=(443, 443)
            ),
            action="protect",
            priority=100,
            templates=[
                Template(
                    proto="esp",
                    mode="tunnel",
                    src="192.0.2.1",
                    dst="192.0.2.2",
                    reqid=1,
                    level="required",
                )
            ],
        )
    )
    policy = spd.lookup(
        "out", src="198.51.100.7", dst="203.0.113.9", proto=6, sport=40000, dport=443
    )
    assert policy is not None
    assert policy.index == index
    assert policy.templates[0].dst == IPv4Address("192.0.2.2")
    assert spd.lookup("out", "198.51.100.7", "203.0.113.9", 6, 40000, 80) is None
    assert spd.lookup("in", "198.51.100.7", "203.0.113.9", 6, 40000, 443) is None
    assert spd.delete(index) == policy
    assert len(spd) == 0
    assert spd.lookup("out", "198.51.100.7", "203.0.113.9", 6, 40000, 443) is None


# -- RFC 4301 §4.4.1 examples ---------------------------------------------------------


def test_rfc4301_gateway_bypasses_ike_before_protecting_the_subnets() -> None:
    # RFC 4301 §4.4.1 and §5.1: a gateway's SPD lists, ahead of the subnet-to-subnet
    # protect entry, a BYPASS entry for its own IKE traffic (UDP 500) to the peer.
    spd = SecurityPolicyDatabase()
    spd.add(protect("out", Selector("0.0.0.0/0", "0.0.0.0/0"), priority=200))
    spd.add(bypass("out", Selector("192.0.2.1", "192.0.2.2", UDP, 500, 500), priority=10))
    ike = spd.lookup("out", "192.0.2.1", "192.0.2.2", UDP, 500, 500)
    assert ike is not None and ike.action == "bypass"
    other_udp = spd.lookup("out", "192.0.2.1", "192.0.2.2", UDP, 501, 500)
    assert other_udp is not None and other_udp.action == "protect"


def test_rfc4301_discard_entry_shadows_a_broader_protect_entry() -> None:
    # RFC 4301 §4.4.1: entries are ordered; a more specific DISCARD placed first wins
    # over the broader PROTECT that would also match.
    spd = SecurityPolicyDatabase()
    spd.add(protect("out", Selector("198.51.100.0/24", "203.0.113.0/24"), priority=100))
    spd.add(discard("out", Selector("198.51.100.66", "203.0.113.0/24", TCP, None, 23), 50))
    telnet = spd.lookup("out", "198.51.100.66", "203.0.113.5", TCP, 33000, 23)
    assert telnet is not None and telnet.action == "discard"
    ssh = spd.lookup("out", "198.51.100.66", "203.0.113.5", TCP, 33000, 22)
    assert ssh is not None and ssh.action == "protect"
    other_host = spd.lookup("out", "198.51.100.67", "203.0.113.5", TCP, 33000, 23)
    assert other_host is not None and other_host.action == "protect"


def test_fragment_ports_are_zero_and_miss_a_range_without_zero() -> None:
    # A non-first fragment shows no ports (RFC 4301 §4.4.1.1 OPAQUE). Linux matches
    # it as ports 0, so a port-80 entry, whose range has no 0, is skipped as RFC 4301
    # would skip it.
    spd = SecurityPolicyDatabase()
    web = spd.add(protect("out", Selector("198.51.100.0/24", "203.0.113.0/24", TCP, None, 80)))
    anytcp = spd.add(discard("out", Selector("198.51.100.0/24", "203.0.113.0/24", TCP), 200))
    first = spd.lookup("out", "198.51.100.1", "203.0.113.1", TCP, 40000, 80)
    assert first is not None and first.index == web
    fragment = spd.lookup("out", "198.51.100.1", "203.0.113.1", TCP, None, None)
    assert fragment is not None and fragment.index == anytcp


def test_rfc4301_full_port_range_is_any_and_matches_opaque() -> None:
    sel = Selector("198.51.100.0/24", "203.0.113.0/24", TCP, (0, 65535), (0, 65535))
    assert sel.sport is None and sel.dport is None
    spd = SecurityPolicyDatabase()
    spd.add(protect("out", sel))
    assert spd.lookup("out", "198.51.100.1", "203.0.113.1", TCP, None, None) is not None


def test_portless_packet_matches_a_range_holding_zero_as_linux_does() -> None:
    # Where Linux and RFC 4301 part: xfrm_flowi_sport/dport give 0 for a flow without
    # ports, so a range starting at 0 matches a fragment (RFC 4301: OPAQUE, ANY only).
    spd = SecurityPolicyDatabase()
    low = spd.add(protect("out", Selector("198.51.100.0/24", "203.0.113.0/24", TCP, (0, 1023))))
    anytcp = spd.add(discard("out", Selector("198.51.100.0/24", "203.0.113.0/24", TCP), 200))
    fragment = spd.lookup("out", "198.51.100.1", "203.0.113.1", TCP, None, None)
    assert fragment is not None and fragment.index == low
    high = spd.lookup("out", "198.51.100.1", "203.0.113.1", TCP, 40000, 80)
    assert high is not None and high.index == anytcp
    # Half a flow: the missing side is 0 too.
    half = spd.lookup("out", "198.51.100.1", "203.0.113.1", TCP, 80, None)
    assert half is not None and half.index == low


def test_ports_with_proto_any_as_in_the_setkey_manual() -> None:
    # setkey(8): "spdadd 10.0.11.41/32[21] 10.0.11.33/32[any] any -P out ipsec ...":
    # source port 21 whatever the protocol. Linux compares the flow's ports: TCP/UDP/
    # SCTP/UDP-Lite ports, ICMP type (source) and code, 0 for anything else.
    spd = SecurityPolicyDatabase()
    sel = Selector("192.0.2.41", "192.0.2.33", None, 21, None)
    assert sel.proto is None and sel.sport == (21, 21) and sel.dport is None
    index = spd.add(protect("out", sel))
    spd.add(bypass("out", Selector("192.0.2.41", "192.0.2.33"), 300))
    cases = [
        (TCP, 21, 40000),
        (UDP, 21, 53),
        (132, 21, 9),
        (136, 21, 9),
        (ICMP, 21, 0),  # ICMP type 21 sits in the source "port"
        (TCP, 20, 40000),
        (ICMP, 8, 0),
        (ESP, None, None),
        (TCP, None, None),
    ]
    got = [spd.lookup("out", "192.0.2.41", "192.0.2.33", *case) for case in cases]
    assert all(policy is not None for policy in got)
    protected = [case for case, p in zip(cases, got, strict=True) if p and p.index == index]
    assert protected == cases[:5]


def test_proto_any_port_zero_range_catches_portless_protocols() -> None:
    # Linux: ESP (or any protocol without ports) has ports 0, so sport 0-9 with proto
    # ANY matches it, and a UDP packet from port 5, but not TCP from port 10.
    spd = SecurityPolicyDatabase()
    spd.add(discard("out", Selector("198.51.100.0/24", "0.0.0.0/0", None, (0, 9))))
    looked = [
        spd.lookup("out", "198.51.100.1", "203.0.113.1", proto, sport, 1) is not None
        for proto, sport in ((ESP, None), (UDP, 5), (TCP, 10), (ICMP, 0), (ICMP, 11))
    ]
    assert looked == [True, True, False, True, False]


def test_ports_on_a_protocol_without_ports_match_only_zero() -> None:
    # Linux accepts ports on any selector; for ESP the flow's ports are always 0.
    spd = SecurityPolicyDatabase()
    never = spd.add(protect("out", Selector("198.51.100.0/24", "0.0.0.0/0", ESP, 500)))
    zero = spd.add(protect("out", Selector("198.51.100.0/24", "0.0.0.0/0", ESP, 0), 200))
    got = spd.lookup("out", "198.51.100.1", "203.0.113.1", ESP, None, None)
    assert got is not None and got.index == zero != never


def test_gre_and_mh_take_no_ports_but_the_full_range() -> None:
    # GRE keys and MH types are not extracted from packets: no port selectors there,
    # except the full range, which is ANY.
    assert Selector("0.0.0.0/0", "0.0.0.0/0", GRE, (0, 65535)).sport is None
    assert Selector("::/0", "::/0", MH, None, None).dport is None
    with pytest.raises(ConfigError, match="GRE key, MH type"):
        Selector("0.0.0.0/0", "0.0.0.0/0", GRE, 1234, 0)


def test_full_range_with_proto_any_is_any() -> None:
    sel = Selector("198.51.100.0/24", "0.0.0.0/0", None, (0, 65535), 0)
    assert sel.sport is None and sel.dport == (0, 0)
    assert sel == Selector("198.51.100.0/24", "0.0.0.0/0", 0, None, (0, 0))


def test_rfc4301_icmp_type_and_code() -> None:
    # RFC 4301 §4.4.1.3: ICMP type and code as selectors; xfrm carries them in the
    # source and destination port fields.
    spd = SecurityPolicyDatabase()
    unreachable_frag = spd.add(bypass("in", Selector("0.0.0.0/0", "198.51.100.0/24", ICMP, 3, 4)))
    echo = spd.add(protect("in", Selector("0.0.0.0/0", "198.51.100.0/24", ICMP, 8), 200))
    got = spd.lookup("in", "203.0.113.1", "198.51.100.9", ICMP, 3, 4)
    assert got is not None and got.index == unreachable_frag
    got = spd.lookup("in", "203.0.113.1", "198.51.100.9", ICMP, 8, 0)
    assert got is not None and got.index == echo
    assert spd.lookup("in", "203.0.113.1", "198.51.100.9", ICMP, 3, 1) is None
    assert spd.lookup("in", "203.0.113.1", "198.51.100.9", ICMP, 0, 0) is None


def test_icmp_type_range_limited_to_255() -> None:
    with pytest.raises(ConfigError):
        Selector("0.0.0.0/0", "0.0.0.0/0", ICMP, 256)
    assert Selector("::/0", "::/0", ICMPV6, (0, 255), (0, 255)).sport is None


def test_icmpv6_type() -> None:
    spd = SecurityPolicyDatabase()
    spd.add(bypass("in", Selector("::/0", "2001:db8:1::/48", ICMPV6, (133, 137))))
    assert spd.lookup("in", "2001:db8:2::1", "2001:db8:1::1", ICMPV6, 135, 0) is not None
    assert spd.lookup("in", "2001:db8:2::1", "2001:db8:1::1", ICMPV6, 128, 0) is None


# -- protocol, ports, families, interfaces ------------------------------------------------


def test_proto_none_matches_every_protocol_and_ignores_packet_ports() -> None:
    spd = SecurityPolicyDatabase()
    spd.add(protect("out", Selector("198.51.100.0/24", "203.0.113.0/24")))
    for proto, sport, dport in ((TCP, 1, 2), (UDP, None, None), (ESP, None, None), (ICMP, 8, 0)):
        assert spd.lookup("out", "198.51.100.1", "203.0.113.1", proto, sport, dport) is not None


def test_proto_mismatch() -> None:
    spd = SecurityPolicyDatabase()
    spd.add(protect("out", Selector("198.51.100.0/24", "203.0.113.0/24", UDP)))
    assert spd.lookup("out", "198.51.100.1", "203.0.113.1", UDP, 1, 2) is not None
    assert spd.lookup("out", "198.51.100.1", "203.0.113.1", TCP, 1, 2) is None


def test_port_range_bounds_are_inclusive() -> None:
    spd = SecurityPolicyDatabase()
    spd.add(protect("out", Selector("198.51.100.0/24", "203.0.113.0/24", TCP, (1000, 2000))))
    look = [
        spd.lookup("out", "198.51.100.1", "203.0.113.1", TCP, sport, 80) is not None
        for sport in (999, 1000, 1500, 2000, 2001)
    ]
    assert look == [False, True, True, True, False]


def test_packet_with_one_port_missing_fails_a_selector_on_that_port() -> None:
    spd = SecurityPolicyDatabase()
    spd.add(protect("out", Selector("198.51.100.0/24", "203.0.113.0/24", UDP, None, 53)))
    assert spd.lookup("out", "198.51.100.1", "203.0.113.1", UDP, 5353, None) is None
    assert spd.lookup("out", "198.51.100.1", "203.0.113.1", UDP, None, 53) is not None


def test_ipv6_lookup_and_family_separation() -> None:
    spd = SecurityPolicyDatabase()
    v6 = spd.add(protect("out", Selector("::/0", "::/0")))
    v4 = spd.add(protect("out", Selector("198.51.100.0/24", "203.0.113.0/24", TCP)))
    got = spd.lookup("out", "2001:db8::1", "2001:db8:1::1", TCP, 1, 2)
    assert got is not None and got.index == v6
    got = spd.lookup("out", "198.51.100.1", "203.0.113.1", TCP, 1, 2)
    assert got is not None and got.index == v4
    # An IPv4 packet never matches an IPv6 selector, not even ::/0.
    assert spd.lookup("out", "192.0.2.1", "192.0.2.2", TCP, 1, 2) is None


def test_ipv6_host_and_prefix() -> None:
    spd = SecurityPolicyDatabase()
    host = spd.add(protect("out", Selector("2001:db8::1", "2001:db8:5::/64"), priority=5))
    spd.add(discard("out", Selector("2001:db8::/32", "2001:db8::/32"), priority=9))
    got = spd.lookup("out", "2001:db8::1", "2001:db8:5::77", UDP, 1, 2)
    assert got is not None and got.index == host
    got = spd.lookup("out", "2001:db8::2", "2001:db8:5::77", UDP, 1, 2)
    assert got is not None and got.action == "discard"
    assert spd.lookup("out", "2001:db9::2", "2001:db8:5::77", UDP, 1, 2) is None


def test_dev_restricts_to_one_interface() -> None:
    spd = SecurityPolicyDatabase()
    spd.add(protect("fwd", Selector("198.51.100.0/24", "203.0.113.0/24", dev="eth1")))
    assert spd.lookup("fwd", "198.51.100.1", "203.0.113.1", TCP, 1, 2, dev="eth1") is not None
    assert spd.lookup("fwd", "198.51.100.1", "203.0.113.1", TCP, 1, 2, dev="eth0") is None
    assert spd.lookup("fwd", "198.51.100.1", "203.0.113.1", TCP, 1, 2) is None
    spd.add(bypass("fwd", Selector("198.51.100.0/24", "203.0.113.0/24"), priority=500))
    got = spd.lookup("fwd", "198.51.100.1", "203.0.113.1", TCP, 1, 2, dev="eth0")
    assert got is not None and got.action == "bypass"


# -- ordering ------------------------------------------------------------------------


def test_lowest_priority_number_wins_whatever_the_insertion_order() -> None:
    spd = SecurityPolicyDatabase()
    spd.add(bypass("out", Selector("198.51.100.0/24", "0.0.0.0/0"), priority=30))
    best = spd.add(protect("out", Selector("0.0.0.0/0", "0.0.0.0/0"), priority=10))
    spd.add(discard("out", Selector("198.51.100.1", "203.0.113.1"), priority=20))
    got = spd.lookup("out", "198.51.100.1", "203.0.113.1", TCP, 1, 2)
    assert got is not None and got.index == best


def test_ties_go_to_the_earlier_policy() -> None:
    spd = SecurityPolicyDatabase()
    first = spd.add(bypass("out", Selector("0.0.0.0/0", "203.0.113.0/24")))
    spd.add(discard("out", Selector("198.51.100.1", "203.0.113.1")))
    got = spd.lookup("out", "198.51.100.1", "203.0.113.1", TCP, 1, 2)
    assert got is not None and got.index == first
    spd.delete(first)
    got = spd.lookup("out", "198.51.100.1", "203.0.113.1", TCP, 1, 2)
    assert got is not None and got.action == "discard"


def test_ties_within_one_bucket() -> None:
    spd = SecurityPolicyDatabase()
    a = spd.add(bypass("out", Selector("198.51.100.0/24", "203.0.113.0/24", TCP)))
    b = spd.add(discard("out", Selector("198.51.100.0/24", "203.0.113.0/24")))
    got = spd.lookup("out", "198.51.100.1", "203.0.113.1", TCP, 1, 2)
    assert got is not None and got.index == a
    got = spd.lookup("out", "198.51.100.1", "203.0.113.1", UDP, 1, 2)
    assert got is not None and got.index == b


def test_dump_is_in_lookup_order_per_direction() -> None:
    spd = SecurityPolicyDatabase()
    spd.add(bypass("out", Selector("0.0.0.0/0", "0.0.0.0/0"), priority=9))
    spd.add(bypass("in", Selector("::/0", "::/0"), priority=5))
    spd.add(bypass("out", Selector("192.0.2.0/24", "0.0.0.0/0"), priority=1))
    spd.add(bypass("out", Selector("198.51.100.0/24", "0.0.0.0/0"), priority=9))
    spd.add(bypass("fwd", Selector("::/0", "::/0"), priority=0))
    dumped = [(p.direction, p.priority, str(p.selector.src)) for p in spd.dump()]
    assert dumped == [
        ("in", 5, "::/0"),
        ("out", 1, "192.0.2.0/24"),
        ("out", 9, "0.0.0.0/0"),
        ("out", 9, "198.51.100.0/24"),
        ("fwd", 0, "::/0"),
    ]


# -- the kernel-shaped API ---------------------------------------------------------------


def test_index_encodes_direction_and_is_unique() -> None:
    spd = SecurityPolicyDatabase()
    seen = set()
    for i in range(30):
        direction = ("in", "out", "fwd")[i % 3]
        index = spd.add(bypass(direction, Selector(f"198.51.100.{i}", "203.0.113.0/24")))
        assert index & 7 == {"in": 0, "out": 1, "fwd": 2}[direction]
        assert index not in seen
        seen.add(index)
        assert spd.get(index).index == index


def test_requested_index_is_honoured_if_free() -> None:
    spd = SecurityPolicyDatabase()
    sel = Selector("198.51.100.0/24", "203.0.113.0/24")
    policy = Policy("fwd", sel, "bypass", index=8 * 1000 + 2)
    assert spd.add(policy) == 8002
    again = Policy("fwd", Selector("198.51.100.0/25", "203.0.113.0/24"), "bypass", index=8002)
    other = spd.add(again)
    assert other != 8002 and other & 7 == 2
    with pytest.raises(ConfigError):
        Policy("out", sel, "bypass", index=8002)


def test_add_existing_selector_is_eexist_even_with_another_priority() -> None:
    spd = SecurityPolicyDatabase()
    sel = Selector("198.51.100.0/24", "203.0.113.0/24", TCP, None, 443)
    spd.add(protect("out", sel, priority=100))
    for priority in (100, 5):
        with pytest.raises(KeyApiError) as info:
            spd.add(discard("out", Selector("198.51.100.9/24", "203.0.113.0/24", 6, None, 443)))
        assert info.value.errno == errno.EEXIST
        with pytest.raises(KeyApiError):
            spd.add(protect("out", sel, priority=priority))
    # Same selector, other direction: a different policy.
    spd.add(protect("in", sel))
    assert len(spd) == 2


def test_missing_is_enoent() -> None:
    spd = SecurityPolicyDatabase()
    sel = Selector("198.51.100.0/24", "203.0.113.0/24")
    for call in (
        lambda: spd.delete(1),
        lambda: spd.get(1),
        lambda: spd.stats(1),
        lambda: spd.get_by_selector("out", sel),
        lambda: spd.delete_by_selector("out", sel),
    ):
        with pytest.raises(KeyApiError) as info:
            call()
        assert info.value.errno == errno.ENOENT


def test_get_and_delete_by_selector() -> None:
    spd = SecurityPolicyDatabase()
    index = spd.add(bypass("in", Selector("198.51.100.0/24", "203.0.113.0/24", UDP, 500)))
    equal = Selector(IPv4Network("198.51.100.0/24"), "203.0.113.0/24", 17, (500, 500))
    assert spd.get_by_selector("in", equal).index == index
    with pytest.raises(KeyApiError):
        spd.get_by_selector("out", equal)
    assert spd.delete_by_selector("in", equal).index == index
    assert len(spd) == 0


def test_update_keeps_index_and_replaces() -> None:
    spd = SecurityPolicyDatabase()
    sel = Selector("198.51.100.0/24", "203.0.113.0/24")
    index = spd.add(protect("out", sel))
    gen = spd.generation
    assert spd.update(discard("out", sel)) == index
    assert spd.generation > gen
    assert len(spd) == 1
    assert spd.get(index).action == "discard"
    got = spd.lookup("out", "198.51.100.1", "203.0.113.1", TCP, 1, 2)
    assert got is not None and got.action == "discard" and got.index == index


def test_update_of_missing_adds() -> None:
    spd = SecurityPolicyDatabase()
    index = spd.update(bypass("in", Selector("198.51.100.0/24", "203.0.113.0/24")))
    assert spd.get(index).action == "bypass"


def test_update_same_priority_keeps_place_among_ties() -> None:
    spd = SecurityPolicyDatabase()
    broad = Selector("0.0.0.0/0", "0.0.0.0/0")
    a = spd.add(bypass("out", broad))
    spd.add(discard("out", Selector("198.51.100.0/24", "203.0.113.0/24")))
    spd.update(protect("out", broad))
    got = spd.lookup("out", "198.51.100.1", "203.0.113.1", TCP, 1, 2)
    assert got is not None and got.index == a and got.action == "protect"


def test_update_new_priority_goes_after_its_ties() -> None:
    spd = SecurityPolicyDatabase()
    broad = Selector("0.0.0.0/0", "0.0.0.0/0")
    a = spd.add(bypass("out", broad, priority=50))
    b = spd.add(discard("out", Selector("198.51.100.0/24", "203.0.113.0/24"), priority=100))
    spd.update(protect("out", broad, priority=100))
    got = spd.lookup("out", "198.51.100.1", "203.0.113.1", TCP, 1, 2)
    assert got is not None and got.index == b
    assert [p.index for p in spd.dump()] == [b, a]


def test_flush_per_direction_and_all() -> None:
    spd = SecurityPolicyDatabase()
    for i, direction in enumerate(("in", "out", "fwd", "out", "in")):
        spd.add(bypass(direction, Selector(f"198.51.100.{i}", "203.0.113.0/24")))
    assert spd.flush("out") == 2
    assert {p.direction for p in spd.dump()} == {"in", "fwd"}
    assert spd.lookup("out", "198.51.100.1", "203.0.113.1", TCP, 1, 2) is None
    assert spd.lookup("in", "198.51.100.0", "203.0.113.1", TCP, 1, 2) is not None
    assert spd.flush() == 3
    assert len(spd) == 0
    assert spd.lookup("in", "198.51.100.0", "203.0.113.1", TCP, 1, 2) is None
    assert spd.flush() == 0
    with pytest.raises(ConfigError):
        spd.flush("sideways")


def test_generation_bumps_on_every_change() -> None:
    spd = SecurityPolicyDatabase()
    sel = Selector("198.51.100.0/24", "203.0.113.0/24")
    seen = [spd.generation]
    index = spd.add(bypass("out", sel))
    seen.append(spd.generation)
    spd.update(discard("out", sel))
    seen.append(spd.generation)
    spd.add(bypass("in", sel))
    seen.append(spd.generation)
    spd.delete(index)
    seen.append(spd.generation)
    spd.flush("in")
    seen.append(spd.generation)
    assert seen == sorted(set(seen))
    spd.lookup("out", "198.51.100.1", "203.0.113.1", TCP, 1, 2)
    with pytest.raises(KeyApiError):
        spd.delete(index)
    assert spd.generation == seen[-1]


# -- the decision cache ---------------------------------------------------------------


def test_cache_sees_add_update_delete_and_flush() -> None:
    spd = SecurityPolicyDatabase()
    packet = ("out", "198.51.100.1", "203.0.113.1", TCP, 1000, 443)
    assert spd.lookup(*packet) is None
    index = spd.add(bypass("out", Selector("198.51.100.0/24", "203.0.113.0/24")))
    got = spd.lookup(*packet)
    assert got is not None and got.action == "bypass"
    better = spd.add(discard("out", Selector("198.51.100.1", "203.0.113.1"), priority=1))
    got = spd.lookup(*packet)
    assert got is not None and got.index == better
    spd.delete(better)
    got = spd.lookup(*packet)
    assert got is not None and got.index == index
    spd.update(protect("out", Selector("198.51.100.0/24", "203.0.113.0/24")))
    got = spd.lookup(*packet)
    assert got is not None and got.action == "protect"
    spd.flush()
    assert spd.lookup(*packet) is None


def test_cache_is_bounded() -> None:
    spd = SecurityPolicyDatabase(cache_size=8)
    index = spd.add(bypass("out", Selector("198.51.100.0/24", "203.0.113.0/24")))
    for port in range(100):
        got = spd.lookup("out", "198.51.100.1", "203.0.113.1", UDP, port, 53)
        assert got is not None and got.index == index
        assert len(spd._cache) <= 8


def test_no_cache() -> None:
    spd = SecurityPolicyDatabase(cache_size=0)
    spd.add(bypass("out", Selector("198.51.100.0/24", "203.0.113.0/24")))
    assert spd.lookup("out", "198.51.100.1", "203.0.113.1", UDP, 1, 53) is not None
    assert spd.lookup("out", "198.51.100.1", "203.0.113.1", UDP, 1, 53) is not None
    assert spd._cache == {}
    with pytest.raises(ConfigError):
        SecurityPolicyDatabase(cache_size=-1)


# -- the data-path entry points ---------------------------------------------------------


def test_lookup_packed_takes_header_bytes_and_memoryviews() -> None:
    spd = SecurityPolicyDatabase()
    index = spd.add(protect("out", Selector("198.51.100.0/24", "203.0.113.0/24", TCP)))
    header = bytearray(bytes(12) + bytes([198, 51, 100, 7, 203, 0, 113, 9]))
    view = memoryview(header)
    got = spd.lookup_packed("out", view[12:16], view[16:20], TCP, 1, 2)
    assert got is not None and got.index == index
    got = spd.lookup_packed("out", bytes(view[12:16]), bytes(view[16:20]), TCP, 1, 2)
    assert got is not None and got.index == index
    v6 = IPv6Network("2001:db8::/32").network_address.packed
    assert spd.lookup_packed("out", v6, v6, TCP, 1, 2) is None


def test_lookup_rejects_bad_input_clearly() -> None:
    spd = SecurityPolicyDatabase()
    with pytest.raises(ParseError):
        spd.lookup_packed("out", b"\x01\x02\x03", b"\x01\x02\x03\x04", TCP, 1, 2)
    with pytest.raises(ParseError):
        spd.lookup_packed("out", bytes(4), bytes(16), TCP, 1, 2)
    with pytest.raises(ConfigError):
        spd.lookup_packed("sideways", bytes(4), bytes(4), TCP, 1, 2)
    with pytest.raises(ConfigError):
        spd.lookup("out", "not-an-address", "192.0.2.1", TCP)


def test_count_and_stats() -> None:
    spd = SecurityPolicyDatabase()
    sel = Selector("198.51.100.0/24", "203.0.113.0/24")
    spd.add(bypass("out", sel))
    policy = spd.lookup("out", "198.51.100.1", "203.0.113.1", TCP, 1, 2)
    assert policy is not None
    spd.count(policy, 100, 5.0)
    spd.count(policy, 60, 7.5)
    assert spd.stats(policy.index) == PolicyStats(hits=2, bytes=160, last_use=7.5)
    # After an update the old Policy object is stale: it must not feed the new one.
    spd.update(discard("out", sel))
    spd.count(policy, 1000, 9.0)
    assert spd.stats(policy.index) == PolicyStats()
    spd.delete(policy.index)
    spd.count(policy, 1000, 9.0)  # gone: silently ignored


# -- validation -------------------------------------------------------------------------


def test_selector_normalisation() -> None:
    sel = Selector("198.51.100.7", "203.0.113.9/24", proto=0, dev=None)
    assert sel.src == IPv4Network("198.51.100.7/32")
    assert sel.dst == IPv4Network("203.0.113.0/24")
    assert sel.proto is None
    assert sel.family == 4
    assert Selector(None, "2001:db8::/32").src == IPv6Network("::/0")
    assert Selector("192.0.2.0/24", None).dst_net == IPv4Network("0.0.0.0/0")
    assert Selector("0.0.0.0/0", "0.0.0.0/0", TCP, 80, (1, 2)).sport_range == (80, 80)
    assert Selector("0.0.0.0/0", "0.0.0.0/0", TCP, 80, (1, 2)).dport_range == (1, 2)
    assert Selector("192.0.2.1", "192.0.2.2", TCP, 1) == Selector(
        IPv4Network("192.0.2.1/32"), IPv4Address("192.0.2.2"), TCP, (1, 1)
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"src": "198.51.100.0/24", "dst": "2001:db8::/32"},
        {"src": None, "dst": None},
        {"src": "198.51.100.0/33", "dst": "0.0.0.0/0"},
        {"src": "nonsense", "dst": "0.0.0.0/0"},
        {"src": 12345, "dst": "0.0.0.0/0"},
        {"src": "0.0.0.0/0", "dst": "0.0.0.0/0", "proto": 256},
        {"src": "0.0.0.0/0", "dst": "0.0.0.0/0", "proto": True},
        {"src": "0.0.0.0/0", "dst": "0.0.0.0/0", "proto": None, "dport": 65536},
        {"src": "0.0.0.0/0", "dst": "0.0.0.0/0", "proto": ESP, "sport": (2, 1)},
        {"src": "0.0.0.0/0", "dst": "0.0.0.0/0", "proto": GRE, "sport": 0},
        {"src": "::/0", "dst": "::/0", "proto": MH, "sport": 1},
        {"src": "::/0", "dst": "::/0", "proto": MH, "dport": (0, 7)},
        {"src": "0.0.0.0/0", "dst": "0.0.0.0/0", "proto": TCP, "sport": (90, 80)},
        {"src": "0.0.0.0/0", "dst": "0.0.0.0/0", "proto": TCP, "sport": (1, 65536)},
        {"src": "0.0.0.0/0", "dst": "0.0.0.0/0", "proto": TCP, "sport": (1, 2, 3)},
        {"src": "0.0.0.0/0", "dst": "0.0.0.0/0", "proto": TCP, "sport": -1},
        {"src": "0.0.0.0/0", "dst": "0.0.0.0/0", "proto": TCP, "sport": "80"},
        {"src": "0.0.0.0/0", "dst": "0.0.0.0/0", "dev": ""},
    ],
)
def test_bad_selectors(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        Selector(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"proto": "gre"},
        {"mode": "beet"},
        {"level": "maybe"},
        {"mode": "tunnel", "src": "192.0.2.1", "dst": None},
        {"mode": "tunnel", "src": "192.0.2.1", "dst": "2001:db8::1"},
        {"mode": "tunnel", "src": "192.0.2.1", "dst": "192.0.2.300"},
        {"mode": "transport", "src": "192.0.2.1", "dst": "192.0.2.2"},
        {"mode": "transport", "reqid": -1},
        {"mode": "transport", "spi": 1 << 32},
    ],
)
def test_bad_templates(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        Template(**kwargs)  # type: ignore[arg-type]


def test_template_defaults() -> None:
    t = Template(mode="transport", spi=None)
    assert (t.proto, t.reqid, t.spi, t.level, t.src) == ("esp", 0, 0, "required", None)
    assert Template(proto="ah", mode="tunnel", src="2001:db8::1", dst="2001:db8::2").proto == "ah"


def test_bad_policies() -> None:
    sel = Selector("198.51.100.0/24", "203.0.113.0/24")
    bad = [
        lambda: Policy("sideways", sel, "bypass"),
        lambda: Policy("out", sel, "allow"),
        lambda: Policy("out", sel, "protect"),
        lambda: Policy("out", sel, "bypass", templates=[TRANSPORT]),
        lambda: Policy("out", sel, "discard", templates=[TRANSPORT]),
        lambda: Policy("out", sel, "bypass", priority=-1),
        lambda: Policy("out", sel, "bypass", priority=1 << 32),
        lambda: Policy("out", sel, "protect", templates=[TRANSPORT] * 7),
        lambda: Policy("out", sel, "protect", templates=["esp"]),  # type: ignore[list-item]
        lambda: Policy("out", sel, "protect", templates=TRANSPORT),  # type: ignore[arg-type]
        lambda: Policy("out", "0.0.0.0/0", "bypass"),  # type: ignore[arg-type]
        lambda: Policy("out", sel, "bypass", index=8),  # index of an "in" policy
    ]
    for make in bad:
        with pytest.raises(ConfigError):
            make()
    with pytest.raises(ConfigError):
        SecurityPolicyDatabase().add("policy")  # type: ignore[arg-type]


def test_policy_templates_become_a_tuple() -> None:
    sel = Selector("198.51.100.0/24", "203.0.113.0/24")
    policy = Policy("out", sel, "protect", 1, [TUNNEL, TRANSPORT])
    assert policy.templates == (TUNNEL, TRANSPORT)
    assert hash(policy) == hash(Policy("out", sel, "protect", 1, (TUNNEL, TRANSPORT)))

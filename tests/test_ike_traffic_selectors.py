"""Traffic selectors: swanctl syntax, set operations and RFC 7296 §2.9 narrowing."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address, ip_address

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyipsec.errors import ConfigError
from pyipsec.ike.traffic_selectors import (
    OPAQUE,
    DynamicTrafficSelector,
    TrafficSelector,
    is_narrowed_from,
    narrow,
    parse_ts,
    parse_ts_list,
    resolve,
    select_for_packet,
)
from pyipsec.ike.v2 import payloads
from pyipsec.ike.v2.constants import TsType

A4 = IPv4Address


def ts(text: str) -> TrafficSelector:
    result = parse_ts(text)
    assert isinstance(result, TrafficSelector)
    return result


# -- parsing -------------------------------------------------------------------------


def test_subnet() -> None:
    t = ts("198.51.100.0/24")
    assert (t.start_addr, t.end_addr) == (A4("198.51.100.0"), A4("198.51.100.255"))
    assert (t.protocol, t.start_port, t.end_port) == (0, 0, 65535)
    assert t.ts_type == TsType.IPV4_ADDR_RANGE


def test_host_bits_are_masked_like_swanctl() -> None:
    assert ts("198.51.100.77/24") == ts("198.51.100.0/24")


def test_host_with_protocol_and_port() -> None:
    t = ts("192.0.2.1[tcp/443]")
    assert (t.start_addr, t.end_addr) == (A4("192.0.2.1"), A4("192.0.2.1"))
    assert (t.protocol, t.start_port, t.end_port) == (6, 443, 443)


@pytest.mark.parametrize(
    ("text", "proto", "ports"),
    [
        ("203.0.113.0/24[udp]", 17, (0, 65535)),
        ("203.0.113.0/24[udp/%any]", 17, (0, 65535)),
        ("203.0.113.0/24[%any/53]", 0, (53, 53)),
        ("203.0.113.0/24[tcp/1024-2048]", 6, (1024, 2048)),
        ("203.0.113.0/24[47]", 47, (0, 65535)),
        ("203.0.113.0/24[udp/opaque]", 17, OPAQUE),
        # RFC 7296 §3.13.1: ICMP type in the high octet, any code.
        ("203.0.113.0/24[icmp/8]", 1, (0x0800, 0x08FF)),
        ("2001:db8::/32[ipv6-icmp/135]", 58, (135 << 8, (135 << 8) | 0xFF)),
    ],
)
def test_protocol_and_port_forms(text: str, proto: int, ports: tuple[int, int]) -> None:
    t = ts(text)
    assert (t.protocol, (t.start_port, t.end_port)) == (proto, ports)


def test_ranges() -> None:
    t = ts("192.0.2.10-192.0.2.20")
    assert (t.start_addr, t.end_addr) == (A4("192.0.2.10"), A4("192.0.2.20"))
    assert ts("192.0.2.10..192.0.2.20") == t
    six = ts("2001:db8::1-2001:db8::ff")
    assert six.version == 6 and six.ts_type == TsType.IPV6_ADDR_RANGE


def test_dynamic() -> None:
    assert parse_ts("dynamic") == DynamicTrafficSelector()
    d = parse_ts("dynamic[udp/1701]")
    assert d == DynamicTrafficSelector(17, 1701, 1701)
    assert isinstance(d, DynamicTrafficSelector)
    host = d.resolve(ip_address("192.0.2.5"))
    assert host == TrafficSelector(A4("192.0.2.5"), A4("192.0.2.5"), 17, 1701, 1701)


def test_resolve_dynamic_to_each_address() -> None:
    specs = parse_ts_list(["dynamic", "198.51.100.0/24"])
    got = resolve(specs, [ip_address("192.0.2.1"), ip_address("2001:db8::1")])
    assert [str(t) for t in got] == ["192.0.2.1/32", "2001:db8::1/128", "198.51.100.0/24"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("198.51.100.0/33", "invalid address"),
        ("198.51.100.300", "invalid address"),
        ("192.0.2.20-192.0.2.10", "invalid address range"),
        ("192.0.2.1-2001:db8::1", "invalid address range"),
        ("192.0.2.1[tcp/443", r"addr\[proto/port\]"),
        ("192.0.2.1[tcp/443]x", r"addr\[proto/port\]"),
        ("192.0.2.1[tcp/65536]", "invalid port"),
        ("192.0.2.1[tcp/20-10]", "empty port range"),
        ("192.0.2.1[tcp/http]", "invalid port"),
        ("192.0.2.1[tcp/\u00b2]", "invalid port"),  # a digit int() refuses
        ("192.0.2.1[bogus/1]", "unknown IP protocol"),
        ("192.0.2.1[256]", "unknown IP protocol"),
        ("192.0.2.1[icmp/256]", "invalid ICMP type"),
        ("[tcp/22]", "no address"),
        ("", "no address"),
    ],
)
def test_invalid(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_ts(text)


def test_empty_list() -> None:
    with pytest.raises(ConfigError):
        parse_ts_list([])


def test_constructor_checks() -> None:
    with pytest.raises(ConfigError, match="mixes"):
        TrafficSelector(A4("192.0.2.1"), IPv6Address("2001:db8::1"))
    with pytest.raises(ConfigError, match="empty"):
        TrafficSelector(A4("192.0.2.2"), A4("192.0.2.1"))
    with pytest.raises(ConfigError, match="protocol"):
        TrafficSelector(A4("192.0.2.1"), A4("192.0.2.1"), 300)
    with pytest.raises(ConfigError, match="empty"):
        TrafficSelector(A4("192.0.2.1"), A4("192.0.2.1"), 6, 10, 9)
    assert TrafficSelector(A4("192.0.2.1"), A4("192.0.2.1"), 6, *OPAQUE).is_opaque


@pytest.mark.parametrize(
    "text",
    [
        "198.51.100.0/24",
        "192.0.2.1/32[tcp/443]",
        "192.0.2.10-192.0.2.20[udp]",
        "203.0.113.0/24[%any/53]",
        "203.0.113.0/24[icmp/8]",
        "203.0.113.0/24[udp/opaque]",
        "2001:db8::/32[tcp/1024-2048]",
        "dynamic[udp/1701]",
        "dynamic",
    ],
)
def test_text_round_trip(text: str) -> None:
    assert str(parse_ts(text)) == text
    assert parse_ts(str(parse_ts(text))) == parse_ts(text)


def test_networks_of_a_range() -> None:
    t = ts("192.0.2.1-192.0.2.6")
    assert [str(n) for n in t.networks()] == [
        "192.0.2.1/32",
        "192.0.2.2/31",
        "192.0.2.4/31",
        "192.0.2.6/32",
    ]


def test_contains() -> None:
    t = ts("198.51.100.0/24[tcp/443]")
    assert t.contains(A4("198.51.100.9"), 6, 443)
    assert not t.contains(A4("198.51.100.9"), 17, 443)
    assert not t.contains(A4("198.51.100.9"), 6, 80)
    assert not t.contains(A4("198.51.101.9"), 6, 443)
    assert not t.contains(IPv6Address("2001:db8::1"), 6, 443)
    assert ts("198.51.100.0/24").contains(A4("198.51.100.1"))
    assert not ts("198.51.100.0/24[udp/opaque]").contains(A4("198.51.100.1"), 17, 53)


def test_payload_round_trip() -> None:
    t = ts("2001:db8::/48[tcp/22]")
    wire = t.to_payload()
    assert isinstance(wire, payloads.TrafficSelector)
    assert wire.ts_type == TsType.IPV6_ADDR_RANGE and wire.ip_protocol == 6
    assert TrafficSelector.from_payload(wire) == t
    wire.start_port, wire.end_port = 10, 9
    with pytest.raises(ConfigError):
        TrafficSelector.from_payload(wire)


# -- intersection and narrowing (RFC 7296 §2.9) ---------------------------------------


def test_intersect_addresses_protocols_ports() -> None:
    a = ts("198.51.100.0/24")
    b = ts("198.51.100.128-198.51.101.10[tcp/1000-2000]")
    got = a.intersect(b)
    assert got == ts("198.51.100.128/25[tcp/1000-2000]")
    assert ts("198.51.100.0/24[tcp]").intersect(ts("198.51.100.0/24[udp]")) is None
    assert ts("198.51.100.0/25").intersect(ts("198.51.100.128/25")) is None
    assert ts("198.51.100.0/24").intersect(ts("2001:db8::/32")) is None
    assert ts("198.51.100.0/24[tcp/1-10]").intersect(ts("198.51.100.0/24[tcp/11-20]")) is None


def test_opaque_meets_only_opaque_or_any() -> None:
    opaque = ts("198.51.100.0/24[udp/opaque]")
    assert opaque.intersect(ts("198.51.100.0/24")) == opaque
    assert opaque.intersect(opaque) == opaque
    assert opaque.intersect(ts("198.51.100.0/24[udp/53]")) is None


def test_subset() -> None:
    assert ts("198.51.100.7[tcp/80]").is_subset(ts("198.51.100.0/24"))
    assert not ts("198.51.100.0/24").is_subset(ts("198.51.100.7[tcp/80]"))


def test_responder_narrows_to_its_policy() -> None:
    # The initiator proposes a /24 for any protocol; the responder's policy only allows
    # TCP to one half: it answers with the intersection (§2.9 "narrowing").
    proposed = [ts("198.51.100.0/24")]
    configured = [ts("198.51.100.0/25[tcp]")]
    answered = narrow(proposed, configured)
    assert answered == (ts("198.51.100.0/25[tcp]"),)
    assert is_narrowed_from(answered, proposed)


def test_narrow_with_packet_selector_first() -> None:
    # §2.9: the initiator, started by a packet, sends that packet's selector first and
    # then the whole range of its policy. A responder allowing the whole range answers
    # with the range (the packet selector lies inside it and is not repeated).
    proposed = [ts("198.51.100.43[udp/100]"), ts("198.51.100.0/24")]
    assert select_for_packet(proposed, [ts("198.51.100.0/24")])
    assert narrow(proposed, [ts("198.51.100.0/24")]) == (ts("198.51.100.0/24"),)
    # A responder allowing only the packet's host answers with that host alone.
    only_host = [ts("198.51.100.43")]
    assert select_for_packet(proposed, only_host)
    assert narrow(proposed, only_host) == (ts("198.51.100.43"),)
    # A policy that does not cover the packet is not the one to pick.
    assert not select_for_packet(proposed, [ts("198.51.100.128/25")])
    assert not select_for_packet([], only_host)


def test_narrow_with_several_configured_selectors() -> None:
    proposed = [ts("198.51.100.0/24"), ts("2001:db8:1::/48")]
    configured = [ts("198.51.100.0/26"), ts("198.51.100.192/26"), ts("2001:db8:1:2::/64")]
    assert narrow(proposed, configured) == tuple(configured)


def test_narrow_empty_means_ts_unacceptable() -> None:
    assert narrow([ts("203.0.113.0/24")], [ts("198.51.100.0/24")]) == ()
    assert not is_narrowed_from((), [ts("203.0.113.0/24")])


def test_initiator_rejects_widened_answer() -> None:
    # §2.9: the responder may only narrow; an answer wider than the proposal is invalid.
    assert not is_narrowed_from([ts("198.51.100.0/23")], [ts("198.51.100.0/24")])


_addr4 = st.integers(0, 2**32 - 1).map(A4)
_port = st.integers(0, 65535)


@st.composite
def selectors(draw: st.DrawFn) -> TrafficSelector:
    a, b = sorted((int(draw(_addr4)), int(draw(_addr4))))
    p, q = sorted((draw(_port), draw(_port)))
    return TrafficSelector(A4(a), A4(b), draw(st.sampled_from([0, 6, 17])), p, q)


@given(selectors(), selectors(), _addr4, st.sampled_from([6, 17]), _port)
def test_intersection_matches_exactly_the_common_packets(
    a: TrafficSelector, b: TrafficSelector, addr: IPv4Address, proto: int, port: int
) -> None:
    common = a.intersect(b)
    both = a.contains(addr, proto, port) and b.contains(addr, proto, port)
    assert (common is not None and common.contains(addr, proto, port)) == both
    if common is not None:
        assert common.is_subset(a) and common.is_subset(b)


@given(st.lists(selectors(), min_size=1, max_size=4), st.lists(selectors(), max_size=4))
def test_narrow_result_is_always_within_the_proposal(
    proposed: list[TrafficSelector], configured: list[TrafficSelector]
) -> None:
    answered = narrow(proposed, configured)
    assert all(any(t.is_subset(c) for c in configured) for t in answered)
    assert answered == () or is_narrowed_from(answered, proposed)


@given(st.text(max_size=30))
def test_random_text_only_raises_config_error(text: str) -> None:
    try:
        result = parse_ts(text)
    except ConfigError:
        return
    assert isinstance(result, TrafficSelector | DynamicTrafficSelector)

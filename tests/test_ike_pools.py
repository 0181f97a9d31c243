"""ike/pools: virtual IP leases per identity, reuse, release, exhaustion, reassignment."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address, ip_address

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyipsec.config.swanctl import parse_swanctl
from pyipsec.errors import ConfigError
from pyipsec.ike.connection import Pool
from pyipsec.ike.pools import AddressPool, PoolSet


def v4(text: str) -> IPv4Address:
    return IPv4Address(text)


def small(n: int = 3) -> AddressPool:
    return AddressPool("p", v4("203.0.113.10"), v4(f"203.0.113.{9 + n}"))


def test_new_identities_get_addresses_in_order() -> None:
    pool = small()
    assert pool.acquire("alice") == v4("203.0.113.10")
    assert pool.acquire("bob") == v4("203.0.113.11")
    assert pool.acquire("carol") == v4("203.0.113.12")
    assert (pool.online, pool.offline, pool.size) == (3, 0, 3)


def test_same_identity_gets_its_address_again_while_online_and_after_release() -> None:
    pool = small()
    first = pool.acquire("alice")
    assert first is not None
    assert pool.acquire("alice") == first  # a second IKE SA of the same peer shares it
    assert pool.release("alice", first) and pool.online == 1  # still used by one
    assert pool.release("alice", first) and (pool.online, pool.offline) == (0, 1)
    assert not pool.release("alice", first)  # nothing left to release
    pool.acquire("bob")
    assert pool.acquire("alice") == first  # reconnecting: the same address (strongSwan)


def test_release_by_the_wrong_identity_or_address_is_refused() -> None:
    pool = small()
    addr = pool.acquire("alice")
    assert addr is not None
    assert not pool.release("mallory", addr)
    assert not pool.release("alice", v4("192.0.2.1"))  # not in the pool
    assert not pool.release("alice", IPv6Address("2001:db8::1"))
    assert pool.online == 1


def test_exhaustion_then_reassignment_of_the_oldest_offline_lease() -> None:
    pool = small(2)
    a, b = pool.acquire("alice"), pool.acquire("bob")
    assert a is not None and b is not None
    assert pool.acquire("carol") is None  # every address is online
    pool.release("bob", b)
    pool.release("alice", a)  # alice went offline after bob
    assert pool.acquire("carol") == b  # bob's lease is the oldest offline one
    assert pool.acquire("dave") == a
    assert pool.acquire("erin") is None
    # bob's lease went to carol: bob now gets nothing (the pool is full of online leases).
    assert pool.acquire("bob") is None
    assert {lease.identity for lease in pool.leases()} == {"carol", "dave"}


def test_requested_address_is_honoured_when_free() -> None:
    pool = small()
    assert pool.acquire("alice", v4("203.0.113.12")) == v4("203.0.113.12")
    # Taken by alice: bob asking for it gets another one.
    assert pool.acquire("bob", v4("203.0.113.12")) == v4("203.0.113.10")
    # Outside the pool: ignored.
    assert pool.acquire("carol", v4("198.51.100.1")) == v4("203.0.113.11")


def test_subnet_pool_skips_network_and_broadcast() -> None:
    pool = AddressPool.from_config(Pool("net", (v4("203.0.113.0"), v4("203.0.113.15"))))
    assert (pool.first, pool.last, pool.size) == (v4("203.0.113.1"), v4("203.0.113.14"), 14)
    single = AddressPool.from_config(Pool("one", (v4("203.0.113.5"), v4("203.0.113.5"))))
    assert single.acquire("x") == v4("203.0.113.5") and single.acquire("y") is None


def test_ipv6_pool_of_a_huge_range() -> None:
    pool = AddressPool(
        "v6", IPv6Address("2001:db8::"), IPv6Address("2001:db8::ffff:ffff:ffff:ffff")
    )
    assert pool.size == 2**64
    assert pool.acquire("alice") == IPv6Address("2001:db8::")
    assert pool.acquire("bob") == IPv6Address("2001:db8::1")
    assert IPv6Address("2001:db8::1:0:0:5") in pool and IPv4Address("192.0.2.1") not in pool


def test_bad_pools_and_identities() -> None:
    with pytest.raises(ConfigError):
        AddressPool("p", v4("203.0.113.9"), v4("203.0.113.1"))
    with pytest.raises(ConfigError):
        AddressPool("p", v4("203.0.113.1"), IPv6Address("2001:db8::1"))
    with pytest.raises(ConfigError):
        small().acquire("")


def test_pool_set_by_name_family_and_reload_keeps_leases() -> None:
    conf = parse_swanctl(
        """
        pools {
          four {
            addrs = 203.0.113.0/30
            dns = 198.51.100.53
          }
          six {
            addrs = 2001:db8:1::/126
          }
        }
        """
    )
    pools = PoolSet()
    pools.update(conf.pools)
    assert len(pools) == 2
    got = pools.acquire(["six", "four"], "alice", 4)
    assert got is not None
    pool, addr = got
    assert (pool.name, addr) == ("four", v4("203.0.113.1"))
    assert pool.attribute("dns") == ("198.51.100.53",)
    got6 = pools.acquire(["six", "four"], "alice", 6)
    assert got6 is not None and got6[1] == IPv6Address("2001:db8:1::")
    assert pools.acquire(["missing"], "alice", 4) is None
    # A reload with the same ranges keeps the leases; a changed range starts afresh.
    pools.update(conf.pools)
    four = pools.get("four")
    assert four is not None and four.online == 1
    pools.update([Pool("four", (v4("203.0.113.64"), v4("203.0.113.67")))])
    four = pools.get("four")
    assert four is not None and four.online == 0 and pools.get("six") is None
    assert pools.release("alice", addr) is False  # that lease went with the old range


def test_pool_set_release_finds_the_pool() -> None:
    pools = PoolSet([small(), AddressPool("q", v4("203.0.113.100"), v4("203.0.113.101"))])
    got = pools.acquire(["p", "q"], "alice", 4)
    assert got is not None and got[0].name == "p"
    assert pools.release("alice", got[1]) and not pools.release("alice", got[1])
    # A full first pool spills over into the next one.
    for who in ("a", "b", "c"):
        pools.acquire(["p"], who, 4)
    spilled = pools.acquire(["p", "q"], "d", 4)
    assert spilled is not None and spilled[0].name == "q"


@given(st.lists(st.tuples(st.sampled_from("abcdefg"), st.booleans()), max_size=60))
def test_leases_never_collide(ops: list[tuple[str, bool]]) -> None:
    """Whatever the order of acquires and releases, no address has two online owners and
    an identity holding an online lease always gets that same address back."""
    pool = small(4)
    held: dict[str, list[IPv4Address | IPv6Address]] = {}
    for who, take in ops:
        if take:
            addr = pool.acquire(who)
            if addr is None:
                assert pool.online == pool.size
                continue
            if held.get(who):
                assert addr == held[who][0]
            held.setdefault(who, []).append(addr)
        elif held.get(who):
            assert pool.release(who, held[who].pop())
        online = [lease for lease in pool.leases() if lease.online]
        assert len({lease.address for lease in online}) == len(online)
        for lease in online:
            assert len(held.get(lease.identity, [])) == lease.online
            assert all(a == lease.address for a in held[lease.identity])
    assert all(ip_address(str(lease.address)) in pool for lease in pool.leases())

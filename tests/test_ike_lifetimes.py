"""ike/lifetimes: CHILD SA soft/hard limits and IKE SA deadlines from configuration, and
the tracker that says when to rekey, reauthenticate, delete or retry (fake clock)."""

from __future__ import annotations

import pytest

from pyipsec.config.swanctl import parse_swanctl
from pyipsec.errors import ConfigError
from pyipsec.ike.connection import ChildConfig, IkeConfig
from pyipsec.ike.lifetimes import (
    RETRY_MIN,
    RETRY_SPAN,
    LifetimeTracker,
    child_lifetimes,
    ike_deadlines,
    jittered_count,
    jittered_time,
    retry_delay,
)


def lowest(n: int) -> int:
    return 0


def highest(n: int) -> int:
    return n - 1


def _child(**keys: str) -> ChildConfig:
    body = "\n".join(f"{k} = {v}" for k, v in keys.items())
    text = f"connections {{\n gw {{\n children {{\n net {{\n {body}\n }}\n }}\n }}\n }}\n"
    return parse_swanctl(text, "t.conf").connections[0].children[0]


def _ike(**keys: str) -> IkeConfig:
    body = "\n".join(f"{k} = {v}" for k, v in keys.items())
    text = f"connections {{\n gw {{\n {body}\n }}\n }}\n"
    return parse_swanctl(text, "t.conf").connections[0]


def test_jitter_bounds() -> None:
    assert jittered_time(100.0, 10.0, lowest) == 100.0
    assert jittered_time(100.0, 10.0, highest) == pytest.approx(90.0)
    assert jittered_time(100.0, 0.0, highest) == 100.0
    assert jittered_time(0.0, 10.0, highest) == 0.0  # no rekey at all
    # A random part larger than the rekey value takes at most half of it.
    assert jittered_time(10.0, 50.0, highest) == pytest.approx(5.0)
    assert jittered_count(1000, 100, highest) == 900
    assert jittered_count(1000, 5000, highest) == 500
    assert jittered_count(0, 5, highest) == 0
    for _ in range(200):
        assert 90.0 <= jittered_time(100.0, 10.0) <= 100.0
        assert 900 <= jittered_count(1000, 100) <= 1000


def test_child_lifetimes_follow_swanctl_defaults() -> None:
    # rekey_time 1h, life_time 110% of it, rand_time the difference (swanctl.conf(5)).
    soft, hard = child_lifetimes(_child(), lowest)
    assert soft.add_time == 3600.0 and hard.add_time == pytest.approx(3960.0)
    assert soft.bytes is None and soft.packets is None and hard.bytes is None
    soft, _ = child_lifetimes(_child(), highest)
    assert soft.add_time == pytest.approx(3600.0 - 360.0)


def test_child_lifetimes_short_times_bytes_and_packets() -> None:
    config = _child(rekey_time="5s", life_time="8s", rekey_bytes="1m", rekey_packets="1000")
    soft, hard = child_lifetimes(config, highest)
    assert soft.add_time == pytest.approx(5.0 - 2.5)  # rand 3 s, capped at half
    assert hard.add_time == 8.0
    # life_* default to 110%, rand_* to the difference: soft is rekey minus up to 10%.
    assert hard.bytes == 1024 * 1024 * 11 // 10 and hard.packets == 1100
    assert soft.bytes == 1024 * 1024 - (hard.bytes - 1024 * 1024) and soft.packets == 900
    soft, hard = child_lifetimes(_child(rekey_time="0", life_time="0"), highest)
    assert soft.unlimited and hard.unlimited


def test_child_lifetimes_without_lifetime_attributes_are_unlimited() -> None:
    soft, hard = child_lifetimes(object())
    assert soft.unlimited and hard.unlimited

    class Bad:
        rekey_time = -1

    with pytest.raises(ConfigError):
        child_lifetimes(Bad())


def test_ike_deadlines() -> None:
    config = _ike(rekey_time="100s", over_time="10s", rand_time="20s")
    d = ike_deadlines(config, 1000.0, lowest)
    assert (d.rekey, d.reauth, d.delete) == (1100.0, None, 1110.0)
    d = ike_deadlines(config, 1000.0, highest)
    assert d.rekey == pytest.approx(1080.0) and d.delete == pytest.approx(1090.0)
    # Reauthentication earlier than rekeying: the hard limit follows the first.
    d = ike_deadlines(_ike(rekey_time="100s", reauth_time="50s", over_time="5s",
                           rand_time="0s"), 0.0, lowest)  # fmt: skip
    assert (d.rekey, d.reauth, d.delete) == (100.0, 50.0, 55.0)
    d = ike_deadlines(_ike(rekey_time="0"), 0.0, lowest)
    assert (d.rekey, d.reauth, d.delete) == (None, None, None)


def test_ike_defaults_rekey_after_four_hours() -> None:
    d = ike_deadlines(_ike(), 0.0, lowest)
    assert d.rekey == 14400.0 and d.delete == pytest.approx(14400.0 + 1440.0)


def test_retry_delay_is_short_and_random() -> None:
    assert retry_delay(lowest) == RETRY_MIN
    assert retry_delay(highest) == pytest.approx(RETRY_MIN + RETRY_SPAN)
    delays = {retry_delay() for _ in range(50)}
    assert len(delays) > 1 and all(RETRY_MIN <= x <= RETRY_MIN + RETRY_SPAN for x in delays)


class Sa:
    """Stands in for an IKE SA or CHILD SA (the tracker keys by identity)."""


def test_tracker_rekey_retry_and_hard_delete() -> None:
    tracker = LifetimeTracker(lowest)
    sa = Sa()
    config = _ike(rekey_time="100s", over_time="30s", rand_time="0s")
    tracker.track(sa, config, 0.0)
    assert tracker.track(sa, config, 50.0).rekey == 100.0  # tracked once
    assert tracker.due(sa, 99.0) is None
    assert tracker.due(sa, 100.0) == "rekey"
    tracker.tried(sa, 100.0)
    assert tracker.due(sa, 104.0) is None  # refused: wait the retry delay
    assert tracker.due(sa, 105.0) == "rekey"
    tracker.tried(sa, 105.0)
    assert tracker.due(sa, 130.0) == "delete"  # never rekeyed: over_time ends it
    assert tracker.due(Sa(), 130.0) is None
    tracker.forget(sa)
    assert tracker.due(sa, 200.0) is None and tracker.deadlines(sa) is None


def test_tracker_reauth_before_rekey() -> None:
    tracker = LifetimeTracker(lowest)
    sa = Sa()
    tracker.track(sa, _ike(rekey_time="100s", reauth_time="60s", rand_time="0s"), 0.0)
    assert tracker.due(sa, 60.0) == "reauth"


def test_tracker_child_retries_and_pruning() -> None:
    tracker = LifetimeTracker(lowest)
    child, other, ike = Sa(), Sa(), Sa()
    tracker.want_rekey(child, 10.0)
    tracker.want_rekey(child, 12.0)  # the second SA of the pair: same entry
    tracker.want_rekey(other, 11.0)
    assert tracker.child_retry_due(14.0) == []
    assert tracker.child_retry_due(15.0) == [child]
    assert tracker.child_retry_due(16.0) == [other]
    assert tracker.child_retry_due(19.0) == []  # the next retry waits again
    tracker.done_with_child(other)
    tracker.track(ike, _ike(), 0.0)
    tracker.keep_only([child])
    assert tracker.children_waiting == 1 and tracker.deadlines(ike) is None

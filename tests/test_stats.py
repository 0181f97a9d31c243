"""EngineStats: the counters mapping the daemon, status and tests read."""

from __future__ import annotations

import pytest

from pyipsec.engine.stats import HOT_COUNTERS, KERNEL_COUNTERS, OWN_COUNTERS, EngineStats
from pyipsec.errors import Reason


def test_every_known_name_is_present_and_zero_in_order() -> None:
    stats = EngineStats()
    assert list(stats) == list(KERNEL_COUNTERS + OWN_COUNTERS)
    assert len(stats) == len(KERNEL_COUNTERS + OWN_COUNTERS)
    assert all(stats[name] == 0 for name in stats)
    assert list(stats.kernel_view()) == list(KERNEL_COUNTERS)


@pytest.mark.parametrize("name", sorted(HOT_COUNTERS))
def test_hot_counters_are_attributes_and_items(name: str) -> None:
    stats = EngineStats()
    setattr(stats, name, getattr(stats, name) + 3)
    assert stats[name] == 3
    stats[name] += 4
    assert getattr(stats, name) == 7
    assert dict(stats.items())[name] == 7
    assert {k: v for k, v in stats.items() if v} == {name: 7}


def test_item_updates_and_unknown_names() -> None:
    stats = EngineStats()
    stats[Reason.IN_NO_STATES] += 2
    stats.count(Reason.IN_NO_STATES)
    assert stats[Reason.IN_NO_STATES] == 3
    assert stats.kernel_view()[Reason.IN_NO_STATES] == 3
    assert "no-such-counter" not in stats
    assert stats["no-such-counter"] == 0  # reads as zero, as the dict's __missing__ did
    assert stats.get("no-such-counter", 5) == 5
    stats[Reason.NON_ESP] += 1  # a name outside the known lists is added when set
    assert Reason.NON_ESP in stats
    assert list(stats)[-1] == Reason.NON_ESP
    assert len(stats) == len(KERNEL_COUNTERS + OWN_COUNTERS) + 1
    del stats[Reason.NON_ESP]
    assert Reason.NON_ESP not in stats
    del stats["in_packets"]  # known names stay, back at zero
    assert "in_packets" in stats and stats["in_packets"] == 0


def test_equal_to_the_plain_dict_of_its_items() -> None:
    stats = EngineStats()
    stats.out_bytes += 100
    expected = dict.fromkeys(KERNEL_COUNTERS + OWN_COUNTERS, 0)
    expected["out_bytes"] = 100
    assert stats == expected
    assert "out_bytes" in repr(stats)

"""io/ike_timers: ``close_action`` (swanctl.conf(5)) on the fake wire of ``test_ike_service``.

The peer (b) closes a CHILD SA or the IKE SA of a (the side with the close_action):
``none`` does nothing, ``trap`` installs trap policies, ``start`` creates the CHILD SA
again (over the same IKE SA when that stays). Deletes that end a rekey (the peer's
CHILD or IKE rekey) or cross a delete of a's own are not closes.
"""

from __future__ import annotations

from typing import Any

import pytest

from pyipsec.errors import ConfigError
from pyipsec.ike.v2.manager import PeerClose
from test_ike_service import GW_A, GW_B, Pair, _children, _conf, _established, drive, psk_pair


def _up(close: str, extra_b: str = "", child_b: str = "") -> Pair:
    pair = Pair(
        _conf(GW_A, GW_B, me_id="a.example", peer_id="b.example",
              child=f"close_action = {close}"),
        _conf(GW_B, GW_A, me_id="b.example", peer_id="a.example", extra=extra_b,
              child=child_b),
    )  # fmt: skip
    pair.a.initiate("gw")
    pair.run()
    assert len(_children(pair.a)) == 1 and len(_children(pair.b)) == 1
    return pair


def _b_deletes_child(pair: Pair) -> None:
    (sa,) = pair.b.manager.ike_sas
    (child,) = sa.children.values()
    pair.b.manager.delete_child(sa, child, pair.loop.now)
    pair.b.pump()
    pair.run()


def _out_policies(pair: Pair) -> list[Any]:
    return [p for p in pair.engines[GW_A].dump_policy() if p.direction == "out"]


def _spis(pair: Pair) -> set[str]:
    return {c["spi_in"] for c in _children(pair.a)}


def _closes(pair: Pair) -> list[str]:
    return [e["event"] for e in pair.a.history]


@pytest.mark.parametrize("close", ["none", "trap", "start", "trap|start"])
def test_peer_deletes_the_child_sa(close: str) -> None:
    pair = _up(close)
    (ike,) = _established(pair.a)
    first = _spis(pair)
    _b_deletes_child(pair)
    (still,) = _established(pair.a)
    assert still["spi_i"] == ike["spi_i"]  # only the CHILD SA went
    if "start" in close:
        # Created again over the same IKE SA, with new SPIs, on both sides.
        assert len(_children(pair.a)) == 1 and _spis(pair) != first
        assert len(_children(pair.b)) == 1
        assert _closes(pair).count("ChildSaInstalled") == 2
    else:
        assert _children(pair.a) == [] and _children(pair.b) == []
    if "trap" in close:
        reqid = pair.a.traps[("gw", "net")]
        traps = [p for p in _out_policies(pair) if p.templates[0].reqid == reqid]
        assert len(traps) == 1 and traps[0].priority == 1100
    else:
        assert pair.a.traps == {}
    if close == "none":
        assert pair.engines[GW_A].dump_sa() == [] and _out_policies(pair) == []


@pytest.mark.parametrize("close", ["none", "trap", "start"])
def test_peer_deletes_the_ike_sa(close: str) -> None:
    pair = _up(close)
    (old,) = _established(pair.a)
    assert pair.b.terminate("gw") == 1
    pair.run()
    if close == "start":
        (new,) = _established(pair.a)  # a new IKE SA with the CHILD SA in it
        assert new["spi_i"] != old["spi_i"] and new["initiator"] is True
        assert len(_children(pair.a)) == 1 and len(_children(pair.b)) == 1
    else:
        assert pair.a.status()["ike_sas"] == [] and pair.b.status()["ike_sas"] == []
    assert (("gw", "net") in pair.a.traps) is (close == "trap")


def test_the_peers_rekeys_are_not_closes() -> None:
    # b rekeys the CHILD SA every 5-10 s and the IKE SA at 12 s: each ends with a Delete
    # from b (§2.8), which must not make a's close_action do anything.
    pair = _up("trap|start", extra_b="rekey_time = 12s\n rand_time = 0s",
               child_b="rekey_time = 10s\n life_time = 14s")  # fmt: skip
    (first_ike,) = _established(pair.a)
    seen = set()
    for _ in range(6):
        drive(pair, 5)
        seen |= _spis(pair)
        assert len(_children(pair.a)) == 1 and len(_established(pair.a)) == 1
    assert len(seen) >= 3  # CHILD SA rekeyed at least twice
    (ike,) = _established(pair.a)
    assert ike["spi_i"] != first_ike["spi_i"] and ike["initiator"] is False  # b rekeyed it
    assert pair.a.traps == {}
    # The pairs b deleted were replaced: no CHILD SA was created by a's close_action.
    deleted = [e for e in pair.a.history if e["event"] == "ChildSaDeleted"]
    assert deleted and {e["reason"] for e in deleted} == {"peer-deleted"}
    installs = [e for e in pair.a.history if e["event"] == "ChildSaInstalled"]
    assert len(installs) == len(seen)


def test_our_own_delete_crossing_the_peers_is_not_a_close() -> None:
    pair = _up("start")
    (sa_a,) = pair.a.manager.ike_sas
    (sa_b,) = pair.b.manager.ike_sas
    (child_a,) = sa_a.children.values()
    (child_b,) = sa_b.children.values()
    # Both ends delete the pair at once (§1.4.1 crossed deletes).
    pair.a.manager.delete_child(sa_a, child_a, pair.loop.now)
    pair.b.manager.delete_child(sa_b, child_b, pair.loop.now)
    pair.a.pump()
    pair.b.pump()
    pair.run()
    assert _children(pair.a) == [] and _children(pair.b) == []
    assert pair.a.traps == {} and _closes(pair).count("ChildSaInstalled") == 1


def test_our_own_ike_delete_is_not_a_close() -> None:
    pair = _up("trap|start")
    (sa_a,) = pair.a.manager.ike_sas
    (sa_b,) = pair.b.manager.ike_sas
    pair.a.manager.delete_ike(sa_a, pair.loop.now)
    pair.b.manager.delete_ike(sa_b, pair.loop.now)
    pair.a.pump()
    pair.b.pump()
    pair.run()
    assert pair.a.status()["ike_sas"] == [] and pair.a.traps == {}


def test_start_after_an_ike_close_brings_every_child_back_in_one_ike_sa() -> None:
    two = """
              second {
                local_ts = 192.0.2.1/32[udp]
                remote_ts = 192.0.2.2/32[udp]
                esp_proposals = aes128gcm16
                close_action = start
              }
    """
    conf_a = _conf(GW_A, GW_B, me_id="a.example", peer_id="b.example",
                   child="close_action = start")  # fmt: skip
    conf_b = _conf(GW_B, GW_A, me_id="b.example", peer_id="a.example")
    marker = "children {\n"
    assert conf_a.count(marker) == 1
    conf_a = conf_a.replace(marker, marker + two)
    conf_b = conf_b.replace(marker, marker + two.replace("close_action = start", ""))
    pair = Pair(conf_a, conf_b)
    pair.a.initiate("gw", "net")
    pair.run()
    (sa,) = pair.a.manager.ike_sas
    pair.a.manager.create_child(sa, "second", pair.loop.now)
    pair.a.pump()
    pair.run()
    assert sorted(c["name"] for c in _children(pair.a)) == ["net", "second"]
    pair.b.terminate("gw")
    pair.run()
    (new,) = _established(pair.a)
    assert new["spi_i"] != sa.spi_i.hex()
    assert sorted(c["name"] for c in _children(pair.a)) == ["net", "second"]


def test_close_of_a_connection_no_longer_configured_is_ignored() -> None:
    pair = psk_pair()
    pair.a.timers.on_peer_close(PeerClose("gone", "net", 1, False, bytes(8)), pair.loop.now)
    pair.a.timers.on_peer_close(PeerClose("gw", "nope", 1, True, bytes(8)), pair.loop.now)
    assert pair.a.status()["ike_sas"] == [] and pair.a.traps == {}


def test_a_refused_trap_is_logged_not_raised() -> None:
    pair = psk_pair(child_a="close_action = trap")
    manager = pair.a.manager
    manager.install_trap("gw", "net")  # as if start_action = trap held it
    before = pair.engines[GW_A].dump_policy()
    with pytest.raises(ConfigError, match="refused"):
        manager.install_trap("gw", "net")  # the same selectors again: all or nothing
    assert pair.engines[GW_A].dump_policy() == before
    pair.a.timers.on_peer_close(PeerClose("gw", "net", 0, False, bytes(8)), pair.loop.now)
    assert ("gw", "net") not in pair.a.traps  # logged (ConfigError), nothing recorded
    assert pair.engines[GW_A].dump_policy() == before

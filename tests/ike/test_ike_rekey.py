"""CHILD SA and IKE SA rekeying between two in-memory endpoints (RFC 7296 §1.3.2, §1.3.3,
§2.8, §2.8.1, §2.18), with ESP traffic through both engines at every step.

Each test names the exchange it models:

    CHILD rekey:  A: HDR, SK {N(REKEY_SA), SA, Ni, [KEi,] TSi, TSr}  -->
                  <--  B: HDR, SK {SA, Nr, [KEr,] TSi, TSr}
                  A: HDR, SK {D(ESP, old)}  -->  <--  B: HDR, SK {D(ESP, old)}
    IKE rekey:    A: HDR, SK {SA(SPIi'), Ni, KEi}  -->  <--  B: HDR, SK {SA(SPIr'), Nr, KEr}
                  A: HDR, SK {D(IKE)}  -->  <--  B: HDR, SK {}
"""

from __future__ import annotations

import ipaddress

import pytest
from ike_fixtures import GW_A, GW_B, HOST_A, HOST_B, NET_A, NET_B, Pair, child, conn
from scapy.layers.inet import IP, UDP

from pyipsec.engine.actions import Deliver, Transmit
from pyipsec.engine.events import Expire, SaId
from pyipsec.ike.v2.constants import ExchangeType, NotifyType
from pyipsec.ike.v2.events import ChildSaDeleted, ChildSaFailed, ChildSaInstalled
from pyipsec.ike.v2.ike_sa import ChildSa, Datagram, IkeSa, IkeSaState
from pyipsec.ike.v2.message import parse_message
from pyipsec.ike.v2.payloads import NotifyPayload
from pyipsec.ike.v2.tasks.child_rekey import ChildRekey


def packed(addr: str) -> bytes:
    return ipaddress.ip_address(addr).packed


def esp_ok(pair: Pair, src_side: str, now: float) -> bool:
    """One packet through the sender's engine and the receiver's: delivered intact?"""
    src, dst = (HOST_A, HOST_B) if src_side == "a" else (HOST_B, HOST_A)
    inner = bytes(IP(src=src, dst=dst) / UDP(sport=4000, dport=53) / b"during the rekey")
    tx, rx = (pair.engine_a, pair.engine_b) if src_side == "a" else (pair.engine_b, pair.engine_a)
    action = tx.outbound(inner, now)
    if not isinstance(action, Transmit):
        return False
    got = rx.inbound_esp(action.data, packed(action.src), packed(action.dst), action.encap, now)
    return isinstance(got, Deliver) and got.packet[12:] == inner[12:]


def tunnel_pair(esp: str = "aes128gcm16", ike: str = "aes128gcm16-prfsha256-x25519") -> Pair:
    a = conn(GW_A, GW_B, ike, children=(child(NET_A, NET_B, esp),))
    b = conn(GW_B, GW_A, ike, children=(child(NET_B, NET_A, esp),))
    return Pair(a, b)


def established(esp: str = "aes128gcm16") -> tuple[Pair, IkeSa, IkeSa]:
    pair = tunnel_pair(esp)
    sa_a = pair.a.initiate("gw", 0.0)
    pair.pump(0.0)
    (sa_b,) = pair.b.ike_sas
    assert sa_a.state is IkeSaState.ESTABLISHED and len(sa_a.children) == 1
    pair.events("a"), pair.events("b")
    return pair, sa_a, sa_b


def step_with_traffic(pair: Pair, now: float) -> int:
    """Deliver IKE datagrams one at a time; after each, ESP both ways must get through."""
    delivered = 0
    while True:
        moved = False
        for name, src, dst in (("a", pair.a, pair.b), ("b", pair.b, pair.a)):
            for d in src.datagrams_to_send(now):
                pair.wire.append((name, d))
                dst.receive_datagram(d.data, d.dst, d.src, now)
                delivered += 1
                moved = True
                assert esp_ok(pair, "a", now), f"a->b lost after datagram {delivered}"
                assert esp_ok(pair, "b", now), f"b->a lost after datagram {delivered}"
        if not moved:
            return delivered


def only_child(sa: IkeSa) -> ChildSa:
    (c,) = sa.children.values()
    return c


def of(events: list[object], cls: type) -> list:  # type: ignore[type-arg]
    return [e for e in events if isinstance(e, cls)]


# -- CHILD SA rekey -----------------------------------------------------------------------


@pytest.mark.parametrize("esp", ["aes128gcm16", "aes256-sha256", "aes128gcm16-x25519"])
def test_child_rekey_make_before_break_loses_no_packet(esp: str) -> None:
    pair, sa_a, sa_b = established(esp)
    old_a, old_b = only_child(sa_a), only_child(sa_b)
    assert esp_ok(pair, "a", 1.0) and esp_ok(pair, "b", 1.0)
    assert pair.a.rekey_child(sa_a, old_a, 2.0)
    # Rekey request/response, then the old pair's Delete request/response.
    assert step_with_traffic(pair, 2.0) == 4
    kinds = [parse_message(d.data).header.exchange_type for _, d in pair.wire[-4:]]
    assert kinds == [ExchangeType.CREATE_CHILD_SA] * 2 + [ExchangeType.INFORMATIONAL] * 2
    new_a, new_b = only_child(sa_a), only_child(sa_b)
    assert new_a.spi_in not in (old_a.spi_in, old_a.spi_out)
    assert (new_a.spi_in, new_a.spi_out) == (new_b.spi_out, new_b.spi_in)
    assert new_a.reqid == old_a.reqid and new_b.reqid == old_b.reqid
    assert new_a.local_ts == old_a.local_ts and new_b.pending_out is None
    # Only the new pair is left in the SADs, and it carries the traffic.
    for engine, child_sa in ((pair.engine_a, new_a), (pair.engine_b, new_b)):
        assert sorted(e.spi for e in engine.dump_sa()) == sorted(
            (child_sa.spi_in, child_sa.spi_out)
        )
        assert len(engine.dump_policy()) == 3
    assert esp_ok(pair, "a", 3.0) and esp_ok(pair, "b", 3.0)
    ev_a = pair.events("a")
    assert [e.reason for e in of(ev_a, ChildSaDeleted)] == ["deleted"]
    assert of(ev_a, ChildSaInstalled)[0].spi_in == new_a.spi_in
    assert [e.reason for e in of(pair.events("b"), ChildSaDeleted)] == ["peer-deleted"]


def test_child_rekey_request_carries_rekey_sa_with_our_inbound_spi() -> None:
    pair, sa_a, sa_b = established()
    old = only_child(sa_a)
    pair.a.rekey_child(sa_a, old, 2.0)
    (request,) = pair.a.datagrams_to_send(2.0)
    payloads = sa_b.unprotect(parse_message(request.data))
    (note,) = [p for p in payloads if isinstance(p, NotifyPayload) and p.notify_type == 16393]
    assert note.spi == old.spi_in.to_bytes(4, "big") and note.protocol_id == 3


def test_responder_rekey_the_other_way() -> None:
    pair, _, sa_b = established()
    old_b = only_child(sa_b)
    assert pair.b.rekey_child(sa_b, old_b, 2.0)
    step_with_traffic(pair, 2.0)
    assert only_child(sa_b).spi_in != old_b.spi_in
    assert esp_ok(pair, "a", 3.0) and esp_ok(pair, "b", 3.0)


def test_soft_expire_rekeys_once_and_hard_expire_deletes() -> None:
    pair, sa_a, sa_b = established()
    old = only_child(sa_a)
    for spi, dst in ((old.spi_in, GW_A), (old.spi_out, GW_B)):
        soft = Expire(SaId(ipaddress.ip_address(dst), spi), ipaddress.ip_address(GW_B),
                      old.reqid, False, "add_time")  # fmt: skip
        pair.a.handle_engine_event(soft, 5.0)  # both SAs of the pair: one rekey
    step_with_traffic(pair, 5.0)
    new = only_child(sa_a)
    assert new.spi_in != old.spi_in and len(pair.engine_a.dump_sa()) == 2
    hard = Expire(SaId(ipaddress.ip_address(GW_A), new.spi_in), ipaddress.ip_address(GW_B),
                  new.reqid, True, "add_time")  # fmt: skip
    pair.a.handle_engine_event(hard, 9.0)
    pair.pump(9.0)
    assert sa_a.children == {} and sa_b.children == {}
    assert pair.engine_b.dump_sa() == []


def test_engine_soft_lifetime_triggers_the_rekey() -> None:
    from dataclasses import replace

    from pyipsec.engine.lifetime import Lifetime

    pair, sa_a, _ = established()
    old = only_child(sa_a)
    # Give the outbound SA a soft byte limit, as a configured rekey_bytes would.
    entry = pair.engine_a.get_sa(GW_B, old.spi_out)
    assert entry.spec is not None
    pair.engine_a.update_sa(replace(entry.spec, soft=Lifetime(packets=2)), 1.0)
    for _ in range(3):
        assert esp_ok(pair, "a", 1.5)
    events = []
    while (ev := pair.engine_a.next_event()) is not None:
        events.append(ev)
    soft = [e for e in events if isinstance(e, Expire) and not e.hard]
    assert soft, events
    for ev in soft:
        pair.a.handle_engine_event(ev, 2.0)
    step_with_traffic(pair, 2.0)
    assert only_child(sa_a).spi_out != old.spi_out


def test_lost_rekey_response_is_retransmitted_and_answered_from_cache() -> None:
    pair, sa_a, sa_b = established()
    old = only_child(sa_a)
    pair.a.rekey_child(sa_a, old, 2.0)
    lost = {"n": 0}

    def drop_first_answer(name: str, d: Datagram) -> bool:
        if name == "b" and not lost["n"]:
            lost["n"] += 1
            return False
        return True

    pair.pump(2.0, drop_first_answer)
    assert len(sa_b.children) == 2 and only_child(sa_a) is old  # B has both, A waits
    assert esp_ok(pair, "a", 2.5) and esp_ok(pair, "b", 2.5)
    pair.a.handle_timer(3.0)  # FAST: first retransmission after 1 s
    step_with_traffic(pair, 3.0)
    assert pair.b.task_manager(sa_b).retransmits_answered == 1
    assert len(sa_a.children) == 1 and len(sa_b.children) == 1
    assert only_child(sa_a).spi_in == only_child(sa_b).spi_out != old.spi_in


def test_duplicated_rekey_request_creates_nothing_new() -> None:
    pair, sa_a, sa_b = established()
    pair.a.rekey_child(sa_a, only_child(sa_a), 2.0)
    (request,) = pair.a.datagrams_to_send(2.0)
    pair.b.receive_datagram(request.data, request.dst, request.src, 2.0)
    pair.b.receive_datagram(request.data, request.dst, request.src, 2.0)
    first, again = pair.b.datagrams_to_send(2.0)
    assert first.data == again.data and len(sa_b.children) == 2
    pair.a.receive_datagram(first.data, first.dst, first.src, 2.0)
    step_with_traffic(pair, 2.0)
    assert len(sa_a.children) == len(sa_b.children) == 1


@pytest.mark.parametrize("first", ["a", "b"])
def test_simultaneous_rekey_collision_keeps_exactly_one_pair(first: str) -> None:
    pair, sa_a, sa_b = established()
    old_a, old_b = only_child(sa_a), only_child(sa_b)
    managers = {"a": (pair.a, sa_a, old_a), "b": (pair.b, sa_b, old_b)}
    order = [first, "b" if first == "a" else "a"]
    for side in order:
        mgr, sa, old = managers[side]
        assert mgr.rekey_child(sa, old, 2.0)
    # Both requests are on the wire before either side has seen the other's.
    requests = {side: managers[side][0].datagrams_to_send(2.0) for side in order}
    for side, dst in (("a", pair.b), ("b", pair.a)):
        (req,) = requests[side]
        pair.wire.append((side, req))
        dst.receive_datagram(req.data, req.dst, req.src, 2.0)
        assert esp_ok(pair, "a", 2.0) and esp_ok(pair, "b", 2.0)
    step_with_traffic(pair, 2.0)
    # §2.8.1: one new pair survives on both sides, the old one and the redundant one
    # are gone; the survivor carries traffic both ways.
    new_a, new_b = only_child(sa_a), only_child(sa_b)
    assert (new_a.spi_in, new_a.spi_out) == (new_b.spi_out, new_b.spi_in)
    assert old_a.spi_in not in (new_a.spi_in, new_a.spi_out)
    for engine in (pair.engine_a, pair.engine_b):
        assert len(engine.dump_sa()) == 2 and len(engine.dump_policy()) == 3
    assert esp_ok(pair, "a", 3.0) and esp_ok(pair, "b", 3.0)
    # Three deletes in all: the old pair once (by the winner) and the redundant pair.
    deletes = [d for _, d in pair.wire if parse_message(d.data).header.exchange_type == 37]
    assert len(deletes) == 4  # two requests, two responses


def test_rekey_of_unknown_pair_is_child_sa_not_found() -> None:
    pair, sa_a, sa_b = established()
    old = only_child(sa_a)
    # B forgets the pair behind A's back (as after a hard expiry whose Delete was lost).
    del sa_b.children[only_child(sa_b).spi_in]
    pair.a.rekey_child(sa_a, old, 2.0)
    pair.pump(2.0)
    (failed,) = of(pair.events("a"), ChildSaFailed)
    assert failed.notify == NotifyType.CHILD_SA_NOT_FOUND
    assert only_child(sa_a) is old and len(pair.engine_a.dump_sa()) == 2  # nothing leaked


def test_rekey_of_a_pair_being_deleted_is_temporary_failure() -> None:
    pair, sa_a, sa_b = established()
    pair.b.delete_child(sa_b, only_child(sa_b), 2.0)
    pair.a.rekey_child(sa_a, only_child(sa_a), 2.0)
    (req_b,) = pair.b.datagrams_to_send(2.0)  # B's delete, not yet delivered
    (req_a,) = pair.a.datagrams_to_send(2.0)
    pair.b.receive_datagram(req_a.data, req_a.dst, req_a.src, 2.0)
    (answer,) = pair.b.datagrams_to_send(2.0)
    pair.a.receive_datagram(answer.data, answer.dst, answer.src, 2.0)
    assert of(pair.events("a"), ChildSaFailed)[0].notify == NotifyType.TEMPORARY_FAILURE
    pair.a.receive_datagram(req_b.data, req_b.dst, req_b.src, 2.0)
    pair.pump(2.0)
    assert sa_a.children == {} and sa_b.children == {}
    assert pair.engine_a.dump_sa() == [] and pair.engine_b.dump_sa() == []


def test_rekey_twice_is_refused_while_one_is_under_way() -> None:
    pair, sa_a, _ = established()
    old = only_child(sa_a)
    assert pair.a.rekey_child(sa_a, old, 2.0)
    assert not pair.a.rekey_child(sa_a, old, 2.0)
    tm = pair.a.task_manager(sa_a)
    assert sum(isinstance(t, ChildRekey) for t in (*tm.active, *tm.queued)) == 1


# -- IKE SA rekey -------------------------------------------------------------------------


def _ike_keys(sa: IkeSa) -> bytes:
    assert sa.keys is not None
    return sa.keys.sk_d + sa.keys.sk_ei + sa.keys.sk_er


@pytest.mark.parametrize("ike", ["aes128gcm16-prfsha256-x25519", "aes256-sha384-ecp256"])
def test_ike_rekey_moves_children_and_deletes_the_old_sa(ike: str) -> None:
    pair = tunnel_pair(ike=ike)
    old_a = pair.a.initiate("gw", 0.0)
    pair.pump(0.0)
    (old_b,) = pair.b.ike_sas
    children_a = dict(old_a.children)
    assert pair.a.rekey_ike(old_a, 2.0)
    step_with_traffic(pair, 2.0)
    # CREATE_CHILD_SA request/response on the old SA, then its Delete (INFORMATIONAL).
    headers = [parse_message(d.data).header for _, d in pair.wire[-4:]]
    assert [h.exchange_type for h in headers] == [ExchangeType.CREATE_CHILD_SA] * 2 + [
        ExchangeType.INFORMATIONAL
    ] * 2
    assert all(h.spi_i == old_a.spi_i for h in headers)
    assert old_a.state is IkeSaState.DESTROYED and old_b.state is IkeSaState.DESTROYED
    (new_a,) = pair.a.ike_sas
    (new_b,) = pair.b.ike_sas
    assert (new_a.spi_i, new_a.spi_r) == (new_b.spi_i, new_b.spi_r)
    assert new_a.spi_i not in (old_a.spi_i, old_a.spi_r)
    assert new_a.initiator and not new_b.initiator and new_a.mid_out == 0
    assert _ike_keys(new_a) == _ike_keys(new_b) != _ike_keys(old_a)
    assert new_a.children == children_a and len(new_b.children) == 1
    assert len(pair.engine_a.dump_sa()) == 2  # the CHILD SAs survived the old IKE SA
    # The new IKE SA works: a CHILD rekey and a DPD over it.
    assert pair.a.rekey_child(new_a, only_child(new_a), 3.0)
    step_with_traffic(pair, 3.0)
    assert only_child(new_a).spi_in not in children_a
    pair.a.dpd(new_a, 4.0)
    assert pair.pump(4.0) == 2 and new_a.last_heard == 4.0


def test_ike_rekey_by_the_responder_makes_it_the_new_initiator() -> None:
    pair, sa_a, sa_b = established()
    assert pair.b.rekey_ike(sa_b, 2.0)
    step_with_traffic(pair, 2.0)
    (new_a,) = pair.a.ike_sas
    (new_b,) = pair.b.ike_sas
    assert new_b.initiator and not new_a.initiator  # §2.18: the rekey's initiator
    assert sa_a.state is IkeSaState.DESTROYED and len(new_a.children) == 1
    pair.b.delete_ike(new_b, 3.0)
    pair.pump(3.0)
    assert pair.a.ike_sas == [] and pair.engine_a.dump_sa() == []


def test_ike_rekey_keys_follow_rfc7296_2_18(monkeypatch: pytest.MonkeyPatch) -> None:
    from pyipsec.crypto.prf import prf_by_id
    from pyipsec.ike.v2 import keymat
    from pyipsec.ike.v2.payloads import KePayload, NoncePayload, SaPayload
    from pyipsec.ike.v2.tasks import ike_rekey

    pair, sa_a, sa_b = established()
    assert sa_a.keys is not None and sa_a.prf is not None
    sk_d_old, old_prf = sa_a.keys.sk_d, sa_a.prf
    secrets: list[bytes] = []  # g^ir as each side computed it (it is not on the wire)
    original = ike_rekey.derive

    def spy(old: IkeSa, new: IkeSa, g_ir: bytes, ni: bytes, nr: bytes) -> None:
        secrets.append(g_ir)
        original(old, new, g_ir, ni, nr)

    monkeypatch.setattr(ike_rekey, "derive", spy)
    pair.a.rekey_ike(sa_a, 2.0)
    (req,) = pair.a.datagrams_to_send(2.0)
    pair.b.receive_datagram(req.data, req.dst, req.src, 2.0)
    (resp,) = pair.b.datagrams_to_send(2.0)
    request = sa_b.unprotect(parse_message(req.data))
    response = sa_a.unprotect(parse_message(resp.data))
    pair.a.receive_datagram(resp.data, resp.dst, resp.src, 2.0)
    new_a = next(s for s in pair.a.ike_sas if s is not sa_a)
    ni = next(p for p in request if isinstance(p, NoncePayload)).data
    nr = next(p for p in response if isinstance(p, NoncePayload)).data
    spi_i = next(p for p in request if isinstance(p, SaPayload)).proposals[0].spi
    spi_r = next(p for p in response if isinstance(p, SaPayload)).proposals[0].spi
    ke_i = next(p for p in request if isinstance(p, KePayload))
    ke_r = next(p for p in response if isinstance(p, KePayload))
    assert ke_i.group == ke_r.group == 31 and ke_i.data != ke_r.data
    assert len(secrets) == 2 and secrets[0] == secrets[1]
    assert (new_a.spi_i, new_a.spi_r) == (spi_i, spi_r)
    # §2.18: SKEYSEED = prf(SK_d (old), g^ir (new) | Ni | Nr), then §2.14's prf+ over
    # Ni | Nr | SPIi | SPIr (aes128gcm16: 20-octet SK_e with salt, no SK_a).
    seed = old_prf(sk_d_old, secrets[0] + ni + nr)
    assert seed == keymat.rekey_skeyseed(old_prf, sk_d_old, secrets[0], ni, nr)
    want = keymat.derive_ike_sa_keys(prf_by_id(5), seed, ni, nr, spi_i, spi_r, 20, 0)
    assert new_a.keys == want
    assert new_a.keys.sk_d != sk_d_old


@pytest.mark.parametrize("first", ["a", "b"])
def test_simultaneous_ike_rekey_collision_keeps_one_ike_sa(first: str) -> None:
    pair, sa_a, sa_b = established()
    order = [first, "b" if first == "a" else "a"]
    mgrs = {"a": (pair.a, sa_a), "b": (pair.b, sa_b)}
    for side in order:
        mgr, sa = mgrs[side]
        assert mgr.rekey_ike(sa, 2.0)
    requests = {side: mgrs[side][0].datagrams_to_send(2.0) for side in order}
    for side, dst in (("a", pair.b), ("b", pair.a)):
        (req,) = requests[side]
        dst.receive_datagram(req.data, req.dst, req.src, 2.0)
    step_with_traffic(pair, 2.0)
    # §2.8.2: the old IKE SA and the redundant new one are gone; one pair of IKE SAs is
    # left, holding the CHILD SA.
    (new_a,) = pair.a.ike_sas
    (new_b,) = pair.b.ike_sas
    assert (new_a.spi_i, new_a.spi_r) == (new_b.spi_i, new_b.spi_r)
    assert len(new_a.children) == 1 and len(new_b.children) == 1
    assert len(pair.engine_a.dump_sa()) == 2 and len(pair.engine_b.dump_sa()) == 2
    pair.a.dpd(new_a, 3.0)
    assert pair.pump(3.0) == 2 and new_a.last_heard == 3.0


def test_ike_rekey_refused_while_a_child_exchange_is_in_flight() -> None:
    pair, sa_a, sa_b = established()
    pair.b.rekey_child(sa_b, only_child(sa_b), 2.0)  # B's CHILD rekey is in flight
    pair.a.rekey_ike(sa_a, 2.0)
    (req_b,) = pair.b.datagrams_to_send(2.0)
    (req_a,) = pair.a.datagrams_to_send(2.0)
    pair.b.receive_datagram(req_a.data, req_a.dst, req_a.src, 2.0)
    (answer,) = pair.b.datagrams_to_send(2.0)
    payloads = sa_a.unprotect(parse_message(answer.data))
    assert [p.notify_type for p in payloads if isinstance(p, NotifyPayload)] == [
        NotifyType.TEMPORARY_FAILURE
    ]
    pair.a.receive_datagram(answer.data, answer.dst, answer.src, 2.0)
    pair.a.receive_datagram(req_b.data, req_b.dst, req_b.src, 2.0)
    pair.pump(2.0)
    assert pair.a.ike_sas == [sa_a] and sa_a.state is IkeSaState.ESTABLISHED
    assert esp_ok(pair, "a", 3.0) and esp_ok(pair, "b", 3.0)

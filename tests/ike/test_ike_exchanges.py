"""Two IKEv2 endpoints, each over its own Engine, wired in memory through every exchange.

Each test names the messages it models (RFC 7296 §1.2-§1.4). ESP packets are then sent
through both engines with the SAs IKE installed, which proves that keys and SPIs agree.
"""

from __future__ import annotations

import ipaddress

import pytest
from ike_fixtures import GW_A, GW_B, HOST_A, HOST_B, NET_A, NET_B, Pair, child, conn
from scapy.layers.inet import IP, UDP

from pyipsec.engine.actions import Deliver, Transmit
from pyipsec.ike.traffic_selectors import TrafficSelector
from pyipsec.ike.v2.constants import ExchangeType, NotifyType
from pyipsec.ike.v2.events import (
    ChildSaDeleted,
    ChildSaFailed,
    ChildSaInstalled,
    IkeSaDeleted,
    IkeSaEstablished,
)
from pyipsec.ike.v2.ike_sa import Datagram, IkeSaState
from pyipsec.ike.v2.message import parse_message


def packed(addr: str) -> bytes:
    return ipaddress.ip_address(addr).packed


def send_esp(pair: Pair, src_side: str, src: str, dst: str, now: float = 1.0) -> bytes:
    """One UDP packet through the sender's engine and the receiver's; the delivered bytes."""
    inner = bytes(IP(src=src, dst=dst) / UDP(sport=4000, dport=53) / b"through the tunnel")
    tx_engine, rx_engine = (
        (pair.engine_a, pair.engine_b) if src_side == "a" else (pair.engine_b, pair.engine_a)
    )
    action = tx_engine.outbound(inner, now)
    assert isinstance(action, Transmit), action
    got = rx_engine.inbound_esp(
        action.data, packed(action.src), packed(action.dst), action.encap, now
    )
    assert isinstance(got, Deliver), got
    # Addresses and payload arrive intact (transport mode rebuilds the IP ID/checksum).
    assert got.packet[12:] == inner[12:]
    return got.packet


def tunnel_pair(
    ike: str = "aes128gcm16-prfsha256-x25519", esp: str = "aes128gcm16", **kw: object
) -> Pair:
    a = conn(GW_A, GW_B, ike, children=(child(NET_A, NET_B, esp),), **kw)
    b = conn(GW_B, GW_A, ike, children=(child(NET_B, NET_A, esp),), **kw)
    return Pair(a, b)


def of(events: list[object], cls: type) -> list:  # type: ignore[type-arg]
    return [e for e in events if isinstance(e, cls)]


def exchange_of(d: Datagram) -> int:
    return parse_message(d.data).header.exchange_type


@pytest.mark.parametrize(
    ("ike", "esp"),
    [("aes128gcm16-prfsha256-x25519", "aes128gcm16"), ("aes256-sha256-modp2048", "aes256-sha256")],
)
def test_ike_sa_and_first_child_then_esp_both_ways(ike: str, esp: str) -> None:
    # IKE_SA_INIT request/response, IKE_AUTH request/response: four messages.
    pair = tunnel_pair(ike, esp)
    sa_a = pair.a.initiate("gw", 0.0)
    pair.pump(0.0)
    assert [n for n, _ in pair.wire] == ["a", "b", "a", "b"]
    assert [exchange_of(d) for _, d in pair.wire] == [ExchangeType.IKE_SA_INIT] * 2 + [
        ExchangeType.IKE_AUTH
    ] * 2
    (sa_b,) = pair.b.ike_sas
    assert sa_a.state is IkeSaState.ESTABLISHED and sa_b.state is IkeSaState.ESTABLISHED
    ev_a, ev_b = pair.events("a"), pair.events("b")
    (est_a,) = of(ev_a, IkeSaEstablished)
    (est_b,) = of(ev_b, IkeSaEstablished)
    assert est_a.remote_id == GW_B and est_b.remote_id == GW_A and est_a.initiator
    (ch_a,) = of(ev_a, ChildSaInstalled)
    (ch_b,) = of(ev_b, ChildSaInstalled)
    assert (ch_a.spi_in, ch_a.spi_out) == (ch_b.spi_out, ch_b.spi_in)
    assert ch_a.proposal == ch_b.proposal == esp
    assert ch_a.local_ts == (TrafficSelector.from_network(NET_A),)
    assert ch_b.local_ts == (TrafficSelector.from_network(NET_B),)
    # ESP with the installed SAs, both directions.
    send_esp(pair, "a", HOST_A, HOST_B)
    send_esp(pair, "b", HOST_B, HOST_A)
    # in/out/fwd on both sides, two SAs each.
    assert len(pair.engine_a.dump_policy()) == 3 and len(pair.engine_b.dump_policy()) == 3
    assert len(pair.engine_a.dump_sa()) == 2 and len(pair.engine_b.dump_sa()) == 2


def test_wrong_psk_is_authentication_failed_and_installs_nothing() -> None:
    a = conn(GW_A, GW_B, children=(child(NET_A, NET_B),), psk=b"one secret")
    b = conn(GW_B, GW_A, children=(child(NET_B, NET_A),), psk=b"another secret")
    pair = Pair(a, b)
    sa_a = pair.a.initiate("gw", 0.0)
    pair.pump(0.0)
    assert sa_a.state is IkeSaState.DESTROYED
    assert pair.a.ike_sas == [] and pair.b.ike_sas == []
    answer = pair.wire[-1][1]
    assert exchange_of(answer) == ExchangeType.IKE_AUTH and answer.src == (GW_B, 500)
    (gone_a,) = of(pair.events("a"), IkeSaDeleted)
    (gone_b,) = of(pair.events("b"), IkeSaDeleted)
    assert gone_a.reason == gone_b.reason == "auth-failed"
    assert gone_a.notify == gone_b.notify == NotifyType.AUTHENTICATION_FAILED
    for engine in (pair.engine_a, pair.engine_b):
        assert engine.dump_sa() == [] and engine.dump_policy() == []


def test_remote_id_mismatch_fails_authentication() -> None:
    a = conn(GW_A, GW_B, children=(child(NET_A, NET_B),), local_id="moon.example.org")
    b = conn(GW_B, GW_A, children=(child(NET_B, NET_A),), remote_id="sun.example.org")
    pair = Pair(a, b)
    sa_a = pair.a.initiate("gw", 0.0)
    pair.pump(0.0)
    assert sa_a.state is IkeSaState.DESTROYED
    assert of(pair.events("b"), IkeSaDeleted)[0].reason == "auth-failed"


def test_fqdn_identities_are_exchanged() -> None:
    a = conn(
        GW_A,
        GW_B,
        children=(child(NET_A, NET_B),),
        local_id="moon.example.org",
        remote_id="sun.example.org",
    )
    b = conn(
        GW_B,
        GW_A,
        children=(child(NET_B, NET_A),),
        local_id="@sun.example.org",
        remote_id="moon.example.org",
    )
    pair = Pair(a, b)
    pair.a.initiate("gw", 0.0)
    pair.pump(0.0)
    assert of(pair.events("a"), IkeSaEstablished)[0].remote_id == "sun.example.org"
    assert of(pair.events("b"), IkeSaEstablished)[0].remote_id == "moon.example.org"


def test_lost_ike_auth_request_is_retransmitted_with_backoff() -> None:
    pair = tunnel_pair()
    sa_a = pair.a.initiate("gw", 0.0)
    lost: list[bytes] = []

    def drop_auth(name: str, d: Datagram) -> bool:
        if exchange_of(d) == ExchangeType.IKE_AUTH:
            lost.append(d.data)
            return False
        return True

    pair.pump(0.0, drop_auth)
    assert len(lost) == 1 and pair.a.get_timer() == 1.0  # FAST: 1 s, then x2
    pair.a.handle_timer(0.999)
    assert pair.a.datagrams_to_send(0.999) == []
    sent_at = []
    for t in (1.0, 3.0, 7.0):
        assert pair.a.get_timer() == t
        pair.a.handle_timer(t)
        (again,) = pair.a.datagrams_to_send(t)
        assert again.data == lost[0]  # the same bytes, not a new message
        sent_at.append(t)
    assert sent_at == [1.0, 3.0, 7.0]
    # The next retransmission would be the fourth: the FAST settings allow three.
    assert pair.a.get_timer() == 15.0
    pair.a.handle_timer(15.0)
    assert sa_a.state is IkeSaState.DESTROYED
    assert pair.a.ike_sas == [] and pair.engine_a.dump_sa() == []
    (gone,) = of(pair.events("a"), IkeSaDeleted)
    assert gone.reason == "timeout"


def test_retransmission_completes_after_one_loss() -> None:
    pair = tunnel_pair()
    sa_a = pair.a.initiate("gw", 0.0)
    drops = {"left": 1}

    def drop_once(name: str, d: Datagram) -> bool:
        if exchange_of(d) == ExchangeType.IKE_AUTH and drops["left"]:
            drops["left"] -= 1
            return False
        return True

    pair.pump(0.0, drop_once)
    assert sa_a.state is IkeSaState.CONNECTING
    pair.a.handle_timer(1.0)
    pair.pump(1.0)
    assert sa_a.state is IkeSaState.ESTABLISHED
    send_esp(pair, "a", HOST_A, HOST_B)


def test_lost_response_is_answered_from_cache_without_new_state() -> None:
    pair = tunnel_pair()
    sa_a = pair.a.initiate("gw", 0.0)
    drops = {"left": 1}

    def drop_auth_response(name: str, d: Datagram) -> bool:
        if name == "b" and exchange_of(d) == ExchangeType.IKE_AUTH and drops["left"]:
            drops["left"] -= 1
            return False
        return True

    pair.pump(0.0, drop_auth_response)
    (sa_b,) = pair.b.ike_sas
    assert sa_b.state is IkeSaState.ESTABLISHED and sa_a.state is IkeSaState.CONNECTING
    first_answer = pair.wire[-1][1].data
    events_b = pair.events("b")
    sas_b = len(pair.engine_b.dump_sa())
    pair.a.handle_timer(1.0)
    pair.pump(1.0)
    assert pair.wire[-1][1].data == first_answer  # the cached response, byte for byte
    assert sa_a.state is IkeSaState.ESTABLISHED
    assert pair.events("b") == [] and len(of(events_b, ChildSaInstalled)) == 1
    assert len(pair.engine_b.dump_sa()) == sas_b == 2
    assert pair.b.task_manager(sa_b).retransmits_answered == 1
    send_esp(pair, "b", HOST_B, HOST_A)


def test_duplicated_request_changes_nothing() -> None:
    pair = tunnel_pair()
    pair.a.initiate("gw", 0.0)
    pair.pump(0.0)
    (sa_b,) = pair.b.ike_sas
    auth_request = pair.wire[2][1]
    before = (sa_b.mid_in, dict(sa_b.children), len(pair.engine_b.dump_sa()))
    pair.events("b")
    pair.b.receive_datagram(auth_request.data, auth_request.dst, auth_request.src, 2.0)
    (again,) = pair.b.datagrams_to_send(2.0)
    assert again.data == pair.wire[3][1].data
    assert (sa_b.mid_in, dict(sa_b.children), len(pair.engine_b.dump_sa())) == before
    assert pair.events("b") == []
    # A stale IKE_SA_INIT (two exchanges back) is neither answered nor a new IKE SA.
    init = pair.wire[0][1]
    pair.b.receive_datagram(init.data, init.dst, init.src, 2.0)
    assert pair.b.datagrams_to_send(2.0) == [] and len(pair.b.ike_sas) == 1


def test_corrupted_request_is_dropped_silently() -> None:
    pair = tunnel_pair()
    sa_a = pair.a.initiate("gw", 0.0)

    def corrupt(name: str, d: Datagram) -> bool:
        if name == "a" and exchange_of(d) == ExchangeType.IKE_AUTH and not corrupt.done:  # type: ignore[attr-defined]
            corrupt.done = True  # type: ignore[attr-defined]
            bad = d.data[:-1] + bytes([d.data[-1] ^ 0x01])
            pair.b.receive_datagram(bad, d.dst, d.src, 0.0)
            return False
        return True

    corrupt.done = False  # type: ignore[attr-defined]
    pair.pump(0.0, corrupt)
    (sa_b,) = pair.b.ike_sas
    assert sa_b.state is IkeSaState.CONNECTING and sa_b.mid_in == 1
    pair.a.handle_timer(1.0)
    pair.pump(1.0)
    assert sa_a.state is IkeSaState.ESTABLISHED and sa_b.state is IkeSaState.ESTABLISHED


def test_esp_no_proposal_chosen_keeps_ike_sa() -> None:
    a = conn(GW_A, GW_B, children=(child(NET_A, NET_B, "aes128gcm16"),))
    b = conn(GW_B, GW_A, children=(child(NET_B, NET_A, "aes256-sha512"),))
    pair = Pair(a, b)
    sa_a = pair.a.initiate("gw", 0.0)
    pair.pump(0.0)
    assert sa_a.state is IkeSaState.ESTABLISHED
    assert of(pair.events("a"), ChildSaFailed)[0].notify == NotifyType.NO_PROPOSAL_CHOSEN
    assert of(pair.events("b"), ChildSaFailed)[0].notify == NotifyType.NO_PROPOSAL_CHOSEN
    assert pair.engine_a.dump_sa() == [] and pair.engine_b.dump_sa() == []


def test_responder_picks_its_own_preference() -> None:
    a = conn(GW_A, GW_B, children=(child(NET_A, NET_B, "aes128gcm16,aes256-sha256"),))
    b = conn(GW_B, GW_A, children=(child(NET_B, NET_A, "aes256-sha256,aes128gcm16"),))
    pair = Pair(a, b)
    pair.a.initiate("gw", 0.0)
    pair.pump(0.0)
    assert of(pair.events("a"), ChildSaInstalled)[0].proposal == "aes256-sha256"


def test_traffic_selectors_are_narrowed() -> None:
    a = conn(GW_A, GW_B, children=(child(NET_A, NET_B),))
    b = conn(GW_B, GW_A, children=(child("203.0.113.0/25", "198.51.100.0/26"),))
    pair = Pair(a, b)
    pair.a.initiate("gw", 0.0)
    pair.pump(0.0)
    (ch,) = of(pair.events("a"), ChildSaInstalled)
    assert ch.local_ts == (TrafficSelector.from_network("198.51.100.0/26"),)
    assert ch.remote_ts == (TrafficSelector.from_network("203.0.113.0/25"),)
    send_esp(pair, "a", "198.51.100.9", "203.0.113.9")
    # Outside the narrowed selectors there is no policy: the packet goes in the clear.
    inner = bytes(IP(src="198.51.100.99", dst=HOST_B) / UDP(sport=1, dport=2))
    assert not isinstance(pair.engine_a.outbound(inner, 1.0), Transmit)


def test_disjoint_traffic_selectors_are_ts_unacceptable() -> None:
    a = conn(GW_A, GW_B, children=(child(NET_A, NET_B),))
    b = conn(GW_B, GW_A, children=(child("203.0.113.0/24", "192.0.2.128/25"),))
    pair = Pair(a, b)
    sa_a = pair.a.initiate("gw", 0.0)
    pair.pump(0.0)
    assert sa_a.state is IkeSaState.ESTABLISHED
    assert of(pair.events("a"), ChildSaFailed)[0].notify == NotifyType.TS_UNACCEPTABLE
    assert pair.engine_a.dump_sa() == [] and pair.engine_b.dump_policy() == []


def test_transport_mode_when_both_want_it() -> None:
    a = conn(GW_A, GW_B, children=(child(GW_A, GW_B, mode="transport"),))
    b = conn(GW_B, GW_A, children=(child(GW_B, GW_A, mode="transport"),))
    pair = Pair(a, b)
    pair.a.initiate("gw", 0.0)
    pair.pump(0.0)
    assert of(pair.events("a"), ChildSaInstalled)[0].mode == "transport"
    assert of(pair.events("b"), ChildSaInstalled)[0].mode == "transport"
    send_esp(pair, "a", GW_A, GW_B)


def test_second_child_with_pfs_in_create_child_sa() -> None:
    a = conn(
        GW_A,
        GW_B,
        children=(
            child(NET_A, NET_B),
            child("198.51.100.0/24[udp]", "203.0.113.0/24[udp/53]", "aes256gcm16-ecp256").__class__(
                name="dns",
                esp_proposals=child(NET_A, NET_B, "aes256gcm16-ecp256").esp_proposals,
                local_ts=child("198.51.100.0/24[udp]", NET_B).local_ts,
                remote_ts=child(NET_A, "203.0.113.0/24[udp/53]").remote_ts,
            ),
        ),
    )
    b = conn(
        GW_B,
        GW_A,
        children=(child("203.0.113.0/24[udp/53]", "198.51.100.0/24[udp]", "aes256gcm16-ecp256"),),
    )
    pair = Pair(a, b)
    sa_a = pair.a.initiate("gw", 0.0, child="dns")
    pair.pump(0.0)
    # IKE_AUTH has no KE: the DH group is left out and the CHILD SA still agreed.
    first = of(pair.events("a"), ChildSaInstalled)
    assert [c.proposal for c in first] == ["aes256gcm16"]
    pair.a.create_child(sa_a, "dns", 1.0)
    pair.pump(1.0)
    assert exchange_of(pair.wire[-1][1]) == ExchangeType.CREATE_CHILD_SA
    (second,) = of(pair.events("a"), ChildSaInstalled)
    assert second.proposal == "aes256gcm16-ecp256" and second.name == "dns"
    assert len(sa_a.children) == 2 and len(pair.b.ike_sas[0].children) == 2
    send_esp(pair, "a", HOST_A, HOST_B)


def test_delete_child_then_ike_sa() -> None:
    pair = tunnel_pair()
    sa_a = pair.a.initiate("gw", 0.0)
    pair.pump(0.0)
    (sa_b,) = pair.b.ike_sas
    pair.events("a"), pair.events("b")
    (ch,) = sa_a.children.values()
    pair.a.delete_child(sa_a, ch, 1.0)
    pair.pump(1.0)
    assert sa_a.children == {} and sa_b.children == {}
    assert of(pair.events("a"), ChildSaDeleted)[0].reason == "deleted"
    assert of(pair.events("b"), ChildSaDeleted)[0].reason == "peer-deleted"
    for engine in (pair.engine_a, pair.engine_b):
        assert engine.dump_sa() == [] and engine.dump_policy() == []
    pair.a.delete_ike(sa_a, 2.0)
    pair.pump(2.0)
    assert sa_a.state is IkeSaState.DESTROYED and sa_b.state is IkeSaState.DESTROYED
    assert pair.a.ike_sas == [] and pair.b.ike_sas == []
    assert of(pair.events("a"), IkeSaDeleted)[0].reason == "deleted"
    assert of(pair.events("b"), IkeSaDeleted)[0].reason == "peer-deleted"


def test_ike_delete_takes_children_along() -> None:
    pair = tunnel_pair()
    sa_a = pair.a.initiate("gw", 0.0)
    pair.pump(0.0)
    pair.b.delete_ike(pair.b.ike_sas[0], 1.0)  # the responder deletes: I flag clear
    pair.pump(1.0)
    assert sa_a.state is IkeSaState.DESTROYED
    assert of(pair.events("a"), ChildSaDeleted)[0].reason == "ike-deleted"
    for engine in (pair.engine_a, pair.engine_b):
        assert engine.dump_sa() == [] and engine.dump_policy() == []


def test_dpd_answered_and_dead_peer_detected() -> None:
    pair = tunnel_pair()
    sa_a = pair.a.initiate("gw", 0.0)
    pair.pump(0.0)
    pair.a.dpd(sa_a, 5.0)
    assert pair.pump(5.0) == 2 and sa_a.last_heard == 5.0
    assert sa_a.mid_out == 3  # IKE_SA_INIT, IKE_AUTH, INFORMATIONAL
    pair.a.dpd(sa_a, 10.0)
    pair.pump(10.0, lambda name, d: False)  # the peer is gone
    for t in (11.0, 13.0, 17.0, 25.0):
        pair.a.handle_timer(t)
    assert sa_a.state is IkeSaState.DESTROYED
    assert of(pair.events("a"), IkeSaDeleted)[0].reason == "timeout"
    assert pair.engine_a.dump_sa() == []


def test_cookie_then_full_establishment() -> None:
    from ike_fixtures import FAST

    from pyipsec.ike.v2.manager import ManagerSettings

    a = conn(GW_A, GW_B, children=(child(NET_A, NET_B),))
    b = conn(GW_B, GW_A, children=(child(NET_B, NET_A),))
    pair = Pair(a, b, settings_b=ManagerSettings(retransmit=FAST, cookie_threshold=0))
    sa_a = pair.a.initiate("gw", 0.0)
    pair.pump(0.0)
    assert sa_a.state is IkeSaState.ESTABLISHED and len(pair.wire) == 6
    send_esp(pair, "a", HOST_A, HOST_B)


def test_trap_policy_acquire_negotiates_and_releases_the_held_packet() -> None:
    from pyipsec.engine.actions import Hold
    from pyipsec.engine.events import Acquire

    pair = tunnel_pair()
    reqid = pair.a.install_trap("gw", "net")
    inner = bytes(IP(src=HOST_A, dst=HOST_B) / UDP(sport=4000, dport=53) / b"first packet")
    assert isinstance(pair.engine_a.outbound(inner, 0.0), Hold)
    acquire = pair.engine_a.next_event()
    while acquire is not None and not isinstance(acquire, Acquire):
        acquire = pair.engine_a.next_event()
    assert isinstance(acquire, Acquire) and acquire.template.reqid == reqid
    pair.a.handle_engine_event(acquire, 0.0)
    pair.a.handle_engine_event(acquire, 0.0)  # a repeated ACQUIRE starts nothing new
    pair.pump(0.0)
    assert len(pair.a.ike_sas) == 1
    (ch,) = of(pair.events("a"), ChildSaInstalled)
    assert ch.reqid == reqid
    # §2.9: the packet's selectors went first in TSi/TSr.
    auth = parse_message(pair.wire[2][1].data)
    assert auth.header.exchange_type == ExchangeType.IKE_AUTH
    released = pair.engine_a.next_released()
    assert isinstance(released, Transmit)
    got = pair.engine_b.inbound_esp(
        released.data, packed(released.src), packed(released.dst), None, 1.0
    )
    assert isinstance(got, Deliver) and got.packet == inner


def test_expire_events_replace_or_delete_the_child() -> None:
    from pyipsec.engine.events import Expire, SaId

    pair = tunnel_pair()
    sa_a = pair.a.initiate("gw", 0.0)
    pair.pump(0.0)
    (old,) = sa_a.children.values()
    soft = Expire(
        SaId(ipaddress.ip_address(GW_A), old.spi_in),
        ipaddress.ip_address(GW_B),
        old.reqid,
        False,
        "add_time",
    )
    pair.a.handle_engine_event(soft, 5.0)
    pair.pump(5.0)
    (new,) = sa_a.children.values()
    assert new.spi_in != old.spi_in and new.reqid == old.reqid
    assert len(pair.b.ike_sas[0].children) == 1
    send_esp(pair, "a", HOST_A, HOST_B, 6.0)
    send_esp(pair, "b", HOST_B, HOST_A, 6.0)
    hard = Expire(
        SaId(ipaddress.ip_address(GW_A), new.spi_in),
        ipaddress.ip_address(GW_B),
        new.reqid,
        True,
        "add_time",
    )
    pair.a.handle_engine_event(hard, 9.0)
    pair.pump(9.0)
    assert sa_a.children == {} and pair.b.ike_sas[0].children == {}
    status = pair.a.status()
    assert status[0]["state"] == "established" and status[0]["children"] == []


def test_status_view_names_children_without_keys() -> None:
    pair = tunnel_pair()
    pair.a.initiate("gw", 0.0)
    pair.pump(0.0)
    (view,) = pair.b.status()
    (ch,) = view["children"]  # type: ignore[misc]
    assert ch["proposal"] == "aes128gcm16" and ch["local_ts"] == [NET_B]
    assert view["proposal"] == "aes128gcm16-prfsha256-x25519" and view["remote_id"] == GW_A
    text = repr(view)
    sa = pair.b.ike_sas[0]
    assert sa.keys is not None and sa.keys.sk_d.hex() not in text

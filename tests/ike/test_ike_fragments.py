"""IKEv2 message fragmentation (RFC 7383) between two in-memory endpoints.

A: HDR, SKF{1/n, IDi, AUTH, ...}  HDR, SKF{2/n}  ...  -->
                <--  B: HDR, SKF{1/m, IDr, AUTH, ...}  ...
"""

from __future__ import annotations

import ipaddress

import pytest
from ike_fixtures import GW_A, GW_B, HOST_A, HOST_B, NET_A, NET_B, Pair, child, conn
from scapy.layers.inet import IP, UDP

from pyipsec.engine.actions import Deliver, Transmit
from pyipsec.errors import ConfigError
from pyipsec.ike.v2 import fragments
from pyipsec.ike.v2.constants import ExchangeType, IntegId
from pyipsec.ike.v2.ike_sa import Datagram, IkeSaState
from pyipsec.ike.v2.message import parse_message
from pyipsec.ike.v2.payloads import EncryptedFragmentPayload, NoncePayload
from pyipsec.ike.v2.sk import IntegrityError, SkCipher


def tunnel_pair(ike: str = "aes128gcm16-prfsha256-x25519", size: int = 128) -> Pair:
    a = conn(GW_A, GW_B, ike, children=(child(NET_A, NET_B),))
    b = conn(GW_B, GW_A, ike, children=(child(NET_B, NET_A),))
    pair = Pair(a, b)
    pair.a.ctx.fragment_size = pair.b.ctx.fragment_size = size
    return pair


def skf(d: Datagram) -> EncryptedFragmentPayload | None:
    enc = parse_message(d.data).encrypted
    return enc if isinstance(enc, EncryptedFragmentPayload) else None


def esp_ok(pair: Pair) -> bool:
    inner = bytes(IP(src=HOST_A, dst=HOST_B) / UDP(sport=1, dport=2) / b"fragmented IKE")
    action = pair.engine_a.outbound(inner, 1.0)
    assert isinstance(action, Transmit)
    src, dst = (ipaddress.ip_address(a).packed for a in (action.src, action.dst))
    return isinstance(pair.engine_b.inbound_esp(action.data, src, dst, None, 1.0), Deliver)


@pytest.mark.parametrize("ike", ["aes128gcm16-prfsha256-x25519", "aes256-sha256-modp2048"])
def test_ike_auth_fragmented_both_ways_and_established(ike: str) -> None:
    pair = tunnel_pair(ike)
    sa_a = pair.a.initiate("gw", 0.0)
    pair.pump(0.0)
    assert sa_a.state is IkeSaState.ESTABLISHED and pair.b.ike_sas[0].children
    auth = [(n, d) for n, d in pair.wire if skf(d) is not None]
    senders = {n for n, _ in auth}
    assert senders == {"a", "b"} and len(auth) > 2
    for _, d in auth:
        assert len(d.data) <= 128
        assert parse_message(d.data).header.exchange_type == ExchangeType.IKE_AUTH
    first = [skf(d) for n, d in auth if n == "a"]
    assert [f.fragment_number for f in first if f] == list(range(1, len(first) + 1))
    assert all(f is not None and f.total_fragments == len(first) for f in first)
    assert esp_ok(pair)


def test_small_messages_and_ike_sa_init_are_never_fragmented() -> None:
    pair = tunnel_pair(size=1280)
    pair.a.initiate("gw", 0.0)
    pair.pump(0.0)
    assert all(skf(d) is None for _, d in pair.wire)
    pair = tunnel_pair(size=100)  # smaller than IKE_SA_INIT itself: still one datagram
    sa_a = pair.a.initiate("gw", 0.0)
    (init,) = pair.a.datagrams_to_send(0.0)
    assert len(init.data) > 100 and skf(init) is None
    pair.b.receive_datagram(init.data, init.dst, init.src, 0.0)
    pair.pump(0.0)
    assert sa_a.state is IkeSaState.ESTABLISHED


def test_no_fragments_when_the_peer_did_not_announce_support() -> None:
    pair = tunnel_pair()
    sa_a = pair.a.initiate("gw", 0.0)
    (init,) = pair.a.datagrams_to_send(0.0)
    pair.b.receive_datagram(init.data, init.dst, init.src, 0.0)
    (answer,) = pair.b.datagrams_to_send(0.0)
    pair.a.receive_datagram(answer.data, answer.dst, answer.src, 0.0)
    assert sa_a.peer_fragmentation
    pair.a.datagrams_to_send(0.0)  # the fragmented IKE_AUTH, dropped here
    sa_a.peer_fragmentation = False  # as if B had not sent IKEV2_FRAGMENTATION_SUPPORTED
    header = sa_a.header(ExchangeType.INFORMATIONAL, 7, response=False)
    big = [NoncePayload(bytes(200)), NoncePayload(bytes(200))]
    (whole,) = fragments.protect(sa_a, header, big)
    assert len(whole) > 400 and skf(Datagram(whole, ("", 0), ("", 0))) is None
    sa_a.peer_fragmentation = True
    assert len(fragments.protect(sa_a, header, big)) > 1


def test_lost_fragment_retransmits_all_and_a_retransmitted_request_gets_the_cached_answer() -> None:
    pair = tunnel_pair()
    sa_a = pair.a.initiate("gw", 0.0)
    state = {"dropped": 0}

    def drop_second_fragment(name: str, d: Datagram) -> bool:
        f = skf(d)
        if name == "a" and f is not None and f.fragment_number == 2 and not state["dropped"]:
            state["dropped"] = 1
            return False
        return True

    pair.pump(0.0, drop_second_fragment)
    assert sa_a.state is IkeSaState.CONNECTING and state["dropped"]
    first_round = [d.data for n, d in pair.wire if n == "a" and skf(d) is not None]
    pair.a.handle_timer(1.0)
    again = pair.a.datagrams_to_send(1.0)
    assert [d.data for d in again] == first_round  # every fragment, byte for byte
    for d in again:
        pair.b.receive_datagram(d.data, d.dst, d.src, 1.0)
    pair.pump(1.0)
    assert sa_a.state is IkeSaState.ESTABLISHED
    answer = [d.data for n, d in pair.wire if n == "b" and skf(d) is not None]
    # A retransmission of the whole request: fragment 1 alone triggers the answer again.
    sa_b = pair.b.ike_sas[0]
    for d in again:
        pair.b.receive_datagram(d.data, d.dst, d.src, 2.0)
    resent = pair.b.datagrams_to_send(2.0)
    assert [d.data for d in resent] == answer
    assert pair.b.task_manager(sa_b).retransmits_answered == 1


def test_fragments_out_of_order_duplicated_and_forged() -> None:
    pair = tunnel_pair()
    sa_a = pair.a.initiate("gw", 0.0)
    (init,) = pair.a.datagrams_to_send(0.0)
    pair.b.receive_datagram(init.data, init.dst, init.src, 0.0)
    (answer,) = pair.b.datagrams_to_send(0.0)
    pair.a.receive_datagram(answer.data, answer.dst, answer.src, 0.0)
    frags = pair.a.datagrams_to_send(0.0)
    assert len(frags) >= 3
    sa_b = pair.b.ike_sas[0]
    forged = frags[0].data[:-1] + bytes([frags[0].data[-1] ^ 1])
    order = [frags[-1], frags[0], frags[-1], *frags[1:-1]]
    pair.b.receive_datagram(forged, frags[0].dst, frags[0].src, 0.0)
    for d in order[:-1]:
        pair.b.receive_datagram(d.data, d.dst, d.src, 0.0)
        assert sa_b.state is IkeSaState.CONNECTING
    pair.b.receive_datagram(order[-1].data, order[-1].dst, order[-1].src, 0.0)
    assert sa_b.state is IkeSaState.ESTABLISHED
    pair.pump(0.0)
    assert sa_a.state is IkeSaState.ESTABLISHED


def _cipher(gcm: bool) -> SkCipher:
    if gcm:
        return SkCipher(20, bytes(20))
    return SkCipher(12, bytes(16), IntegId.HMAC_SHA2_256_128, bytes(32))


@pytest.mark.parametrize("gcm", [True, False])
@pytest.mark.parametrize("limit", [100, 300, 577, 1280])
def test_chunk_size_fills_but_never_exceeds_the_limit(gcm: bool, limit: int) -> None:
    cipher = _cipher(gcm)
    size = fragments.chunk_size(cipher, limit)
    whole = 28 + 8 + cipher.overhead(size) + size
    assert whole <= limit < whole + cipher.block_size + 1


def test_chunk_size_too_small_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        fragments.chunk_size(_cipher(False), 80)


def test_reassembly_limits() -> None:
    pair = tunnel_pair()
    pair.a.initiate("gw", 0.0)
    (init,) = pair.a.datagrams_to_send(0.0)
    pair.b.receive_datagram(init.data, init.dst, init.src, 0.0)
    (answer,) = pair.b.datagrams_to_send(0.0)
    pair.a.receive_datagram(answer.data, answer.dst, answer.src, 0.0)
    frags = [parse_message(d.data) for d in pair.a.datagrams_to_send(0.0)]
    sa_b = pair.b.ike_sas[0]
    assert sa_b.cipher_in is not None
    few = fragments.Reassembler(max_fragments=len(frags) - 1)
    assert all(few.add(m, sa_b.cipher_in) is None for m in frags) and few.dropped == len(frags)
    small = fragments.Reassembler(max_bytes=60)
    assert all(small.add(m, sa_b.cipher_in) is None for m in frags) and small.dropped >= 1
    ok = fragments.Reassembler()
    results = [ok.add(m, sa_b.cipher_in) for m in frags]
    assert results[:-1] == [None] * (len(frags) - 1) and results[-1]
    with pytest.raises(IntegrityError):
        assert sa_b.cipher_out is not None
        fragments.Reassembler().add(frags[0], sa_b.cipher_out)  # the wrong key

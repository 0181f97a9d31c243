"""IKE_SA_INIT between two managers (RFC 7296 §1.2, §1.3, §2.6, §2.23)."""

from __future__ import annotations

from ike_fixtures import FAST, GW_A, GW_B, Pair, conn

from pyipsec.ike.v2.constants import ExchangeType, NotifyType
from pyipsec.ike.v2.events import IkeSaDeleted
from pyipsec.ike.v2.ike_sa import Datagram, IkeSa, IkeSaState
from pyipsec.ike.v2.manager import ManagerSettings
from pyipsec.ike.v2.message import IkeHeader, build_message, parse_message
from pyipsec.ike.v2.payloads import NoncePayload, NotifyPayload
from pyipsec.ike.v2.tasks.ike_init import CookieJar, nat_hash


def init_only(name: str, d: Datagram) -> bool:
    """Deliver IKE_SA_INIT only, so each test sees the state right after it."""
    return parse_message(d.data).header.exchange_type == ExchangeType.IKE_SA_INIT


def peer_sa(pair: Pair) -> IkeSa:
    (sa,) = pair.b.ike_sas
    return sa


def keys_agree(a: IkeSa, b: IkeSa) -> bool:
    """A message protected by one side opens on the other, both directions."""
    N = NoncePayload
    ok = True
    for x, y in ((a, b), (b, a)):
        hdr = x.header(ExchangeType.INFORMATIONAL, 7, response=False)
        data = x.protect(hdr, [N(b"n" * 16)])
        ok = ok and y.unprotect(parse_message(data)) == [N(b"n" * 16)]
    return ok


def test_ike_sa_init_agrees_on_spis_and_keys() -> None:
    pair = Pair(conn(GW_A, GW_B), conn(GW_B, GW_A))
    sa_a = pair.a.initiate("gw", 0.0)
    first = pair.a.datagrams_to_send(0.0)
    assert len(first) == 1 and first[0].src == (GW_A, 500) and first[0].dst == (GW_B, 500)
    msg = parse_message(first[0].data)
    assert msg.header.exchange_type == ExchangeType.IKE_SA_INIT and msg.header.is_initiator
    assert msg.header.spi_r == bytes(8)
    pair.b.receive_datagram(first[0].data, first[0].dst, first[0].src, 0.0)
    pair.pump(0.0, init_only)
    sa_b = peer_sa(pair)
    assert sa_a.spi_i == sa_b.spi_i and sa_a.spi_r == sa_b.spi_r and any(sa_b.spi_r)
    assert sa_a.state is IkeSaState.CONNECTING and sa_b.state is IkeSaState.CONNECTING
    assert sa_a.nonce_i == sa_b.nonce_i and sa_a.nonce_r == sa_b.nonce_r
    assert str(sa_a.proposal) == str(sa_b.proposal) == "aes128gcm16-prfsha256-x25519"
    assert keys_agree(sa_a, sa_b)
    assert not sa_a.nat and not sa_b.nat
    assert sa_a.peer_fragmentation and sa_b.peer_fragmentation
    assert 2 in sa_a.peer_sig_hashes
    # The raw IKE_SA_INIT messages kept for AUTH are the same on both sides.
    assert sa_a.init_request == sa_b.init_request and sa_a.init_response == sa_b.init_response


def test_nat_detected_when_addresses_are_rewritten() -> None:
    pair = Pair(conn(GW_A, GW_B), conn(GW_B, "%any"))
    sa_a = pair.a.initiate("gw", 0.0)
    (d,) = pair.a.datagrams_to_send(0.0)
    # A NAT rewrote A's source to 203.0.113.50:3333.
    pair.b.receive_datagram(d.data, d.dst, ("203.0.113.50", 3333), 0.0)
    sa_b = peer_sa(pair)
    assert sa_b.nat_remote and not sa_b.nat_local
    (r,) = pair.b.datagrams_to_send(0.0)
    pair.a.receive_datagram(r.data, (GW_A, 500), r.src, 0.0)
    assert sa_a.nat_local and not sa_a.nat_remote
    # §2.23: the initiator moves to port 4500 once a NAT is seen.
    assert sa_a.remote == (GW_B, 4500) and sa_a.local == (GW_A, 4500)


def test_nat_hash_is_sha1_of_spis_address_port() -> None:
    import hashlib

    spi_i, spi_r = bytes(range(8)), bytes(8)
    want = hashlib.sha1(spi_i + spi_r + bytes([192, 0, 2, 1]) + b"\x01\xf4").digest()
    assert nat_hash(spi_i, spi_r, (GW_A, 500)) == want


def test_invalid_ke_retry_with_requested_group() -> None:
    a = conn(GW_A, GW_B, "aes128gcm16-prfsha256-x25519,aes256-sha256-modp2048")
    b = conn(GW_B, GW_A, "aes256-sha256-modp2048")
    pair = Pair(a, b)
    sa_a = pair.a.initiate("gw", 0.0)
    pair.pump(0.0, init_only)
    sent = [parse_message(d.data) for _, d in pair.wire if init_only("", d)]
    notes = [p.notify_type for m in sent for p in m.payloads if isinstance(p, NotifyPayload)]
    assert NotifyType.INVALID_KE_PAYLOAD in notes
    # The INVALID_KE answer kept no state on B and the retry reused message ID 0.
    assert all(m.header.message_id == 0 for m in sent)
    sa_b = peer_sa(pair)
    assert str(sa_a.proposal) == str(sa_b.proposal) == "aes256-sha256-modp2048"
    assert keys_agree(sa_a, sa_b)


def test_no_proposal_chosen_fails_initiator_and_keeps_no_state() -> None:
    pair = Pair(
        conn(GW_A, GW_B, "aes128-sha256-modp2048"), conn(GW_B, GW_A, "aes256-sha384-ecp384")
    )
    sa_a = pair.a.initiate("gw", 0.0)
    pair.pump(0.0, init_only)
    assert sa_a.state is IkeSaState.DESTROYED
    assert pair.b.ike_sas == [] and pair.a.ike_sas == []
    (ev,) = [e for e in pair.events("a") if isinstance(e, IkeSaDeleted)]
    assert ev.reason == "no-proposal" and ev.notify == NotifyType.NO_PROPOSAL_CHOSEN
    answer = parse_message(pair.wire[1][1].data)
    assert answer.header.spi_r == bytes(8)


def test_cookie_demanded_above_threshold_then_accepted() -> None:
    pair = Pair(
        conn(GW_A, GW_B),
        conn(GW_B, GW_A),
        settings_b=ManagerSettings(retransmit=FAST, cookie_threshold=0),
    )
    sa_a = pair.a.initiate("gw", 0.0)
    pair.pump(0.0, init_only)
    msgs = [parse_message(d.data) for _, d in pair.wire]
    assert isinstance(msgs[1].payloads[0], NotifyPayload)
    assert msgs[1].payloads[0].notify_type == NotifyType.COOKIE
    retry = msgs[2].payloads[0]
    assert isinstance(retry, NotifyPayload) and retry.notify_type == NotifyType.COOKIE
    assert retry.data == msgs[1].payloads[0].data
    assert sa_a.state is IkeSaState.CONNECTING and peer_sa(pair).spi_r == sa_a.spi_r


def test_cookie_jar_checks_nonce_address_spi_and_survives_one_rotation() -> None:
    jar = CookieJar()
    nonce, spi = b"n" * 32, b"s" * 8
    cookie = jar.make(nonce, GW_A, spi)
    assert jar.check(cookie, nonce, GW_A, spi)
    assert not jar.check(cookie, nonce, GW_B, spi)
    assert not jar.check(cookie, b"m" * 32, GW_A, spi)
    assert not jar.check(cookie[:-1] + bytes([cookie[-1] ^ 1]), nonce, GW_A, spi)
    jar.rotate()
    assert jar.check(cookie, nonce, GW_A, spi)
    jar.rotate()
    assert not jar.check(cookie, nonce, GW_A, spi)


def test_garbage_and_unknown_spis_are_dropped() -> None:
    pair = Pair(conn(GW_A, GW_B), conn(GW_B, GW_A))
    pair.b.receive_datagram(b"\x00" * 10, (GW_B, 500), (GW_A, 500), 0.0)
    hdr = IkeHeader(b"x" * 8, b"y" * 8, ExchangeType.INFORMATIONAL, 1, 0x08)
    pair.b.receive_datagram(build_message(hdr, []), (GW_B, 500), (GW_A, 500), 0.0)
    assert pair.b.dropped == 2 and pair.b.datagrams_to_send(0.0) == []


def test_duplicated_init_request_gets_the_same_answer() -> None:
    pair = Pair(conn(GW_A, GW_B), conn(GW_B, GW_A))
    pair.a.initiate("gw", 0.0)
    (req,) = pair.a.datagrams_to_send(0.0)
    pair.b.receive_datagram(req.data, req.dst, req.src, 0.0)
    (first,) = pair.b.datagrams_to_send(0.0)
    pair.b.receive_datagram(req.data, req.dst, req.src, 0.5)
    (second,) = pair.b.datagrams_to_send(0.5)
    assert first.data == second.data and len(pair.b.ike_sas) == 1

"""Unprotected error answers outside an IKE SA: INVALID_IKE_SPI (RFC 7296 §1.5,
§2.21.4) and INVALID_MAJOR_VERSION (§2.5, §3.1); no state, rate-limited, never an answer
to a response.
"""

from __future__ import annotations

import struct

from ike_fixtures import GW_A, GW_B, NET_A, NET_B, Pair, child, conn

from pyipsec.ike.v2.constants import ExchangeType, HeaderFlag, NotifyType
from pyipsec.ike.v2.ike_sa import IkeSaState
from pyipsec.ike.v2.manager import ManagerSettings
from pyipsec.ike.v2.message import parse_message
from pyipsec.ike.v2.payloads import NotifyPayload

A_END, B_END = (GW_A, 500), (GW_B, 500)


def pair(**settings: object) -> Pair:
    a = conn(GW_A, GW_B, children=(child(NET_A, NET_B),))
    b = conn(GW_B, GW_A, children=(child(NET_B, NET_A),))
    return Pair(a, b, settings_b=ManagerSettings(**settings) if settings else None)  # type: ignore[arg-type]


def established() -> tuple[Pair, list[bytes]]:
    p = pair()
    p.a.initiate("gw", 0.0)
    p.pump(0.0)
    assert p.a.ike_sas[0].state is IkeSaState.ESTABLISHED
    return p, [d.data for _, d in p.wire]


def only_notify(data: bytes) -> NotifyPayload:
    message = parse_message(data)
    (note,) = message.payloads
    assert isinstance(note, NotifyPayload)
    return note


def test_request_for_an_unknown_ike_sa_gets_invalid_ike_spi() -> None:
    p, wire = established()
    # A DPD request of a's, delivered to a fresh responder that lost its state.
    sa_a = p.a.ike_sas[0]
    p.a.dpd(sa_a, 1.0)
    (dpd,) = p.a.datagrams_to_send(1.0)
    fresh = pair()
    fresh.b.receive_datagram(dpd.data, dpd.dst, dpd.src, 1.0)
    (answer,) = fresh.b.datagrams_to_send(1.0)
    assert (answer.src, answer.dst) == (dpd.dst, dpd.src)
    request, response = parse_message(dpd.data).header, parse_message(answer.data).header
    assert (response.spi_i, response.spi_r) == (request.spi_i, request.spi_r)
    assert response.message_id == request.message_id
    assert response.exchange_type == ExchangeType.INFORMATIONAL
    assert response.is_response and not response.is_initiator
    assert only_notify(answer.data).notify_type == NotifyType.INVALID_IKE_SPI
    assert fresh.b.ike_sas == [] and fresh.b.errors_sent == 1
    # The answer is unauthenticated: the real IKE SA ignores it (§2.21.4: a hint only).
    p.a.receive_datagram(answer.data, answer.dst, answer.src, 1.0)
    assert sa_a.state is IkeSaState.ESTABLISHED
    del wire


def test_responses_and_cleartext_requests_for_unknown_sas_are_not_answered() -> None:
    p, wire = established()
    fresh = pair()
    auth_response = wire[3]
    assert parse_message(auth_response).header.is_response
    fresh.a.receive_datagram(auth_response, A_END, B_END, 1.0)
    # An IKE_SA_INIT response for nothing we sent: no answer either.
    fresh.a.receive_datagram(wire[1], A_END, B_END, 1.0)
    assert fresh.a.datagrams_to_send(1.0) == [] and fresh.a.errors_sent == 0
    assert fresh.a.dropped == 2
    del p


def test_invalid_ike_spi_answers_are_rate_limited() -> None:
    p, _ = established()
    sa_a = p.a.ike_sas[0]
    p.a.dpd(sa_a, 1.0)
    (dpd,) = p.a.datagrams_to_send(1.0)
    fresh = pair(error_rate=3.0)
    for _ in range(10):
        fresh.b.receive_datagram(dpd.data, dpd.dst, dpd.src, 5.0)
    assert len(fresh.b.datagrams_to_send(5.0)) == 3  # the burst
    fresh.b.receive_datagram(dpd.data, dpd.dst, dpd.src, 5.1)
    assert fresh.b.datagrams_to_send(5.1) == []  # 0.3 of a token: nothing yet
    for _ in range(3):
        fresh.b.receive_datagram(dpd.data, dpd.dst, dpd.src, 5.5)
    assert len(fresh.b.datagrams_to_send(5.5)) == 1  # refilled at 3 per second


def _with_version(data: bytes, version: int) -> bytes:
    return data[:17] + bytes((version,)) + data[18:]


def test_higher_major_version_gets_invalid_major_version_with_ours() -> None:
    p = pair()
    p.a.initiate("gw", 0.0)
    (init,) = p.a.datagrams_to_send(0.0)
    v3 = _with_version(init.data, 0x30)
    p.b.receive_datagram(v3, init.dst, init.src, 0.0)
    (answer,) = p.b.datagrams_to_send(0.0)
    request = struct.unpack_from("!8s8sBBBBI", v3)
    response = parse_message(answer.data).header  # parses: our own version, 2.0
    assert (response.major_version, response.minor_version) == (2, 0)
    assert (response.spi_i, response.spi_r) == (request[0], request[1])
    assert response.exchange_type == ExchangeType.IKE_SA_INIT and response.message_id == 0
    assert response.flags == HeaderFlag.RESPONSE  # the request came from an initiator
    assert only_notify(answer.data).notify_type == NotifyType.INVALID_MAJOR_VERSION
    assert p.b.ike_sas == [] and p.b.half_open() == 0  # no state kept
    # The same message with version 2 still opens an IKE SA normally.
    p.b.receive_datagram(init.data, init.dst, init.src, 0.0)
    assert len(p.b.ike_sas) == 1


def test_invalid_major_version_response_or_truncated_message_is_only_dropped() -> None:
    p = pair()
    p.a.initiate("gw", 0.0)
    (init,) = p.a.datagrams_to_send(0.0)
    as_response = bytearray(_with_version(init.data, 0x30))
    as_response[19] |= HeaderFlag.RESPONSE
    p.b.receive_datagram(bytes(as_response), init.dst, init.src, 0.0)
    p.b.receive_datagram(_with_version(init.data, 0x30)[:20], init.dst, init.src, 0.0)
    assert p.b.datagrams_to_send(0.0) == [] and p.b.dropped == 2


def test_unprotected_request_inside_an_ike_sa_neither_answered_nor_counted() -> None:
    from pyipsec.ike.v2.message import IkeHeader, build_message

    p, _ = established()
    sa_a, sa_b = p.a.ike_sas[0], p.b.ike_sas[0]
    forged = build_message(
        IkeHeader(sa_a.spi_i, sa_a.spi_r, ExchangeType.INFORMATIONAL, sa_b.mid_in,
                  int(HeaderFlag.INITIATOR)),
        [NotifyPayload(NotifyType.INVALID_SYNTAX)],
    )  # fmt: skip
    p.b.receive_datagram(forged, B_END, A_END, 1.0)
    assert p.b.datagrams_to_send(1.0) == [] and sa_b.mid_in == 2
    p.a.dpd(sa_a, 2.0)
    assert p.pump(2.0) == 2 and sa_a.last_heard == 2.0  # the real request still fits

"""CHILD SA failures (ike/v2/tasks/child_create.py, ike_auth.py): what the peer is told
when a CHILD SA cannot be installed, and that nothing half-installed stays.

    IKE_AUTH:         A: HDR, SK {IDi, AUTH, SAi2, TSi, TSr}  -->
                      <--  B: HDR, SK {IDr, AUTH, N(NO_PROPOSAL_CHOSEN)}
    CREATE_CHILD_SA:  A: HDR, SK {SA, Ni, [KEi,] TSi, TSr}  -->
                      <--  B: HDR, SK {N(NO_PROPOSAL_CHOSEN)}

RFC 7296 §2.21.3: after a failed first CHILD SA only NO_PROPOSAL_CHOSEN, TS_UNACCEPTABLE,
SINGLE_PAIR_REQUIRED, INTERNAL_ADDRESS_FAILURE and FAILED_CP_REQUIRED leave the IKE SA
standing; both sides keep it (strongSwan's default).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from ike_fixtures import GW_A, GW_B, NET_A, NET_B, Pair, child, conn

from pyipsec.engine.processor import Engine
from pyipsec.errors import ConfigError, KeyApiError
from pyipsec.ike.v2.constants import ExchangeType, NotifyType
from pyipsec.ike.v2.events import ChildSaFailed, ChildSaInstalled, IkeSaDeleted
from pyipsec.ike.v2.ike_sa import Datagram, IkeSa, IkeSaState
from pyipsec.ike.v2.message import parse_message
from pyipsec.ike.v2.payloads import NotifyPayload, SaPayload

EINVAL = 22


def tunnel_pair() -> Pair:
    a = conn(GW_A, GW_B, children=(child(NET_A, NET_B),))
    b = conn(GW_B, GW_A, children=(child(NET_B, NET_A),))
    return Pair(a, b)


def refuse(
    engine: Engine, method: str, after: int = 0, error: Exception | None = None
) -> list[int]:
    """Make ``engine.method`` fail after ``after`` successful calls; count the calls."""
    real: Callable[..., Any] = getattr(engine, method)
    calls: list[int] = []

    def fake(*args: Any, **kw: Any) -> Any:
        calls.append(1)
        if len(calls) > after:
            raise error if error is not None else KeyApiError(EINVAL, "refused by the test")
        return real(*args, **kw)

    setattr(engine, method, fake)
    return calls


def notifies_from(pair: Pair, sender: str, sa: IkeSa, exchange: int) -> list[int]:
    """Notify types in the responses of ``exchange`` that ``sender`` put on the wire, read
    with the receiver's IKE SA ``sa``."""
    found: list[int] = []
    for name, d in pair.wire:
        msg = parse_message(d.data)
        if name != sender or msg.header.exchange_type != exchange or not msg.header.is_response:
            continue
        found += [
            p.notify_type
            for p in sa.unprotect(msg)
            if isinstance(p, NotifyPayload) and p.notify_type < NotifyType.INITIAL_CONTACT
        ]
    return found


def sent_requests(pair: Pair, sender: str, exchange: int) -> list[Datagram]:
    return [
        d
        for name, d in pair.wire
        if name == sender
        and parse_message(d.data).header.exchange_type == exchange
        and not parse_message(d.data).header.is_response
    ]


def clean(engine: Engine) -> bool:
    return engine.dump_sa() == [] and engine.dump_policy() == []


@pytest.mark.parametrize(
    ("method", "after"),
    [
        ("update_sa", 0),  # the inbound SA (GETSPI's larval one)
        ("add_sa", 0),  # the outbound SA, after the inbound one went in
    ],
)
def test_responder_install_failure_in_ike_auth_is_no_proposal_chosen(
    method: str, after: int
) -> None:
    pair = tunnel_pair()
    calls = refuse(pair.engine_b, method, after)
    sa_a = pair.a.initiate("gw", 0.0)
    pair.pump(0.0)
    assert len(calls) > after  # the refusal was hit
    (sa_b,) = pair.b.ike_sas
    # The answer carries IDr and AUTH, and the CHILD error §2.21.3 lets the IKE SA survive.
    assert notifies_from(pair, "b", sa_a, ExchangeType.IKE_AUTH) == [NotifyType.NO_PROPOSAL_CHOSEN]
    # Both IKE SAs stand, without a CHILD SA.
    assert sa_a.state is IkeSaState.ESTABLISHED and sa_b.state is IkeSaState.ESTABLISHED
    assert sa_a.children == {} and sa_b.children == {}
    events_a, events_b = pair.events("a"), pair.events("b")
    assert [e.notify for e in events_a if isinstance(e, ChildSaFailed)] == [
        NotifyType.NO_PROPOSAL_CHOSEN
    ]
    assert [e.notify for e in events_b if isinstance(e, ChildSaFailed)] == [
        NotifyType.NO_PROPOSAL_CHOSEN
    ]
    assert not any(isinstance(e, IkeSaDeleted | ChildSaInstalled) for e in events_a + events_b)
    # Nothing half-installed: no larval SPI, no SA, no policy on the refusing side; the
    # initiator's larval inbound SA went with its failure.
    assert clean(pair.engine_b) and clean(pair.engine_a)
    # The IKE SA still works: a clean Delete, answered.
    pair.a.delete_ike(sa_a, 1.0)
    pair.pump(1.0)
    assert pair.a.ike_sas == [] and pair.b.ike_sas == []


def test_responder_policy_failure_in_ike_auth_leaves_nothing() -> None:
    """The second policy fails (after the SAs and a first policy landed)."""
    pair = tunnel_pair()
    calls = refuse(pair.engine_b, "add_policy", after=1, error=ConfigError("refused"))
    sa_a = pair.a.initiate("gw", 0.0)
    pair.pump(0.0)
    assert len(calls) == 2
    assert notifies_from(pair, "b", sa_a, ExchangeType.IKE_AUTH) == [NotifyType.NO_PROPOSAL_CHOSEN]
    (sa_b,) = pair.b.ike_sas
    assert sa_a.state is IkeSaState.ESTABLISHED and sa_b.state is IkeSaState.ESTABLISHED
    assert clean(pair.engine_b) and clean(pair.engine_a)


def test_responder_install_failure_in_create_child_sa_is_no_proposal_chosen() -> None:
    a = conn(GW_A, GW_B, children=(child(NET_A, NET_B),))
    b = conn(GW_B, GW_A, children=(child(NET_B, NET_A),))
    pair = Pair(a, b)
    sa_a = pair.a.initiate("gw", 0.0)
    pair.pump(0.0)
    (sa_b,) = pair.b.ike_sas
    assert len(sa_a.children) == 1
    before_a, before_b = len(pair.engine_a.dump_sa()), len(pair.engine_b.dump_policy())
    refuse(pair.engine_b, "add_sa")
    pair.a.create_child(sa_a, "net", 1.0)
    pair.pump(1.0)
    assert notifies_from(pair, "b", sa_a, ExchangeType.CREATE_CHILD_SA) == [
        NotifyType.NO_PROPOSAL_CHOSEN
    ]
    assert len(sa_a.children) == 1 and len(sa_b.children) == 1  # the first pair lives
    assert len(pair.engine_a.dump_sa()) == before_a  # A's larval SA is gone
    assert len(pair.engine_b.dump_sa()) == 2 and len(pair.engine_b.dump_policy()) == before_b
    assert sa_a.state is IkeSaState.ESTABLISHED and sa_b.state is IkeSaState.ESTABLISHED


def test_policy_failure_of_a_replacement_gives_the_policies_back() -> None:
    """The rekey responder's new pair takes over the old pair's policies (same reqid) and
    fails on a policy of its own: the old pair keeps the policies it had, on both sides."""
    pair = tunnel_pair()
    sa_a = pair.a.initiate("gw", 0.0)
    pair.pump(0.0)
    (sa_b,) = pair.b.ike_sas
    (old_a,), (old_b,) = sa_a.children.values(), sa_b.children.values()
    owned = list(old_b.policies)
    assert owned
    refuse(pair.engine_b, "add_policy", error=ConfigError("refused by the test"))
    assert pair.a.rekey_child(sa_a, old_a, 1.0)
    pair.pump(1.0)
    assert notifies_from(pair, "b", sa_a, ExchangeType.CREATE_CHILD_SA) == [
        NotifyType.NO_PROPOSAL_CHOSEN
    ]
    assert list(sa_b.children.values()) == [old_b] and sorted(old_b.policies) == sorted(owned)
    for index in owned:
        pair.engine_b.get_policy(index)  # still in the SPD (raises KeyApiError if not)
    assert len(pair.engine_b.dump_policy()) == len(owned)
    assert len(pair.engine_b.dump_sa()) == 2 and list(sa_a.children.values()) == [old_a]


def test_ike_auth_answer_with_auth_and_another_error_keeps_the_ike_sa() -> None:
    """An IKE_AUTH response with a valid AUTH and TEMPORARY_FAILURE (what older pyipsec
    sent): the responder's IKE SA is up, so ours is kept, not dropped without a Delete."""
    pair = tunnel_pair()
    from pyipsec.ike.v2.tasks import child_create

    real = child_create.ChildCreate.build_response

    def old_answer(self: child_create.ChildCreate, out: list[Any], now: float) -> Any:
        if self.in_ike_auth:
            out.append(NotifyPayload(NotifyType.TEMPORARY_FAILURE))
            return child_create.Status.DONE
        return real(self, out, now)

    child_create.ChildCreate.build_response = old_answer  # type: ignore[method-assign]
    try:
        sa_a = pair.a.initiate("gw", 0.0)
        pair.pump(0.0)
    finally:
        child_create.ChildCreate.build_response = real  # type: ignore[method-assign]
    (sa_b,) = pair.b.ike_sas
    assert sa_a.state is IkeSaState.ESTABLISHED and sa_b.state is IkeSaState.ESTABLISHED
    events_a = pair.events("a")
    assert [e.notify for e in events_a if isinstance(e, ChildSaFailed)] == [
        NotifyType.TEMPORARY_FAILURE
    ]
    assert not any(isinstance(e, IkeSaDeleted) for e in events_a)
    assert clean(pair.engine_a)


def test_ike_auth_error_without_auth_still_ends_the_ike_sa() -> None:
    """AUTHENTICATION_FAILED (no AUTH payload) ends the initiator's IKE SA as before."""
    a = conn(GW_A, GW_B, children=(child(NET_A, NET_B),))
    b = conn(GW_B, GW_A, children=(child(NET_B, NET_A),), psk=b"another secret, not A's one")
    pair = Pair(a, b)
    sa_a = pair.a.initiate("gw", 0.0)
    pair.pump(0.0)
    assert sa_a.state is IkeSaState.DESTROYED and pair.a.ike_sas == []
    deleted = [e for e in pair.events("a") if isinstance(e, IkeSaDeleted)]
    assert [(e.reason, e.notify) for e in deleted] == [
        ("auth-failed", NotifyType.AUTHENTICATION_FAILED)
    ]


def test_the_initiators_ike_auth_request_offers_a_child_sa() -> None:
    """Guard for the tests above: the refused CHILD SA really was offered in IKE_AUTH."""
    pair = tunnel_pair()
    sa_a = pair.a.initiate("gw", 0.0)
    pair.pump(0.0)
    (request,) = sent_requests(pair, "a", ExchangeType.IKE_AUTH)
    (sa_b,) = pair.b.ike_sas
    assert any(isinstance(p, SaPayload) for p in sa_b.unprotect(parse_message(request.data)))
    assert sa_a.children

"""ike/v2/peer_config: a responder's connection chosen by IDi/IDr among address matches.

Unit tests of the ranking (strongSwan's backend_manager rule), then the manager using it
on the fake wire of ``test_ike_service``: several ``%any`` connections told apart by the
initiator's identity (IDi) or by the identity it asks us to be (IDr).
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from typing import Any

import pytest

from pyipsec.config.swanctl import parse_swanctl
from pyipsec.engine.processor import Engine
from pyipsec.ike.v2 import peer_config
from pyipsec.ike.v2.identity import Identity
from pyipsec.ike.v2.ike_sa import ChildConfigLike
from pyipsec.ike.v2.manager import ManagerSettings
from pyipsec.ike.v2.payloads import IdPayload
from pyipsec.ike.v2.task_manager import RetransmitSettings
from pyipsec.io.ike_service import IkeService
from test_ike_service import GW_A, GW_B, FakeLoop, Wire, _conf, _established

GW_C = "192.0.2.3"


@dataclass(frozen=True)
class Conn:
    name: str
    local_addrs: tuple[str, ...] = ()
    remote_addrs: tuple[str, ...] = ()
    local_id: str | None = None
    remote_id: str | None = None
    proposals: tuple[Any, ...] = ()
    psk: bytes = b"x"
    children: tuple[ChildConfigLike, ...] = field(default=())


def _idi(text: str) -> IdPayload:
    return Identity.parse(text).to_payload(responder=False)


def _idr(text: str) -> IdPayload:
    return Identity.parse(text).to_payload(responder=True)


@pytest.mark.parametrize(
    ("identity", "configured", "level"),
    [
        ("carol@example.org", None, peer_config.MATCH_ANY),
        ("carol@example.org", "%any", peer_config.MATCH_ANY),
        ("carol@example.org", "carol@example.org", peer_config.MATCH_PERFECT),
        ("carol@example.org", "*@example.org", peer_config.MATCH_ONE_WILDCARD),
        ("a.b.example.org", "*.*.example.org", peer_config.MATCH_ONE_WILDCARD - 1),
        ("carol@example.org", "dave@example.org", peer_config.MATCH_NONE),
        ("carol@example.org", "carol.example.org", peer_config.MATCH_NONE),  # FQDN != email
        ("192.0.2.7", "192.0.2.7", peer_config.MATCH_PERFECT),
    ],
)
def test_id_match_levels(identity: str, configured: str | None, level: int) -> None:
    assert peer_config.id_match(Identity.parse(identity), configured) == level


def test_no_identity_sent_matches_anything() -> None:
    assert peer_config.id_match(None, "carol@example.org") == peer_config.MATCH_ANY


def test_ranking_by_identity_then_address_then_order() -> None:
    any_any = Conn("any", remote_id=None)
    carol = Conn("carol", remote_id="carol@example.org")
    domain = Conn("domain", remote_id="*@example.org")
    literal = Conn("literal", remote_addrs=(GW_A,), remote_id="*@example.org")
    elsewhere = Conn("elsewhere", remote_addrs=(GW_C,), remote_id="carol@example.org")
    configs = [any_any, domain, literal, carol, elsewhere]
    pick = peer_config.select
    assert pick(configs, GW_B, GW_A, _idi("carol@example.org")) is carol
    # Same identity score: the literal remote address beats %any.
    assert pick(configs, GW_B, GW_A, _idi("dave@example.org")) is literal
    assert pick(configs, GW_B, GW_C, _idi("dave@example.org")) is domain
    assert pick(configs, GW_B, GW_C, _idi("x.example")) is any_any
    # Only connections whose identities match at all are candidates.
    assert pick([carol, domain], GW_B, GW_A, _idi("x.example")) is None
    # Equal ranks: the first configured wins.
    twin = Conn("twin", remote_id="carol@example.org")
    assert pick([carol, twin], GW_B, GW_A, _idi("carol@example.org")) is carol
    assert pick([twin, carol], GW_B, GW_A, _idi("carol@example.org")) is twin


def test_idr_selects_our_identity() -> None:
    one = Conn("one", local_id="vpn1.example")
    two = Conn("two", local_id="vpn2.example")
    plain = Conn("plain")
    configs = [one, two, plain]
    assert peer_config.select(configs, GW_B, GW_A, _idi("a.example"), _idr("vpn2.example")) is two
    assert peer_config.select(configs, GW_B, GW_A, _idi("a.example"), _idr("vpn3.example")) is plain
    # Without IDr, every local id matches "any": the first one.
    assert peer_config.select(configs, GW_B, GW_A, _idi("a.example")) is one


def test_malformed_identities_select_nothing() -> None:
    bad_ip = IdPayload(1, b"\x01\x02", responder=False)  # ID_IPV4_ADDR of two octets
    assert peer_config.select([Conn("any")], GW_B, GW_A, bad_ip) is None
    bad_idr = IdPayload(1, b"\x01", responder=True)
    assert peer_config.select([Conn("any")], GW_B, GW_A, _idi("a.example"), bad_idr) is None


def test_address_match() -> None:
    assert peer_config.address_match(Conn("c", (GW_B,), (GW_A,)), GW_B, GW_A) == 4 * 3 + 2 * 3
    assert peer_config.address_match(Conn("c", (), (GW_A,)), GW_B, GW_A) == 4 * 1 + 2 * 3
    assert peer_config.address_match(Conn("c", (), ("%any",)), GW_B, GW_A) == 4 + 2
    assert peer_config.address_match(Conn("c", (), (GW_C,)), GW_B, GW_A) == 0


# -- on the wire: the manager switches connections at IKE_AUTH --------------------------

SECRET_A = "0sYWxpY2UncyBzZWNyZXQgZm9yIHRoZSBnYXRld2F5"
SECRET_C = "0sY2Fyb2wncyBvd24gc2VjcmV0LCBkaWZmZXJlbnQ="


def _responder(*conns: tuple[str, str, str, str]) -> str:
    """b's file: %any connections (name, our id, their id, secret), in this order."""
    blocks, secrets = [], []
    for name, me, them, secret in conns:
        blocks.append(f"""
          {name} {{
            version = 2
            local_addrs = {GW_B}
            remote_addrs = %any
            proposals = aes128gcm16-prfsha256-x25519
            local {{
              auth = psk
              id = {me}
            }}
            remote {{
              auth = psk
              id = {them}
            }}
            children {{
              {name}-net {{
                local_ts = {GW_B}/32
                remote_ts = dynamic
                esp_proposals = aes128gcm16
              }}
            }}
          }}""")
        secrets.append(f"ike-{name} {{\n id-a = {me}\n id-b = {them}\n secret = {secret}\n}}")
    return textwrap.dedent(
        "connections {" + "".join(blocks) + "\n}\nsecrets {\n" + "\n".join(secrets) + "\n}\n"
    )


class Trio:
    """Initiators a (192.0.2.1) and c (192.0.2.3), responder b, on one fake wire."""

    def __init__(self, conf_b: str, conf_a: str, conf_c: str) -> None:
        self.loop = FakeLoop()
        self.wire = Wire()
        fast = ManagerSettings(retransmit=RetransmitSettings(timeout=1.0, base=2.0, tries=2))
        self.services: dict[str, IkeService] = {}
        for addr, text in ((GW_A, conf_a), (GW_B, conf_b), (GW_C, conf_c)):
            service = IkeService(Engine(), self.loop, self.wire.transport(), settings=fast)
            self.services[addr] = service
            self.wire.hosts[addr] = service
            service.apply(parse_swanctl(text, f"{addr}.conf"))

    def run(self) -> None:
        for _ in range(50):
            self.wire.flush()


def _initiator(me: str, me_id: str, peer_id: str, secret: str) -> str:
    return _conf(me, GW_B, me_id=me_id, peer_id=peer_id, secret=secret)


def test_two_any_connections_told_apart_by_idi() -> None:
    conf_b = _responder(
        ("carol", "b.example", "c.example", SECRET_C),  # first: the address match picks it
        ("alice", "b.example", "a.example", SECRET_A),
    )
    trio = Trio(
        conf_b,
        _initiator(GW_A, "a.example", "b.example", SECRET_A),
        _initiator(GW_C, "c.example", "b.example", SECRET_C),
    )
    trio.services[GW_A].initiate("gw")
    trio.services[GW_C].initiate("gw")
    trio.run()
    b = trio.services[GW_B]
    by_peer = {s["remote_id"]: s for s in _established(b)}
    assert set(by_peer) == {"a.example", "c.example"}
    assert by_peer["a.example"]["name"] == "alice" and by_peer["c.example"]["name"] == "carol"
    # Each got its connection's CHILD SA, narrowed to its own address (dynamic).
    (alice_child,) = by_peer["a.example"]["children"]
    assert alice_child["name"] == "alice-net" and alice_child["remote_ts"] == [f"{GW_A}/32"]
    (carol_child,) = by_peer["c.example"]["children"]
    assert carol_child["name"] == "carol-net" and carol_child["remote_ts"] == [f"{GW_C}/32"]
    for initiator in (GW_A, GW_C):
        assert len(_established(trio.services[initiator])) == 1


def test_idr_picks_the_identity_we_answer_as() -> None:
    conf_b = _responder(
        ("one", "vpn1.example", "%any", SECRET_C),
        ("two", "vpn2.example", "%any", SECRET_A),
    )
    trio = Trio(
        conf_b,
        _initiator(GW_A, "a.example", "vpn2.example", SECRET_A),  # sends IDr vpn2.example
        _initiator(GW_C, "c.example", "vpn1.example", SECRET_C),
    )
    trio.services[GW_A].initiate("gw")
    trio.services[GW_C].initiate("gw")
    trio.run()
    names = {s["remote_id"]: s["name"] for s in _established(trio.services[GW_B])}
    assert names == {"a.example": "two", "c.example": "one"}
    (a_sa,) = _established(trio.services[GW_A])
    assert a_sa["remote_id"] == "vpn2.example"


def test_an_identity_no_connection_accepts_fails_authentication() -> None:
    conf_b = _responder(("alice", "b.example", "a.example", SECRET_A))
    trio = Trio(
        conf_b,
        _initiator(GW_A, "a.example", "b.example", SECRET_A),
        _initiator(GW_C, "mallory.example", "b.example", SECRET_A),
    )
    trio.services[GW_C].initiate("gw")
    trio.run()
    assert _established(trio.services[GW_B]) == [] and _established(trio.services[GW_C]) == []
    failed = [e for e in trio.services[GW_C].history if e["event"] == "IkeSaDeleted"]
    assert failed and failed[0]["reason"] == "auth-failed"

"""ike/v2/manager: trap policies of a connection that asks for a virtual IP.

strongSwan's trap manager installs the trap with the child's configured ``local_ts``,
``dynamic`` standing for the IKE (physical) address: no virtual IP exists before the
IKE SA is up, and its ``vips`` are not looked at. We do the same. The first packet from
the physical address triggers the negotiation; its host selector goes first in TSi
beside 0.0.0.0/0 (RFC 7296 §2.9, §2.19), the responder narrows TSi to the leased
address, and the CHILD SA's own policies then cover the virtual IP while the trap stays
for the physical address (later ACQUIREs from it find the CHILD SA and do nothing).
"""

from __future__ import annotations

import ipaddress
import textwrap
from typing import Any

from pyipsec.engine.actions import Transmit
from test_ike_service import GW_A, GW_B, Pair, _children, _established, _udp

POOL = "10.3.0.0/28"  # not a protected subnet, as in tests/test_interop_nat


def _conf(me: str, peer: str, me_id: str, peer_id: str, ike: str, child: str) -> str:
    return textwrap.dedent(f"""
        connections {{
          gw {{
            version = 2
            local_addrs = {me}
            remote_addrs = {peer}
            proposals = aes128gcm16-prfsha256-x25519
            {ike}
            local {{
              auth = psk
              id = {me_id}
            }}
            remote {{
              auth = psk
              id = {peer_id}
            }}
            children {{
              net {{
                esp_proposals = aes128gcm16
                {child}
              }}
            }}
          }}
        }}
        pools {{
          rw {{
            addrs = {POOL}
          }}
        }}
        secrets {{
          ike-1 {{
            id-a = {me_id}
            id-b = {peer_id}
            secret = 0sc2VjcmV0IHNoYXJlZCBieSBib3RoIHNpZGVz
          }}
        }}
    """)


def _pair() -> Pair:
    client = "local_ts = dynamic\n remote_ts = 192.0.2.2/32\n start_action = trap"
    gateway = "local_ts = 192.0.2.2/32\n remote_ts = dynamic"
    return Pair(
        _conf(GW_A, GW_B, "a.example", "b.example", "vips = 0.0.0.0", client),
        _conf(GW_B, GW_A, "b.example", "a.example", "pools = rw", gateway),
    )


def _outs(pair: Pair) -> list[Any]:
    return [p for p in pair.engines[GW_A].dump_policy() if p.direction == "out"]


def _acquire(pair: Pair, src: str) -> Any:
    engine = pair.engines[GW_A]
    action = engine.outbound(_udp(src, GW_B), pair.loop.now)
    while (event := engine.next_event()) is not None:
        pair.a.on_engine_event(event)
    pair.run()
    return action


def test_trap_with_vips_uses_the_ike_address_then_the_child_sa_the_vip() -> None:
    pair = _pair()
    reqid = pair.a.traps[("gw", "net")]
    (trap,) = _outs(pair)
    # As strongSwan: dynamic is the IKE address in the trap, whatever vips asks for.
    assert str(trap.selector.src) == f"{GW_A}/32" and str(trap.selector.dst) == f"{GW_B}/32"
    assert trap.templates[0].reqid == reqid and pair.a.status()["ike_sas"] == []
    _acquire(pair, GW_A)
    (sa,) = _established(pair.a)
    (vip,) = sa["local_vips"]
    assert ipaddress.ip_address(vip) in ipaddress.ip_network(POOL)
    (child,) = _children(pair.a)
    assert child["local_ts"] == [f"{vip}/32"] and child["reqid"] == reqid
    (b_child,) = _children(pair.b)
    assert b_child["remote_ts"] == [f"{vip}/32"]
    # The CHILD SA protects the virtual IP; the trap stays for the physical address.
    sources = sorted(str(p.selector.src) for p in _outs(pair))
    assert sources == sorted([f"{GW_A}/32", f"{vip}/32"])
    assert isinstance(pair.engines[GW_A].outbound(_udp(vip, GW_B), pair.loop.now), Transmit)
    # More packets from the physical address: the trap's ACQUIRE finds the CHILD SA.
    sent = len(pair.wire.log)
    _acquire(pair, GW_A)
    assert len(pair.wire.log) == sent and len(_children(pair.a)) == 1
    assert len(_established(pair.a)) == 1

"""Virtual IPs through the CP payload (RFC 7296 §2.19, §3.15): two endpoints in memory.

    a (initiator, vips = 0.0.0.0)                       b (responder, pools = vip)
    HDR, SK {IDi, AUTH, CP(CFG_REQUEST), SAi2,
             TSi = 0.0.0.0/0, TSr = NET_B}  -->
                                  <--  HDR, SK {IDr, AUTH, CP(CFG_REPLY: VIP, DNS), SAr2,
                                                TSi = VIP/32, TSr = NET_B}

Then ESP from the virtual IP through both engines, lease reuse for the same identity,
exhaustion (INTERNAL_ADDRESS_FAILURE), FAILED_CP_REQUIRED, release on delete, the lease
moving with an IKE SA rekey, and malformed CP attributes.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address

from hypothesis import example, given, settings
from hypothesis import strategies as st
from ike_fixtures import FAST, GW_A, GW_B, HOST_B, NET_B, Conn, child, ike
from scapy.layers.inet import IP, UDP

from pyipsec.engine.actions import Deliver, Transmit
from pyipsec.engine.processor import Engine
from pyipsec.ike.connection import Pool
from pyipsec.ike.traffic_selectors import TrafficSelector
from pyipsec.ike.v2.constants import CfgAttributeType, CfgType, ExchangeType, IdType, NotifyType
from pyipsec.ike.v2.events import (
    ChildSaFailed,
    ChildSaInstalled,
    IkeSaDeleted,
    IkeSaEstablished,
    VirtualIpAssigned,
    VirtualIpReleased,
)
from pyipsec.ike.v2.ike_sa import Context, Datagram, IkeSa, IkeSaState
from pyipsec.ike.v2.manager import IkeManager, ManagerSettings
from pyipsec.ike.v2.message import IkeHeader, parse_message
from pyipsec.ike.v2.payloads import CfgAttribute, CpPayload, IdPayload, Payload
from pyipsec.ike.v2.task_manager import Status
from pyipsec.ike.v2.tasks.config import ConfigTask

POOL = Pool(
    "vip",
    (IPv4Address("198.51.100.64"), IPv4Address("198.51.100.79")),  # a /28: .65 - .78
    (("dns", ("198.51.100.53", "2001:db8::53")),),
)
FIRST, SECOND = IPv4Address("198.51.100.65"), IPv4Address("198.51.100.66")
ANY4 = IPv4Address("0.0.0.0")


@dataclass(frozen=True)
class VipConn(Conn):
    vips: tuple[IPv4Address | IPv6Address, ...] = ()
    pools: tuple[str, ...] = ()


def client(me: str = GW_A, ident: str = "client@example.org", **kw: object) -> VipConn:
    return VipConn(
        local_addrs=(me,),
        remote_addrs=(GW_B,),
        proposals=ike("aes128gcm16-prfsha256-x25519"),
        local_id=ident,
        children=(child("dynamic", NET_B),),
        **kw,  # type: ignore[arg-type]
    )


def gateway(**kw: object) -> VipConn:
    return VipConn(
        local_addrs=(GW_B,),
        remote_addrs=(),  # any peer
        proposals=ike("aes128gcm16-prfsha256-x25519"),
        children=(child(NET_B, "dynamic"),),
        **kw,  # type: ignore[arg-type]
    )


class Net:
    """Managers by address, each over its own Engine; datagrams go by destination."""

    def __init__(self, **confs: VipConn) -> None:
        self.engines: dict[str, Engine] = {}
        self.mgrs: dict[str, IkeManager] = {}
        for addr, conf in confs.items():
            self.engines[addr] = Engine(local_addresses=[addr])
            self.mgrs[addr] = IkeManager(
                self.engines[addr], [conf], ManagerSettings(retransmit=FAST)
            )
        self.wire: list[Datagram] = []

    def __getitem__(self, addr: str) -> IkeManager:
        return self.mgrs[addr]

    def pump(self, now: float = 1.0, tap: Callable[[Datagram], None] | None = None) -> None:
        for _ in range(30):
            moved = False
            for mgr in self.mgrs.values():
                for d in mgr.datagrams_to_send(now):
                    moved = True
                    self.wire.append(d)
                    if tap is not None:
                        tap(d)
                    target = self.mgrs.get(d.dst[0])
                    if target is not None:
                        target.receive_datagram(d.data, d.dst, d.src, now)
            if not moved:
                return

    def events(self, addr: str) -> list[object]:
        out: list[object] = []
        while (ev := self.mgrs[addr].next_event()) is not None:
            out.append(ev)
        return out


def of(events: list[object], cls: type) -> list:  # type: ignore[type-arg]
    return [e for e in events if isinstance(e, cls)]


def gateway_net(pool: Pool = POOL, **clients: VipConn) -> Net:
    net = Net(**{GW_B: gateway(pools=("vip",))}, **clients)
    net[GW_B].pools.update([pool])
    return net


def up(net: Net, addr: str = GW_A) -> IkeSa:
    sa = net[addr].initiate("gw", 0.0)
    net.pump()
    return sa


def responder_sa(net: Net, spi_i: bytes) -> IkeSa:
    return next(sa for sa in net[GW_B].ike_sas if sa.spi_i == spi_i)


def test_vip_assigned_narrowed_and_used_for_esp() -> None:
    net = gateway_net(**{GW_A: client(vips=(ANY4,))})
    requests: list[list[Payload]] = []

    def tap(d: Datagram) -> None:
        # Decrypt IKE_AUTH requests with the responder's keys to see the CP payload.
        msg = parse_message(d.data)
        if msg.header.exchange_type == ExchangeType.IKE_AUTH and not msg.header.is_response:
            requests.append(responder_sa(net, msg.header.spi_i).unprotect(msg))

    sa = net[GW_A].initiate("gw", 0.0)
    net.pump(tap=tap)
    assert sa.state is IkeSaState.ESTABLISHED
    # The request: CFG_REQUEST with an empty INTERNAL_IP4_ADDRESS and INTERNAL_IP4_DNS,
    # and TSi 0.0.0.0/0 for the dynamic selector (the responder narrows it).
    (request,) = requests
    (cp,) = [p for p in request if isinstance(p, CpPayload)]
    assert cp.cfg_type == CfgType.REQUEST
    assert [(a.attr_type, a.value) for a in cp.attributes] == [
        (CfgAttributeType.INTERNAL_IP4_ADDRESS, b""),
        (CfgAttributeType.INTERNAL_IP4_DNS, b""),
    ]
    # Both sides agree on the address; the CHILD SA is VIP/32 <-> NET_B.
    peer = responder_sa(net, sa.spi_i)
    assert sa.my_vips == (FIRST,) and peer.peer_vips == (FIRST,)
    vip_ts = TrafficSelector.host(FIRST)
    (mine,) = sa.children.values()
    (theirs,) = peer.children.values()
    assert mine.local_ts == (vip_ts,) and theirs.remote_ts == (vip_ts,)
    assert str(mine.remote_ts[0]) == NET_B
    ev_a, ev_b = net.events(GW_A), net.events(GW_B)
    (got,) = of(ev_a, VirtualIpAssigned)
    assert (got.address, got.peer, got.dns) == (str(FIRST), False, ("198.51.100.53",))
    (gave,) = of(ev_b, VirtualIpAssigned)
    assert (gave.address, gave.peer, gave.identity) == (str(FIRST), True, "client@example.org")
    assert len(of(ev_a, ChildSaInstalled)) == len(of(ev_b, ChildSaInstalled)) == 1
    status = net[GW_A].status()[0]
    assert status["local_vips"] == [str(FIRST)] and status["remote_vips"] == []
    # ESP from the virtual IP to the protected net and back, through both engines.
    for src_gw, dst_gw, src, dst in ((GW_A, GW_B, FIRST, HOST_B), (GW_B, GW_A, HOST_B, FIRST)):
        inner = bytes(IP(src=str(src), dst=str(dst)) / UDP(sport=4000, dport=53) / b"vip")
        out = net.engines[src_gw].outbound(inner, 2.0)
        assert isinstance(out, Transmit), out
        assert out.dst == dst_gw
        got_in = net.engines[dst_gw].inbound_esp(
            out.data, ipaddress.ip_address(out.src).packed, ipaddress.ip_address(out.dst).packed,
            out.encap, 2.0,
        )  # fmt: skip
        assert isinstance(got_in, Deliver) and got_in.packet[12:] == inner[12:]


def test_requested_address_dual_family_and_v6_dns() -> None:
    """vips = 198.51.100.70, :: with an IPv4-only pool: the asked-for IPv4 address; no
    IPv6 address is not a failure while one family got one."""
    wish = IPv4Address("198.51.100.70")
    net = gateway_net(**{GW_A: client(vips=(wish, IPv6Address("::")))})
    sa = up(net)
    assert sa.state is IkeSaState.ESTABLISHED and sa.my_vips == (wish,)
    (got,) = of(net.events(GW_A), VirtualIpAssigned)
    assert got.dns == ("198.51.100.53",)  # the IPv6 server goes with an IPv6 address only


def test_ipv6_virtual_ip_with_prefix_and_dns() -> None:
    """INTERNAL_IP6_ADDRESS carries the address and a prefix length (§3.15.1)."""
    net6 = "2001:db8:2::/48"
    gw = VipConn(
        local_addrs=(GW_B,),
        proposals=ike("aes128gcm16-prfsha256-x25519"),
        children=(child(net6, "dynamic"),),
        pools=("v6",),
    )
    me = VipConn(
        local_addrs=(GW_A,),
        remote_addrs=(GW_B,),
        proposals=ike("aes128gcm16-prfsha256-x25519"),
        children=(child("dynamic", net6),),
        vips=(IPv6Address("::"),),
    )
    net = Net(**{GW_B: gw, GW_A: me})
    pool = (IPv6Address("2001:db8:1::"), IPv6Address("2001:db8:1::ffff"))
    net[GW_B].pools.update([Pool("v6", pool, (("dns", ("2001:db8::53",)),))])
    replies: list[CpPayload] = []

    def tap(d: Datagram) -> None:
        msg = parse_message(d.data)
        if msg.header.exchange_type == ExchangeType.IKE_AUTH and msg.header.is_response:
            (mine,) = net[GW_A].ike_sas
            replies.extend(p for p in mine.unprotect(msg) if isinstance(p, CpPayload))

    sa = net[GW_A].initiate("gw", 0.0)
    net.pump(tap=tap)
    vip = IPv6Address("2001:db8:1::")
    assert sa.state is IkeSaState.ESTABLISHED and sa.my_vips == (vip,)
    (reply,) = replies
    assert [(a.attr_type, a.value) for a in reply.attributes] == [
        (CfgAttributeType.INTERNAL_IP6_ADDRESS, vip.packed + bytes([128])),
        (CfgAttributeType.INTERNAL_IP6_DNS, IPv6Address("2001:db8::53").packed),
    ]
    (pair,) = sa.children.values()
    assert pair.local_ts == (TrafficSelector.host(vip),) and str(pair.remote_ts[0]) == net6
    (got,) = of(net.events(GW_A), VirtualIpAssigned)
    assert got.dns == ("2001:db8::53",)


def test_same_identity_gets_the_same_address_after_reconnecting() -> None:
    net = gateway_net(
        **{GW_A: client(vips=(ANY4,)), "192.0.2.3": client("192.0.2.3", "other", vips=(ANY4,))}
    )
    first = up(net)
    other = up(net, "192.0.2.3")
    assert first.my_vips == (FIRST,) and other.my_vips == (SECOND,)
    net[GW_A].delete_ike(first, 2.0)
    net.pump(2.0)
    ev_b = net.events(GW_B)
    (released,) = of(ev_b, VirtualIpReleased)
    assert (released.address, released.identity) == (str(FIRST), "client@example.org")
    assert of(net.events(GW_A), VirtualIpReleased)[0].address == str(FIRST)
    pool = net[GW_B].pools.get("vip")
    assert pool is not None and (pool.online, pool.offline) == (1, 1)
    again = up(net)
    assert again.my_vips == (FIRST,)  # strongSwan's rule: the identity's lease comes back


def test_exhausted_pool_refuses_the_child_sa_and_the_initiator_gives_up() -> None:
    tiny = Pool("vip", (FIRST, FIRST))
    net = gateway_net(
        tiny, **{GW_A: client(vips=(ANY4,)), "192.0.2.3": client("192.0.2.3", "b", vips=(ANY4,))}
    )
    assert up(net).my_vips == (FIRST,)
    net.events(GW_B)
    late = up(net, "192.0.2.3")
    # §3.15.4: INTERNAL_ADDRESS_FAILURE for the CHILD SA; the responder keeps the IKE SA,
    # the initiator, which cannot use a tunnel without its address, ends it.
    ev_b = net.events(GW_B)
    assert [e.notify for e in of(ev_b, ChildSaFailed)] == [NotifyType.INTERNAL_ADDRESS_FAILURE]
    assert of(ev_b, IkeSaEstablished) and not of(ev_b, VirtualIpAssigned)
    assert late.state is IkeSaState.DESTROYED
    (gone,) = of(net.events("192.0.2.3"), IkeSaDeleted)
    assert (gone.reason, gone.notify) == ("no-vip", NotifyType.INTERNAL_ADDRESS_FAILURE)
    assert not responder_sa(net, late.spi_i).children


def test_pool_connection_without_cp_request_answers_failed_cp_required() -> None:
    net = gateway_net(**{GW_A: client()})  # no vips: no CFG_REQUEST
    sa = up(net)
    ev_a = net.events(GW_A)
    assert sa.state is IkeSaState.ESTABLISHED and not sa.children
    assert [e.notify for e in of(ev_a, ChildSaFailed)] == [NotifyType.FAILED_CP_REQUIRED]
    pool = net[GW_B].pools.get("vip")
    assert pool is not None and pool.online == 0


def test_responder_without_pools_ignores_the_request() -> None:
    net = Net(**{GW_B: gateway(), GW_A: client(vips=(ANY4,))})
    sa = up(net)
    assert sa.state is IkeSaState.DESTROYED
    assert of(net.events(GW_A), IkeSaDeleted)[0].reason == "no-vip"
    # The responder ignored the CP payload and narrowed TSi to the initiator's address.
    (peer,) = net[GW_B].ike_sas
    assert not peer.peer_vips
    assert [str(c.remote_ts[0]) for c in peer.children.values()] == [f"{GW_A}/32"]


def test_ike_rekey_moves_the_lease_to_the_new_ike_sa() -> None:
    net = gateway_net(**{GW_A: client(vips=(ANY4,))})
    sa = up(net)
    net.events(GW_A), net.events(GW_B)
    assert net[GW_A].rekey_ike(sa, 5.0)
    net.pump(5.0)
    (new,) = [s for s in net[GW_A].ike_sas if s is not sa]
    assert new.state is IkeSaState.ESTABLISHED and new.my_vips == (FIRST,)
    (peer,) = net[GW_B].ike_sas
    assert peer.peer_vips == (FIRST,)
    # Nothing was released on either side: the address is still in use.
    assert not of(net.events(GW_A), VirtualIpReleased)
    assert not of(net.events(GW_B), VirtualIpReleased)
    pool = net[GW_B].pools.get("vip")
    assert pool is not None and pool.online == 1
    net[GW_A].delete_ike(new, 6.0)
    net.pump(6.0)
    assert of(net.events(GW_A), VirtualIpReleased) and pool.online == 0


# -- the task on its own: malformed attributes ---------------------------------------------


def _bare_sa(config: VipConn, initiator: bool) -> IkeSa:
    sa = IkeSa(
        Context(Engine(local_addresses=[GW_A])),
        initiator=initiator,
        local=(GW_A, 500),
        remote=(GW_B, 500),
        config=config,
    )
    sa.state = IkeSaState.ESTABLISHED
    return sa


HEADER = IkeHeader(bytes(8), bytes(8), ExchangeType.IKE_AUTH, 1, 0)


def test_malformed_reply_attributes_are_ignored() -> None:
    sa = _bare_sa(client(vips=(ANY4,)), initiator=True)
    task = ConfigTask(sa, True)
    bad = CpPayload(
        CfgType.REPLY,
        [
            CfgAttribute(CfgAttributeType.INTERNAL_IP4_ADDRESS, b"\x01\x02\x03"),  # short
            CfgAttribute(CfgAttributeType.INTERNAL_IP6_ADDRESS, bytes(17)),  # not asked
            CfgAttribute(CfgAttributeType.INTERNAL_IP4_DNS, b"\xc6\x33\x64"),
            CfgAttribute(CfgAttributeType.APPLICATION_VERSION, b"x"),
        ],
    )
    assert task.process_response(HEADER, [bad], 1.0) is Status.FAILED
    assert task.fail_notify == NotifyType.INTERNAL_ADDRESS_FAILURE and sa.my_vips == ()
    bad.attributes.append(CfgAttribute(CfgAttributeType.INTERNAL_IP4_ADDRESS, FIRST.packed))
    assert task.process_response(HEADER, [bad], 1.0) is Status.DONE
    assert sa.my_vips == (FIRST,)


class _Child:
    error = 0


@settings(max_examples=200, deadline=None)
@example([(8, b"")])  # IPv6 only, from an IPv4 pool
@given(
    st.lists(
        st.tuples(st.integers(0, 0x7FFF), st.binary(max_size=24)),
        max_size=6,
    )
)
def test_any_request_attributes_never_raise(attrs: list[tuple[int, bytes]]) -> None:
    """Whatever the peer puts in CFG_REQUEST, the responder assigns at most one address per
    family from the pool, or refuses the CHILD SA; it never raises."""
    from pyipsec.ike.pools import PoolSet

    pools = PoolSet()
    pools.update([POOL])
    sa = _bare_sa(gateway(pools=("vip",)), initiator=False)
    sink = _Child()
    task = ConfigTask(sa, False, pools, sink)
    request: list[Payload] = [
        IdPayload(IdType.FQDN, b"peer.example", False),
        CpPayload(CfgType.REQUEST, [CfgAttribute(t, v) for t, v in attrs]),
    ]
    task.process_request(HEADER, request, 1.0)
    out: list[Payload] = []
    assert task.build_response(out, 1.0) is Status.DONE
    assert len(sa.peer_vips) <= 1 and all(a in pools.get("vip") for a in sa.peer_vips)  # type: ignore[operator]
    asked4 = any(t == CfgAttributeType.INTERNAL_IP4_ADDRESS for t, _ in attrs)
    asked6 = any(t == CfgAttributeType.INTERNAL_IP6_ADDRESS for t, _ in attrs)
    assert bool(sa.peer_vips) == asked4  # the pool is IPv4 only
    assert bool(out) == asked4
    # Addresses asked for and none given: the CHILD SA is refused (INTERNAL_ADDRESS_FAILURE,
    # RFC 7296 §3.15.4), as strongSwan does; the IKE SA stays.
    assert bool(sink.error) == (asked6 and not asked4)

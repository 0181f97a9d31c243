"""Virtual IPs in IKE_AUTH: the Configuration payload (RFC 7296 §2.19, §3.15).

Initiator:  HDR, SK {IDi, AUTH, CP(CFG_REQUEST), SAi2, TSi, TSr}  -->
Responder:  <--  HDR, SK {IDr, AUTH, CP(CFG_REPLY), SAr2, TSi, TSr}

A connection with ``vips`` (swanctl) asks for an internal address of each listed family
(``0.0.0.0``/``::`` for "any", or the address it would like) and the DNS servers; a
connection with ``pools`` answers from the first named pool of the family that has an
address for the peer's identity (``ike.pools``). The task rides in IKE_AUTH between the
authentication and the first CHILD SA, so the CHILD SA task already sees the address:

- the initiator proposes TSi ``0.0.0.0/0`` (``::/0``) for a ``dynamic`` local selector
  while it has no address yet, as strongSwan does; the responder narrows ``dynamic``
  remote selectors to the address it assigned, so the CHILD SA is VIP <-> subnet;
- no address for a request: the CHILD SA is refused with INTERNAL_ADDRESS_FAILURE and
  the IKE SA stays up (§3.15.4); a pool-only connection that gets no CFG_REQUEST refuses
  the CHILD SA with FAILED_CP_REQUIRED (§3.10.1); an initiator that gets no address ends
  the IKE SA (§3.15.4 lets it), its CHILD SA could not carry its traffic;
- leases are released when the IKE SA goes (``release_virtual_ips``), or move to the
  IKE SA that replaced it by rekeying.

The addresses are reported by ``VirtualIpAssigned``/``VirtualIpReleased`` events; io/
installs ours on the TUN. Nothing here touches an interface.
"""

from __future__ import annotations

import functools
import logging
import struct
from collections.abc import Iterable, Sequence
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Protocol, cast, runtime_checkable

from pyipsec.ike.pools import PoolSet
from pyipsec.ike.traffic_selectors import (
    DynamicTrafficSelector,
    TrafficSelector,
    TsSpec,
    resolve,
)
from pyipsec.ike.v2.constants import CfgAttributeType, CfgType, ExchangeType, NotifyType
from pyipsec.ike.v2.events import VirtualIpAssigned, VirtualIpReleased
from pyipsec.ike.v2.ike_sa import IkeSa, IkeSaState
from pyipsec.ike.v2.message import IkeHeader
from pyipsec.ike.v2.payloads import CfgAttribute, CpPayload, IdPayload, Payload
from pyipsec.ike.v2.task_manager import Status, Task
from pyipsec.ike.v2.tasks.ike_auth import id_text

log = logging.getLogger(__name__)

IPAddress = IPv4Address | IPv6Address
_ANY4, _ANY6 = IPv4Address(0), IPv6Address(0)
_ALL4, _ALL6 = IPv4Address(2**32 - 1), IPv6Address(2**128 - 1)
_PREFIX = struct.Struct("!B")
_ADDRESS_ATTRS = {
    4: CfgAttributeType.INTERNAL_IP4_ADDRESS,
    6: CfgAttributeType.INTERNAL_IP6_ADDRESS,
}
_DNS_ATTRS = {4: CfgAttributeType.INTERNAL_IP4_DNS, 6: CfgAttributeType.INTERNAL_IP6_DNS}


@runtime_checkable
class VipSource(Protocol):
    """A connection that asks for virtual IPs (``vips``) or hands them out (``pools``)."""

    @property
    def vips(self) -> Sequence[IPAddress]: ...
    @property
    def pools(self) -> Sequence[str]: ...


class ChildErrorSink(Protocol):
    """The CHILD SA task of the same IKE_AUTH: an error set here refuses that CHILD SA."""

    error: int


def _vip_source(config: object) -> VipSource | None:
    # The member check isinstance(config, VipSource) makes, without its cost: typing
    # walks the Protocol's members on every runtime-checkable isinstance.
    if hasattr(config, "vips") and hasattr(config, "pools"):
        return cast(VipSource, config)
    return None


def wanted_vips(sa: IkeSa) -> tuple[IPAddress, ...]:
    source = _vip_source(sa.config)
    return tuple(source.vips) if source is not None else ()


def pool_names(sa: IkeSa) -> tuple[str, ...]:
    source = _vip_source(sa.config)
    return tuple(source.pools) if source is not None else ()


# -- traffic selectors (used by the CHILD SA task) ------------------------------------------


@functools.lru_cache(maxsize=1024)
def _address(text: str) -> IPAddress:
    # The IKE SA's addresses are text; parsing them per CHILD SA showed in profiles.
    return ip_address(text)


def local_selectors(sa: IkeSa, specs: Iterable[TsSpec]) -> list[TrafficSelector]:
    """Our selectors with ``dynamic`` resolved: to our virtual IPs once we have them, to
    "any address" of each requested family before (the responder narrows it), else to
    our IKE address."""
    if sa.my_vips:
        return list(resolve(specs, list(sa.my_vips)))
    wanted = wanted_vips(sa) if sa.initiator else ()
    if not wanted:
        return list(resolve(specs, [_address(sa.local[0])]))
    out: list[TrafficSelector] = []
    for spec in specs:
        if not isinstance(spec, DynamicTrafficSelector):
            out.append(spec)
            continue
        for version in dict.fromkeys(v.version for v in wanted):
            low, high = (_ANY4, _ALL4) if version == 4 else (_ANY6, _ALL6)
            out.append(TrafficSelector(low, high, spec.protocol, spec.start_port, spec.end_port))
    return list(dict.fromkeys(out))


def remote_selectors(sa: IkeSa, specs: Iterable[TsSpec]) -> list[TrafficSelector]:
    """The peer's selectors: ``dynamic`` is the address we assigned it, else its IKE
    address (§2.9: a responder narrows the initiator's TSi to the virtual IP)."""
    hosts: list[IPAddress] = list(sa.peer_vips) or [_address(sa.remote[0])]
    return list(resolve(specs, hosts))


# -- attributes -----------------------------------------------------------------------------


def _address_value(address: IPAddress) -> bytes:
    if address.version == 4:
        return b"" if address == _ANY4 else address.packed
    # §3.15.1: INTERNAL_IP6_ADDRESS is the address and a prefix length.
    return b"" if address == _ANY6 else address.packed + _PREFIX.pack(128)


def _parse_address(attr: CfgAttribute) -> IPAddress | None:
    """The address of an INTERNAL_IP4/6_ADDRESS or _DNS attribute; None if malformed."""
    value = attr.value
    if attr.attr_type in (CfgAttributeType.INTERNAL_IP4_ADDRESS, CfgAttributeType.INTERNAL_IP4_DNS):
        return IPv4Address(value) if len(value) == 4 else None
    if attr.attr_type == CfgAttributeType.INTERNAL_IP6_ADDRESS:
        return IPv6Address(value[:16]) if len(value) == 17 else None
    if attr.attr_type == CfgAttributeType.INTERNAL_IP6_DNS:
        return IPv6Address(value) if len(value) == 16 else None
    return None


def _find_cp(payloads: Sequence[Payload], cfg_type: int) -> CpPayload | None:
    return next((p for p in payloads if isinstance(p, CpPayload) and p.cfg_type == cfg_type), None)


class ConfigTask(Task):
    """CP in IKE_AUTH: request (initiator) or assign (responder) virtual IPs."""

    exchange = ExchangeType.IKE_AUTH

    def __init__(
        self,
        sa: IkeSa,
        initiator: bool,
        pools: PoolSet | None = None,
        child: ChildErrorSink | None = None,
    ) -> None:
        super().__init__(sa, initiator)
        self.pools = pools if pools is not None else PoolSet()
        self.child = child
        self.assigned: list[tuple[IPAddress, tuple[str, ...]]] = []  # address, its DNS
        self.identity = ""

    @property
    def name(self) -> str:
        return "ike_config"

    # -- initiator ------------------------------------------------------------------

    def build_request(self, out: list[Payload], now: float) -> None:
        wanted = wanted_vips(self.sa)
        if not wanted:
            return
        attrs = [CfgAttribute(_ADDRESS_ATTRS[v.version], _address_value(v)) for v in wanted]
        attrs += [CfgAttribute(_DNS_ATTRS[v]) for v in dict.fromkeys(a.version for a in wanted)]
        out.append(CpPayload(CfgType.REQUEST, attrs))

    def process_response(self, header: IkeHeader, payloads: list[Payload], now: float) -> Status:
        sa = self.sa
        wanted = wanted_vips(sa)
        if not wanted or sa.state is not IkeSaState.ESTABLISHED:
            return Status.DONE  # nothing asked for, or IKE_AUTH failed (that task says so)
        cp = _find_cp(payloads, CfgType.REPLY)
        families = {v.version for v in wanted}
        addresses: list[IPAddress] = []
        dns: list[str] = []
        for attr in cp.attributes if cp is not None else []:
            value = _parse_address(attr)
            if value is None or value.version not in families:
                continue  # malformed, not asked for, or an attribute we do not use
            if attr.attr_type in _ADDRESS_ATTRS.values():
                if not value.is_unspecified and value not in addresses:
                    addresses.append(value)
            elif attr.attr_type in _DNS_ATTRS.values():
                dns.append(str(value))
        if not addresses:
            log.warning("%r: the peer assigned no virtual IP", sa)
            self.fail_reason, self.fail_notify = "no-vip", NotifyType.INTERNAL_ADDRESS_FAILURE
            return Status.FAILED
        sa.my_vips = tuple(addresses)
        for address in addresses:
            sa.ctx.emit(
                VirtualIpAssigned(sa.name, sa.spi_i, str(address), False, sa.remote_id, tuple(dns))
            )
        return Status.DONE

    # -- responder --------------------------------------------------------------------

    def process_request(self, header: IkeHeader, payloads: list[Payload], now: float) -> None:
        sa = self.sa
        names = pool_names(sa)
        if not names:
            return  # §3.15: a responder without pools ignores the request
        peer = next((p for p in payloads if isinstance(p, IdPayload) and not p.responder), None)
        if peer is None:
            return  # IKE_AUTH refuses the exchange itself
        self.identity = id_text(peer)
        cp = _find_cp(payloads, CfgType.REQUEST)
        if cp is None:
            # §3.10.1: the connection hands out addresses, the peer asked for none.
            self._refuse_child(NotifyType.FAILED_CP_REQUIRED)
            return
        requested: dict[int, IPAddress | None] = {}
        for attr in cp.attributes:
            for version, kind in _ADDRESS_ATTRS.items():
                if attr.attr_type != kind or version in requested:
                    continue
                # An empty value asks for any address; a malformed one is taken as that.
                value = _parse_address(attr) if attr.value else None
                requested[version] = (
                    value if value is not None and not value.is_unspecified else None
                )
        assigned: list[IPAddress] = []
        for version, wish in requested.items():
            got = self.pools.acquire(names, self.identity, version, wish)
            if got is None:
                log.warning("%r: no virtual IPv%d left for %s", sa, version, self.identity)
                continue
            pool, address = got
            assigned.append(address)
            servers = tuple(a for a in pool.attribute("dns") if ip_address(a).version == version)
            self.assigned.append((address, servers))
        sa.peer_vips = tuple(assigned)
        if requested and not assigned:
            self._refuse_child(NotifyType.INTERNAL_ADDRESS_FAILURE)  # §3.15.4

    def _refuse_child(self, notify: int) -> None:
        if self.child is not None and not self.child.error:
            self.child.error = notify

    def build_response(self, out: list[Payload], now: float) -> Status:
        if not self.assigned:
            return Status.DONE
        attrs: list[CfgAttribute] = []
        for address, servers in self.assigned:
            attrs.append(CfgAttribute(_ADDRESS_ATTRS[address.version], _address_value(address)))
            for server in servers:
                attrs.append(CfgAttribute(_DNS_ATTRS[address.version], ip_address(server).packed))
        out.append(CpPayload(CfgType.REPLY, attrs))
        sa = self.sa
        for address, servers in self.assigned:
            sa.ctx.emit(
                VirtualIpAssigned(sa.name, sa.spi_i, str(address), True, self.identity, servers)
            )
        return Status.DONE


def release_virtual_ips(sa: IkeSa, pools: PoolSet, others: Iterable[IkeSa]) -> None:
    """``sa`` is gone: its virtual IPs move to the IKE SA that replaced it (a rekey: same
    connection and peer, none of its own), or are given back and reported released."""
    if not sa.my_vips and not sa.peer_vips:
        return
    heir = next(
        (
            o
            for o in others
            if o is not sa
            and o.state is IkeSaState.ESTABLISHED
            and o.name == sa.name
            and o.remote_id == sa.remote_id
            and not o.my_vips
            and not o.peer_vips
        ),
        None,
    )
    if heir is not None:
        heir.my_vips, heir.peer_vips = sa.my_vips, sa.peer_vips
    else:
        for address in sa.peer_vips:
            pools.release(sa.remote_id, address)
            sa.ctx.emit(VirtualIpReleased(sa.name, sa.spi_i, str(address), True, sa.remote_id))
        for address in sa.my_vips:
            sa.ctx.emit(VirtualIpReleased(sa.name, sa.spi_i, str(address), False, sa.remote_id))
    sa.my_vips = sa.peer_vips = ()

"""The engine: SAD + SPD + ESP applied to every packet (RFC 4301 §5), sans-I/O.

``Engine.outbound(packet, now)`` and ``Engine.inbound*(…, now)`` return an action
(``engine.actions``) that says what the caller must do; key managers change the databases
through the key-management methods (``get_spi``, ``add_sa``, ``add_policy``, …), the same
interface the PF_KEY and xfrm servers and IKE use; events (ACQUIRE, EXPIRE, …) are drained
with ``next_event()``; time-based work runs from ``handle_timer(now)`` at ``next_timer()``.

Outbound: SPD ``out`` -> discard | bypass | protect -> the SA for each template (ACQUIRE and
hold the packet when there is none) -> ESP. Inbound: SAD by (dst, SPI) -> replay check ->
ICV -> replay advance -> inner packet -> inbound policy check against ``in`` (local
destinations) or ``fwd`` (the rest), RFC 4301 §5.2.
"""

from __future__ import annotations

import ipaddress
import struct
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TypeVar

from pyipsec.engine.actions import Action, Bypass, Deliver, Drop, Hold, Transmit
from pyipsec.engine.events import Acquire, Event, EventQueue, IPAddress, PolicyAdded, PolicyDeleted
from pyipsec.engine.sad import SadEntry, SASpec, SaState, SecurityAssociationDatabase
from pyipsec.engine.spd import Policy, PolicyStats, SecurityPolicyDatabase, Selector, Template
from pyipsec.engine.stats import ChangeEpoch, EngineStats
from pyipsec.errors import PacketDropped, ParseError, Reason, SequenceExhausted
from pyipsec.wire.ip import IPv4Header, IPv6Header, build_ipv4, build_ipv6, extract_flow, walk_ipv6

ACQUIRE_EXPIRES = 30.0  # seconds before a pending ACQUIRE may be sent again (kernel: 30 s)
HOLD_LIMIT = 100  # packets held per pending ACQUIRE (the kernel's XFRM_MAX_QUEUE_LEN)
IPPROTO_ESP = 50
IPPROTO_UDP = 17
_IPV4_IN_ESP = 4
_IPV6_IN_ESP = 41

FLOW_CACHE_SIZE = 65536  # per-flow decisions kept (each cache is emptied when full)
_DROPS: dict[str, Drop] = {}
_T = TypeVar("_T")
_SPI_OF = struct.Struct("!I").unpack_from
_LARVAL = SaState.LARVAL
# NamedTuple's generated __new__ is a Python function; the hot paths build the
# actions with tuple.__new__ directly, which does the same without that frame.
_new_action = tuple.__new__
_PORTS = frozenset((6, 17, 132, 136))  # TCP, UDP, SCTP, UDP-Lite: ports at 0..3
_ICMPS = frozenset((1, 58))  # type and code at 0..1
# Where an IPv4 flow key ends, by protocol: after the ports, the ICMP type and code, or
# the addresses.
_END4 = tuple(24 if p in _PORTS else 22 if p in _ICMPS else 20 for p in range(256))


def _flow_key(packet: bytes) -> bytes | None:
    """The header bytes an SPD decision depends on (protocol, addresses, ports or ICMP
    type/code), for the common packets: IPv4 without options and not a fragment, IPv6
    without extension headers. None for the rest, which take the full path."""
    n = len(packet)
    if n < 20:
        return None  # too short for any IP header: extract_flow says why
    first = packet[0]
    if first == 0x45:
        if packet[6] & 0x3F or packet[7]:
            return None  # a fragment: ports only in the first one (RFC 4301 §4.4.1.1)
        end = _END4[packet[9]]
        return packet[9:10] + packet[12:end] if n >= end else None
    if first >> 4 == 6:
        proto = packet[6]
        if proto in _PORTS:
            end = 44
        elif proto == 58:
            end = 42
        else:
            return None  # extension headers: the full walk decides
        return packet[6:7] + packet[8:end] if n >= end else None
    return None


def _drop(reason: str) -> Drop:
    """A shared Drop per reason: dropping allocates nothing."""
    action = _DROPS.get(reason)
    if action is None:
        action = _DROPS[reason] = Drop(reason)
    return action


@dataclass(slots=True)
class _Pending:
    """An ACQUIRE in flight: when it may be repeated, and the packets it holds."""

    seq: int
    expires: float
    policy_index: int
    template: Template
    src: bytes
    dst: bytes
    held: deque[bytes] = field(default_factory=deque)


class _Plan:
    """A policy's templates with their endpoints packed once (policies never change)."""

    __slots__ = ("steps", "tunnel_only")

    def __init__(self, steps: tuple[tuple[Template, bytes | None, bytes | None], ...]) -> None:
        self.steps = steps
        self.tunnel_only = all(src is not None for _, src, _ in steps)

    @classmethod
    def of(cls, policy: Policy) -> _Plan:
        steps: list[tuple[Template, bytes | None, bytes | None]] = []
        for tmpl in policy.templates:
            if tmpl.mode == "tunnel" and tmpl.src is not None and tmpl.dst is not None:
                steps.append((tmpl, _packed(tmpl.src), _packed(tmpl.dst)))
            else:
                steps.append((tmpl, None, None))
        return cls(tuple(steps))


def _outer_header(src: bytes, dst: bytes, proto: int, payload_len: int) -> bytes:
    """A minimal outer IP header, to run transport-mode decapsulation on a payload that a
    socket delivered without its header (UDP-encapsulated or raw IPv6 ESP)."""
    if len(src) == 4:
        return build_ipv4(IPv4Header(0, 20 + payload_len, 0, 0, 0, 64, proto, 0, src, dst))
    return build_ipv6(IPv6Header(0, 0, payload_len, proto, 64, src, dst))


class Engine:
    """The userspace "kernel": one SAD, one SPD, the packet processor and its events."""

    def __init__(self, local_addresses: Iterable[str | IPAddress] = ()) -> None:
        self.events = EventQueue()
        # One change counter for both databases: the flow caches check it per packet.
        self._epoch = ChangeEpoch()
        self.sad = SecurityAssociationDatabase(self.events, self._epoch)
        self._sa_by_id = self.sad.lookup_table  # sad.lookup without the call
        self.spd = SecurityPolicyDatabase(epoch=self._epoch)
        self.stats = EngineStats()
        self.local_addresses: set[bytes] = set()
        self.set_local_addresses(local_addresses)
        self._pending: dict[tuple[int, int, bytes, bytes], _Pending] = {}
        self._acquire_seq = 0
        self._released: deque[Action] = deque()
        self._plans: dict[int, _Plan] = {}
        # The SAs a policy resolves to: keyed by policy index (tunnel templates) or by
        # (index, flow src, flow dst) (transport); valid for one SAD generation.
        self._out_cache: dict[object, tuple[SadEntry, ...]] = {}
        self._out_cache_gen = -1
        # Per-flow decisions, keyed by the header bytes the SPD looks at, valid while
        # neither database changes: outbound (policy, SAs, the policy's counters, proto
        # mark) and inbound (SA, policy, drop or None, the policy's counters, proto mark).
        # The counters are the SPD's own objects, held so a hit need not look them up;
        # they stay the live ones until the SPD generation moves, which empties these.
        # Keys: for the usual IPv4 packet (see outbound) the addresses and ports alone,
        # one slice, with the protocol number as a mark a hit must match (TCP, UDP, SCTP
        # and UDP-Lite share a key length, so they may take each other's slot: a
        # mismatch is a miss); else _flow_key's bytes, which hold the protocol, and
        # mark -1. The two kinds of key never have the same length.
        self._flows_out: dict[
            bytes, tuple[Policy | None, tuple[SadEntry, ...], PolicyStats | None, int]
        ] = {}
        self._flows_in: dict[
            bytes, tuple[SadEntry, Policy | None, Drop | None, PolicyStats | None, int]
        ] = {}
        self._flows_epoch = -1

    def set_local_addresses(self, addresses: Iterable[str | IPAddress]) -> None:
        """Which inner destinations are this host's (checked against ``in``, others ``fwd``)."""
        self.local_addresses = {ipaddress.ip_address(a).packed for a in addresses}
        self._flows_epoch = -1  # in or fwd may now be decided differently

    # ---------------------------------------------------------------- outbound ----------
    def outbound(self, packet: bytes, now: float) -> Action:
        """Apply the SPD's ``out`` policies to a packet leaving this host (RFC 4301 §5.1)."""
        # The usual packet (IPv4 without options, not a fragment, long enough for any
        # key): addresses and ports, tagged with the protocol; the rest: _flow_key.
        if len(packet) >= 24 and packet[0] == 0x45 and not (packet[6] & 0x3F or packet[7]):
            proto_mark = packet[9]
            key: bytes | None = packet[12 : _END4[proto_mark]]
        else:
            key, proto_mark = _flow_key(packet), -1
        if key is not None:
            if self._flows_epoch != self._epoch.value:
                self._clear_flow_caches()
            hit = self._flows_out.get(key)
            if hit is not None and hit[3] == proto_mark:
                policy, entries, counters, _ = hit
                if policy is None:
                    return self._unprotected(None, packet)
                n = len(packet)
                if counters is not None:  # spd.count, inlined
                    counters.hits += 1
                    counters.bytes += n
                    counters.last_use = now
                if len(entries) != 1:
                    if not entries:
                        # A bypass or discard policy, or optional templates without SAs:
                        # the policy says which (a cached discard must stay a discard).
                        return self._unprotected(policy, packet)
                    return self._send(entries, packet, now)
                # The common case, flattened: one tunnel-mode SA already in use.
                entry = entries[0]
                sa = entry.sa
                if sa is None or entry.mode != "tunnel" or entry.use_time is None:
                    return self._send(entries, packet, now)
                try:
                    esp = sa.esp_encrypt(
                        packet, _IPV4_IN_ESP if packet[0] >> 4 == 4 else _IPV6_IN_ESP
                    )
                except (SequenceExhausted, PacketDropped, ParseError) as exc:
                    return self._encrypt_failed(entry, exc)
                stats = self.stats
                stats.out_packets += 1
                stats.out_bytes += n
                c = sa.counters
                if c.bytes >= entry.byte_limit or c.packets >= entry.packet_limit:
                    self.sad.count_limit_hit(entry)
                return _new_action(Transmit, (esp, entry.local, entry.peer, entry.encap, entry.spi))
        try:
            flow = extract_flow(packet)
        except ParseError:
            self.stats[Reason.OUT_ERROR] += 1
            return _drop(Reason.OUT_ERROR)
        policy = self.spd.lookup_packed(
            "out", flow.src, flow.dst, flow.proto, flow.sport, flow.dport
        )
        if policy is None or policy.action != "protect":
            if key is not None:
                self._remember(
                    self._flows_out,
                    key,
                    (
                        policy,
                        (),
                        None if policy is None else self.spd.counters_of(policy),
                        proto_mark,
                    ),
                )
            if policy is not None:
                self.spd.count(policy, len(packet), now)
            return self._unprotected(policy, packet)
        self.spd.count(policy, len(packet), now)
        resolved = self._resolve(policy, flow.src, flow.dst, packet, now)
        if isinstance(resolved, Hold | Drop):
            return resolved  # held for an ACQUIRE, or dropped
        if key is not None:
            self._remember(
                self._flows_out, key, (policy, resolved, self.spd.counters_of(policy), proto_mark)
            )
        if not resolved:
            return self._unprotected(None, packet)
        return self._send(resolved, packet, now)

    def _unprotected(self, policy: Policy | None, packet: bytes) -> Action:
        """No policy (the kernel lets the packet go), a bypass or a discard policy, or
        a protect policy whose templates were all optional and unavailable."""
        if policy is not None and policy.action == "discard":
            self.stats[Reason.OUT_POL_BLOCK] += 1
            return _drop(Reason.OUT_POL_BLOCK)
        self.stats["bypass_out"] += 1
        return Bypass(packet)

    def _resolve(
        self, policy: Policy, flow_src: bytes, flow_dst: bytes, packet: bytes, now: float
    ) -> tuple[SadEntry, ...] | Hold | Drop:
        """The SAs a protect policy's templates resolve to, or the action taken when a
        required one is missing (ACQUIRE and hold)."""
        if self._out_cache_gen != self.sad.generation:
            self._out_cache.clear()
            self._out_cache_gen = self.sad.generation
        plan = self._plans.get(policy.index)
        if plan is None:
            plan = self._plans[policy.index] = _Plan.of(policy)
        # Tunnel templates name their endpoints; transport ones take the packet's.
        key = policy.index if plan.tunnel_only else (policy.index, flow_src, flow_dst)
        entries = self._out_cache.get(key)
        if entries is None:
            found: list[SadEntry] = []
            for position, (tmpl, src, dst) in enumerate(plan.steps):
                if src is None or dst is None:
                    src, dst = flow_src, flow_dst
                entry = self.sad.find_outbound(src, dst, tmpl.proto, tmpl.mode, tmpl.reqid)
                if entry is None:
                    if tmpl.level == "use":
                        continue  # optional protection (RFC 2367 "use" level): skip it
                    return self._acquire(policy, position, tmpl, src, dst, packet, now)
                found.append(entry)
            entries = self._out_cache[key] = tuple(found)
        return entries

    def _send(self, entries: tuple[SadEntry, ...], packet: bytes, now: float) -> Action:
        data = packet
        for entry in entries[:-1]:
            # Inner templates of a bundle: each wraps the result of the previous one.
            result = self._encrypt(entry, data, now, full_packet=True)
            if isinstance(result, Drop):
                return result
            data = result
        last = entries[-1]
        esp = self._encrypt(last, data, now, full_packet=False)
        if isinstance(esp, Drop):
            return esp
        return Transmit(esp, last.local, last.peer, last.encap, last.spi)

    def _check_flow_caches(self) -> None:
        """Flow decisions hold while neither database changed (the hot paths inline this)."""
        if self._flows_epoch != self._epoch.value:
            self._clear_flow_caches()

    def _clear_flow_caches(self) -> None:
        self._flows_out.clear()
        self._flows_in.clear()
        self._flows_epoch = self._epoch.value

    @staticmethod
    def _remember(cache: dict[bytes, _T], key: bytes, value: _T) -> None:
        if len(cache) >= FLOW_CACHE_SIZE:
            cache.clear()  # bounded by emptying: cheaper than tracking recency per packet
        cache[key] = value

    def _encrypt(
        self, entry: SadEntry, packet: bytes, now: float, *, full_packet: bool
    ) -> bytes | Drop:
        sa = entry.sa
        if sa is None:
            self.stats[Reason.OUT_STATE_INVALID] += 1
            return _drop(Reason.OUT_STATE_INVALID)
        try:
            if full_packet:
                out = sa.encapsulate(packet)
            elif entry.mode == "tunnel":
                out = sa.esp_encrypt(packet, _IPV4_IN_ESP if packet[0] >> 4 == 4 else _IPV6_IN_ESP)
            else:
                # Transport mode: the SA rewrites the IP header; the socket adds its own.
                # (IPv4 options and IPv6 extension headers in front of ESP are not carried
                # over: the socket builds a plain header.)
                outer = sa.encapsulate(packet)
                if outer[0] >> 4 == 4:
                    hdr = (outer[0] & 0x0F) * 4
                else:
                    hdr = walk_ipv6(outer, stop_at=IPPROTO_UDP if sa.encap else IPPROTO_ESP).offset
                out = outer[hdr + 8 :] if sa.encap is not None else outer[hdr:]
        except (SequenceExhausted, PacketDropped, ParseError) as exc:
            return self._encrypt_failed(entry, exc)
        self.stats.out_packets += 1
        self.stats.out_bytes += len(packet)
        self._account(entry, now)
        return out

    def _encrypt_failed(self, entry: SadEntry, exc: Exception) -> Drop:
        if isinstance(exc, SequenceExhausted):
            # RFC 4303 §3.3.3: never wrap; the SA is spent and must be replaced.
            self.stats[Reason.OUT_STATE_SEQ_ERROR] += 1
            self.sad.expire_now(entry, "seq")
            return _drop(Reason.OUT_STATE_SEQ_ERROR)
        self.stats[Reason.OUT_STATE_MODE_ERROR] += 1
        return _drop(Reason.OUT_STATE_MODE_ERROR)

    def _account(self, entry: SadEntry, now: float) -> None:
        if entry.use_time is None:
            self.sad.first_use(entry, now)
        sa = entry.sa
        if sa is not None:
            c = sa.counters
            if c.bytes >= entry.byte_limit or c.packets >= entry.packet_limit:
                self.sad.count_limit_hit(entry)

    def _acquire(
        self,
        policy: Policy,
        position: int,
        tmpl: Template,
        src: bytes,
        dst: bytes,
        packet: bytes,
        now: float,
    ) -> Hold | Drop:
        key = (policy.index, position, src, dst)
        pending = self._pending.get(key)
        if pending is None or pending.expires <= now:
            self._acquire_seq += 1
            flow = extract_flow(packet)
            pending = _Pending(
                self._acquire_seq, now + ACQUIRE_EXPIRES, policy.index, tmpl, src, dst
            )
            self._pending[key] = pending
            self.stats["acquires"] += 1
            self.events.put(
                Acquire(
                    seq=pending.seq,
                    policy_index=policy.index,
                    template=tmpl,
                    src=ipaddress.ip_address(src),
                    dst=ipaddress.ip_address(dst),
                    flow_src=ipaddress.ip_address(flow.src),
                    flow_dst=ipaddress.ip_address(flow.dst),
                    flow_proto=flow.proto,
                    flow_sport=flow.sport,
                    flow_dport=flow.dport,
                )
            )
        self.stats[Reason.OUT_NO_STATES] += 1
        if len(pending.held) >= HOLD_LIMIT:
            self.stats["queue_overflow"] += 1
            return _drop(Reason.OUT_NO_STATES)
        pending.held.append(packet)
        self.stats["queued"] += 1
        return Hold(pending.seq)

    def _release_held(self, now: float) -> None:
        """Send the packets held for ACQUIREs that an SA now satisfies."""
        for key, pending in list(self._pending.items()):
            tmpl = pending.template
            entry = self.sad.find_outbound(
                pending.src, pending.dst, tmpl.proto, tmpl.mode, tmpl.reqid
            )
            if entry is None:
                continue
            del self._pending[key]
            for packet in pending.held:
                self._released.append(self.outbound(packet, now))

    def next_released(self) -> Action | None:
        """Actions for held packets that were released since the last call."""
        return self._released.popleft() if self._released else None

    # ----------------------------------------------------------------- inbound ----------
    def inbound(self, packet: bytes, now: float) -> Action:
        """A whole IP packet from the network: ESP (protocol 50 or UDP-encapsulated is for
        ``inbound_esp``) or a plain packet checked against the inbound policy."""
        try:
            flow = extract_flow(packet)
        except ParseError:
            self.stats[Reason.IN_HDR_ERROR] += 1
            return _drop(Reason.IN_HDR_ERROR)
        if flow.proto == IPPROTO_ESP:
            hdr = (packet[0] & 0x0F) * 4 if flow.version == 4 else 40
            return self.inbound_esp(packet[hdr:], flow.src, flow.dst, None, now)
        return self._check_plain(
            packet, flow.src, flow.dst, flow.proto, flow.sport, flow.dport, now
        )

    def inbound_esp(
        self,
        data: bytes,
        src: bytes,
        dst: bytes,
        encap: tuple[int, int] | None,
        now: float,
    ) -> Action:
        """An ESP packet as a socket delivers it: after the outer IP header (raw socket) or
        the UDP header (``encap`` = (sport, dport), RFC 3948). ``src``/``dst`` are the
        packed outer addresses."""
        if len(data) < 8:
            self.stats[Reason.IN_HDR_ERROR] += 1
            return _drop(Reason.IN_HDR_ERROR)
        spi = _SPI_OF(data)[0]
        entry = self._sa_by_id.get((dst, spi, "esp"))
        if entry is None:
            self.stats[Reason.IN_NO_STATES] += 1
            return _drop(Reason.IN_NO_STATES)
        sa = entry.sa
        if sa is None or entry.state is _LARVAL:
            self.stats[Reason.IN_STATE_INVALID] += 1
            return _drop(Reason.IN_STATE_INVALID)
        if (sa.encap is None) != (encap is None):
            # ESP in UDP for an SA without encapsulation, or the reverse (as xfrm_input).
            self.stats[Reason.IN_STATE_MISMATCH] += 1
            return _drop(Reason.IN_STATE_MISMATCH)
        try:
            if entry.mode == "tunnel":
                next_header, inner = sa.esp_decrypt(data)
                if next_header not in (_IPV4_IN_ESP, _IPV6_IN_ESP):
                    raise PacketDropped(Reason.IN_STATE_MODE_ERROR)
            else:
                outer = _outer_header(src, dst, IPPROTO_ESP, len(data)) + data
                inner = sa.decapsulate(outer)
        except PacketDropped as drop:
            self.stats[drop.reason] += 1
            return _drop(drop.reason)
        if entry.use_time is None:
            self.sad.first_use(entry, now)
        c = sa.counters
        if c.bytes >= entry.byte_limit or c.packets >= entry.packet_limit:
            self.sad.count_limit_hit(entry)
        # The inbound policy check, from the flow cache when this SA carried the flow
        # before and nothing changed since (the full check is _check_decapsulated).
        # The flow key as in outbound.
        if len(inner) >= 24 and inner[0] == 0x45 and not (inner[6] & 0x3F or inner[7]):
            proto_mark = inner[9]
            key: bytes | None = inner[12 : _END4[proto_mark]]
        else:
            key, proto_mark = _flow_key(inner), -1
        if key is not None:
            if self._flows_epoch != self._epoch.value:
                self._clear_flow_caches()
            hit = self._flows_in.get(key)
            if hit is not None and hit[0] is entry and hit[2] is None and hit[4] == proto_mark:
                n = len(inner)
                counters = hit[3]
                if counters is not None:  # spd.count, inlined
                    counters.hits += 1
                    counters.bytes += n
                    counters.last_use = now
                stats = self.stats
                stats.in_packets += 1
                stats.in_bytes += n
                return _new_action(Deliver, (inner, spi))
        return self._check_decapsulated(entry, inner, now, key, proto_mark)

    def _check_decapsulated(
        self, entry: SadEntry, inner: bytes, now: float, key: bytes | None, proto_mark: int
    ) -> Action:
        """RFC 4301 §5.2 step 4: the inner packet must match an inbound policy whose
        template this SA satisfies. ``key``, ``proto_mark``: the inner packet's flow key (see
        ``_flows_in``)."""
        if key is not None:
            self._check_flow_caches()
            hit = self._flows_in.get(key)
            if hit is not None and hit[0] is entry and hit[4] == proto_mark:
                verdict, counters = hit[2], hit[3]
                if verdict is not None:
                    self.stats[verdict.reason] += 1
                    return verdict
                if counters is not None:
                    counters.hits += 1
                    counters.bytes += len(inner)
                    counters.last_use = now
                self.stats.in_packets += 1
                self.stats.in_bytes += len(inner)
                return Deliver(inner, entry.spi)
        try:
            flow = extract_flow(inner)
        except ParseError:
            self.stats[Reason.IN_STATE_MODE_ERROR] += 1
            return _drop(Reason.IN_STATE_MODE_ERROR)
        direction = "in" if flow.dst in self.local_addresses else "fwd"
        policy = self.spd.lookup_packed(
            direction, flow.src, flow.dst, flow.proto, flow.sport, flow.dport
        )
        verdict = self._inbound_verdict(entry, policy)
        if key is not None:
            counters = None if policy is None else self.spd.counters_of(policy)
            self._remember(self._flows_in, key, (entry, policy, verdict, counters, proto_mark))
        if verdict is not None:
            self.stats[verdict.reason] += 1
            return verdict
        if policy is not None:
            self.spd.count(policy, len(inner), now)
        self.stats.in_packets += 1
        self.stats.in_bytes += len(inner)
        return Deliver(inner, entry.spi)

    def _inbound_verdict(self, entry: SadEntry, policy: Policy | None) -> Drop | None:
        """None if the SA may carry a packet that matched ``policy``, else the drop."""
        tunnel = entry.mode == "tunnel"
        if policy is None:
            # As Linux: a tunnel-mode SA needs a policy that asked for it; transport is let in.
            return _drop(Reason.IN_NO_POLS) if tunnel else None
        if policy.action == "discard":
            return _drop(Reason.IN_POL_BLOCK)
        if policy.action == "protect":
            plan = self._plans.get(policy.index)
            if plan is None:
                plan = self._plans[policy.index] = _Plan.of(policy)
            if any(_satisfies(entry, *step) for step in plan.steps):
                return None
            return _drop(Reason.IN_TMPL_MISMATCH)
        # A bypass policy does not let tunnelled traffic in (xfrm: template mismatch).
        return _drop(Reason.IN_TMPL_MISMATCH) if tunnel else None

    def _check_plain(
        self,
        packet: bytes,
        src: bytes,
        dst: bytes,
        proto: int,
        sport: int | None,
        dport: int | None,
        now: float,
    ) -> Action:
        direction = "in" if dst in self.local_addresses else "fwd"
        policy = self.spd.lookup_packed(direction, src, dst, proto, sport, dport)
        if policy is not None:
            if policy.action == "discard":
                self.stats[Reason.IN_POL_BLOCK] += 1
                return _drop(Reason.IN_POL_BLOCK)
            if policy.action == "protect" and any(t.level != "use" for t in policy.templates):
                # Clear text where the policy requires ESP.
                self.stats[Reason.IN_TMPL_MISMATCH] += 1
                return _drop(Reason.IN_TMPL_MISMATCH)
            self.spd.count(policy, len(packet), now)
        self.stats["bypass_in"] += 1
        return Deliver(packet, 0)

    # ------------------------------------------------------------------ timers ----------
    def next_timer(self) -> float | None:
        times = [t for t in (self.sad.next_timer(),) if t is not None]
        times.extend(p.expires for p in self._pending.values())
        return min(times) if times else None

    def handle_timer(self, now: float) -> None:
        self.sad.expire(now)
        for key, pending in list(self._pending.items()):
            if pending.expires <= now:
                self.stats["queue_expired"] += len(pending.held)
                del self._pending[key]

    def next_event(self) -> Event | None:
        return self.events.get()

    # ------------------------------------------------- key-management interface --------
    # The one interface through which PF_KEY, xfrm and IKE change the databases.
    def get_spi(
        self,
        src: str | IPAddress,
        dst: str | IPAddress,
        now: float,
        *,
        proto: str = "esp",
        mode: str = "tunnel",
        reqid: int = 0,
        spi_min: int = 0x100,
        spi_max: int = 0xFFFFFFFF,
    ) -> int:
        return self.sad.get_spi(
            src, dst, now, proto=proto, mode=mode, reqid=reqid, spi_min=spi_min, spi_max=spi_max
        )

    def add_sa(self, spec: SASpec, now: float) -> SadEntry:
        entry = self.sad.add(spec, now)
        self._release_held(now)
        return entry

    def update_sa(self, spec: SASpec, now: float) -> SadEntry:
        entry = self.sad.update(spec, now)
        self._release_held(now)
        return entry

    def del_sa(self, dst: str | IPAddress, spi: int, proto: str = "esp") -> SadEntry:
        return self.sad.delete(dst, spi, proto)

    def get_sa(self, dst: str | IPAddress, spi: int, proto: str = "esp") -> SadEntry:
        return self.sad.get(dst, spi, proto)

    def flush_sa(self, proto: str | None = None) -> int:
        return self.sad.flush(proto)

    def dump_sa(self) -> list[SadEntry]:
        return self.sad.dump()

    def add_policy(self, policy: Policy) -> int:
        index = self.spd.add(policy)
        self.events.put(PolicyAdded(index, update=False))
        return index

    def update_policy(self, policy: Policy) -> int:
        index = self.spd.update(policy)
        self._forget_policy(index)
        self.events.put(PolicyAdded(index, update=True))
        return index

    def del_policy(self, index: int) -> Policy:
        policy = self.spd.delete(index)
        self._forget_policy(index)
        self.events.put(PolicyDeleted(index, "deleted"))
        return policy

    def del_policy_by_selector(self, direction: str, selector: Selector) -> Policy:
        policy = self.spd.delete_by_selector(direction, selector)
        self._forget_policy(policy.index)
        self.events.put(PolicyDeleted(policy.index, "deleted"))
        return policy

    def get_policy(self, index: int) -> Policy:
        return self.spd.get(index)

    def flush_policy(self, direction: str | None = None) -> int:
        doomed = [p.index for p in self.spd.dump() if direction is None or p.direction == direction]
        count = self.spd.flush(direction)
        for index in doomed:
            self._forget_policy(index)
            self.events.put(PolicyDeleted(index, "flushed"))
        return count

    def dump_policy(self) -> list[Policy]:
        return self.spd.dump()

    def _forget_policy(self, index: int) -> None:
        self._out_cache.clear()
        self._plans.pop(index, None)
        for key in [k for k in self._pending if k[0] == index]:
            self.stats["queue_expired"] += len(self._pending.pop(key).held)


def _satisfies(entry: SadEntry, tmpl: Template, src: bytes | None, dst: bytes | None) -> bool:
    """Does the SA that carried a packet match a policy template (xfrm_state_ok)?"""
    if tmpl.proto != entry.proto or tmpl.mode != entry.mode:
        return False
    if tmpl.reqid and tmpl.reqid != entry.reqid:
        return False
    if tmpl.spi and tmpl.spi != entry.spi:
        return False
    if entry.mode == "tunnel":
        # An inbound template names the peer as src and us as dst, like the SA.
        if src is not None and src != entry.src_packed:
            return False
        if dst is not None and dst != entry.dst_packed:
            return False
    return True


def _packed(addr: str | IPAddress) -> bytes:
    """Template endpoints are normalised to address objects; accept a string all the same."""
    return ipaddress.ip_address(addr).packed if isinstance(addr, str) else addr.packed

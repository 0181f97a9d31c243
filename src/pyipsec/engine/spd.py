"""The Security Policy Database (RFC 4301 §4.4.1), with Linux xfrm semantics.

A policy says what to do with the traffic its selector matches: ``protect`` it with
IPsec as its templates describe, let it ``bypass`` IPsec, or ``discard`` it. There is
one ordered list of policies per direction (``in``, ``out``, ``fwd``, as in xfrm); the
order is the priority (LOWER number wins, as in xfrm), then insertion order.

The API is kernel-shaped so that PF_KEY (``SADB_X_SPD*``) and xfrm
(``XFRM_MSG_*POLICY``) requests map onto it one to one:

- ``add`` refuses a second policy with the same direction and selector (``EEXIST``, as
  ``XFRM_MSG_NEWPOLICY`` does; the priority is not part of that identity in Linux since
  the mark/priority match was reverted in 2020), ``update`` replaces it in place;
- every policy gets an ``index`` whose low three bits are its direction (Linux's
  ``xfrm_gen_index``), kept across ``update``;
- ``generation`` increases with every change, so callers can tell a cached decision
  is stale.

Ports follow Linux, not RFC 4301's OPAQUE (``xfrm_selector_match`` in
net/xfrm/xfrm_policy.c, ``xfrm_flowi_sport``/``xfrm_flowi_dport`` in
include/net/xfrm.h):

- a selector may carry port ranges whatever its protocol, "any" included (setkey's
  ``spdadd 192.0.2.41/32[21] 192.0.2.33/32[any] any``);
- a packet's "ports" are its TCP, UDP, SCTP or UDP-Lite ports, or its ICMP/ICMPv6
  type (source) and code (destination);
- a packet without ports (any other protocol, or a fragment whose ports the flow does
  not show) has ports 0, as the kernel's zeroed flow does: it matches a range that
  contains 0 and no other. RFC 4301 §4.4.1.1 would have such OPAQUE ports match
  only ANY; the two differ only for ranges that start at 0.
- Linux also reads a GRE key (47) and a Mobility Header type (135) as ports. Our flow
  does not extract them, so ports on a GRE or MH selector are refused (``ConfigError``)
  rather than matched differently; with proto ANY such packets have ports 0.

Lookups go through a tuple-space index (see ``spd_index``) and a small decision cache
keyed by the packet's 5-tuple; the cache is emptied on every change.
"""

from __future__ import annotations

import errno
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from ipaddress import (
    IPv4Address,
    IPv4Network,
    IPv6Address,
    IPv6Network,
    ip_address,
    ip_network,
)
from typing import Final

from pyipsec.engine.spd_index import IndexEntry, TupleSpaceTable
from pyipsec.engine.stats import ChangeEpoch
from pyipsec.errors import ConfigError, KeyApiError, ParseError

__all__ = [
    "DIRECTIONS",
    "ICMP_PROTOCOLS",
    "PORT_PROTOCOLS",
    "UNEXTRACTED_PORT_PROTOCOLS",
    "Policy",
    "PolicyStats",
    "SecurityPolicyDatabase",
    "Selector",
    "Template",
]

NetworkLike = str | IPv4Network | IPv6Network | IPv4Address | IPv6Address
AddressLike = str | IPv4Address | IPv6Address
PortRange = tuple[int, int] | int | None

# xfrm's direction numbers (XFRM_POLICY_IN/OUT/FWD); they are the low bits of an index.
DIRECTIONS: Final = {"in": 0, "out": 1, "fwd": 2}
ACTIONS: Final = frozenset({"protect", "bypass", "discard"})
TEMPLATE_PROTOS: Final = frozenset({"esp", "ah", "ipcomp"})
TEMPLATE_MODES: Final = frozenset({"tunnel", "transport"})
TEMPLATE_LEVELS: Final = frozenset({"required", "use", "unique"})
# Protocols whose packets have ports (RFC 4301 §4.4.1.1 "Local/Remote Port"); a packet
# of any other protocol is matched as ports 0 (xfrm_flowi_sport's default).
PORT_PROTOCOLS: Final = frozenset({6, 17, 132, 136})  # TCP, UDP, SCTP, UDP-Lite
# ICMP and ICMPv6: the "ports" are the message type (sport) and code (dport), the way
# xfrm packs them (RFC 4301 §4.4.1.3 lists type and code as ICMP selectors).
ICMP_PROTOCOLS: Final = frozenset({1, 58})
# GRE and the IPv6 Mobility Header: Linux matches selector ports against the GRE key
# halves and the MH type, which our flows do not extract; ports there are refused.
UNEXTRACTED_PORT_PROTOCOLS: Final = frozenset({47, 135})
# XFRM_MAX_DEPTH: the kernel refuses longer template chains.
MAX_TEMPLATES: Final = 6
_U32: Final = 0xFFFFFFFF
_INDEX_STEP: Final = 8


def _to_network(value: NetworkLike, what: str) -> IPv4Network | IPv6Network:
    if isinstance(value, IPv4Network | IPv6Network):
        return value
    if isinstance(value, IPv4Address | IPv6Address):
        return ip_network(value)
    if not isinstance(value, str):
        raise ConfigError(f"selector {what}: expected an address or network, not {value!r}")
    try:
        # Host bits are masked off ("198.51.100.7/24" is 198.51.100.0/24), as setkey does.
        return ip_network(value, strict=False)
    except ValueError as exc:
        raise ConfigError(f"selector {what}: {exc}") from None


def _to_address(value: AddressLike, what: str) -> IPv4Address | IPv6Address:
    if isinstance(value, IPv4Address | IPv6Address):
        return value
    if not isinstance(value, str):
        raise ConfigError(f"template {what}: expected an address, not {value!r}")
    try:
        return ip_address(value)
    except ValueError as exc:
        raise ConfigError(f"template {what}: {exc}") from None


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _to_ports(value: PortRange, top: int, what: str) -> tuple[int, int] | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        lo = hi = value
    elif isinstance(value, tuple) and len(value) == 2 and _is_int(value[0]) and _is_int(value[1]):
        lo, hi = value
    else:
        raise ConfigError(f"selector {what}: expected None, an int or (lo, hi), not {value!r}")
    if not 0 <= lo <= hi <= top:
        raise ConfigError(f"selector {what}: range {lo}-{hi} is not within 0-{top}")
    if lo == 0 and hi == top:
        # The full range is ANY (RFC 4301 §4.4.1.1), so it also matches OPAQUE ports.
        return None
    return (lo, hi)


@dataclass(frozen=True, slots=True)
class Selector:
    """Which packets a policy applies to (RFC 4301 §4.4.1.1).

    ``src``/``dst`` are networks (a host address means /32 or /128; ``None`` means any
    address of the other side's family); both must be of one family. ``proto`` None
    means any protocol. ``sport``/``dport`` are inclusive ranges (an int is a single
    port; None or the full range is ANY), allowed with any protocol but GRE and MH, as
    in Linux: for ICMP and ICMPv6 they hold the type and the code (0-255), otherwise
    0-65535. A packet is matched on its ports, its ICMP type/code, or 0 when it has
    neither (see the module docstring). ``dev`` limits the policy to one interface.
    """

    src: NetworkLike | None
    dst: NetworkLike | None
    proto: int | None = None
    sport: PortRange = None
    dport: PortRange = None
    dev: str | None = None
    # Derived in __post_init__ for the index: family (4 or 6) and the networks as ints.
    family: int = field(init=False, repr=False, compare=False)
    src_int: int = field(init=False, repr=False, compare=False)
    src_len: int = field(init=False, repr=False, compare=False)
    dst_int: int = field(init=False, repr=False, compare=False)
    dst_len: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.src is not None:
            src = _to_network(self.src, "src")
            dst = _any_of(src.version) if self.dst is None else _to_network(self.dst, "dst")
        elif self.dst is not None:
            dst = _to_network(self.dst, "dst")
            src = _any_of(dst.version)
        else:
            raise ConfigError("selector: src and dst cannot both be None (which family?)")
        if src.version != dst.version:
            raise ConfigError(f"selector: src {src} and dst {dst} are of different families")
        proto = self.proto
        if proto is not None and (not _is_int(proto) or not 0 <= proto <= 255):
            raise ConfigError(f"selector proto: expected None or 0-255, not {proto!r}")
        if proto == 0:
            # xfrm's 0 is "any protocol"; no packet has an upper layer of 0 once the
            # IPv6 extension headers are walked.
            proto = None
        top = 255 if proto in ICMP_PROTOCOLS else 65535
        sport = _to_ports(self.sport, top, "sport")
        dport = _to_ports(self.dport, top, "dport")
        if proto in UNEXTRACTED_PORT_PROTOCOLS and (sport is not None or dport is not None):
            # Linux would match these against the GRE key or the MH type (xfrm_flowi_sport);
            # refusing is better than a policy that silently matches something else.
            raise ConfigError(
                f"selector: ports of proto {proto} (GRE key, MH type) are not supported"
            )
        dev = self.dev
        if dev is not None and (not isinstance(dev, str) or not dev):
            raise ConfigError(f"selector dev: expected None or an interface name, not {dev!r}")
        setattr_ = object.__setattr__
        setattr_(self, "src", src)
        setattr_(self, "dst", dst)
        setattr_(self, "proto", proto)
        setattr_(self, "sport", sport)
        setattr_(self, "dport", dport)
        setattr_(self, "family", src.version)
        setattr_(self, "src_int", int(src.network_address))
        setattr_(self, "src_len", src.prefixlen)
        setattr_(self, "dst_int", int(dst.network_address))
        setattr_(self, "dst_len", dst.prefixlen)

    @property
    def src_net(self) -> IPv4Network | IPv6Network:
        """``src`` with its normalised type."""
        return _as_network(self.src)

    @property
    def dst_net(self) -> IPv4Network | IPv6Network:
        """``dst`` with its normalised type."""
        return _as_network(self.dst)

    @property
    def sport_range(self) -> tuple[int, int] | None:
        """``sport`` with its normalised type: None (ANY) or an inclusive (lo, hi)."""
        return self.sport if isinstance(self.sport, tuple) else None

    @property
    def dport_range(self) -> tuple[int, int] | None:
        """``dport`` with its normalised type: None (ANY) or an inclusive (lo, hi)."""
        return self.dport if isinstance(self.dport, tuple) else None


def _any_of(version: int) -> IPv4Network | IPv6Network:
    return IPv4Network("0.0.0.0/0") if version == 4 else IPv6Network("::/0")


def _as_network(value: NetworkLike | None) -> IPv4Network | IPv6Network:
    if isinstance(value, IPv4Network | IPv6Network):
        return value
    raise ConfigError(f"selector: {value!r} was not normalised")  # only after misuse


@dataclass(frozen=True, slots=True)
class Template:
    """How to protect matching traffic: one SA to find or negotiate (xfrm_user_tmpl).

    ``src``/``dst`` are the tunnel endpoints (None in transport mode); ``reqid`` 0 and
    ``spi`` 0 mean any. ``level`` is setkey's: ``required`` (an SA must exist),
    ``use`` (use one if there is one) or ``unique`` (an SA for this policy only).
    """

    proto: str = "esp"
    mode: str = "tunnel"
    src: AddressLike | None = None
    dst: AddressLike | None = None
    reqid: int = 0
    level: str = "required"
    spi: int | None = 0

    def __post_init__(self) -> None:
        if self.proto not in TEMPLATE_PROTOS:
            raise ConfigError(f"template proto: expected esp, ah or ipcomp, not {self.proto!r}")
        if self.mode not in TEMPLATE_MODES:
            raise ConfigError(f"template mode: expected tunnel or transport, not {self.mode!r}")
        if self.level not in TEMPLATE_LEVELS:
            raise ConfigError(
                f"template level: expected required, use or unique, not {self.level!r}"
            )
        for name in ("reqid", "spi"):
            value = getattr(self, name)
            if name == "spi" and value is None:
                value = 0
            if not _is_int(value) or not 0 <= value <= _U32:
                raise ConfigError(f"template {name}: expected an int in 0-{_U32}, not {value!r}")
            object.__setattr__(self, name, value)
        if self.mode == "tunnel":
            if self.src is None or self.dst is None:
                raise ConfigError("template: tunnel mode needs src and dst endpoints")
            src = _to_address(self.src, "src")
            dst = _to_address(self.dst, "dst")
            if src.version != dst.version:
                raise ConfigError(f"template: endpoints {src} and {dst} differ in family")
            object.__setattr__(self, "src", src)
            object.__setattr__(self, "dst", dst)
        elif self.src is not None or self.dst is not None:
            # Transport mode protects the packet's own addresses (RFC 4301 §4.1).
            raise ConfigError("template: transport mode takes no src/dst endpoints")


@dataclass(frozen=True, slots=True)
class Policy:
    """One SPD entry (RFC 4301 §4.4.1.2).

    ``priority``: LOWER wins, as in xfrm. ``templates``: at least one for ``protect``,
    none otherwise. ``index`` 0 lets the SPD choose one on ``add``; a non-zero index
    must carry the direction in its low three bits, as the kernel requires.
    """

    direction: str
    selector: Selector
    action: str = "protect"
    priority: int = 0
    templates: Sequence[Template] = ()
    index: int = 0

    def __post_init__(self) -> None:
        if self.direction not in DIRECTIONS:
            raise ConfigError(f"policy direction: expected in, out or fwd, not {self.direction!r}")
        if not isinstance(self.selector, Selector):
            raise ConfigError(f"policy selector: expected a Selector, not {self.selector!r}")
        if self.action not in ACTIONS:
            raise ConfigError(
                f"policy action: expected protect, bypass or discard, not {self.action!r}"
            )
        if not _is_int(self.priority) or not 0 <= self.priority <= _U32:
            raise ConfigError(f"policy priority: expected an int in 0-{_U32}")
        if isinstance(self.templates, str | bytes) or not isinstance(self.templates, Sequence):
            raise ConfigError("policy templates: expected a sequence of Template")
        templates = tuple(self.templates)
        if not all(isinstance(t, Template) for t in templates):
            raise ConfigError("policy templates: expected a sequence of Template")
        if self.action == "protect" and not templates:
            raise ConfigError("policy: protect needs at least one template")
        if self.action != "protect" and templates:
            raise ConfigError(f"policy: {self.action} takes no templates")
        if len(templates) > MAX_TEMPLATES:
            raise ConfigError(f"policy: at most {MAX_TEMPLATES} templates")
        if not _is_int(self.index) or not 0 <= self.index <= _U32:
            raise ConfigError(f"policy index: expected an int in 0-{_U32}")
        if self.index and self.index & 7 != DIRECTIONS[self.direction]:
            # The kernel refuses (EINVAL) an index whose low bits name another direction.
            raise ConfigError(f"policy index {self.index} does not encode {self.direction}")
        object.__setattr__(self, "templates", templates)


@dataclass(slots=True)
class PolicyStats:
    """Mutable counters of one policy (xfrm's curlft): packets, bytes, last use."""

    hits: int = 0
    bytes: int = 0
    last_use: float | None = None


class _Record:
    """What the SPD keeps per policy: the policy, its index entry and its counters."""

    __slots__ = ("entry", "policy", "stats")

    def __init__(self, policy: Policy, entry: IndexEntry[Policy]) -> None:
        self.policy = policy
        self.entry = entry
        self.stats = PolicyStats()


_MISS: Final = object()


class SecurityPolicyDatabase:
    """All policies of the three directions, both address families."""

    def __init__(self, cache_size: int = 4096, epoch: ChangeEpoch | None = None) -> None:
        if not _is_int(cache_size) or cache_size < 0:
            raise ConfigError("cache_size: expected an int >= 0")
        # Bumped with ``generation``; may be shared with a SAD (see ChangeEpoch).
        self.epoch = epoch if epoch is not None else ChangeEpoch()
        # Bumped by every change: a decision taken at an older value is stale. A plain
        # attribute rather than a property: the processor reads it for every packet.
        self.generation = 0
        self._records: dict[int, _Record] = {}
        self._by_selector: dict[tuple[str, Selector], int] = {}
        self._tables: dict[str, tuple[TupleSpaceTable[Policy], TupleSpaceTable[Policy]]] = {
            direction: (TupleSpaceTable(32), TupleSpaceTable(128)) for direction in DIRECTIONS
        }
        self._seq = 0
        self._next_index = 0
        self._cache_size = cache_size
        self._cache: dict[
            tuple[str, bytes, bytes, int, int | None, int | None, str | None], Policy | None
        ] = {}

    # -- changes -------------------------------------------------------------------

    def add(self, policy: Policy) -> int:
        """Insert ``policy``; its index (assigned here) is returned.

        Raises ``KeyApiError(EEXIST)`` if the direction already has a policy with an
        equal selector, whatever its priority (``XFRM_MSG_NEWPOLICY``, excl=1).
        """
        if not isinstance(policy, Policy):
            raise ConfigError(f"add: expected a Policy, not {policy!r}")
        if (policy.direction, policy.selector) in self._by_selector:
            raise KeyApiError(errno.EEXIST, "a policy with this direction and selector exists")
        return self._insert(policy, self._new_index(policy), self._new_seq())

    def update(self, policy: Policy) -> int:
        """Replace the policy with the same direction and selector, or add it.

        A replaced policy keeps its index, and its place among equal priorities if the
        priority did not change (``XFRM_MSG_UPDPOLICY``); its counters start afresh.
        """
        if not isinstance(policy, Policy):
            raise ConfigError(f"update: expected a Policy, not {policy!r}")
        index = self._by_selector.get((policy.direction, policy.selector))
        if index is None:
            return self._insert(policy, self._new_index(policy), self._new_seq())
        old = self._remove(index)
        seq = old.entry.key & ((1 << 64) - 1)
        if old.policy.priority != policy.priority:
            # Linux re-inserts after every policy of the new priority.
            seq = self._new_seq()
        return self._insert(policy, index, seq)

    def delete(self, index: int) -> Policy:
        """Remove the policy ``index`` and return it (``KeyApiError(ENOENT)`` if none)."""
        if index not in self._records:
            raise KeyApiError(errno.ENOENT, f"no policy with index {index}")
        return self._remove(index).policy

    def delete_by_selector(self, direction: str, selector: Selector) -> Policy:
        """Remove the policy of ``direction`` whose selector equals ``selector``."""
        return self.delete(self._index_of(direction, selector))

    def flush(self, direction: str | None = None) -> int:
        """Remove every policy (of ``direction`` if given); return how many."""
        if direction is not None and direction not in DIRECTIONS:
            raise ConfigError(f"flush: unknown direction {direction!r}")
        directions = list(DIRECTIONS) if direction is None else [direction]
        doomed = [
            index
            for index, record in self._records.items()
            if record.policy.direction in directions
        ]
        # Whole tables are dropped at once: one by one would replan the probe order
        # and empty the cache for every policy.
        for index in doomed:
            policy = self._records.pop(index).policy
            del self._by_selector[(policy.direction, policy.selector)]
        for name in directions:
            for table in self._tables[name]:
                table.clear()
        if doomed:
            self._changed()
        return len(doomed)

    # -- queries -------------------------------------------------------------------

    def get(self, index: int) -> Policy:
        """The policy ``index`` (``KeyApiError(ENOENT)`` if none)."""
        record = self._records.get(index)
        if record is None:
            raise KeyApiError(errno.ENOENT, f"no policy with index {index}")
        return record.policy

    def get_by_selector(self, direction: str, selector: Selector) -> Policy:
        """The policy of ``direction`` whose selector equals ``selector``."""
        return self._records[self._index_of(direction, selector)].policy

    def stats(self, index: int) -> PolicyStats:
        """The live counters of the policy ``index`` (``KeyApiError(ENOENT)`` if none)."""
        record = self._records.get(index)
        if record is None:
            raise KeyApiError(errno.ENOENT, f"no policy with index {index}")
        return record.stats

    def counters_of(self, policy: Policy) -> PolicyStats | None:
        """The live counters of exactly this Policy object, None if it is stale (deleted
        or replaced): what ``count`` updates, for a caller that holds them while the
        generation stays the same."""
        record = self._records.get(policy.index)
        return record.stats if record is not None and record.policy is policy else None

    def dump(self) -> list[Policy]:
        """Every policy: direction by direction (in, out, fwd), each in lookup order."""
        records = sorted(
            self._records.values(),
            key=lambda r: (DIRECTIONS[r.policy.direction], r.entry.key),
        )
        return [record.policy for record in records]

    def __len__(self) -> int:
        return len(self._records)

    def count(self, policy: Policy, nbytes: int, now: float) -> None:
        """Account one packet of ``nbytes`` to ``policy`` (a no-op if it is gone)."""
        record = self._records.get(policy.index)
        # A stale Policy (deleted, or replaced by update) must not feed its successor.
        if record is not None and record.policy is policy:
            stats = record.stats
            stats.hits += 1
            stats.bytes += nbytes
            stats.last_use = now

    def lookup(
        self,
        direction: str,
        src: AddressLike,
        dst: AddressLike,
        proto: int,
        sport: int | None = None,
        dport: int | None = None,
        dev: str | None = None,
    ) -> Policy | None:
        """The policy for a packet, or None: lowest priority number, then oldest.

        ``sport``/``dport`` None is a packet without ports (another protocol, or a
        fragment): it is matched as ports 0, as Linux does; for ICMP pass the type as
        ``sport`` and the code as ``dport``.
        """
        try:
            src_packed = ip_address(src).packed
            dst_packed = ip_address(dst).packed
        except ValueError as exc:
            raise ConfigError(f"lookup: {exc}") from None
        return self.lookup_packed(direction, src_packed, dst_packed, proto, sport, dport, dev)

    def lookup_packed(
        self,
        direction: str,
        src: bytes,
        dst: bytes,
        proto: int,
        sport: int | None,
        dport: int | None,
        dev: str | None = None,
    ) -> Policy | None:
        """``lookup`` for the data path: 4- or 16-byte addresses as in the IP header."""
        if type(src) is not bytes:
            src = bytes(src)
        if type(dst) is not bytes:
            dst = bytes(dst)
        if self._cache_size:
            key = (direction, src, dst, proto, sport, dport, dev)
            hit = self._cache.get(key, _MISS)
            if hit is not _MISS:
                return hit  # type: ignore[return-value]
        tables = self._tables.get(direction)
        if tables is None:
            raise ConfigError(f"lookup: unknown direction {direction!r}")
        size = len(src)
        if size != len(dst) or (size != 4 and size != 16):
            raise ParseError(f"lookup: addresses of {len(src)} and {len(dst)} bytes")
        entry = tables[size == 16].lookup(
            int.from_bytes(src), int.from_bytes(dst), proto, sport, dport, dev
        )
        result = None if entry is None else entry.value
        if self._cache_size:
            cache = self._cache
            if len(cache) >= self._cache_size:
                # Bounded by emptying: cheaper than tracking recency per packet.
                cache.clear()
            cache[key] = result
        return result

    # -- internals -----------------------------------------------------------------

    def _index_of(self, direction: str, selector: Selector) -> int:
        index = self._by_selector.get((direction, selector))
        if index is None:
            raise KeyApiError(errno.ENOENT, f"no {direction} policy with that selector")
        return index

    def _new_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _new_index(self, policy: Policy) -> int:
        # Linux xfrm_gen_index: a requested index is honoured if free; otherwise (or if
        # none was asked for) the next free value of a counter stepping by 8, with the
        # direction in the low three bits.
        if policy.index and policy.index not in self._records:
            return policy.index
        direction = DIRECTIONS[policy.direction]
        while True:
            index = (self._next_index | direction) & _U32
            self._next_index = (self._next_index + _INDEX_STEP) & _U32
            if index and index not in self._records:
                return index

    def _insert(self, policy: Policy, index: int, seq: int) -> int:
        if policy.index != index:
            policy = replace(policy, index=index)
        selector = policy.selector
        width = 32 if selector.family == 4 else 128
        entry: IndexEntry[Policy] = IndexEntry(
            (policy.priority << 64) | seq,
            policy,
            src=selector.src_int,
            slen=selector.src_len,
            dst=selector.dst_int,
            dlen=selector.dst_len,
            width=width,
            proto=selector.proto,
            sport=selector.sport_range,
            dport=selector.dport_range,
            dev=selector.dev,
        )
        self._tables[policy.direction][selector.family == 6].add(entry)
        self._records[index] = _Record(policy, entry)
        self._by_selector[(policy.direction, selector)] = index
        self._changed()
        return index

    def _remove(self, index: int) -> _Record:
        record = self._records.pop(index)
        policy = record.policy
        del self._by_selector[(policy.direction, policy.selector)]
        self._tables[policy.direction][policy.selector.family == 6].remove(record.entry)
        self._changed()
        return record

    def _changed(self) -> None:
        self.generation += 1
        self.epoch.value += 1
        self._cache.clear()

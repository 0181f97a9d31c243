"""The Security Association Database (RFC 4301 §4.4.2), kernel-shaped.

Simplex SAs, found for inbound packets by (destination, SPI, protocol) and for outbound
templates by (source, destination, protocol, mode, reqid), both in O(1). SPIs are allocated
GETSPI-style: a random unique SPI in a range, held by a *larval* entry until a key manager
completes it with keys (``update``) or it expires (30 s, like the kernel's ACQ states).

States follow PF_KEY's: larval -> mature -> dying (soft lifetime hit: rekey now) -> dead
(hard lifetime hit: removed). Lifetimes by bytes and packets are checked by the processor
after each packet against ``SadEntry.byte_limit``/``packet_limit`` (one comparison each);
lifetimes by time are deadlines in a heap, walked by ``expire(now)``. Nothing here sleeps
or reads a clock: ``now`` is passed in.
"""

from __future__ import annotations

import errno
import heapq
import ipaddress
import secrets
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum

from pyipsec.engine.events import EventQueue, Expire, IPAddress, SaAdded, SaDeleted, SaId
from pyipsec.engine.lifetime import Lifetime
from pyipsec.engine.sa import Mode, SecurityAssociation
from pyipsec.engine.stats import ChangeEpoch
from pyipsec.errors import ConfigError, KeyApiError

LARVAL_LIFETIME = 30.0  # seconds a GETSPI reservation lives (the kernel's XFRM_ACQ_EXPIRES)
_UNLIMITED = 1 << 64  # a count no SA reaches


class SaState(StrEnum):
    LARVAL = "larval"
    MATURE = "mature"
    DYING = "dying"
    DEAD = "dead"


def _addr(value: str | IPAddress) -> IPAddress:
    if isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return value  # ip_address() would format and parse it again: a cost per SA
    try:
        return ipaddress.ip_address(value)
    except ValueError as exc:
        raise ConfigError(f"not an IP address: {value!r}") from exc


def _sa_addr(value: IPAddress) -> IPAddress | bytes:
    # The SA takes packed octets without parsing text; an address object would be
    # formatted and parsed again there. A scoped IPv6 address keeps its object (the
    # octets would lose the scope).
    if isinstance(value, ipaddress.IPv6Address) and value.scope_id is not None:
        return value
    return value.packed


@dataclass(frozen=True, slots=True)
class SASpec:
    """Everything needed to create an SA: what PF_KEY ADD/UPDATE or xfrm NEWSA carry.

    Key manager and backends pass specs, not live SAs, so the Linux-kernel backend can install
    the same thing the embedded engine builds. Keys are kept out of ``repr``.
    """

    spi: int
    src: IPAddress
    dst: IPAddress
    proto: str = "esp"
    mode: Mode = "tunnel"
    enc: str = "aes128gcm16"
    enc_key: bytes = field(default=b"", repr=False)
    integ: str | None = None
    integ_key: bytes = field(default=b"", repr=False)
    esn: bool = False
    replay_window: int = 32
    encap: tuple[int, int] | None = None
    reqid: int = 0
    soft: Lifetime = field(default_factory=Lifetime)
    hard: Lifetime = field(default_factory=Lifetime)
    tfc_pad: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "src", _addr(self.src))
        object.__setattr__(self, "dst", _addr(self.dst))
        if not 0 < self.spi <= 0xFFFFFFFF:
            raise ConfigError(f"SPI must be 1..0xffffffff, got {self.spi}")
        if self.proto != "esp":
            raise ConfigError(f"only ESP SAs are supported, not {self.proto!r}")
        if self.mode not in ("tunnel", "transport"):
            raise ConfigError(f"mode must be tunnel or transport, not {self.mode!r}")

    @property
    def id(self) -> SaId:
        return SaId(self.dst, self.spi, self.proto)

    def build(self) -> SecurityAssociation:
        """The live SA (cipher contexts made once, here)."""
        return SecurityAssociation(
            spi=self.spi,
            src=_sa_addr(self.src),
            dst=_sa_addr(self.dst),
            mode=self.mode,
            enc=self.enc,
            enc_key=self.enc_key,
            integ=self.integ,
            integ_key=self.integ_key,
            esn=self.esn,
            replay_window=self.replay_window,
            encap=self.encap,
            reqid=self.reqid,
            soft=self.soft,
            hard=self.hard,
            tfc_pad=self.tfc_pad,
        )


class SadEntry:
    """One SAD slot: the spec, the live SA (None while larval), state and lifetime bookkeeping."""

    __slots__ = (
        "add_time",
        "byte_limit",
        "dst",
        "dst_packed",
        "encap",
        "id",
        "local",
        "mode",
        "packet_limit",
        "peer",
        "proto",
        "reqid",
        "sa",
        "soft_fired",
        "spec",
        "spi",
        "src",
        "src_packed",
        "state",
        "timer_gen",
        "use_time",
    )

    def __init__(
        self,
        *,
        spi: int,
        src: IPAddress,
        dst: IPAddress,
        proto: str,
        mode: str,
        reqid: int,
        now: float,
    ) -> None:
        self.spi = spi
        self.src = src
        self.dst = dst
        self.src_packed = src.packed
        self.dst_packed = dst.packed
        self.proto = proto
        self.mode = mode
        self.reqid = reqid
        self.id = SaId(dst, spi, proto)
        self.peer = str(dst)  # what a socket's sendto wants, computed once
        self.local = str(src)
        self.encap: tuple[int, int] | None = None
        self.spec: SASpec | None = None
        self.sa: SecurityAssociation | None = None
        self.state = SaState.LARVAL
        self.add_time = now
        self.use_time: float | None = None
        self.soft_fired = False
        self.timer_gen = 0  # time limits armed under an older generation are stale
        self.byte_limit = _UNLIMITED
        self.packet_limit = _UNLIMITED

    @classmethod
    def from_spec(cls, spec: SASpec, now: float, sa: SecurityAssociation | None = None) -> SadEntry:
        """A mature entry for ``spec``, added at ``now``. ``sa`` is the live SA when this
        process carries the traffic (the engine's SAD); without it the entry only
        describes an SA another data plane holds (the kernel's, ``io.kernel_backend``)."""
        entry = cls(
            spi=spec.spi,
            src=spec.src,
            dst=spec.dst,
            proto=spec.proto,
            mode=spec.mode,
            reqid=spec.reqid,
            now=now,
        )
        if sa is not None:
            entry._mature(spec, sa)
        else:
            entry.spec, entry.encap, entry.state = spec, spec.encap, SaState.MATURE
        return entry

    def __repr__(self) -> str:
        return f"<SadEntry {self.id} {self.state}>"

    def _mature(self, spec: SASpec, sa: SecurityAssociation) -> None:
        self.spec, self.sa = spec, sa
        self.src, self.dst, self.mode, self.reqid = spec.src, spec.dst, spec.mode, spec.reqid
        self.src_packed = spec.src.packed
        self.local = str(spec.src)
        self.encap = spec.encap
        self.state = SaState.MATURE
        self._set_count_limits()

    def _set_count_limits(self) -> None:
        """The nearest byte/packet threshold not yet crossed (soft first, then hard)."""
        spec = self.spec
        if spec is None:
            return
        life = spec.hard if self.soft_fired else spec.soft
        hard = spec.hard
        self.byte_limit = min(
            life.bytes if life.bytes is not None else _UNLIMITED,
            hard.bytes if hard.bytes is not None else _UNLIMITED,
        )
        self.packet_limit = min(
            life.packets if life.packets is not None else _UNLIMITED,
            hard.packets if hard.packets is not None else _UNLIMITED,
        )

    def lifetime_left(self, now: float) -> dict[str, float | None]:
        """Seconds to the soft and hard time limits (None = no limit), for status output."""
        spec = self.spec
        out: dict[str, float | None] = {"soft": None, "hard": None}
        if spec is None:
            out["hard"] = self.add_time + LARVAL_LIFETIME - now
            return out
        for name, life in (("soft", spec.soft), ("hard", spec.hard)):
            ends = [self.add_time + life.add_time] if life.add_time is not None else []
            if life.use_time is not None and self.use_time is not None:
                ends.append(self.use_time + life.use_time)
            out[name] = min(ends) - now if ends else None
        return out


_OutKey = tuple[bytes, bytes, str, str]  # (src, dst, proto, mode)


class SecurityAssociationDatabase:
    """The SAD. Mutations emit events into the shared ``EventQueue``."""

    def __init__(self, events: EventQueue | None = None, epoch: ChangeEpoch | None = None) -> None:
        self.events = events if events is not None else EventQueue()
        # Bumped with ``generation``; may be shared with an SPD (see ChangeEpoch).
        self.epoch = epoch if epoch is not None else ChangeEpoch()
        self._by_id: dict[tuple[bytes, int, str], SadEntry] = {}
        self._by_template: dict[_OutKey, list[SadEntry]] = {}
        # (when, tie-break, entry, entry.timer_gen when armed, cause, hard)
        self._timers: list[tuple[float, int, SadEntry, int, str, bool]] = []
        self._timer_seq = 0
        self.generation = 0  # bumped on every change that can alter outbound selection

    # -- lookups (hot path) -------------------------------------------------------------
    def lookup(self, dst_packed: bytes, spi: int, proto: str = "esp") -> SadEntry | None:
        """Inbound: the entry for (dst, spi, proto), any state; O(1)."""
        return self._by_id.get((dst_packed, spi, proto))

    @property
    def lookup_table(self) -> Mapping[tuple[bytes, int, str], SadEntry]:
        """What ``lookup`` reads, keyed (dst, SPI, proto): a read-only view for a hot
        path that binds it once (the same dict for the database's whole life)."""
        return self._by_id

    def find_outbound(
        self, src_packed: bytes, dst_packed: bytes, proto: str, mode: str, reqid: int
    ) -> SadEntry | None:
        """The best usable SA for an outbound template, as the kernel picks it: mature over
        dying, then the most recently added. ``reqid`` 0 in the template accepts any SA."""
        best: SadEntry | None = None
        for entry in self._by_template.get((src_packed, dst_packed, proto, mode), ()):
            if reqid and entry.reqid != reqid:
                continue
            if entry.state is SaState.MATURE:
                if (
                    best is None
                    or best.state is not SaState.MATURE
                    or entry.add_time > best.add_time
                ):
                    best = entry
            elif entry.state is SaState.DYING and (
                best is None or (best.state is SaState.DYING and entry.add_time > best.add_time)
            ):
                best = entry
        return best

    # -- key-management operations (PF_KEY/xfrm semantics) -------------------------------
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
        """Reserve a unique random SPI in [spi_min, spi_max] for (dst, proto): a larval SA."""
        src_a, dst_a = _addr(src), _addr(dst)
        # SPIs 1..255 are reserved by IANA (RFC 4303 §2.1); 0 means "none".
        lo, hi = max(spi_min, 0x100), min(spi_max, 0xFFFFFFFF)
        if lo > hi:
            raise KeyApiError(errno.EINVAL, f"empty SPI range {spi_min:#x}-{spi_max:#x}")
        dst_packed = dst_a.packed
        span = hi - lo + 1
        for _ in range(64 if span > 64 else span * 4):
            spi = lo + secrets.randbelow(span)
            if (dst_packed, spi, proto) not in self._by_id:
                break
        else:
            spi = next(
                (s for s in range(lo, hi + 1) if (dst_packed, s, proto) not in self._by_id), 0
            )
            if not spi:
                raise KeyApiError(errno.ENOENT, "no free SPI in the requested range")
        entry = SadEntry(
            spi=spi, src=src_a, dst=dst_a, proto=proto, mode=mode, reqid=reqid, now=now
        )
        self._by_id[(dst_packed, spi, proto)] = entry
        self._push_timer(now + LARVAL_LIFETIME, entry, "larval", True)
        return spi

    def add(self, spec: SASpec, now: float) -> SadEntry:
        """Add a complete SA; EEXIST if (dst, spi, proto) is taken (larval included)."""
        key = (spec.dst.packed, spec.spi, spec.proto)
        if key in self._by_id:
            raise KeyApiError(errno.EEXIST, f"SA {spec.id} exists")
        entry = SadEntry.from_spec(spec, now, self._build(spec))
        self._by_id[key] = entry
        self._index(entry, now)
        self.events.put(SaAdded(entry.id, update=False))
        return entry

    def update(self, spec: SASpec, now: float) -> SadEntry:
        """Complete a larval SA with keys (GETSPI -> UPDATE), or change a mature SA's
        lifetimes and encapsulation (the rest of a live SA cannot change, as in Linux:
        EINVAL). ESRCH if there is no such SA."""
        key = (spec.dst.packed, spec.spi, spec.proto)
        entry = self._by_id.get(key)
        if entry is None or entry.state is SaState.DEAD:
            raise KeyApiError(errno.ESRCH, f"no SA {spec.id}")
        if entry.state is SaState.LARVAL:
            entry._mature(spec, self._build(spec))
            entry.add_time = now
            self._index(entry, now)
        else:
            old, sa = entry.spec, entry.sa
            if old is None or sa is None or _replace_lifetimes(old, spec) != spec:
                raise KeyApiError(errno.EINVAL, "only lifetimes and NAT-T ports may change")
            if (old.encap is None) != (spec.encap is None):
                raise KeyApiError(errno.EINVAL, "UDP encapsulation cannot be added or removed")
            # A NAT mapping changed (RFC 3948 §4): same SA, new ports; keys, sequence
            # numbers and replay state carry on.
            sa.encap = spec.encap
            entry._mature(spec, sa)
            entry.state = SaState.DYING if entry.soft_fired else SaState.MATURE
            entry.timer_gen += 1  # the old lifetimes' deadlines no longer apply
            self._arm_time_limits(entry)
        self.generation += 1
        self.epoch.value += 1
        self.events.put(SaAdded(entry.id, update=True))
        return entry

    def delete(self, dst: str | IPAddress, spi: int, proto: str = "esp") -> SadEntry:
        entry = self._by_id.get((_addr(dst).packed, spi, proto))
        if entry is None:
            raise KeyApiError(errno.ESRCH, f"no SA {proto} spi 0x{spi:08x} dst {dst}")
        self._remove(entry, "deleted")
        return entry

    def get(self, dst: str | IPAddress, spi: int, proto: str = "esp") -> SadEntry:
        entry = self._by_id.get((_addr(dst).packed, spi, proto))
        if entry is None:
            raise KeyApiError(errno.ESRCH, f"no SA {proto} spi 0x{spi:08x} dst {dst}")
        return entry

    def flush(self, proto: str | None = None) -> int:
        doomed = [e for e in self._by_id.values() if proto is None or e.proto == proto]
        for entry in doomed:
            self._remove(entry, "flushed")
        return len(doomed)

    def dump(self) -> list[SadEntry]:
        return sorted(self._by_id.values(), key=lambda e: (e.add_time, e.spi))

    def __iter__(self) -> Iterator[SadEntry]:
        return iter(list(self._by_id.values()))

    def __len__(self) -> int:
        return len(self._by_id)

    # -- lifetimes ----------------------------------------------------------------------
    def first_use(self, entry: SadEntry, now: float) -> None:
        """Called by the processor the first time an SA carries a packet."""
        entry.use_time = now
        spec = entry.spec
        if spec is None:
            return
        for hard, life in ((False, spec.soft), (True, spec.hard)):
            if life.use_time is not None:
                self._push_timer(now + life.use_time, entry, "use_time", hard)

    def count_limit_hit(self, entry: SadEntry) -> None:
        """The processor saw counters reach ``byte_limit``/``packet_limit``."""
        sa, spec = entry.sa, entry.spec
        if sa is None or spec is None or entry.state is SaState.DEAD:
            return
        c = sa.counters
        for hard, life in ((True, spec.hard), (False, spec.soft)):
            if hard is False and entry.soft_fired:
                continue
            if life.bytes is not None and c.bytes >= life.bytes:
                self._fire(entry, hard, "bytes")
                return
            if life.packets is not None and c.packets >= life.packets:
                self._fire(entry, hard, "packets")
                return

    def expire_now(self, entry: SadEntry, cause: str) -> None:
        """Hard-expire an SA at once (e.g. its sequence numbers ran out)."""
        if entry.state is not SaState.DEAD:
            self._fire(entry, True, cause)

    def next_timer(self) -> float | None:
        while self._timers and (
            self._timers[0][2].state is SaState.DEAD
            or self._timers[0][3] != self._timers[0][2].timer_gen
        ):
            heapq.heappop(self._timers)
        return self._timers[0][0] if self._timers else None

    def expire(self, now: float) -> None:
        """Fire every time-based lifetime that is due."""
        while self._timers and self._timers[0][0] <= now:
            _, _, entry, gen, cause, hard = heapq.heappop(self._timers)
            if entry.state is SaState.DEAD or gen != entry.timer_gen:
                continue
            if cause == "larval":
                if entry.state is SaState.LARVAL:
                    self.events.put(Expire(entry.id, entry.src, entry.reqid, True, "larval"))
                    self._remove(entry, "larval-expired")
                continue
            if not hard and entry.soft_fired:
                continue
            self._fire(entry, hard, cause)

    # -- internals ----------------------------------------------------------------------
    @staticmethod
    def _build(spec: SASpec) -> SecurityAssociation:
        try:
            return spec.build()
        except ConfigError as exc:
            raise KeyApiError(errno.EINVAL, str(exc)) from exc

    def _index(self, entry: SadEntry, now: float) -> None:
        key = (entry.src_packed, entry.dst_packed, entry.proto, entry.mode)
        self._by_template.setdefault(key, []).append(entry)
        self._arm_time_limits(entry)
        self.generation += 1
        self.epoch.value += 1

    def _arm_time_limits(self, entry: SadEntry) -> None:
        spec = entry.spec
        if spec is None:
            return
        for hard, life in ((False, spec.soft), (True, spec.hard)):
            if life.add_time is not None:
                self._push_timer(entry.add_time + life.add_time, entry, "add_time", hard)
            if life.use_time is not None and entry.use_time is not None:
                self._push_timer(entry.use_time + life.use_time, entry, "use_time", hard)

    def _push_timer(self, when: float, entry: SadEntry, cause: str, hard: bool) -> None:
        self._timer_seq += 1
        heapq.heappush(self._timers, (when, self._timer_seq, entry, entry.timer_gen, cause, hard))

    def _fire(self, entry: SadEntry, hard: bool, cause: str) -> None:
        self.events.put(Expire(entry.id, entry.src, entry.reqid, hard, cause))
        if hard:
            self._remove(entry, "expired")
            return
        entry.soft_fired = True
        entry.state = SaState.DYING
        entry._set_count_limits()
        self.generation += 1
        self.epoch.value += 1

    def _remove(self, entry: SadEntry, reason: str) -> None:
        self._by_id.pop((entry.dst_packed, entry.spi, entry.proto), None)
        key = (entry.src_packed, entry.dst_packed, entry.proto, entry.mode)
        siblings = self._by_template.get(key)
        if siblings is not None and entry in siblings:
            siblings.remove(entry)
            if not siblings:
                del self._by_template[key]
        entry.state = SaState.DEAD
        self.generation += 1
        self.epoch.value += 1
        self.events.put(SaDeleted(entry.id, reason))


def _replace_lifetimes(old: SASpec, new: SASpec) -> SASpec:
    """``old`` with the fields an update of a live SA may change taken from ``new``."""
    return replace(old, soft=new.soft, hard=new.hard, encap=new.encap)

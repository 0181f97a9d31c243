"""Lifetimes of negotiated SAs, from a connection's configuration (sans-I/O).

CHILD SAs (swanctl ``children.<name>``): the engine enforces lifetimes, so a CHILD SA
pair is installed with

- a *soft* limit (rekey now): ``rekey_time``/``rekey_bytes``/``rekey_packets``, each
  minus a random part of ``rand_time``/``rand_bytes``/``rand_packets`` so that the two
  peers (and the many SAs of one peer) do not all rekey at once;
- a *hard* limit (the SA is removed): ``life_time``/``life_bytes``/``life_packets``.

Zero means "no limit" (swanctl.conf(5)). strongSwan subtracts the random part the same
way; we additionally never let it take more than half of the rekey value, so an odd
``rand_*`` cannot make an SA rekey at once and forever.

IKE SAs (swanctl ``connections.<name>``) have no engine to enforce anything: the daemon
keeps ``IkeDeadlines`` per IKE SA from its establishment — rekey at ``rekey_time`` minus
a random part of ``rand_time``, reauthenticate at ``reauth_time`` (minus the same kind of
random part), and delete at the first of those plus ``over_time`` if neither happened
(the hard limit).

``LifetimeTracker`` decides, on each tick of the daemon's clock, which IKE SAs are due
for what, and when a refused rekey is tried again: RFC 7296 §2.8.1/§2.25 say a rekey
refused with TEMPORARY_FAILURE is retried after a short random delay (strongSwan waits
5-15 s). It holds no I/O; io/ike_service acts on its answers.

Randomness is ``secrets.randbelow`` unless a test passes its own ``pick``.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pyipsec.engine.lifetime import Lifetime
from pyipsec.errors import ConfigError

Pick = Callable[[int], int]  # an integer in [0, n), like secrets.randbelow
TIME_STEPS = 1000  # random parts of times are drawn in milliseconds
RETRY_MIN = 5.0  # seconds before a refused rekey is tried again (plus up to RETRY_SPAN)
RETRY_SPAN = 10.0


def _number(config: object, name: str) -> float:
    value: Any = getattr(config, name, 0)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ConfigError(f"{name} must be a non-negative number, not {value!r}")
    return float(value)


def jittered_time(rekey: float, rand: float, pick: Pick = secrets.randbelow) -> float:
    """``rekey`` seconds minus a random part of ``rand`` (at most half of ``rekey``)."""
    if rekey <= 0:
        return 0.0
    span = min(rand, rekey / 2)
    if span <= 0:
        return rekey
    return rekey - pick(int(span * TIME_STEPS) + 1) / TIME_STEPS


def jittered_count(rekey: int, rand: int, pick: Pick = secrets.randbelow) -> int:
    """``rekey`` bytes or packets minus a random part of ``rand`` (at most half)."""
    if rekey <= 0:
        return 0
    span = min(rand, rekey // 2)
    if span <= 0:
        return rekey
    return rekey - pick(span + 1)


def _limit(value: float) -> float | None:
    return value if value > 0 else None


def _count(value: float) -> int | None:
    return int(value) if value > 0 else None


def child_lifetimes(config: object, pick: Pick = secrets.randbelow) -> tuple[Lifetime, Lifetime]:
    """(soft, hard) for one CHILD SA pair of ``config`` (a ``ChildConfig``, or anything
    with its ``rekey_*``/``life_*``/``rand_*`` attributes; missing ones mean no limit).

    One draw per pair: both SAs of the pair get the same limits, so whichever reaches
    them first starts the rekey and the other one finds it under way.
    """
    rekey_time = jittered_time(_number(config, "rekey_time"), _number(config, "rand_time"), pick)
    rekey_bytes = jittered_count(
        int(_number(config, "rekey_bytes")), int(_number(config, "rand_bytes")), pick
    )
    rekey_packets = jittered_count(
        int(_number(config, "rekey_packets")), int(_number(config, "rand_packets")), pick
    )
    soft = Lifetime(
        bytes=_count(rekey_bytes), packets=_count(rekey_packets), add_time=_limit(rekey_time)
    )
    hard = Lifetime(
        bytes=_count(_number(config, "life_bytes")),
        packets=_count(_number(config, "life_packets")),
        add_time=_limit(_number(config, "life_time")),
    )
    return soft, hard


@dataclass(frozen=True, slots=True)
class IkeDeadlines:
    """When an IKE SA established at ``established`` is rekeyed, reauthenticated and, at
    the latest, deleted (``None``: never)."""

    established: float
    rekey: float | None
    reauth: float | None
    delete: float | None


def ike_deadlines(
    config: object, established: float, pick: Pick = secrets.randbelow
) -> IkeDeadlines:
    """The deadlines of an IKE SA of ``config`` (an ``IkeConfig``: ``rekey_time``,
    ``reauth_time``, ``over_time``, ``rand_time``) established at ``established``."""
    rand = _number(config, "rand_time")
    rekey = jittered_time(_number(config, "rekey_time"), rand, pick)
    reauth = jittered_time(_number(config, "reauth_time"), rand, pick)
    first = min((t for t in (rekey, reauth) if t > 0), default=0.0)
    return IkeDeadlines(
        established,
        established + rekey if rekey > 0 else None,
        established + reauth if reauth > 0 else None,
        established + first + _number(config, "over_time") if first > 0 else None,
    )


def retry_delay(pick: Pick = secrets.randbelow) -> float:
    """A short random delay before a refused rekey is tried again (§2.25)."""
    return RETRY_MIN + pick(int(RETRY_SPAN * TIME_STEPS) + 1) / TIME_STEPS


@dataclass(slots=True)
class _IkeEntry:
    deadlines: IkeDeadlines
    not_before: float  # the next attempt waits until then (after a refusal)


class LifetimeTracker:
    """IKE SA deadlines and rekey retries, keyed by whatever object identifies an SA.

    ``due(key, now)`` answers "rekey", "reauth", "delete" or None for an IKE SA added
    with ``track``; after acting on "rekey"/"reauth" the caller says ``tried(key, now)``
    and the same answer comes back only after a random retry delay (if the SA is still
    there, the attempt failed or was refused). CHILD SAs whose soft lifetime fired are
    ``want_rekey``-ed; ``child_retry_due`` says when to try again.
    """

    def __init__(self, pick: Pick = secrets.randbelow) -> None:
        self.pick = pick
        self._ike: dict[int, tuple[object, _IkeEntry]] = {}
        self._children: dict[int, tuple[object, float]] = {}

    # -- IKE SAs ---------------------------------------------------------------------------
    def track(self, key: object, config: object, established: float) -> IkeDeadlines:
        """Deadlines for a newly established IKE SA (kept until ``forget``)."""
        found = self._ike.get(id(key))
        if found is not None and found[0] is key:
            return found[1].deadlines
        deadlines = ike_deadlines(config, established, self.pick)
        self._ike[id(key)] = (key, _IkeEntry(deadlines, established))
        return deadlines

    def deadlines(self, key: object) -> IkeDeadlines | None:
        found = self._ike.get(id(key))
        return found[1].deadlines if found is not None and found[0] is key else None

    def due(self, key: object, now: float) -> str | None:
        found = self._ike.get(id(key))
        if found is None or found[0] is not key:
            return None
        entry = found[1]
        d = entry.deadlines
        if d.delete is not None and now >= d.delete:
            return "delete"  # over_time passed: rekeying or reauthentication never worked
        if now < entry.not_before:
            return None
        if d.reauth is not None and now >= d.reauth:
            return "reauth"
        if d.rekey is not None and now >= d.rekey:
            return "rekey"
        return None

    def tried(self, key: object, now: float) -> None:
        found = self._ike.get(id(key))
        if found is not None and found[0] is key:
            found[1].not_before = now + retry_delay(self.pick)

    def forget(self, key: object) -> None:
        found = self._ike.get(id(key))
        if found is not None and found[0] is key:
            del self._ike[id(key)]

    def keep_only(self, keys: list[object]) -> None:
        """Drop what is not in ``keys`` (IKE SAs and CHILD SAs that are gone)."""
        alive = {id(k) for k in keys}
        for table in (self._ike, self._children):
            for ident in [i for i in table if i not in alive]:
                del table[ident]

    # -- CHILD SAs ------------------------------------------------------------------------
    def want_rekey(self, child: object, now: float) -> None:
        """A soft EXPIRE started a rekey of ``child``; retry later if it stays unrekeyed."""
        found = self._children.get(id(child))
        if found is None or found[0] is not child:
            self._children[id(child)] = (child, now + retry_delay(self.pick))

    def child_retry_due(self, now: float) -> list[object]:
        """CHILD SAs to rekey again now; each gets a new retry delay."""
        out: list[object] = []
        for ident, (child, when) in list(self._children.items()):
            if now >= when:
                out.append(child)
                self._children[ident] = (child, now + retry_delay(self.pick))
        return out

    def done_with_child(self, child: object) -> None:
        found = self._children.get(id(child))
        if found is not None and found[0] is child:
            del self._children[id(child)]

    @property
    def children_waiting(self) -> int:
        return len(self._children)

"""The PF_KEY server: RFC 2367 §3 message handling, as Linux's af_key.c behaves.

``PfkeyServer`` is a handler for ``io.control.SeqpacketServer`` (one PF_KEY message per
datagram). It decodes a request, runs ``check_message`` (the kernel's own checks), calls
the ``KeyManagementBackend`` and answers the way af_key.c does:

- replies echo the request's type, SA type, ``seq`` and ``pid``; a refusal is a bare
  header with ``sadb_msg_errno`` set (``pfkey_error``);
- ADD/UPDATE/DELETE and the SPD changes are not answered to the sender alone: they are
  broadcast to every socket (``BROADCAST_ALL``, ``key_notify_sa``/``key_notify_policy``),
  the sender included; FLUSH/SPDFLUSH answer the sender and, if anything went, tell all;
- REGISTER answers with the SUPPORTED extensions, to the sender and every registered
  socket; a registered socket receives EXPIREs, and ACQUIREs for the SA types it
  registered (Linux sends ACQUIREs to any registered socket; a socket registered only
  for AH has no use for an ESP ACQUIRE, so we send them by type);
- a promiscuous socket (X_PROMISC) receives a copy of every message any socket sends and
  of every message the server sends, the ones meant for it included (so twice, as Linux);
- DUMP/SPDDUMP answer with one message per entry, ``seq`` counting 1, 2, ... and the last
  one 0 (``pfkey_do_dump``); an empty table is ENOENT;
- types the engine has no use for are checked and refused with Linux's errno: X_MIGRATE
  is ENOPROTOOPT (a kernel without CONFIG_NET_KEY_MIGRATE), the kernel-only types are
  EOPNOTSUPP; an ACQUIRE from a client (a key manager reporting failure) is accepted
  silently, as Linux does when it finds no larval state.

Engine events (from any key manager, IKE or xfrm included) become PF_KEY broadcasts in
``on_event``: ACQUIRE, EXPIRE (soft/hard), and ADD/UPDATE/DELETE/SPDADD/... for changes
the PF_KEY server did not make itself. Where Linux fails ``sendmsg`` itself (a buffer
that is not a PF_KEY message), a socket cannot fail the write, so the error comes back
as a reply.

Nothing here reads a clock or opens a socket: the caller passes ``now`` (monotonic, the
engine's) and ``wall`` (for PF_KEY's wall-clock lifetimes) as callables, and the peers
are whatever ``SeqpacketServer`` gives (anything with ``state`` and ``send``).

Plugging it into the daemon::

    pfkey = PfkeyServer(daemon.engine, now=time.monotonic, wall=time.time,
                        after_change=daemon.after_key_management)
    server = daemon.add_server("pfkey.sock", pfkey)
    pfkey.attach(lambda: server.connections)
    daemon.event_hooks.append(pfkey.on_event)
"""

from __future__ import annotations

import errno
import logging
import sys
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from ipaddress import ip_network
from typing import Any, Final, Protocol

from pyipsec.engine.backend import KeyManagementBackend
from pyipsec.engine.events import (
    Acquire,
    Event,
    Expire,
    PolicyAdded,
    PolicyDeleted,
    SaAdded,
    SaDeleted,
    SaId,
)
from pyipsec.engine.sad import SadEntry
from pyipsec.engine.spd import Policy
from pyipsec.errors import ConfigError, KeyApiError, PyipsecError
from pyipsec.keyapi import pfkey_const as k
from pyipsec.keyapi.pfkey import (
    Address,
    Extension,
    Lifetime,
    PfkeyMessage,
    Sa,
    Sa2,
    build_message,
    check_message,
    parse_message,
)
from pyipsec.keyapi.pfkey import (
    Policy as PolicyExt,
)
from pyipsec.keyapi.pfkey_convert import (
    DIRECTION_FROM_PFKEY,
    DIRECTION_TO_PFKEY,
    PolicyTimes,
    acquire_proposal,
    mode_from_pfkey,
    policy_extensions,
    policy_from_message,
    sa_extensions,
    selector_from_message,
    spec_from_message,
    supported_extensions,
)

__all__ = ["Peer", "PfkeyServer"]

log = logging.getLogger("pyipsec.pfkey")

# pfkey_getspi's range when the request has no SPIRANGE.
DEFAULT_SPI_MIN: Final = 0x100
DEFAULT_SPI_MAX: Final = 0x0FFFFFFF
# Reqids the kernel picks for "unique" requests start above the manual range.
_FIRST_AUTO_REQID: Final = k.IPSEC_MANUAL_REQID_MAX + 1
_HEADER: Final = 16

_PROTO_OF_SATYPE: Final[dict[int, str | None]] = {
    k.SADB_SATYPE_UNSPEC: None,
    k.SADB_SATYPE_ESP: "esp",
    k.SADB_SATYPE_AH: "ah",
    k.SADB_X_SATYPE_IPCOMP: "ipcomp",
}
_SATYPE_OF_PROTO: Final = {"esp": k.SADB_SATYPE_ESP, "ah": k.SADB_SATYPE_AH,
                           "ipcomp": k.SADB_X_SATYPE_IPCOMP}  # fmt: skip

# pfkey_broadcast's flags.
_ONE, _ALL, _REGISTERED = "one", "all", "registered"


class Peer(Protocol):
    """A client connection as ``io.control.Connection`` provides it."""

    state: dict[str, Any]

    def send(self, data: bytes, *, droppable: bool = False) -> bool: ...


@dataclass(slots=True)
class ClientState:
    """What the kernel keeps per PF_KEY socket (``struct pfkey_sock``)."""

    registered: set[int] = field(default_factory=set)  # SA types (REGISTER)
    promisc: bool = False  # X_PROMISC
    pid: int = 0  # sadb_msg_pid of the last request


def client_state(peer: Peer) -> ClientState:
    state = peer.state.get("pfkey")
    if not isinstance(state, ClientState):
        state = ClientState()
        peer.state["pfkey"] = state
    return state


class PfkeyServer:
    """PF_KEY v2 over a SeqpacketServer, dispatching onto a ``KeyManagementBackend``."""

    def __init__(
        self,
        backend: KeyManagementBackend,
        *,
        now: Callable[[], float],
        wall: Callable[[], float],
        after_change: Callable[[], None] | None = None,
        drain_events: bool = False,
    ) -> None:
        """``after_change`` runs after every SAD/SPD change (the daemon releases held
        packets and drains events there). With ``drain_events`` the server pulls the
        backend's events itself after each request, for use without a daemon."""
        self.backend = backend
        self.now = now
        self.wall = wall
        self.after_change = after_change
        self.drain_events = drain_events
        self._peers: Callable[[], Iterable[Peer]] | None = None
        self._seen: dict[int, Peer] = {}
        # Engine events caused by our own requests, already announced with the
        # request's seq/pid: on_event skips them.
        self._own: Counter[tuple[object, ...]] = Counter()
        self._entries: dict[SaId, SadEntry] = {}  # for EXPIRE/DELETE after removal
        self._policies: dict[int, Policy] = {}
        self._created: dict[int, int] = {}  # policy index -> wall-clock creation
        self._next_reqid = _FIRST_AUTO_REQID

    # -- wiring ---------------------------------------------------------------------
    def attach(self, peers: Callable[[], Iterable[Peer]]) -> None:
        """Where broadcasts go: every connection of the listening server."""
        self._peers = peers

    def _all_peers(self) -> list[Peer]:
        if self._peers is not None:
            return list(self._peers())
        return list(self._seen.values())

    def closed(self, conn: Peer) -> None:
        self._seen.pop(id(conn), None)

    # -- requests -------------------------------------------------------------------
    def handle(self, data: bytes, conn: Peer) -> list[bytes]:
        """One request datagram. Everything is sent from here (replies and broadcasts
        in the order the kernel emits them), so nothing is returned."""
        self._seen[id(conn)] = conn
        state = client_state(conn)
        try:
            msg = parse_message(data)
        except KeyApiError as exc:
            reply = self._bad_header_reply(data, exc.errno)
            if reply is not None:
                self._send(reply, _ONE, conn)
            return []
        state.pid = msg.pid
        # pfkey_process: every request is shown to promiscuous sockets first.
        self._send(data, "promisc", None)
        try:
            check_message(msg)
            changed = self._dispatch(msg, conn, state)
        except KeyApiError as exc:
            self._error(msg, exc.errno, conn, str(exc))
            changed = False
        except PyipsecError as exc:
            self._error(msg, errno.EINVAL, conn, str(exc))
            changed = False
        if changed and self.after_change is not None:
            self.after_change()
        if self.drain_events:
            self.drain()
        return []

    def _bad_header_reply(self, data: bytes, code: int) -> bytes | None:
        """The error for a buffer that is no PF_KEY message. Linux fails the ``sendmsg``
        instead; a socket cannot, so the header is echoed with the errno if it can be
        read, and nothing is sent if not (the client is not speaking PF_KEY)."""
        head = data[:_HEADER]
        if len(head) < _HEADER or head[0] != k.PF_KEY_V2 or not 0 < head[1] <= k.SADB_MAX:
            log.debug("PF_KEY: %d bytes that are not a PF_KEY message ignored", len(data))
            return None
        seq = int.from_bytes(head[8:12], sys.byteorder)
        pid = int.from_bytes(head[12:16], sys.byteorder)
        return build_message(PfkeyMessage(head[1], head[3], seq, pid, code))

    def _error(self, msg: PfkeyMessage, code: int, conn: Peer, why: str) -> None:
        # Info, not debug: the errno is all a client sees, the reason is only here (the
        # reasons name algorithms and lengths, never key bytes).
        log.info("PF_KEY %s refused: errno %d (%s)", k.MESSAGE_NAMES.get(msg.msg_type), code, why)
        self._send(build_message(PfkeyMessage.reply_to(msg, errno=code)), _ONE, conn)

    def _dispatch(self, msg: PfkeyMessage, conn: Peer, state: ClientState) -> bool:
        """Run one checked request; True if the SAD/SPD changed."""
        t = msg.msg_type
        if t == k.SADB_GETSPI:
            self._getspi(msg, conn)
        elif t in (k.SADB_ADD, k.SADB_UPDATE):
            self._add(msg)
        elif t == k.SADB_DELETE:
            self._delete(msg)
        elif t == k.SADB_GET:
            self._get(msg, conn)
        elif t == k.SADB_FLUSH:
            self._flush(msg, conn)
        elif t == k.SADB_DUMP:
            self._dump(msg, conn)
            return False
        elif t == k.SADB_REGISTER:
            self._register(msg, conn, state)
            return False
        elif t == k.SADB_X_PROMISC:
            self._promisc(msg, state)
            return False
        elif t in (k.SADB_X_SPDADD, k.SADB_X_SPDUPDATE, k.SADB_X_SPDSETIDX):
            self._spdadd(msg)
        elif t == k.SADB_X_SPDDELETE:
            self._spddelete(msg)
        elif t == k.SADB_X_SPDDELETE2:
            self._spddelete2(msg)
        elif t == k.SADB_X_SPDGET:
            self._spdget(msg, conn)
            return False
        elif t == k.SADB_X_SPDDUMP:
            self._spddump(msg, conn)
            return False
        elif t == k.SADB_X_SPDFLUSH:
            self._spdflush(msg, conn)
        elif t == k.SADB_ACQUIRE:
            # pfkey_acquire: a key manager reports that it failed; the engine's hold
            # queue times out on its own, so there is nothing to do and no reply.
            return False
        elif t == k.SADB_X_MIGRATE:
            raise KeyApiError(errno.ENOPROTOOPT, "PF_KEY: MIGRATE is not supported")
        else:  # check_message refused the kernel-only types; nothing else is left
            raise KeyApiError(errno.EOPNOTSUPP, f"PF_KEY: message type {t} not supported")
        return True

    # -- SAD ------------------------------------------------------------------------
    def _proto(self, msg: PfkeyMessage) -> str:
        proto = _PROTO_OF_SATYPE.get(msg.satype)
        if proto is None:
            raise KeyApiError(errno.EINVAL, f"PF_KEY: SA type {msg.satype} not supported")
        return proto

    def _getspi(self, msg: PfkeyMessage, conn: Peer) -> None:
        proto = self._proto(msg)
        if proto != "esp":
            raise KeyApiError(errno.EPROTONOSUPPORT, "PF_KEY: the engine holds ESP SAs only")
        src, dst = msg.src, msg.dst
        if src is None or dst is None:  # check_message made sure; narrows the type
            raise KeyApiError(errno.EINVAL, "PF_KEY: missing address")
        sa2 = msg.sa2
        mode = mode_from_pfkey(sa2.mode if sa2 is not None else k.IPSEC_MODE_ANY)
        rng = msg.spirange
        lo, hi = (DEFAULT_SPI_MIN, DEFAULT_SPI_MAX) if rng is None else (rng.spi_min, rng.spi_max)
        now = self.now()
        spi = self.backend.get_spi(
            src.addr,
            dst.addr,
            now,
            proto=proto,
            mode=mode,
            reqid=0 if sa2 is None else sa2.reqid,
            spi_min=lo,
            spi_max=hi,
        )
        entry = self.backend.get_sa(dst.addr, spi, proto)
        self._entries[entry.id] = entry
        exts = sa_extensions(entry, now, self.wall())
        self._send(build_message(PfkeyMessage.reply_to(msg, *exts)), _ONE, conn)

    def _add(self, msg: PfkeyMessage) -> None:
        spec = spec_from_message(msg)
        now = self.now()
        if msg.msg_type == k.SADB_ADD:
            entry = self.backend.add_sa(spec, now)
        else:
            entry = self.backend.update_sa(spec, now)
        self._entries[entry.id] = entry
        self._own["sa+", entry.id] += 1
        # key_notify_sa: the new SA, keys included, to every socket.
        exts = sa_extensions(entry, now, self.wall())
        self._send(build_message(PfkeyMessage.reply_to(msg, *exts)), _ALL, None)

    def _sa_id(self, msg: PfkeyMessage) -> tuple[str, int, Address]:
        sa, dst = msg.sa, msg.dst
        if sa is None or dst is None:
            raise KeyApiError(errno.EINVAL, "PF_KEY: missing SA or destination")
        return self._proto(msg), sa.spi, dst

    def _delete(self, msg: PfkeyMessage) -> None:
        proto, spi, dst = self._sa_id(msg)
        entry = self.backend.del_sa(dst.addr, spi, proto)
        self._own["sa-", entry.id] += 1
        self._entries.pop(entry.id, None)
        exts = sa_extensions(entry, self.now(), self.wall())
        self._send(build_message(PfkeyMessage.reply_to(msg, *exts)), _ALL, None)

    def _get(self, msg: PfkeyMessage, conn: Peer) -> None:
        proto, spi, dst = self._sa_id(msg)
        entry = self.backend.get_sa(dst.addr, spi, proto)
        exts = sa_extensions(entry, self.now(), self.wall())
        self._send(build_message(PfkeyMessage.reply_to(msg, *exts)), _ONE, conn)

    def _flush(self, msg: PfkeyMessage, conn: Peer) -> None:
        proto = _PROTO_OF_SATYPE.get(msg.satype)
        count = self.backend.flush_sa(proto)
        self._own[("sa-flush",)] += count
        for entry_id in [i for i in self._entries if proto is None or i.proto == proto]:
            del self._entries[entry_id]
        # pfkey_flush: the sender always gets its header back (unicast_flush_resp); if
        # anything was flushed, every socket hears of it too (key_notify_sa_flush).
        reply = build_message(PfkeyMessage.reply_to(msg))
        self._send(reply, _ONE, conn)
        if count:
            self._send(reply, _ALL, None)

    def _dump(self, msg: PfkeyMessage, conn: Peer) -> None:
        proto = _PROTO_OF_SATYPE.get(msg.satype)
        flt = msg.filter
        now, wall = self.now(), self.wall()
        entries = [e for e in self.backend.dump_sa() if proto is None or e.proto == proto]
        if flt is not None:
            src_net = ip_network((flt.saddr, flt.splen), strict=False)
            dst_net = ip_network((flt.daddr, flt.dplen), strict=False)
            entries = [
                e
                for e in entries
                if e.src.version == src_net.version and e.src in src_net and e.dst in dst_net
            ]
        replies = [
            PfkeyMessage(
                k.SADB_DUMP,
                _SATYPE_OF_PROTO.get(e.proto, k.SADB_SATYPE_UNSPEC),
                0,
                msg.pid,
                0,
                sa_extensions(e, now, wall),
            )
            for e in entries
        ]
        self._send_dump(msg, replies, conn)

    def _send_dump(self, msg: PfkeyMessage, replies: list[PfkeyMessage], conn: Peer) -> None:
        if not replies:
            raise KeyApiError(errno.ENOENT, "PF_KEY: nothing to dump")
        last = len(replies) - 1
        for i, reply in enumerate(replies):
            seq = 0 if i == last else i + 1  # pfkey_do_dump: the last message has seq 0
            out = PfkeyMessage(reply.msg_type, reply.satype, seq, msg.pid, 0, reply.extensions)
            self._send(build_message(out), _ONE, conn)

    def _register(self, msg: PfkeyMessage, conn: Peer, state: ClientState) -> None:
        if msg.satype != k.SADB_SATYPE_UNSPEC:
            if msg.satype in state.registered:
                raise KeyApiError(errno.EEXIST, "PF_KEY: already registered for this SA type")
            state.registered.add(msg.satype)
        reply = PfkeyMessage.reply_to(msg, *supported_extensions(msg.satype))
        self._send(build_message(reply), _REGISTERED, conn)

    def _promisc(self, msg: PfkeyMessage, state: ClientState) -> None:
        if not msg.extensions:
            state.promisc = msg.satype == 1
            msg = PfkeyMessage.reply_to(msg)  # the echo has errno reset
        # pfkey_promisc passes the message on to every socket.
        self._send(build_message(msg), _ALL, None)

    # -- SPD ------------------------------------------------------------------------
    def _times(self, policy: Policy) -> PolicyTimes:
        # The SPD's counters are not part of the backend interface; the embedded
        # engine has them, a kernel backend reports zeros.
        spd = getattr(self.backend, "spd", None)
        try:
            stats = None if spd is None else spd.stats(policy.index)
        except PyipsecError:
            stats = None
        hits = int(getattr(stats, "hits", 0))
        nbytes = int(getattr(stats, "bytes", 0))
        last = getattr(stats, "last_use", None)
        now, wall = self.now(), self.wall()
        last_use = 0 if last is None else max(int(wall - (now - last)), 0)
        return PolicyTimes(self._created.get(policy.index, 0), last_use, hits, nbytes)

    def _policy_message(
        self, msg_type: int, policy: Policy, seq: int, pid: int
    ) -> PfkeyMessage | None:
        try:
            exts = policy_extensions(policy, self._times(policy))
        except ConfigError as exc:
            log.warning("policy %d has no PF_KEY form: %s", policy.index, exc)
            return None
        return PfkeyMessage(msg_type, k.SADB_SATYPE_UNSPEC, seq, pid, 0, exts)

    def _spdadd(self, msg: PfkeyMessage) -> None:
        pol = msg.policy
        needs_reqid = pol is not None and any(
            rq.level == k.IPSEC_LEVEL_UNIQUE and not rq.reqid for rq in pol.requests
        )
        policy = policy_from_message(msg, self._next_reqid if needs_reqid else 0)
        if msg.msg_type == k.SADB_X_SPDUPDATE:
            index = self.backend.update_policy(policy)
            out_type = k.SADB_X_SPDUPDATE
        else:
            index = self.backend.add_policy(policy)
            out_type = k.SADB_X_SPDADD  # SPDSETIDX is pfkey_spdadd too
        if needs_reqid:
            self._next_reqid += 1
        self._own["pol+", index] += 1
        self._created[index] = int(self.wall())
        stored = self.backend.get_policy(index)
        self._policies[index] = stored
        self._announce_policy(out_type, stored, msg)

    def _announce_policy(self, out_type: int, policy: Policy, msg: PfkeyMessage) -> None:
        out = self._policy_message(out_type, policy, msg.seq, msg.pid)
        if out is not None:
            self._send(build_message(out), _ALL, None)

    def _spddelete(self, msg: PfkeyMessage) -> None:
        pol = msg.policy
        if pol is None:
            raise KeyApiError(errno.EINVAL, "PF_KEY: missing X_POLICY")
        direction = DIRECTION_FROM_PFKEY.get(pol.direction)
        if direction is None:
            raise KeyApiError(errno.EINVAL, f"PF_KEY: direction {pol.direction} out of range")
        policy = self.backend.del_policy_by_selector(direction, selector_from_message(msg))
        self._forget_policy(policy.index)
        self._announce_policy(k.SADB_X_SPDDELETE, policy, msg)

    def _policy_id(self, msg: PfkeyMessage) -> int:
        pol = msg.policy
        if pol is None:
            raise KeyApiError(errno.EINVAL, "PF_KEY: missing X_POLICY")
        return pol.policy_id

    def _spddelete2(self, msg: PfkeyMessage) -> None:
        policy = self.backend.del_policy(self._policy_id(msg))
        self._forget_policy(policy.index)
        self._announce_policy(k.SADB_X_SPDDELETE2, policy, msg)

    def _forget_policy(self, index: int) -> None:
        self._own["pol-", index] += 1
        self._policies.pop(index, None)

    def _spdget(self, msg: PfkeyMessage, conn: Peer) -> None:
        policy = self.backend.get_policy(self._policy_id(msg))
        out = self._policy_message(k.SADB_X_SPDGET, policy, msg.seq, msg.pid)
        if out is None:
            raise KeyApiError(errno.EOPNOTSUPP, "PF_KEY: policy has no PF_KEY form")
        self._send(build_message(out), _ONE, conn)

    def _spddump(self, msg: PfkeyMessage, conn: Peer) -> None:
        replies = [
            out
            for policy in self.backend.dump_policy()
            if (out := self._policy_message(k.SADB_X_SPDDUMP, policy, 0, msg.pid)) is not None
        ]
        self._send_dump(msg, replies, conn)

    def _spdflush(self, msg: PfkeyMessage, conn: Peer) -> None:
        count = self.backend.flush_policy()
        self._own[("pol-flush",)] += count
        self._policies.clear()
        reply = build_message(PfkeyMessage.reply_to(msg))
        self._send(reply, _ONE, conn)
        if count:
            self._send(reply, _ALL, None)

    # -- engine events --------------------------------------------------------------
    def drain(self) -> None:
        """Turn every pending backend event into broadcasts (without a daemon)."""
        while (event := self.backend.next_event()) is not None:
            self.on_event(event)

    def on_event(self, event: Event) -> None:
        """One engine event -> the PF_KEY broadcasts the kernel would make for it."""
        if isinstance(event, Acquire):
            self._acquire(event)
        elif isinstance(event, Expire):
            self._expire(event)
        elif isinstance(event, SaAdded):
            self._sa_added(event)
        elif isinstance(event, SaDeleted):
            self._sa_deleted(event)
        elif isinstance(event, PolicyAdded):
            self._policy_added(event)
        elif isinstance(event, PolicyDeleted):
            self._policy_deleted(event)

    def _mine(self, key: tuple[object, ...]) -> bool:
        if self._own[key] > 0:
            self._own[key] -= 1
            if not self._own[key]:
                del self._own[key]
            return True
        return False

    def _acquire(self, event: Acquire) -> None:
        # pfkey_send_acquire: SA endpoints, the policy (id and direction, no requests)
        # and a proposal of what we can do, so a key manager can negotiate on demand.
        satype = _SATYPE_OF_PROTO.get(event.template.proto, k.SADB_SATYPE_UNSPEC)
        priority = 0
        policy = self._policies.get(event.policy_index)
        if policy is None:
            try:
                policy = self.backend.get_policy(event.policy_index)
            except PyipsecError:
                policy = None
        if policy is not None:
            priority = policy.priority
        exts: tuple[Extension, ...] = (
            Address(k.SADB_EXT_ADDRESS_SRC, event.src, event.src.max_prefixlen),
            Address(k.SADB_EXT_ADDRESS_DST, event.dst, event.dst.max_prefixlen),
            PolicyExt(
                k.IPSEC_POLICY_IPSEC,
                DIRECTION_TO_PFKEY["out"],
                event.policy_index,
                priority,
            ),
            acquire_proposal(event.template),
        )
        msg = PfkeyMessage(k.SADB_ACQUIRE, satype, event.seq, 0, 0, exts)
        self._send(build_message(msg), "satype", None, satype)

    def _expire(self, event: Expire) -> None:
        entry = self._entries.get(event.sa)
        if entry is None:
            try:
                entry = self.backend.get_sa(event.sa.dst, event.sa.spi, event.sa.proto)
            except PyipsecError:
                entry = None
        which = (k.SADB_EXT_LIFETIME_HARD,) if event.hard else (k.SADB_EXT_LIFETIME_SOFT,)
        if entry is not None:
            exts = sa_extensions(entry, self.now(), self.wall(), keys=False, which=which)
        else:
            exts = (
                Sa(event.sa.spi, state=k.SADB_SASTATE_DEAD),
                Lifetime(k.SADB_EXT_LIFETIME_CURRENT),
                Lifetime(which[0]),
                Address(k.SADB_EXT_ADDRESS_SRC, event.src, event.src.max_prefixlen),
                Address(k.SADB_EXT_ADDRESS_DST, event.sa.dst, event.sa.dst.max_prefixlen),
                Sa2(k.IPSEC_MODE_ANY, event.reqid),
            )
        satype = _SATYPE_OF_PROTO.get(event.sa.proto, k.SADB_SATYPE_UNSPEC)
        msg = PfkeyMessage(k.SADB_EXPIRE, satype, 0, 0, 0, exts)
        self._send(build_message(msg), _REGISTERED, None)

    def _sa_added(self, event: SaAdded) -> None:
        if self._mine(("sa+", event.sa)):
            return
        try:
            entry = self.backend.get_sa(event.sa.dst, event.sa.spi, event.sa.proto)
        except PyipsecError:
            return  # gone again before we saw the event
        self._entries[entry.id] = entry
        msg_type = k.SADB_UPDATE if event.update else k.SADB_ADD
        exts = sa_extensions(entry, self.now(), self.wall())
        satype = _SATYPE_OF_PROTO.get(entry.proto, k.SADB_SATYPE_UNSPEC)
        self._send(build_message(PfkeyMessage(msg_type, satype, 0, 0, 0, exts)), _ALL, None)

    def _sa_deleted(self, event: SaDeleted) -> None:
        entry = self._entries.pop(event.sa, None)
        if event.reason == "flushed" and self._mine(("sa-flush",)):
            return
        if self._mine(("sa-", event.sa)) or event.reason not in ("deleted", "flushed"):
            return  # expiries were announced by their EXPIRE (hard), as in Linux
        if entry is None:
            return  # never seen: no source address to report
        exts = sa_extensions(entry, self.now(), self.wall())
        satype = _SATYPE_OF_PROTO.get(entry.proto, k.SADB_SATYPE_UNSPEC)
        self._send(build_message(PfkeyMessage(k.SADB_DELETE, satype, 0, 0, 0, exts)), _ALL, None)

    def _policy_added(self, event: PolicyAdded) -> None:
        if self._mine(("pol+", event.index)):
            return
        try:
            policy = self.backend.get_policy(event.index)
        except PyipsecError:
            return
        self._policies[event.index] = policy
        self._created.setdefault(event.index, int(self.wall()))
        msg_type = k.SADB_X_SPDUPDATE if event.update else k.SADB_X_SPDADD
        out = self._policy_message(msg_type, policy, 0, 0)
        if out is not None:
            self._send(build_message(out), _ALL, None)

    def _policy_deleted(self, event: PolicyDeleted) -> None:
        policy = self._policies.pop(event.index, None)
        self._created.pop(event.index, None)
        if event.reason == "flushed" and self._mine(("pol-flush",)):
            return
        if self._mine(("pol-", event.index)):
            return
        out = None if policy is None else self._policy_message(k.SADB_X_SPDDELETE2, policy, 0, 0)
        if out is None:
            # key_notify_policy for a deletion by id: at least the id is known.
            direction = {0: k.IPSEC_DIR_INBOUND, 1: k.IPSEC_DIR_OUTBOUND, 2: k.IPSEC_DIR_FWD}
            ext = PolicyExt(k.IPSEC_POLICY_IPSEC, direction.get(event.index & 7, 0), event.index)
            out = PfkeyMessage(k.SADB_X_SPDDELETE2, 0, 0, 0, 0, (ext,))
        self._send(build_message(out), _ALL, None)

    # -- pfkey_broadcast --------------------------------------------------------------
    def _send(self, data: bytes, flags: str, one: Peer | None, satype: int = 0) -> None:
        """Deliver ``data`` as af_key.c's ``pfkey_broadcast`` does.

        Promiscuous sockets get a copy of everything; then ``all`` goes to every other
        socket, ``registered`` to every other registered one, ``satype`` to the ones
        registered for that SA type, ``one`` and ``promisc`` to nobody else; finally
        ``one`` (the requester) gets its own copy, never dropped.
        """
        for peer in self._all_peers():
            state = client_state(peer)
            if state.promisc:
                peer.send(data, droppable=True)
            if peer is one:
                continue
            if (
                flags == _ALL
                or (flags == _REGISTERED and state.registered)
                or (flags == "satype" and satype in state.registered)
            ):
                peer.send(data, droppable=True)
        if one is not None:
            one.send(data)

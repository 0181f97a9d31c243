"""The daemon's local sockets: root-only Unix SOCK_SEQPACKET servers, and the status handler.

One generic server class carries every local API of the daemon (``control.sock`` now,
``pfkey.sock`` and ``xfrm.sock`` as their handlers land). SOCK_SEQPACKET keeps message
boundaries, as the PF_KEY and netlink sockets it stands in for do, and is connection
oriented, so a peer's credentials (SO_PEERCRED) are checked once, at accept.

A handler is an object with ``handle(data, conn) -> list[bytes]`` (reply datagrams, in
order) and ``closed(conn)``. Unsolicited messages (PF_KEY broadcasts: ACQUIRE, EXPIRE,
``SADB_ADD`` echoes to registered sockets) go out with ``SeqpacketServer.broadcast``;
``Connection.state`` is the handler's per-connection memo (e.g. which SA types a PF_KEY
socket registered for). Plugging PF_KEY in is::

    class PfkeyHandler:
        def handle(self, data, conn): return pfkey_server.handle(data, engine, now(), conn)
        def closed(self, conn): pass
    SeqpacketServer(run_dir / "pfkey.sock", PfkeyHandler(), loop).start()

``control.sock`` speaks JSON: a request ``{"cmd": NAME, ...}``; the reply is a JSON
document cut into datagrams, each starting with ``+`` (more follow) or ``.`` (last), so
a status of any size fits (a single SOCK_SEQPACKET message is bounded by the socket
buffer).
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import logging
import os
import socket
import stat
import struct
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pyipsec.engine.processor import Engine
from pyipsec.errors import ConfigError, PyipsecError

log = logging.getLogger("pyipsec.control")

MAX_MESSAGE = 65536  # largest request accepted (PF_KEY and netlink messages are smaller)
CHUNK = 32768  # size of one reply datagram of control.sock
OUTBOX_LIMIT = 256  # queued datagrams per connection before broadcasts are dropped
_PEERCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid
_MORE, _LAST = b"+", b"."


class Loop(Protocol):
    """The part of an event loop the servers need (asyncio's loops have it, so does ours)."""

    def add_reader(self, fd: int, callback: Callable[..., object], *args: Any) -> None: ...

    def remove_reader(self, fd: int) -> bool: ...

    def add_writer(self, fd: int, callback: Callable[..., object], *args: Any) -> None: ...

    def remove_writer(self, fd: int) -> bool: ...


@dataclass(frozen=True, slots=True)
class PeerCred:
    pid: int
    uid: int
    gid: int


class Handler(Protocol):
    def handle(self, data: bytes, conn: Connection) -> list[bytes]: ...

    def closed(self, conn: Connection) -> None: ...


@dataclass(eq=False)
class Connection:
    """One accepted client: its socket, its credentials and the handler's memo."""

    sock: socket.socket
    peer: PeerCred
    server: SeqpacketServer
    state: dict[str, Any] = field(default_factory=dict)
    outbox: deque[bytes] = field(default_factory=deque)
    dropped: int = 0  # broadcasts lost because the client did not read (PF_KEY: ENOBUFS)
    closed: bool = False

    def send(self, data: bytes, *, droppable: bool = False) -> bool:
        """Queue one datagram. Replies are always queued; a ``droppable`` (broadcast)
        message is dropped and counted when the client lags, as the kernel does."""
        if self.closed:
            return False
        if droppable and len(self.outbox) >= OUTBOX_LIMIT:
            self.dropped += 1
            return False
        self.outbox.append(data)
        self.server._flush(self)
        return True


class SeqpacketServer:
    """A listening AF_UNIX SOCK_SEQPACKET socket at ``path`` serving ``handler``.

    Only peers whose uid is in ``allowed_uids`` (root by default) are served; the socket
    file is created with mode 0600 as well, so the check holds twice.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        handler: Handler,
        loop: Loop,
        *,
        allowed_uids: Iterable[int] = (0,),
        name: str = "control",
    ) -> None:
        self.path = Path(path)
        if len(os.fsencode(self.path)) >= 108:
            raise ConfigError(f"socket path too long for AF_UNIX: {self.path}")
        self.handler = handler
        self.loop = loop
        self.allowed_uids = frozenset(allowed_uids)
        self.name = name
        self.connections: set[Connection] = set()
        self._sock: socket.socket | None = None
        self._by_fd: dict[int, Connection] = {}

    def start(self) -> None:
        """Bind and listen. A stale socket file (no one listening) is replaced; a live one
        is an error, so two daemons never share a run directory."""
        if self.path.exists() or self.path.is_symlink():
            if not stat.S_ISSOCK(self.path.lstat().st_mode):
                raise ConfigError(f"{self.path} exists and is not a socket")
            if _is_live(self.path):
                raise ConfigError(f"{self.path} is in use by another process")
            self.path.unlink()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        old = os.umask(0o177)  # no window in which the socket is reachable by others
        try:
            sock.bind(os.fspath(self.path))
        except OSError:
            sock.close()
            raise
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)
        sock.listen(16)
        sock.setblocking(False)
        self._sock = sock
        self.loop.add_reader(sock.fileno(), self._accept)
        log.info("%s: listening on %s", self.name, self.path)

    def close(self) -> None:
        for conn in list(self.connections):
            self._drop(conn)
        if self._sock is not None:
            self.loop.remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()

    def broadcast(self, data: bytes, predicate: Callable[[Connection], bool] | None = None) -> int:
        """Send an unsolicited message to every connection ``predicate`` accepts; returns
        how many got it queued."""
        sent = 0
        for conn in list(self.connections):
            if (predicate is None or predicate(conn)) and conn.send(data, droppable=True):
                sent += 1
        return sent

    # -- internals -----------------------------------------------------------------
    def _accept(self) -> None:
        if self._sock is None:
            return
        while True:
            try:
                sock, _ = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.warning("%s: accept failed: %s", self.name, exc.strerror)
                return
            peer = PeerCred(
                *_PEERCRED.unpack(
                    sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
                )
            )
            if peer.uid not in self.allowed_uids:
                log.warning("%s: refused pid %d uid %d", self.name, peer.pid, peer.uid)
                sock.close()
                continue
            sock.setblocking(False)
            conn = Connection(sock, peer, self)
            self.connections.add(conn)
            self._by_fd[sock.fileno()] = conn
            self.loop.add_reader(sock.fileno(), self._readable, conn)
            log.debug("%s: client pid %d", self.name, peer.pid)

    def _readable(self, conn: Connection) -> None:
        while not conn.closed:
            if len(conn.outbox) >= OUTBOX_LIMIT:
                # The client does not read its replies: read no more of its requests
                # until it does (_flush resumes), so it cannot make the daemon grow.
                self.loop.remove_reader(conn.sock.fileno())
                conn.state["_paused"] = True
                return
            try:
                data, _, flags, _ = conn.sock.recvmsg(MAX_MESSAGE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self._drop(conn)
                return
            if not data:
                self._drop(conn)  # orderly shutdown by the peer
                return
            if flags & socket.MSG_TRUNC:
                log.warning("%s: message over %d bytes dropped", self.name, MAX_MESSAGE)
                continue
            try:
                replies = self.handler.handle(data, conn)
            except Exception:
                # A handler bug must cost one client, never the daemon.
                log.exception("%s: handler failed; closing the client", self.name)
                self._drop(conn)
                return
            for reply in replies:
                conn.send(reply)

    def _flush(self, conn: Connection) -> None:
        while conn.outbox:
            try:
                conn.sock.send(conn.outbox[0])
            except (BlockingIOError, InterruptedError):
                if not conn.state.get("_writer"):
                    conn.state["_writer"] = True
                    self.loop.add_writer(conn.sock.fileno(), self._writable, conn)
                return
            except OSError:
                self._drop(conn)
                return
            conn.outbox.popleft()
        if conn.state.pop("_writer", False):
            self.loop.remove_writer(conn.sock.fileno())
        if conn.state.pop("_paused", False) and not conn.closed:
            self.loop.add_reader(conn.sock.fileno(), self._readable, conn)

    def _writable(self, conn: Connection) -> None:
        self._flush(conn)

    def _drop(self, conn: Connection) -> None:
        if conn.closed:
            return
        conn.closed = True
        fd = conn.sock.fileno()
        self.loop.remove_reader(fd)
        if conn.state.pop("_writer", False):
            self.loop.remove_writer(fd)
        self.connections.discard(conn)
        self._by_fd.pop(fd, None)
        conn.sock.close()
        with contextlib.suppress(Exception):
            self.handler.closed(conn)


def _is_live(path: Path) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    try:
        probe.connect(os.fspath(path))
    except OSError:
        return False
    finally:
        probe.close()
    return True


# ------------------------------------------------------------------ JSON control ------
def encode_reply(doc: object) -> list[bytes]:
    """A JSON document as control.sock reply datagrams (``+`` more, ``.`` last)."""
    body = json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()
    parts = [body[i : i + CHUNK] for i in range(0, len(body), CHUNK)] or [b""]
    return [(_LAST if i == len(parts) - 1 else _MORE) + p for i, p in enumerate(parts)]


Command = Callable[[dict[str, Any]], object]


class JsonControlHandler:
    """control.sock: JSON requests dispatched by ``cmd`` to a table of commands.

    A reply is ``{"ok": true, "result": ...}`` or ``{"ok": false, "error": "..."}``.
    """

    def __init__(self, commands: dict[str, Command] | None = None) -> None:
        self.commands: dict[str, Command] = dict(commands or {})

    def handle(self, data: bytes, conn: Connection) -> list[bytes]:
        try:
            request = json.loads(data)
        except (ValueError, RecursionError):
            # Not UTF-8 or not JSON (both ValueErrors), but also what json itself cannot
            # take: nesting deeper than the recursion limit, integers over 4300 digits.
            return encode_reply({"ok": False, "error": "request is not JSON"})
        if not isinstance(request, dict) or not isinstance(request.get("cmd"), str):
            return encode_reply({"ok": False, "error": 'request must be {"cmd": NAME, ...}'})
        command = self.commands.get(request["cmd"])
        if command is None:
            return encode_reply({"ok": False, "error": f"unknown command {request['cmd']!r}"})
        try:
            result = command(request)
        except PyipsecError as exc:
            return encode_reply({"ok": False, "error": str(exc)})
        return encode_reply({"ok": True, "result": result})

    def closed(self, conn: Connection) -> None:
        return None


def request(path: str | os.PathLike[str], doc: dict[str, Any], timeout: float = 5.0) -> Any:
    """Client side of control.sock: send one request, return the ``result`` (raises
    ``ConfigError`` with the daemon's message if it refused, ``OSError`` if unreachable)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC) as sock:
        sock.settimeout(timeout)
        sock.connect(os.fspath(path))
        sock.send(json.dumps(doc).encode())
        body = bytearray()
        deadline = time.monotonic() + timeout
        while True:
            sock.settimeout(max(deadline - time.monotonic(), 0.001))
            part = sock.recv(CHUNK + 1)
            if not part:
                raise OSError(errno.ECONNRESET, "daemon closed the connection")
            body += part[1:]
            if part[:1] == _LAST:
                break
    reply = json.loads(body)
    if not isinstance(reply, dict) or not reply.get("ok"):
        error = reply.get("error") if isinstance(reply, dict) else None
        raise ConfigError(str(error or "malformed reply"))
    return reply.get("result")


# ---------------------------------------------------------------------- status -------
def _counters(obj: object) -> dict[str, Any]:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {k: v for k, v in dataclasses.asdict(obj).items() if isinstance(v, int | float)}
    return {
        name: getattr(obj, name)
        for name in ("bytes", "packets")
        if isinstance(getattr(obj, name, None), int)
    }


def _ports(value: object) -> object:
    return list(value) if isinstance(value, tuple) else value


def status_document(
    engine: Engine, now: float, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """What ``pyipsec status`` shows: SAs, policies with hit counts, non-zero statistics.

    Never any key: only algorithm names, addresses, SPIs, states and counters."""
    sas = []
    for entry in engine.dump_sa():
        spec = entry.spec
        item: dict[str, Any] = {
            "spi": entry.spi,
            "src": str(entry.src),
            "dst": str(entry.dst),
            "proto": entry.proto,
            "mode": entry.mode,
            "reqid": entry.reqid,
            "state": str(entry.state),
            "encap": list(entry.encap) if entry.encap else None,
            "lifetime_left": entry.lifetime_left(now),
            "age": now - entry.add_time,
        }
        if spec is not None:
            item["enc"] = spec.enc
            item["integ"] = spec.integ
            item["esn"] = spec.esn
            item["replay_window"] = spec.replay_window
        if entry.sa is not None:
            item["counters"] = _counters(getattr(entry.sa, "counters", None))
        sas.append(item)
    policies = []
    for policy in engine.dump_policy():
        sel = policy.selector
        try:
            pstats = engine.spd.stats(policy.index)
            hits, nbytes = pstats.hits, pstats.bytes
        except PyipsecError:
            hits = nbytes = 0
        policies.append(
            {
                "index": policy.index,
                "direction": policy.direction,
                "action": policy.action,
                "priority": policy.priority,
                "src": str(sel.src),
                "dst": str(sel.dst),
                "proto": sel.proto,
                "sport": _ports(sel.sport),
                "dport": _ports(sel.dport),
                "templates": [
                    {
                        "proto": t.proto,
                        "mode": t.mode,
                        "src": None if t.src is None else str(t.src),
                        "dst": None if t.dst is None else str(t.dst),
                        "reqid": t.reqid,
                        "level": t.level,
                    }
                    for t in policy.templates
                ],
                "hits": hits,
                "bytes": nbytes,
            }
        )
    stats = {name: value for name, value in engine.stats.items() if value}
    doc: dict[str, Any] = {"sas": sas, "policies": policies, "stats": stats}
    if extra:
        doc.update(extra)
    return doc

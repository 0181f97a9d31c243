"""A blocking client for the daemon's ``xfrm.sock``: xfrm netlink messages over AF_UNIX.

The daemon answers on its Unix SOCK_SEQPACKET socket exactly what the kernel answers on
NETLINK_XFRM (``keyapi.xfrm_server``), so ``UnixXfrmClient`` offers the same methods as
``io.netlink_socket.XfrmSocket`` and ``pyipsec xfrm`` drives either through the
``XfrmClient`` protocol. Replies are matched by sequence number; anything else that
arrives in between (a notification, seq 0) is kept for ``receive``.
"""

from __future__ import annotations

import errno
import os
import select
import socket
import time
from collections.abc import Iterable
from typing import Final, Protocol

from pyipsec.errors import ConfigError, KeyApiError
from pyipsec.keyapi import xfrm_const as c
from pyipsec.keyapi.netlink import (
    NLA_HDR,
    NLM_F_ACK,
    NLM_F_ACK_TLVS,
    NLM_F_DUMP,
    NLM_F_REQUEST,
    NLMSG_DONE,
    NLMSG_ERROR,
    NLMSG_HDRLEN,
    Done,
    NetlinkError,
)
from pyipsec.keyapi.xfrm import Body, XfrmMessage, build_message, parse_messages
from pyipsec.keyapi.xfrm_server import NLMSGERR_ATTR_MSG, subscribe_message
from pyipsec.keyapi.xfrm_structs import UserpolicyId, UsersaId

_RECV_SIZE: Final = 1 << 16


class XfrmClient(Protocol):
    """What both ``XfrmSocket`` (kernel) and ``UnixXfrmClient`` (daemon) offer."""

    def request(self, msg: XfrmMessage) -> list[XfrmMessage]: ...

    def dump(self, msg_type: int, body: Body = None) -> list[XfrmMessage]: ...

    def subscribe(self, groups: Iterable[int]) -> None: ...

    def receive(self, timeout: float | None = None) -> list[XfrmMessage]: ...

    def close(self) -> None: ...


def _extack(err: NetlinkError) -> str:
    """The NLMSGERR_ATTR_MSG text of an error, if the server sent one."""
    tail = err.echo[NLMSG_HDRLEN:]
    offset = 0
    while offset + NLA_HDR.size <= len(tail):
        length, kind = NLA_HDR.unpack_from(tail, offset)
        if length < NLA_HDR.size:
            break
        if kind == NLMSGERR_ATTR_MSG:
            return tail[offset + NLA_HDR.size : offset + length].split(b"\0")[0].decode()
        offset += (length + 3) & ~3
    return ""


class UnixXfrmClient:
    """The daemon's ``xfrm.sock``: netlink messages over AF_UNIX SOCK_SEQPACKET."""

    def __init__(self, path: str | os.PathLike[str], timeout: float = 5.0) -> None:
        self.timeout = timeout
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        try:
            self._sock.connect(os.fspath(path))
        except OSError as exc:
            self._sock.close()
            raise ConfigError(f"cannot reach the daemon at {path}: {exc.strerror}") from None
        self._seq = 0
        self._events: list[XfrmMessage] = []

    def close(self) -> None:
        self._sock.close()

    def _recv(self, deadline: float | None) -> list[XfrmMessage]:
        wait = None if deadline is None else max(0.0, deadline - time.monotonic())
        ready, _, _ = select.select([self._sock], [], [], wait)
        if not ready:
            raise TimeoutError("no answer from the daemon's xfrm.sock")
        data = self._sock.recv(_RECV_SIZE)
        if not data:
            raise KeyApiError(errno.ECONNRESET, "the daemon closed xfrm.sock")
        return parse_messages(data)

    def _exchange(self, raw: bytes, seq: int, name: str) -> list[XfrmMessage]:
        self._sock.send(raw)
        deadline = time.monotonic() + self.timeout
        replies: list[XfrmMessage] = []
        while True:
            for reply in self._recv(deadline):
                if reply.seq != seq:
                    self._events.append(reply)  # a notification (seq 0)
                    continue
                if reply.type == NLMSG_ERROR and isinstance(reply.body, NetlinkError):
                    if reply.body.error:
                        code = -reply.body.error
                        text = _extack(reply.body) if reply.flags & NLM_F_ACK_TLVS else ""
                        raise KeyApiError(code, text or f"{name}: {os.strerror(code)}")
                    return replies
                if reply.type == NLMSG_DONE:
                    if isinstance(reply.body, Done) and reply.body.status < 0:
                        raise KeyApiError(-reply.body.status, f"{name} dump failed")
                    return replies
                replies.append(reply)

    def _next_seq(self) -> int:
        self._seq = (self._seq + 1) & 0xFFFFFFFF or 1
        return self._seq

    def request(self, msg: XfrmMessage) -> list[XfrmMessage]:
        seq = self._next_seq()
        out = XfrmMessage(msg.type, msg.body, msg.attrs, msg.flags | NLM_F_REQUEST | NLM_F_ACK, seq)
        return self._exchange(build_message(out), seq, msg.name)

    def dump(self, msg_type: int, body: Body = None) -> list[XfrmMessage]:
        if body is None:
            body = UsersaId() if msg_type == c.XFRM_MSG_GETSA else UserpolicyId()
        seq = self._next_seq()
        out = XfrmMessage(msg_type, body, [], NLM_F_REQUEST | NLM_F_DUMP, seq)
        return self._exchange(build_message(out), seq, out.name)

    def subscribe(self, groups: Iterable[int]) -> None:
        for group in groups:
            seq = self._next_seq()
            self._exchange(subscribe_message(group, seq=seq), seq, "subscribe")

    def receive(self, timeout: float | None = None) -> list[XfrmMessage]:
        if self._events:
            out, self._events = self._events, []
            return out
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            return self._recv(deadline)
        except TimeoutError:
            return []

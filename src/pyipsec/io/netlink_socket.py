"""A small blocking client for the kernel's NETLINK_XFRM socket.

``XfrmSocket`` speaks the codec of :mod:`pyipsec.keyapi.xfrm` to the Linux kernel of the
current network namespace: requests with an ACK, dumps, and multicast events
(ACQUIRE, EXPIRE, SA, POLICY ...). It needs CAP_NET_ADMIN for every request, even GETs
(xfrm_user_rcv_msg checks it before dispatching).
"""

from __future__ import annotations

import errno as errno_mod
import os
import select
import socket
import time
from collections import deque
from collections.abc import Iterable
from types import TracebackType

from pyipsec.errors import KeyApiError
from pyipsec.keyapi import xfrm_const as c
from pyipsec.keyapi.netlink import (
    NETLINK_ADD_MEMBERSHIP,
    NETLINK_DROP_MEMBERSHIP,
    NETLINK_XFRM,
    NLM_F_ACK,
    NLM_F_DUMP,
    NLM_F_REQUEST,
    NLMSG_DONE,
    NLMSG_ERROR,
    SOL_NETLINK,
    Done,
    NetlinkError,
)
from pyipsec.keyapi.xfrm import Body, XfrmMessage, build_message, parse_messages
from pyipsec.keyapi.xfrm_structs import UserpolicyId, UsersaId

_RECV_SIZE = 1 << 16
# Errnos with which a kernel refuses an SA it has no transform or algorithm for:
# ENOSYS (algorithm name unknown, attach_*), EPROTONOSUPPORT (no esp4/esp6 type),
# ENOENT (crypto API has no such template), EINVAL (bad algorithm parameters).
_NO_ESP_ERRNOS = frozenset(
    {errno_mod.ENOSYS, errno_mod.EPROTONOSUPPORT, errno_mod.ENOENT, errno_mod.EINVAL}
)


def describe_sa_algorithms(msg: XfrmMessage) -> str:
    """The kernel algorithm names an SA request carries, e.g. ``cbc(aes)+hmac(sha256)``."""
    names = []
    for attr_type in (
        c.XFRMA_ALG_AEAD,
        c.XFRMA_ALG_CRYPT,
        c.XFRMA_ALG_AUTH_TRUNC,
        c.XFRMA_ALG_AUTH,
    ):
        value = msg.get(attr_type)
        name = getattr(value, "name", None)
        if isinstance(name, str) and name not in names:
            names.append(name)
    return "+".join(names) or "no algorithm"


def _explain(request: XfrmMessage, code: int) -> str:
    reason = os.strerror(code)
    if request.type in (c.XFRM_MSG_NEWSA, c.XFRM_MSG_UPDSA) and code in _NO_ESP_ERRNOS:
        algs = describe_sa_algorithms(request)
        return f"this kernel cannot run ESP with {algs}: {reason}; use the embedded data plane"
    return f"{request.name} refused by the kernel: {reason}"


class XfrmSocket:
    """A NETLINK_XFRM socket bound in the current network namespace."""

    def __init__(self, timeout: float = 5.0, rcvbuf: int = 1 << 20) -> None:
        self.timeout = timeout
        self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_XFRM)
        try:
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            self._sock.bind((0, 0))
            self.pid: int = self._sock.getsockname()[0]
        except OSError:
            self._sock.close()
            raise
        self._seq = int(time.time()) & 0x7FFFFFFF
        self._events: deque[XfrmMessage] = deque()

    # -- lifecycle ----------------------------------------------------------------------
    def __enter__(self) -> XfrmSocket:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._sock.close()

    def fileno(self) -> int:
        return self._sock.fileno()

    # -- requests ---------------------------------------------------------------------------
    def _next_seq(self) -> int:
        self._seq = (self._seq + 1) & 0xFFFFFFFF or 1
        return self._seq

    def _recv(self, deadline: float | None) -> list[XfrmMessage]:
        wait = None if deadline is None else max(0.0, deadline - time.monotonic())
        ready, _, _ = select.select([self._sock], [], [], wait)
        if not ready:
            raise TimeoutError("no answer from the kernel on NETLINK_XFRM")
        data = self._sock.recv(_RECV_SIZE)
        return parse_messages(data)

    def _exchange(self, msg: XfrmMessage, flags: int) -> list[XfrmMessage]:
        seq = self._next_seq()
        request = XfrmMessage(msg.type, msg.body, msg.attrs, flags, seq, 0)
        self._sock.send(build_message(request))
        deadline = time.monotonic() + self.timeout
        replies: list[XfrmMessage] = []
        while True:
            for reply in self._recv(deadline):
                if reply.seq != seq or reply.pid != self.pid:
                    # A multicast event (pid 0) arrived in between: keep it for receive().
                    self._events.append(reply)
                    continue
                if reply.type == NLMSG_ERROR and isinstance(reply.body, NetlinkError):
                    if reply.body.error:
                        code = -reply.body.error
                        raise KeyApiError(code, _explain(msg, code))
                    return replies
                if reply.type == NLMSG_DONE:
                    if isinstance(reply.body, Done) and reply.body.status < 0:
                        code = -reply.body.status
                        raise KeyApiError(code, _explain(msg, code))
                    return replies
                replies.append(reply)

    def request(self, msg: XfrmMessage) -> list[XfrmMessage]:
        """Send ``msg`` with NLM_F_REQUEST|NLM_F_ACK (plus its own flags); return the replies
        that came before the ACK. KeyApiError(errno) when the kernel refuses it."""
        return self._exchange(msg, msg.flags | NLM_F_REQUEST | NLM_F_ACK)

    def dump(self, msg_type: int, body: Body = None) -> list[XfrmMessage]:
        """Every object of a GET dump (``XFRM_MSG_GETSA`` or ``XFRM_MSG_GETPOLICY``)."""
        if body is None:
            body = UsersaId() if msg_type == c.XFRM_MSG_GETSA else UserpolicyId()
        return self._exchange(XfrmMessage(msg_type, body), NLM_F_REQUEST | NLM_F_DUMP)

    # -- multicast ---------------------------------------------------------------------------
    def subscribe(self, groups: Iterable[int]) -> None:
        """Join XFRMNLGRP_* multicast groups (ACQUIRE, EXPIRE, SA, POLICY, ...)."""
        for group in groups:
            self._sock.setsockopt(SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, group)

    def unsubscribe(self, groups: Iterable[int]) -> None:
        for group in groups:
            self._sock.setsockopt(SOL_NETLINK, NETLINK_DROP_MEMBERSHIP, group)

    def receive(self, timeout: float | None = None) -> list[XfrmMessage]:
        """Multicast events: those queued during requests, else what arrives within
        ``timeout`` seconds (an empty list when nothing does)."""
        if self._events:
            out = list(self._events)
            self._events.clear()
            return out
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            return self._recv(deadline)
        except TimeoutError:
            return []

"""The daemon's xfrm.sock client (pyipsec.io.xfrm_client) against a scripted peer.

The peer is a Unix SOCK_SEQPACKET listener in the test's tmp dir. Replies are queued on
the accepted connection before the client sends its request: the client must pick its
answer by sequence number and keep whatever else arrives for ``receive``.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyipsec.errors import ConfigError, KeyApiError
from pyipsec.io.xfrm_client import UnixXfrmClient
from pyipsec.keyapi import xfrm_const as c
from pyipsec.keyapi.netlink import (
    NLM_F_ACK,
    NLM_F_DUMP,
    NLM_F_MULTI,
    NLM_F_REQUEST,
    NLMSG_DONE,
    NLMSG_HDR,
    Done,
    NlMsgHeader,
    build_nlmsg,
)
from pyipsec.keyapi.xfrm import XfrmMessage, build_message, parse_messages
from pyipsec.keyapi.xfrm_server import XFRM_MSG_PYIPSEC_SUBSCRIBE, error_message
from pyipsec.keyapi.xfrm_structs import UserpolicyInfo, UsersaFlush

Peer = tuple[UnixXfrmClient, socket.socket]


@pytest.fixture
def peer(tmp_path: Path) -> Iterator[Peer]:
    path = tmp_path / "xfrm.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listener.bind(str(path))
    listener.listen(1)
    client = UnixXfrmClient(path, timeout=2.0)
    conn, _ = listener.accept()
    try:
        yield client, conn
    finally:
        client.close()
        conn.close()
        listener.close()


def _ack(seq: int, code: int = 0, text: str = "") -> bytes:
    """The daemon's NLMSG_ERROR for request ``seq`` (code 0: an ACK)."""
    request = build_nlmsg(c.XFRM_MSG_FLUSHSA, NLM_F_REQUEST | NLM_F_ACK, seq, 0, b"")
    return error_message(NlMsgHeader(*NLMSG_HDR.unpack(request)), request, code, text)


def _flush_event() -> bytes:
    return build_message(XfrmMessage(c.XFRM_MSG_FLUSHSA, UsersaFlush(c.IPPROTO_ESP)))


def test_unreachable_socket_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot reach the daemon"):
        UnixXfrmClient(tmp_path / "nobody.sock")


def test_request_waits_for_its_ack_and_keeps_events(peer: Peer) -> None:
    client, conn = peer
    conn.send(_flush_event())  # a notification (seq 0) ahead of the answer
    conn.send(_ack(1))
    assert client.request(XfrmMessage(c.XFRM_MSG_FLUSHSA, UsersaFlush(c.IPPROTO_ESP))) == []
    (sent,) = parse_messages(conn.recv(1 << 16))
    assert sent.seq == 1 and sent.flags & (NLM_F_REQUEST | NLM_F_ACK) == NLM_F_REQUEST | NLM_F_ACK
    events = client.receive(timeout=0)
    assert [(m.type, m.seq) for m in events] == [(c.XFRM_MSG_FLUSHSA, 0)]
    assert client.receive(timeout=0.01) == []


def test_refusal_carries_the_errno_and_the_servers_words(peer: Peer) -> None:
    client, conn = peer
    conn.send(_ack(1, errno.ESRCH, "no such SA"))
    conn.send(_ack(2, errno.EEXIST))
    msg = XfrmMessage(c.XFRM_MSG_FLUSHSA, UsersaFlush(c.IPPROTO_ESP))
    with pytest.raises(KeyApiError, match="no such SA") as info:
        client.request(msg)
    assert info.value.errno == errno.ESRCH
    with pytest.raises(KeyApiError, match="XFRM_MSG_FLUSHSA: File exists") as info:
        client.request(msg)
    assert info.value.errno == errno.EEXIST


def test_dump_collects_until_done(peer: Peer) -> None:
    client, conn = peer
    for index in (7, 8):
        body = UserpolicyInfo(index=index)
        reply = XfrmMessage(c.XFRM_MSG_NEWPOLICY, body, flags=NLM_F_MULTI, seq=1)
        conn.send(build_message(reply))
    conn.send(build_nlmsg(NLMSG_DONE, NLM_F_MULTI, 1, 0, Done(0).pack()))
    replies = client.dump(c.XFRM_MSG_GETPOLICY)
    assert [m.body.index for m in replies if isinstance(m.body, UserpolicyInfo)] == [7, 8]
    (sent,) = parse_messages(conn.recv(1 << 16))
    assert sent.type == c.XFRM_MSG_GETPOLICY and sent.flags & NLM_F_DUMP == NLM_F_DUMP


def test_failed_dump_is_an_error(peer: Peer) -> None:
    client, conn = peer
    conn.send(build_nlmsg(NLMSG_DONE, NLM_F_MULTI, 1, 0, Done(-errno.EINTR).pack()))
    with pytest.raises(KeyApiError, match="dump failed") as info:
        client.dump(c.XFRM_MSG_GETSA)
    assert info.value.errno == errno.EINTR


def test_silence_and_hangup(peer: Peer) -> None:
    client, conn = peer
    client.timeout = 0.05
    msg = XfrmMessage(c.XFRM_MSG_FLUSHSA, UsersaFlush(c.IPPROTO_ESP))
    with pytest.raises(TimeoutError):
        client.request(msg)
    conn.shutdown(socket.SHUT_WR)  # the daemon stops answering: EOF, not silence
    with pytest.raises(KeyApiError) as info:
        client.request(msg)
    assert info.value.errno == errno.ECONNRESET


def test_subscribe_asks_once_per_group(peer: Peer) -> None:
    client, conn = peer
    conn.send(_ack(1))
    conn.send(_ack(2))
    client.subscribe([c.XFRMNLGRP_ACQUIRE, c.XFRMNLGRP_EXPIRE])
    sent = [NlMsgHeader(*NLMSG_HDR.unpack_from(conn.recv(1 << 16))) for _ in range(2)]
    assert [h.seq for h in sent] == [1, 2]
    assert {h.type for h in sent} == {XFRM_MSG_PYIPSEC_SUBSCRIBE}

"""io/control: the SOCK_SEQPACKET server, the JSON control protocol and the status document.

Server and client run in one process: the client side is a plain blocking socket and the
server's loop is turned by hand (``run_once``) between client steps.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import threading
from pathlib import Path
from typing import Any

import pytest

from pyipsec.errors import ConfigError, KeyApiError
from pyipsec.io.control import (
    CHUNK,
    Connection,
    JsonControlHandler,
    SeqpacketServer,
    encode_reply,
    request,
    status_document,
)
from pyipsec.io.daemon import SelectorLoop


class Echo:
    """A handler that replies twice and remembers who subscribed."""

    def __init__(self) -> None:
        self.closed_count = 0

    def handle(self, data: bytes, conn: Connection) -> list[bytes]:
        if data == b"subscribe":
            conn.state["sub"] = True
            return [b"ok"]
        if data == b"boom":
            raise RuntimeError("handler bug")
        return [b"1:" + data, b"2:" + data]

    def closed(self, conn: Connection) -> None:
        self.closed_count += 1


@pytest.fixture
def loop() -> Any:
    lp = SelectorLoop()
    yield lp
    lp.close()


def _client(path: Path) -> socket.socket:
    c = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    c.settimeout(2)
    c.connect(str(path))
    return c


def _pump(loop: SelectorLoop, n: int = 5) -> None:
    for _ in range(n):
        loop.run_once(0.01)


def test_replies_keep_boundaries_and_order(tmp_path: Path, loop: SelectorLoop) -> None:
    server = SeqpacketServer(tmp_path / "s.sock", Echo(), loop, allowed_uids=[os.getuid()])
    server.start()
    assert stat.S_IMODE((tmp_path / "s.sock").stat().st_mode) == 0o600
    c = _client(tmp_path / "s.sock")
    _pump(loop)
    c.send(b"hello")
    c.send(b"world")
    _pump(loop)
    assert [c.recv(100) for _ in range(4)] == [b"1:hello", b"2:hello", b"1:world", b"2:world"]
    c.close()
    server.close()
    assert not (tmp_path / "s.sock").exists()


def test_refuses_other_uids(tmp_path: Path, loop: SelectorLoop) -> None:
    handler = Echo()
    server = SeqpacketServer(tmp_path / "s.sock", handler, loop, allowed_uids=[os.getuid() + 1])
    server.start()
    c = _client(tmp_path / "s.sock")
    _pump(loop)
    assert not server.connections
    # Closed by the server before anything was read or answered.
    with pytest.raises(BrokenPipeError):
        c.send(b"hello")
    server.close()


def test_broadcast_reaches_only_subscribers(tmp_path: Path, loop: SelectorLoop) -> None:
    server = SeqpacketServer(tmp_path / "s.sock", Echo(), loop, allowed_uids=[os.getuid()])
    server.start()
    a, b = _client(tmp_path / "s.sock"), _client(tmp_path / "s.sock")
    _pump(loop)
    a.send(b"subscribe")
    _pump(loop)
    assert a.recv(100) == b"ok"
    assert server.broadcast(b"event", lambda conn: bool(conn.state.get("sub"))) == 1
    assert a.recv(100) == b"event"
    b.setblocking(False)
    with pytest.raises(BlockingIOError):
        b.recv(100)
    server.close()


def test_handler_exception_closes_only_that_client(tmp_path: Path, loop: SelectorLoop) -> None:
    handler = Echo()
    server = SeqpacketServer(tmp_path / "s.sock", handler, loop, allowed_uids=[os.getuid()])
    server.start()
    bad, good = _client(tmp_path / "s.sock"), _client(tmp_path / "s.sock")
    _pump(loop)
    bad.send(b"boom")
    _pump(loop)
    assert bad.recv(100) == b""
    assert handler.closed_count == 1
    good.send(b"x")
    _pump(loop)
    assert good.recv(100) == b"1:x"
    server.close()


def test_live_socket_is_not_stolen_but_stale_one_is(tmp_path: Path, loop: SelectorLoop) -> None:
    path = tmp_path / "s.sock"
    first = SeqpacketServer(path, Echo(), loop, allowed_uids=[os.getuid()])
    first.start()
    with pytest.raises(ConfigError, match="in use"):
        SeqpacketServer(path, Echo(), loop).start()
    # A stale socket file (its owner died without cleaning up) is replaced.
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    stale.bind(str(tmp_path / "stale.sock"))
    stale.close()
    second = SeqpacketServer(tmp_path / "stale.sock", Echo(), loop)
    second.start()
    second.close()
    first.close()
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="not a socket"):
        SeqpacketServer(tmp_path / "file", Echo(), loop).start()


def test_backlogged_reply_is_queued_not_lost(tmp_path: Path, loop: SelectorLoop) -> None:
    big = b"x" * 60000

    class Big:
        def handle(self, data: bytes, conn: Connection) -> list[bytes]:
            return [big] * 20  # far more than one socket buffer holds

        def closed(self, conn: Connection) -> None:
            return None

    server = SeqpacketServer(tmp_path / "s.sock", Big(), loop, allowed_uids=[os.getuid()])
    server.start()
    c = _client(tmp_path / "s.sock")
    _pump(loop)
    c.send(b"go")
    got = 0
    for _ in range(200):
        _pump(loop, 1)
        c.setblocking(False)
        try:
            while True:
                assert c.recv(70000) == big
                got += 1
        except BlockingIOError:
            pass
        if got == 20:
            break
    assert got == 20
    server.close()


def test_encode_reply_chunks_and_marks_last() -> None:
    doc = {"a": "y" * (CHUNK * 2)}
    parts = encode_reply(doc)
    assert len(parts) == 3
    assert [p[:1] for p in parts] == [b"+", b"+", b"."]
    assert json.loads(b"".join(p[1:] for p in parts)) == doc


def _serve_in_thread(path: Path, handler: JsonControlHandler) -> tuple[SelectorLoop, Any]:
    lp = SelectorLoop()
    server = SeqpacketServer(path, handler, lp, allowed_uids=[os.getuid()])
    server.start()
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            lp.run_once(0.02)
        server.close()
        lp.close()

    t = threading.Thread(target=run)
    t.start()

    def finish() -> None:
        stop.set()
        t.join()

    return lp, finish


def test_json_commands_and_errors(tmp_path: Path) -> None:
    def fail(req: dict[str, Any]) -> object:
        raise KeyApiError(3, "no such SA")

    handler = JsonControlHandler(
        {"echo": lambda req: req.get("x"), "big": lambda req: "z" * 100000, "fail": fail}
    )
    path = tmp_path / "c.sock"
    _, finish = _serve_in_thread(path, handler)
    try:
        assert request(path, {"cmd": "echo", "x": [1, 2]}) == [1, 2]
        assert request(path, {"cmd": "big"}) == "z" * 100000
        with pytest.raises(ConfigError, match="unknown command"):
            request(path, {"cmd": "nope"})
        with pytest.raises(ConfigError, match="no such SA"):
            request(path, {"cmd": "fail"})
    finally:
        finish()


def test_json_handler_rejects_malformed_requests() -> None:
    handler = JsonControlHandler({})
    for raw in (b"\xff\xfe", b"[1]", b'{"cmd": 3}', b"not json"):
        reply = json.loads(b"".join(p[1:] for p in handler.handle(raw, None)))  # type: ignore[arg-type]
        assert reply["ok"] is False
        assert reply["error"]


def test_status_document_of_an_empty_engine() -> None:
    processor = pytest.importorskip("pyipsec.engine.processor")
    engine = processor.Engine()
    doc = status_document(engine, 0.0)
    assert doc["sas"] == [] and doc["policies"] == []
    assert doc["stats"] == {}

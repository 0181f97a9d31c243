"""io/daemon without root: the event loop, and the data-path decisions of ``Daemon`` with a
real engine but in-memory stand-ins for the TUN, the sockets and the routes."""

from __future__ import annotations

import errno
import os
import signal
import socket
import time
from pathlib import Path
from typing import Any

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import ICMPv6ND_RS, IPv6

from pyipsec.engine.processor import Engine
from pyipsec.engine.sad import SASpec
from pyipsec.engine.spd import Policy, Selector, Template
from pyipsec.errors import Reason
from pyipsec.io.daemon import Daemon, DaemonOptions, SelectorLoop

# ------------------------------------------------------------------------ the loop ----


def test_timers_run_in_order_and_cancel() -> None:
    loop = SelectorLoop()
    seen: list[str] = []
    now = loop.time()
    loop.call_at(now + 0.02, seen.append, "late")
    loop.call_at(now + 0.01, seen.append, "early")
    loop.call_at(now + 0.015, seen.append, "cancelled").cancel()
    loop.call_at(now + 0.03, loop.stop)
    loop.run_forever()
    loop.close()
    assert seen == ["early", "late"]


def test_reader_and_writer_on_one_fd() -> None:
    loop = SelectorLoop()
    a, b = socket.socketpair()
    events: list[str] = []
    loop.add_reader(a.fileno(), lambda: events.append("r") or a.recv(10))
    loop.add_writer(a.fileno(), lambda: events.append("w"))
    loop.run_once(0.01)
    assert events == ["w"]  # writable, nothing to read yet
    assert loop.remove_writer(a.fileno()) and not loop.remove_writer(a.fileno())
    b.send(b"x")
    loop.run_once(0.1)
    assert events == ["w", "r"]
    assert loop.remove_reader(a.fileno()) and not loop.remove_reader(a.fileno())
    loop.close()
    a.close()
    b.close()


def test_signal_runs_as_a_loop_callback() -> None:
    loop = SelectorLoop()
    got: list[int] = []
    loop.add_signal_handler(signal.SIGUSR1, lambda: (got.append(1), loop.stop()))
    loop.call_later(0.01, os.kill, os.getpid(), signal.SIGUSR1)
    loop.call_later(2.0, loop.stop)  # safety net
    t0 = time.monotonic()
    loop.run_forever()
    loop.close()
    assert got == [1] and time.monotonic() - t0 < 1.5
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL


# ---------------------------------------------------------------------- data path ----


class FakeTun:
    def __init__(self, mtu: int = 1400) -> None:
        self.mtu = mtu
        self.written: list[bytes] = []
        self.name = "fake0"

        self.batches: list[int] = []
        self.gso_writes = 0

    def write(self, packet: bytes) -> bool:
        self.written.append(packet)
        return True

    def write_many(self, packets: list[bytes]) -> int:
        self.batches.append(len(packets))
        self.written.extend(packets)
        return 0

    def set_mtu(self, mtu: int) -> None:
        self.mtu = mtu


class FakeNet:
    def __init__(self, fail: int = 0) -> None:
        self.sent: list[tuple[bytes, str, str, Any]] = []
        self.bypassed: list[bytes] = []
        self.fail = fail

    def send_esp(self, data: bytes, src: str, dst: str, encap: Any) -> int:
        self.sent.append((data, src, dst, encap))
        return self.fail if len(data) > 1000 else 0

    def send_bypass(self, packet: bytes) -> int:
        self.bypassed.append(packet)
        return 0


class FakeRoutes:
    def __init__(self) -> None:
        self.added: list[int] = []
        self.removed: list[int] = []

    def add_policy(self, policy: Policy) -> bool:
        self.added.append(policy.index)
        return True

    def remove_policy(self, index: int) -> None:
        self.removed.append(index)

    def routes(self) -> dict[str, str | None]:
        return {}


def _engine() -> Engine:
    engine = Engine(["192.0.2.1", "198.51.100.1"])
    key = bytes(range(20))
    engine.add_sa(SASpec(spi=0x1001, src="192.0.2.1", dst="192.0.2.2", enc_key=key), 0.0)
    engine.add_sa(SASpec(spi=0x2002, src="192.0.2.2", dst="192.0.2.1", enc_key=key), 0.0)
    tmpl_out = Template(src="192.0.2.1", dst="192.0.2.2")
    tmpl_in = Template(src="192.0.2.2", dst="192.0.2.1")
    engine.add_policy(
        Policy("out", Selector("198.51.100.0/24", "203.0.113.0/24"), templates=[tmpl_out])
    )
    engine.add_policy(
        Policy("in", Selector("203.0.113.0/24", "198.51.100.0/24"), templates=[tmpl_in])
    )
    return engine


@pytest.fixture
def daemon(tmp_path: Path) -> Any:
    d = Daemon(DaemonOptions(run_dir=tmp_path), _engine())
    d.tun = FakeTun()  # type: ignore[assignment]
    d.net = FakeNet()  # type: ignore[assignment]
    d.routes = FakeRoutes()  # type: ignore[assignment]
    d._peer_mtu["192.0.2.2"] = (1500, time.monotonic() + 3600)
    yield d
    d.loop.close()


def _outbound(daemon: Daemon, packet: bytes) -> None:
    now = time.monotonic()
    daemon._dispatch(daemon.engine.outbound(packet, now), packet, now)


def test_outbound_transmits_and_bypasses(daemon: Daemon) -> None:
    _outbound(daemon, bytes(IP(src="198.51.100.1", dst="203.0.113.1") / ICMP()))
    net: FakeNet = daemon.net  # type: ignore[assignment]
    assert [(s, d) for _, s, d, _ in net.sent] == [("192.0.2.1", "192.0.2.2")]
    plain = bytes(IP(src="198.51.100.1", dst="192.0.2.77") / ICMP())
    _outbound(daemon, plain)
    assert net.bypassed == [plain]
    assert daemon.io_stats["net_tx"] == 1


def test_link_scoped_packets_from_the_tun_are_not_bypassed(daemon: Daemon) -> None:
    # An IPv6 router solicitation and IGMP: bypassed, they would loop back onto the TUN.
    rs = bytes(IPv6(src="fe80::1", dst="ff02::2") / ICMPv6ND_RS())
    igmp = bytes(IP(src="198.51.100.1", dst="224.0.0.22") / (b"\x22" * 8))
    link_local = bytes(IPv6(src="fe80::1", dst="fe80::2") / UDP())
    for packet in (rs, igmp, link_local):
        _outbound(daemon, packet)
    assert daemon.net.bypassed == []  # type: ignore[union-attr]
    assert daemon.io_stats["tun_link_local"] == 3


def test_inbound_delivers_to_tun_with_mss_clamped(daemon: Daemon) -> None:
    # Build what the peer would send with the peer's own engine (mirror SAs).
    peer = _engine()
    peer.spd.flush()
    peer.add_policy(
        Policy(
            "out",
            Selector("203.0.113.0/24", "198.51.100.0/24"),
            templates=[Template(src="192.0.2.2", dst="192.0.2.1")],
        )
    )
    syn = bytes(IP(src="203.0.113.1", dst="198.51.100.1") / TCP(flags="S", options=[("MSS", 1460)]))
    t = peer.outbound(syn, 0.0)
    src, dst = socket.inet_aton("192.0.2.2"), socket.inet_aton("192.0.2.1")
    daemon._dispatch(daemon.engine.inbound_esp(t.data, src, dst, None, 0.0), b"", 0.0)  # type: ignore[union-attr]
    tun: FakeTun = daemon.tun  # type: ignore[assignment]
    [delivered] = tun.written
    assert dict(IP(delivered)[TCP].options)["MSS"] == 1400 - 40


def test_inbound_batch_is_written_to_tun_at_once(daemon: Daemon) -> None:
    peer = _engine()
    peer.spd.flush()
    peer.add_policy(
        Policy(
            "out",
            Selector("203.0.113.0/24", "198.51.100.0/24"),
            templates=[Template(src="192.0.2.2", dst="192.0.2.1")],
        )
    )
    syn = IP(src="203.0.113.1", dst="198.51.100.1") / TCP(flags="S", options=[("MSS", 1460)])
    inner = [bytes(syn)] + [
        bytes(IP(src="203.0.113.1", dst="198.51.100.1") / TCP(seq=1 + 100 * i) / bytes(100))
        for i in range(4)
    ]
    esp = [peer.outbound(p, 0.0).data for p in inner]  # type: ignore[union-attr]
    esp.insert(2, esp[1])  # a replay: dropped, the batch goes on
    src, dst = socket.inet_aton("192.0.2.2"), socket.inet_aton("192.0.2.1")

    def receive(sock: Any, limit: int) -> list[tuple[bytes, bytes, bytes, int, int]]:
        return [(data, src, dst, 0, 0) for data in esp]

    daemon._on_net(None, receive, False)  # type: ignore[arg-type]
    tun: FakeTun = daemon.tun  # type: ignore[assignment]
    assert tun.batches == [5]
    assert tun.written[1:] == inner[1:]
    assert dict(IP(tun.written[0])[TCP].options)["MSS"] == 1400 - 40  # clamped
    assert daemon.io_stats["tun_tx"] == 5 and daemon.io_stats["net_rx"] == 6
    assert daemon.engine.stats[Reason.IN_STATE_SEQ_ERROR] == 1


def test_too_big_with_df_answers_icmp_into_tun(daemon: Daemon) -> None:
    daemon.net = FakeNet(fail=errno.EMSGSIZE)  # type: ignore[assignment]
    daemon._peer_mtu["192.0.2.2"] = (1000, time.monotonic() + 3600)
    big = bytes(IP(src="198.51.100.1", dst="203.0.113.1", flags="DF") / UDP() / bytes(1200))
    _outbound(daemon, big)
    tun: FakeTun = daemon.tun  # type: ignore[assignment]
    [reply] = tun.written
    icmp = IP(reply)
    assert (icmp.src, icmp.dst) == ("203.0.113.1", "198.51.100.1")
    assert (icmp[ICMP].type, icmp[ICMP].code) == (3, 4)
    sa = daemon.engine.sad.lookup(socket.inet_aton("192.0.2.2"), 0x1001)
    assert sa is not None and sa.sa is not None
    assert icmp[ICMP].nexthopmtu == sa.sa.max_inner_size(1000)
    assert daemon.io_stats["too_big_icmp"] == 1


def test_too_big_without_df_is_fragmented_before_encryption(daemon: Daemon) -> None:
    net = FakeNet(fail=errno.EMSGSIZE)
    daemon.net = net  # type: ignore[assignment]
    daemon._peer_mtu["192.0.2.2"] = (1000, time.monotonic() + 3600)
    big = bytes(IP(src="198.51.100.1", dst="203.0.113.1") / UDP() / bytes(1200))
    _outbound(daemon, big)
    # One refused send, then one ESP packet per fragment, each small enough.
    assert len(net.sent) == 3
    assert all(len(d) <= 1000 - 20 for d, *_ in net.sent[1:])
    assert daemon.io_stats["too_big_fragmented"] == 1
    assert daemon.tun.written == []  # type: ignore[union-attr]


def test_policy_events_drive_routes(daemon: Daemon) -> None:
    routes: FakeRoutes = daemon.routes  # type: ignore[assignment]
    daemon._after_batch()  # the two PolicyAdded events from _engine()
    out_index = next(p.index for p in daemon.engine.dump_policy() if p.direction == "out")
    assert out_index in routes.added
    daemon.engine.del_policy(out_index)
    daemon.after_key_management()
    assert routes.removed == [out_index]


def test_tun_mtu_follows_outbound_sas(daemon: Daemon) -> None:
    daemon._after_batch()  # SaAdded events
    sa = daemon.engine.sad.lookup(socket.inet_aton("192.0.2.2"), 0x1001)
    assert sa is not None and sa.sa is not None
    # Only the outbound SA (source is ours) counts: the inbound one is the peer's to size.
    assert daemon.tun.mtu == sa.sa.max_inner_size(1500)  # type: ignore[union-attr]


def test_udp_keepalive_and_ike_are_not_esp(daemon: Daemon) -> None:
    src, dst = socket.inet_aton("192.0.2.2"), socket.inet_aton("192.0.2.1")
    ike: list[bytes] = []
    daemon.ike_hook = lambda data, *addr: ike.append(data)

    def receive(sock: Any, limit: int) -> list[tuple[bytes, bytes, bytes, int, int]]:
        return [(b"\xff", src, dst, 4500, 0), (bytes(4) + b"ike!", src, dst, 4500, 0)]

    daemon._on_net(None, receive, True)  # type: ignore[arg-type]
    assert daemon.engine.stats[Reason.NAT_KEEPALIVE] == 1
    assert ike == [b"ike!"]
    assert daemon.engine.stats[Reason.IN_NO_STATES] == 0


def test_status_command_has_no_key_material(daemon: Daemon) -> None:
    doc = daemon._cmd_status({"cmd": "status"})
    text = repr(doc)
    assert bytes(range(20)).hex() not in text and "enc_key" not in text
    assert {sa["spi"] for sa in doc["sas"]} == {0x1001, 0x2002}  # type: ignore[index]

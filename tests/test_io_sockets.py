"""io/sockets: ancillary data helpers (no root) and real sockets inside a namespace (root).

In the namespace both ends are this host's loopback: ESP and ESP-in-UDP sent with
``send_esp`` from one address must come back through the receive functions with the
right addresses, and the SO_MARK must be set on every socket.
"""

from __future__ import annotations

import errno
import json
import socket
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from netns import Netns
from pyipsec.io.sockets import (
    IP_PKTINFO,
    IPV6_PKTINFO,
    SOL_UDP,
    UDP_GRO,
    _local_from_cmsgs,
    _pktinfo_cmsg,
    recv_udp_gro,
)


def test_pktinfo_cmsg_v4_and_v6() -> None:
    [(level, kind, data)] = _pktinfo_cmsg("192.0.2.1")
    assert (level, kind) == (socket.IPPROTO_IP, IP_PKTINFO)
    assert data[4:8] == socket.inet_aton("192.0.2.1") and data[8:12] == bytes(4)
    [(level, kind, data)] = _pktinfo_cmsg("2001:db8::1")
    assert (level, kind) == (socket.IPPROTO_IPV6, IPV6_PKTINFO)
    assert data[:16] == socket.inet_pton(socket.AF_INET6, "2001:db8::1")


def test_local_address_from_cmsgs() -> None:
    v4 = bytes(4) + socket.inet_aton("192.0.2.9") + socket.inet_aton("192.0.2.1")
    assert _local_from_cmsgs([(socket.IPPROTO_IP, IP_PKTINFO, v4)]) == socket.inet_aton("192.0.2.1")
    v6 = socket.inet_pton(socket.AF_INET6, "2001:db8::1") + bytes(4)
    assert _local_from_cmsgs([(socket.IPPROTO_IPV6, IPV6_PKTINFO, v6)]) == v6[:16]
    assert _local_from_cmsgs([(socket.IPPROTO_IP, IP_PKTINFO, b"short")]) == b""
    assert _local_from_cmsgs([]) == b""


class _GroSocket:
    """Stands in for a UDP socket with UDP_GRO on: replays recvmsg results, then EAGAIN."""

    family = socket.AF_INET

    def __init__(self, results: list[tuple[bytes, list[tuple[int, int, bytes]]]]) -> None:
        self.results = list(results)

    def recvmsg(self, size: int, anc_size: int) -> tuple[bytes, list[Any], int, Any]:
        if not self.results:
            raise BlockingIOError
        data, anc = self.results.pop(0)
        return data, anc, 0, ("192.0.2.9", 4501)


def test_udp_gro_splits_coalesced_datagrams() -> None:
    local = socket.inet_aton("192.0.2.1")
    pktinfo = (socket.IPPROTO_IP, IP_PKTINFO, bytes(8) + local)
    gro = (SOL_UDP, UDP_GRO, (100).to_bytes(4, sys.byteorder))
    glued = bytes(range(100)) * 2 + b"tail"
    sock = _GroSocket([(glued, [pktinfo, gro]), (b"alone", [pktinfo]), (b"lost", [])])
    got = recv_udp_gro(sock, 8)  # type: ignore[arg-type]
    peer = socket.inet_aton("192.0.2.9")
    assert got == [
        (bytes(range(100)), peer, local, 4501, 0),
        (bytes(range(100)), peer, local, 4501, 0),
        (b"tail", peer, local, 4501, 0),
        (b"alone", peer, local, 4501, 0),
    ]  # the datagram without pktinfo is skipped


def test_udp_gro_limit_counts_recvmsg_calls() -> None:
    pktinfo = (socket.IPPROTO_IP, IP_PKTINFO, bytes(12))
    sock = _GroSocket([(b"a", [pktinfo]), (b"b", [pktinfo]), (b"c", [pktinfo])])
    assert [d[0] for d in recv_udp_gro(sock, 2)] == [b"a", b"b"]  # type: ignore[arg-type]
    assert [d[0] for d in recv_udp_gro(sock, 2)] == [b"c"]  # type: ignore[arg-type]


_PROBE = textwrap.dedent(
    """
    import json, select, socket, subprocess
    from pyipsec.io.sockets import (
        NetworkSockets, recv_esp4, recv_udp_gro, recv_with_pktinfo, SO_MARK, SOCKET_BUFFER)
    subprocess.run(["ip", "addr", "add", "192.0.2.1/32", "dev", "lo"], check=True)
    subprocess.run(["ip", "addr", "add", "2001:db8::1/128", "dev", "lo", "nodad"], check=True)
    net = NetworkSockets(0x4301)
    marks = {n: s.getsockopt(socket.SOL_SOCKET, SO_MARK) for n, s in net.sockets.items()}
    esp = bytes.fromhex("0000123400000001") + b"payload"
    bufs = {n: s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) >= SOCKET_BUFFER
            for n, s in net.sockets.items()}
    out = {"marks": marks, "errs": [], "gro": net.gro, "bufs": bufs}
    udp = recv_udp_gro if net.gro else recv_with_pktinfo
    cases = [
        ("esp4", recv_esp4, "192.0.2.1", "127.0.0.1", None),
        ("esp6", recv_with_pktinfo, "2001:db8::1", "::1", None),
        ("udp4", udp, "192.0.2.1", "127.0.0.1", (4500, 4500)),
        ("udp6", udp, "2001:db8::1", "::1", (4500, 4500)),
    ]
    for name, fn, src, dst, encap in cases:
        out["errs"].append(net.send_esp(esp, src, dst, encap))
        select.select([net.sockets[name]], [], [], 2)
        got = fn(net.sockets[name], 8)
        fam = socket.AF_INET6 if ":" in src else socket.AF_INET
        out[name] = [[d.hex(), socket.inet_ntop(fam, s), socket.inet_ntop(fam, t), sp]
                     for d, s, t, sp, _ in got]
    # A UDP GSO burst (three datagrams, the last shorter) comes back as three datagrams,
    # read with one recvmsg when UDP GRO keeps them together on loopback.
    burst = [bytes([i]) * 300 for i in (1, 2)] + [b"\\x03" * 120]
    for name, src, dst in (("udp4", "192.0.2.1", "127.0.0.1"), ("udp6", "2001:db8::1", "::1")):
        out["errs"].append(net.send_esp_many(burst, src, dst, (4500, 4500)))
        select.select([net.sockets[name]], [], [], 2)
        got = [d[0] for d in udp(net.sockets[name], 1)]
        out["burst_" + name] = [g.hex() for g in got] == [b.hex() for b in burst]
    # Above the path MTU the kernel refuses (IP_PMTUDISC_DO) instead of fragmenting.
    subprocess.run(["ip", "link", "set", "lo", "mtu", "1300"], check=True)
    out["big"] = [net.send_esp(b"x" * 2000, "192.0.2.1", "127.0.0.1", None),
                  net.send_esp(b"x" * 2000, "192.0.2.1", "127.0.0.1", (4500, 4500)),
                  net.send_esp(b"x" * 2000, "2001:db8::1", "::1", None)]
    out["bypass"] = net.send_bypass(b"\\x45")  # truncated: an errno, no exception
    net.close()
    print(json.dumps(out))
    """
)


@pytest.mark.root
def test_sockets_round_trip_in_namespace(tmp_path: Path) -> None:
    script = tmp_path / "probe.py"
    script.write_text(_PROBE)
    with Netns.create("sock") as ns:
        out = json.loads(ns.run(sys.executable, str(script), timeout=30))
    assert set(out["marks"]) == {"esp4", "esp6", "udp4", "udp6", "raw4", "raw6"}
    assert set(out["marks"].values()) == {0x4301}
    assert out["errs"] == [0] * 6
    assert out["gro"] is True  # Linux >= 5.0
    assert out["burst_udp4"] and out["burst_udp6"]
    # Forced as root, whatever net.core.rmem_max says (raw IPPROTO_RAW sockets only send).
    assert {n for n, big in out["bufs"].items() if big} == {"esp4", "esp6", "udp4", "udp6"}
    esp = "00001234000000017061796c6f6164"
    assert out["esp4"] == [[esp, "192.0.2.1", "127.0.0.1", 0]]
    assert out["esp6"] == [[esp, "2001:db8::1", "::1", 0]]
    assert out["udp4"] == [[esp, "192.0.2.1", "127.0.0.1", 4500]]
    assert out["udp6"] == [[esp, "2001:db8::1", "::1", 4500]]
    assert out["big"] == [errno.EMSGSIZE] * 3
    assert out["bypass"] != 0

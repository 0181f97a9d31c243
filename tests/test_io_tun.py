"""io/tun: ifreq layout (no root) and a real TUN device inside a namespace (root)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from netns import Netns
from pyipsec.errors import ConfigError
from pyipsec.io.tun import IFF_NO_PI, IFF_TUN, TX_QUEUE_LEN, ifreq_flags, ifreq_int


def test_ifreq_layout() -> None:
    req = ifreq_flags("tun7", IFF_TUN | IFF_NO_PI)
    assert len(req) == 40  # sizeof(struct ifreq) on Linux x86-64
    assert req[:16] == b"tun7" + bytes(12)
    assert int.from_bytes(req[16:18], sys.byteorder) == 0x1001
    assert int.from_bytes(ifreq_int("eth0", 1400)[16:20], sys.byteorder) == 1400


@pytest.mark.parametrize("name", ["", "x" * 16, "a/b", "a b", "a:1"])
def test_bad_interface_names(name: str) -> None:
    with pytest.raises(ConfigError):
        ifreq_flags(name, 0)


_PROBE = textwrap.dedent(
    """
    import json, os, select, socket, subprocess, sys
    from pyipsec.io.tun import Tun, interface_mtu
    tun = Tun.open("ptest%d", mtu=1400)
    subprocess.run(["ip", "addr", "add", "192.0.2.1/32", "dev", tun.name], check=True)
    subprocess.run(["ip", "route", "add", "203.0.113.0/24", "dev", tun.name], check=True)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(b"hello", ("203.0.113.9", 9))
    select.select([tun.fd], [], [], 2)
    pkts = tun.read_batch()
    udp = [p for p in pkts if p[0] >> 4 == 4 and p[9] == 17]
    # Inject a reply from 203.0.113.9:9 to our socket.
    from scapy.layers.inet import IP, UDP
    dst = socket.inet_ntoa(udp[0][12:16])
    port = s.getsockname()[1]
    pkt = bytes(IP(src="203.0.113.9", dst=dst) / UDP(sport=9, dport=port) / b"world")
    with open("/proc/sys/net/ipv4/conf/" + tun.name + "/rp_filter", "w") as f:
        f.write("0")
    with open("/proc/sys/net/ipv4/conf/all/rp_filter", "w") as f:
        f.write("0")
    ok = tun.write(pkt)
    s.settimeout(2)
    got = s.recvfrom(100)
    print(json.dumps({"name": tun.name, "mtu": interface_mtu(tun.name), "n": len(udp),
                      "payload": udp[0][28:].decode(), "written": ok, "reply": got[0].decode()}))
    """
)


@pytest.mark.root
def test_tun_round_trip_in_namespace(tmp_path: Path) -> None:
    script = tmp_path / "probe.py"
    script.write_text(_PROBE)
    with Netns.create("tun") as ns:
        out = ns.run(sys.executable, str(script), timeout=30)
        info = json.loads(out)
        assert info["name"].startswith("ptest")
        assert info["mtu"] == 1400
        assert info["n"] == 1 and info["payload"] == "hello"
        assert info["written"] and info["reply"] == "world"
        # Not persistent: the device went away with the process.
        links = subprocess.run(
            ["ip", "netns", "exec", ns.name, "ip", "-o", "link"], capture_output=True, text=True
        ).stdout
        assert info["name"] not in links


_GSO_PROBE = textwrap.dedent(
    """
    import json, os, select, socket, subprocess, time
    from scapy.layers.inet import IP, TCP
    from pyipsec.io.tun import Tun
    tun = Tun.open("pvnet%d", mtu=1400)
    subprocess.run(["ip", "addr", "add", "192.0.2.1/32", "dev", tun.name], check=True)
    subprocess.run(["ip", "route", "add", "203.0.113.0/24", "dev", tun.name], check=True)
    for dev in ("all", tun.name):
        with open(f"/proc/sys/net/ipv4/conf/{dev}/rp_filter", "w") as f:
            f.write("0")
    qlen = open(f"/sys/class/net/{tun.name}/tx_queue_len").read().strip()
    srv = socket.socket()
    srv.bind(("192.0.2.1", 7000))
    srv.listen()
    peer = dict(src="203.0.113.9", dst="192.0.2.1")
    tun.write(bytes(IP(**peer) / TCP(sport=4000, dport=7000, flags="S", seq=999,
                                     options=[("MSS", 1300)])))
    synack = None
    deadline = time.monotonic() + 3
    while synack is None and time.monotonic() < deadline:
        select.select([tun.fd], [], [], 0.5)
        for p in tun.read_batch():
            if p[0] >> 4 == 4 and IP(p).haslayer(TCP) and IP(p)[TCP].flags == "SA":
                synack = IP(p)
    ack = synack[TCP].seq + 1
    tun.write(bytes(IP(**peer) / TCP(sport=4000, dport=7000, flags="A", seq=1000, ack=ack)))
    srv.settimeout(3)
    conn, _ = srv.accept()
    conn.settimeout(0.5)

    def segments(data, seq):
        out = []
        for i in range(0, len(data), 1200):
            last = i + 1200 >= len(data)
            out.append(bytes(IP(**peer, flags="DF") / TCP(sport=4000, dport=7000, seq=seq + i,
                             ack=ack, flags="PA" if last else "A") / data[i:i + 1200]))
        return out

    def receive(n):
        got = b""
        try:
            while len(got) < n:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                got += chunk
        except TimeoutError:
            pass
        return got

    first = os.urandom(20 * 1200 + 500)
    failed = tun.write_many(segments(first, 1000))
    gso = tun.gso_writes
    got_first = receive(len(first))
    # A corrupted segment spoils its super-packet: the kernel drops it, nothing arrives.
    second = os.urandom(10 * 1200)
    bad = segments(second, 1000 + len(first))
    spoiled = bytearray(bad[4])
    spoiled[-7] ^= 1
    bad[4] = bytes(spoiled)
    tun.write_many(bad)
    got_bad = receive(1)
    tun.write_many(segments(second, 1000 + len(first)))  # the retransmission
    got_second = receive(len(second))
    print(json.dumps({"vnet": tun.vnet, "qlen": qlen, "failed": failed, "gso": gso,
                      "first": got_first == first, "bad": len(got_bad),
                      "second": got_second == second}))
    """
)


@pytest.mark.root
def test_tun_takes_coalesced_tcp_segments(tmp_path: Path) -> None:
    """The kernel's TCP accepts our GSO super-packets (checksum and all) and drops one
    that carries a corrupted segment."""
    script = tmp_path / "probe.py"
    script.write_text(_GSO_PROBE)
    with Netns.create("vnet") as ns:
        info = json.loads(ns.run(sys.executable, str(script), timeout=30))
    assert info["vnet"] is True and info["qlen"] == str(TX_QUEUE_LEN)
    assert info["failed"] == 0 and info["gso"] == 1  # 21 segments, one write
    assert info["first"] is True
    assert info["bad"] == 0
    assert info["second"] is True

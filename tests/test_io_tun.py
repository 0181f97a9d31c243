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
from pyipsec.io.tun import IFF_NO_PI, IFF_TUN, ifreq_flags, ifreq_int


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

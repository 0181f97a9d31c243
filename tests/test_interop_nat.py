"""NAT traversal and virtual IPs, live against strongSwan's charon, through a real NAT.

    ns left   192.0.2.1/25 (veth)        default via 192.0.2.126
    ns nat    192.0.2.126/25 | 192.0.2.129/25, forwarding, nftables masquerade out of
              the right-hand veth
    ns right  192.0.2.130/25 (veth)      lo 198.51.100.1/32 (the protected net's host)

The side behind the NAT (left) asks for a virtual IP (``vips = 0.0.0.0``); the right
side assigns one from pool 203.0.113.0/28 (a documentation range used as nothing else
here) and protects 198.51.100.0/24. Cases:

- ``py-behind-nat``: pyipsec (left) initiates to charon (right, kernel-libipsec). Both
  detect the NAT (RFC 7296 §2.23), IKE moves to 4500, ESP runs in UDP 4500 through the
  NAT (RFC 3948), our VIP lands on the TUN and is the route's source, pings go both
  ways, and pyipsec's NAT keepalives (interval 2 s here) are seen on the far side of
  the NAT, from the NAT's address.
- ``sw-behind-nat``: the reverse: charon (left) initiates and asks pyipsec's pool.

tcpdump on the right-hand link records what crosses the NAT; every case is bounded in
time, and namespaces (with their nft tables), charons and daemons always go away.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from netns import Netns, namespaces, veth
from strongswan import Charon, missing, wait_for
from test_interop_strongswan import Pyipsec

pytestmark = [pytest.mark.root, pytest.mark.slow, pytest.mark.timeout(150)]

LEFT, NAT_L, NAT_R, RIGHT = "192.0.2.1", "192.0.2.126", "192.0.2.129", "192.0.2.130"
NET, HOST = "198.51.100.0/24", "198.51.100.1"
POOL, VIP = "203.0.113.0/28", "203.0.113.1"  # the first host of the pool
DNS = "198.51.100.53"
LEFT_ID, RIGHT_ID = "left.example", "right.example"
KEEPALIVE = 2  # seconds (PYIPSEC_NAT_KEEPALIVE), so a few are seen quickly
PSK = base64.b64encode(os.urandom(32)).decode()


def _config(me: str, me_id: str, peer_id: str, *, client: bool, peer: str = "%any") -> str:
    if client:
        ike, child = "vips = 0.0.0.0", f"local_ts = dynamic\n    remote_ts = {NET}"
        pools = ""
    else:
        ike, child = "pools = vip", f"local_ts = {NET}\n    remote_ts = dynamic"
        pools = f"pools {{\n  vip {{\n    addrs = {POOL}\n    dns = {DNS}\n  }}\n}}\n"
    return (
        textwrap.dedent(
            f"""\
        connections {{
          gw {{
            version = 2
            local_addrs = {me}
            remote_addrs = {peer}
            proposals = aes128gcm16-prfsha256-x25519
            dpd_delay = 0
            {ike}
            local {{
              auth = psk
              id = {me_id}
            }}
            remote {{
              auth = psk
              id = {peer_id}
            }}
            children {{
              net {{
                {child}
                esp_proposals = aes128gcm16
                mode = tunnel
              }}
            }}
          }}
        }}
        secrets {{
          ike-gw {{
            id-1 = {me_id}
            id-2 = {peer_id}
            secret = 0s{PSK}
          }}
        }}
        """
        )
        + pools
    )


def _device(ns: Netns, address: str) -> str:
    """The interface of ``ns`` that holds ``address``."""
    for line in ns.run("ip", "-o", "-4", "addr", "show").splitlines():
        fields = line.split()
        if f"{address}/25" in fields:
            return fields[1]
    raise AssertionError(f"no interface with {address}")


def _topology(left: Netns, nat: Netns, right: Netns) -> str:
    """Wire the three namespaces; the right-hand NAT interface (for the capture)."""
    veth(left, [f"{LEFT}/25"], nat, [f"{NAT_L}/25"])
    veth(nat, [f"{NAT_R}/25"], right, [f"{RIGHT}/25"])
    left.run("ip", "route", "add", "default", "via", NAT_L)
    nat.run("sysctl", "-qw", "net.ipv4.ip_forward=1")
    out_dev = _device(nat, NAT_R)
    ruleset = (
        "table ip pyipsec_nat {\n"
        "  chain post {\n"
        "    type nat hook postrouting priority srcnat; policy accept;\n"
        f'    oifname "{out_dev}" masquerade\n'
        "  }\n"
        "}\n"
    )
    subprocess.run(nat.cmd("nft", "-f", "-"), input=ruleset, text=True, check=True)
    right.run("ip", "addr", "add", f"{HOST}/32", "dev", "lo")
    # The NAT works before IPsec is involved: left reaches right, seen as the NAT.
    assert " 0% packet loss" in left.run("ping", "-c", "1", "-W", "2", RIGHT, check=False)
    return out_dev


class Capture:
    """tcpdump writing a pcap in ``ns``; ``count(filter)`` reads it back after ``stop``."""

    def __init__(self, ns: Netns, dev: str, path: Path) -> None:
        self.ns, self.path = ns, path
        self.proc = ns.popen(
            # Immediate mode: libpcap's block timeout would otherwise hold back (and lose,
            # on terminate) the last packets of a short test.
            ["tcpdump", "-i", dev, "--immediate-mode", "-U", "-n", "-s", "128", "-w", str(path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(lambda: path.exists(), "tcpdump to start", 10)
        time.sleep(0.5)

    def stop(self) -> None:
        if self.proc.poll() is None:
            time.sleep(0.3)  # what is in flight on the link
            self.proc.terminate()
            self.proc.wait(10)

    def count(self, bpf: str) -> int:
        out = subprocess.run(
            ["tcpdump", "-r", str(self.path), "-n", bpf],
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout
        return len(out.splitlines())


# RFC 3948: ESP in UDP has a non-zero SPI where IKE on 4500 has the zero marker; a NAT
# keepalive is one 0xFF octet (UDP length 9).
FROM_NAT = f"src host {NAT_R} and udp src port 4500 and udp dst port 4500"
ESP_IN_UDP = f"{FROM_NAT} and udp[4:2] > 12 and udp[8:4] != 0"
IKE_ON_4500 = f"{FROM_NAT} and udp[4:2] > 12 and udp[8:4] = 0"
KEEPALIVES = f"{FROM_NAT} and udp[4:2] = 9 and udp[8] = 0xff"


def _ping(ns: Netns, dst: str, src: str | None = None) -> str:
    args = ["ping", "-c", "3", "-i", "0.2", "-W", "2"]
    if src is not None:
        args += ["-I", src]
    return ns.run(*args, dst, check=False)


def _dump(py: Pyipsec, sw: Charon) -> None:
    charon_log = sw.log.read_text(errors="replace")[-6000:] if sw.log.exists() else ""
    sys.stderr.write(f"--- pyipsec log\n{py.tail()}\n--- charon log\n{charon_log}\n")


def _stop(py: Pyipsec, sw: Charon) -> None:
    sw.close()
    if py.proc is not None and py.proc.poll() is None:
        py.proc.terminate()
        py.proc.wait(10)


@pytest.fixture
def needs_tools() -> None:
    reason = missing()
    if reason is not None:
        pytest.skip(f"needs the Debian package {reason} (scripts/install-system-deps.sh)")
    for tool in ("nft", "tcpdump"):
        if subprocess.run(["which", tool], capture_output=True).returncode != 0:
            pytest.skip(f"needs {tool} (scripts/install-system-deps.sh)")


@pytest.mark.usefixtures("needs_tools")
def test_pyipsec_behind_nat_gets_a_vip_from_charon(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYIPSEC_NAT_KEEPALIVE", str(KEEPALIVE))
    with namespaces("left", "nat", "right") as (left, nat, right):
        out_dev = _topology(left, nat, right)
        py, sw = Pyipsec(left, tmp_path / "pyipsec"), Charon(right, tmp_path / "charon")
        py.work.mkdir()
        capture = Capture(nat, out_dev, tmp_path / "nat.pcap")
        try:
            sw.start(_config(RIGHT, RIGHT_ID, LEFT_ID, client=False))
            py.start(_config(LEFT, LEFT_ID, RIGHT_ID, client=True, peer=RIGHT))
            started = time.monotonic()
            out = py.cli("up", "gw", "--timeout", "20").stdout
            assert "ESTABLISHED" in out and "INSTALLED" in out, out
            wait_for(lambda: "INSTALLED" in sw.list_sas(), "charon's CHILD SA", 20, sw.log)
            assert time.monotonic() - started < 20

            # NAT detected on both sides (§2.23), and IKE moved to port 4500.
            doc = py.status()
            (ike,) = doc["ike"]["ike_sas"]
            assert ike["nat_local"] is True, ike
            assert ike["local"] == f"{LEFT}[4500]" and ike["remote"] == f"{RIGHT}[4500]"
            log = sw.log.read_text(errors="replace")
            assert "remote host is behind NAT" in log
            listing = sw.list_sas()
            assert f"{NAT_R}[4500]" in listing, listing  # charon sees us as the NAT

            # The virtual IP: from charon's pool, on both sides, on our TUN, and the
            # CHILD SA narrowed to it (our TSi = VIP/32).
            assert ike["local_vips"] == [VIP], ike
            assert f"[{VIP}]" in listing or VIP in listing, listing
            (child,) = ike["children"]
            assert child["local_ts"] == [f"{VIP}/32"] and child["remote_ts"] == [NET]
            assert f"{VIP}/32" in left.run("ip", "-o", "addr", "show", "dev", "pyipsec0")
            # Routes use it as the source: a plain ping (no -I) leaves from the VIP.
            assert f"src {VIP}" in left.run("ip", "route", "get", HOST)
            assert {tuple(sa["encap"]) for sa in doc["sas"]} == {(4500, 4500)}

            ping = _ping(left, HOST)
            assert " 0% packet loss" in ping, ping
            ping = _ping(right, VIP, HOST)
            assert " 0% packet loss" in ping, ping

            # Keepalives every KEEPALIVE seconds, seen behind the NAT from its address.
            time.sleep(KEEPALIVE * 2.5)
            assert py.status()["ike"]["keepalives_sent"] >= 2
            capture.stop()
            assert capture.count(ESP_IN_UDP) >= 6  # our 3 echo requests and 3 replies
            assert capture.count(IKE_ON_4500) >= 1  # IKE_AUTH went on 4500 already
            assert capture.count(KEEPALIVES) >= 2
            assert capture.count("esp") == 0  # never raw ESP through the NAT
            assert capture.count("icmp") == 0  # no ping crossed the NAT in the clear

            py.cli("down", "gw")
            wait_for(lambda: "gw:" not in sw.list_sas(), "charon to drop the IKE SA", 10, sw.log)
            assert VIP not in left.run("ip", "-o", "addr", "show", "dev", "pyipsec0")
            assert py.status()["sas"] == []
        except BaseException:
            _dump(py, sw)
            raise
        finally:
            capture.stop()
            _stop(py, sw)
            subprocess.run(nat.cmd("nft", "delete", "table", "ip", "pyipsec_nat"),
                           capture_output=True)  # fmt: skip


@pytest.mark.usefixtures("needs_tools")
def test_charon_behind_nat_gets_a_vip_from_pyipsec(tmp_path: Path) -> None:
    with namespaces("left", "nat", "right") as (left, nat, right):
        out_dev = _topology(left, nat, right)
        py, sw = Pyipsec(right, tmp_path / "pyipsec"), Charon(left, tmp_path / "charon")
        py.work.mkdir()
        capture = Capture(nat, out_dev, tmp_path / "nat.pcap")
        try:
            py.start(_config(RIGHT, RIGHT_ID, LEFT_ID, client=False))
            sw.start(_config(LEFT, LEFT_ID, RIGHT_ID, client=True, peer=RIGHT))
            # The fixture's charon puts no virtual IP on an interface (install_virtual_ip =
            # no), and the kernel refuses its route with a source that is not local: the
            # address the pool gives first is put on lo beforehand.
            left.run("ip", "addr", "add", f"{VIP}/32", "dev", "lo")
            sw.swanctl("--initiate", "--child", "net", "--ike", "gw", "--timeout", "20")
            wait_for(lambda: "INSTALLED" in sw.list_sas(), "charon's CHILD SA", 20, sw.log)
            doc = py.status()
            (ike,) = doc["ike"]["ike_sas"]
            assert ike["nat_remote"] is True and ike["remote"] == f"{NAT_R}[4500]", ike
            assert ike["remote_vips"] == [VIP], ike
            (child,) = ike["children"]
            assert child["remote_ts"] == [f"{VIP}/32"] and child["local_ts"] == [NET]
            (pool,) = doc["ike"]["pools"]
            assert pool["leases"] == [{"address": VIP, "identity": LEFT_ID, "online": 1}]
            log = sw.log.read_text(errors="replace")
            assert f"installing new virtual IP {VIP}" in log or VIP in sw.list_sas(), log
            ping = _ping(left, HOST, VIP)
            assert " 0% packet loss" in ping, ping + sw.log.read_text(errors="replace")[-3000:]
            ping = _ping(right, VIP, HOST)
            assert " 0% packet loss" in ping, ping
            capture.stop()
            assert capture.count(ESP_IN_UDP) >= 6 and capture.count("esp") == 0
            assert capture.count("icmp") == 0  # no ping crossed the NAT in the clear

            py.cli("down", "gw")
            wait_for(lambda: "gw:" not in sw.list_sas(), "charon to drop the IKE SA", 10, sw.log)
            (pool,) = py.status()["ike"]["pools"]
            assert (pool["online"], pool["offline"]) == (0, 1)  # released, kept for left.example
        except BaseException:
            _dump(py, sw)
            raise
        finally:
            capture.stop()
            _stop(py, sw)
            subprocess.run(nat.cmd("nft", "delete", "table", "ip", "pyipsec_nat"),
                           capture_output=True)  # fmt: skip

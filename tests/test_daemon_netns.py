"""The daemon end to end: two namespaces, a daemon in each, an ESP tunnel between them.

    ns a: veth 192.0.2.1 / 2001:db8::1    lo 198.51.100.1 / 2001:db8:100::1  (protected)
    ns b: veth 192.0.2.2 / 2001:db8::2    lo 203.0.113.1  / 2001:db8:200::1  (protected)

Both daemons are started as ``pyipsec daemon`` and keyed the way a user would: a setkey
file applied with ``pyipsec setkey -f`` over each daemon's ``pfkey.sock`` (see
``daemon_pair.py``). Each case pings across, moves a few MB over TCP with a SHA-256 check
(the client does not bind: the route's ``src`` hint must pick the protected address),
reads the counters through ``pyipsec status --json``, stops the daemons with SIGTERM and
checks that rules, routes, TUN and pid file are gone and that no key reached the log.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from daemon_pair import PYIPSEC, Layout, daemon_pair, setkey_text
from netns import Netns

pytestmark = pytest.mark.root

_SERVER = textwrap.dedent(
    """
    import hashlib, json, socket, sys
    fam = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
    srv = socket.socket(fam, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((sys.argv[1], 5001))
    srv.listen(1)
    print("ready", flush=True)
    conn, peer = srv.accept()
    h, n = hashlib.sha256(), 0
    while chunk := conn.recv(1 << 16):
        h.update(chunk)
        n += len(chunk)
    conn.sendall(h.hexdigest().encode())
    conn.close()
    print(json.dumps({"sha": h.hexdigest(), "n": n, "peer": peer[0]}), flush=True)
    """
)

_CLIENT = textwrap.dedent(
    """
    import hashlib, json, os, socket, sys, time
    data = os.urandom(int(sys.argv[2]))
    s = socket.create_connection((sys.argv[1], 5001), timeout=30)
    t0 = time.monotonic()
    s.sendall(data)
    s.shutdown(socket.SHUT_WR)
    reply = s.recv(100).decode()
    dt = time.monotonic() - t0
    print(json.dumps({"sha": hashlib.sha256(data).hexdigest(), "reply": reply,
                      "mbit": len(data) * 8 / dt / 1e6, "src": s.getsockname()[0]}))
    """
)

TRANSFER = 4 * 1024 * 1024
ENGINE_NAMES = {"cbc": "aes128", "gcm": "aes128gcm16"}

CASES = [
    pytest.param(4, 4, "tunnel", False, "cbc", id="v4-in-v4-esp-cbc"),
    pytest.param(4, 4, "tunnel", True, "gcm", id="v4-in-v4-udp-gcm"),
    pytest.param(6, 6, "tunnel", False, "gcm", id="v6-in-v6-esp-gcm"),
    pytest.param(6, 6, "tunnel", True, "cbc", id="v6-in-v6-udp-cbc"),
    pytest.param(6, 4, "tunnel", False, "cbc", id="v4-in-v6-esp-cbc"),
    pytest.param(4, 4, "transport", False, "cbc", id="v4-transport-esp-cbc"),
    pytest.param(6, 6, "transport", True, "cbc", id="v6-transport-udp-cbc"),
]


@pytest.mark.parametrize(("outer", "inner", "mode", "encap", "alg"), CASES)
def test_tunnel_between_two_daemons(
    tmp_path: Path, outer: int, inner: int, mode: str, encap: bool, alg: str
) -> None:
    (tmp_path / "server.py").write_text(_SERVER)
    (tmp_path / "client.py").write_text(_CLIENT)
    layout = Layout.of(outer, inner, mode, encap, alg)
    host_a, host_b = layout.hosts
    spi_ab, spi_ba = layout.a_to_b.spi, layout.b_to_a.spi
    with daemon_pair(tmp_path) as pair:
        a, b = pair.ns("a"), pair.ns("b")
        for side in ("a", "b"):
            pair.setkey(side, setkey_text(layout, side))
        # What setkey installed is what the file says, read back over PF_KEY (-D).
        dump = pair.setkey_cmd("a", "-D")
        assert f"(0x{spi_ab:08x})" in dump and f"(0x{spi_ba:08x})" in dump, dump
        assert f"mode={mode}" in dump, dump
        assert ("esp-udp" in dump) == encap, dump

        ping = pair.ping("a", host_b)
        assert " 0% packet loss" in ping, ping + pair.logs()

        server = b.popen([sys.executable, str(tmp_path / "server.py"), host_b],
                         stdout=subprocess.PIPE)  # fmt: skip
        assert server.stdout is not None
        assert server.stdout.readline().strip() == b"ready"
        client = json.loads(
            a.run(sys.executable, str(tmp_path / "client.py"), host_b, str(TRANSFER), timeout=120)
        )
        got = json.loads(server.stdout.readline())
        server.wait(10)
        assert got["n"] == TRANSFER
        assert got["sha"] == client["sha"] == client["reply"]
        # No bind in the client: the route's src hint chose the protected address.
        assert client["src"] == host_a and got["peer"] == host_a
        print(f"\nTCP {TRANSFER >> 20} MB {outer=} {inner=} {mode} {encap=} {alg}: "
              f"{client['mbit']:.1f} Mbit/s")  # fmt: skip

        doc = pair.status("a")
        stats = doc["stats"]
        assert stats["out_packets"] > TRANSFER // 1500
        assert stats["in_packets"] >= 3  # echo replies and TCP ACKs
        assert not {k for k in stats if k.startswith("Xfrm")}, stats
        # Nothing loops between the TUN and the bypass socket (IPv6 ND, MLD on the TUN).
        assert stats.get("bypass_out", 0) < 50, doc["daemon"]["io"]
        sas = {sa["spi"]: sa for sa in doc["sas"]}
        assert sas[spi_ab]["counters"]["bytes"] >= TRANSFER
        assert sas[spi_ba]["counters"]["packets"] == stats["in_packets"]
        assert sas[spi_ab]["enc"] == ENGINE_NAMES[alg]
        assert sas[spi_ab]["mode"] == sas[spi_ba]["mode"] == mode
        assert sas[spi_ab]["encap"] == ([4500, 4500] if encap else None)
        assert sas[spi_ab]["replay_window"] == 32  # setkey -r 64, PF_KEY's cap (af_key.c)
        out_policy = next(p for p in doc["policies"] if p["direction"] == "out")
        assert out_policy["hits"] == stats["out_packets"]
        assert out_policy["templates"][0]["mode"] == mode
        assert doc["daemon"]["tun_mtu"] < 1500
        assert list(doc["daemon"]["routes"].values()) == [host_a]
        if encap:
            assert doc["daemon"]["io"]["net_rx"] == stats["in_packets"]
        human = a.run(*PYIPSEC, "status", "--run-dir", str(pair.sides["a"].run_dir))
        assert f"spi 0x{spi_ab:08x}" in human and "out_packets" in human

        for side in ("a", "b"):
            s = pair.sides[side]
            ns = s.ns
            assert pair.stop(side) == 0, s.log.read_text()
            assert not (s.run_dir / "pyipsec.pid").exists()
            assert not (s.run_dir / "control.sock").exists()
            assert not (s.run_dir / "pfkey.sock").exists()
            assert "4301" not in ns.run("ip", "rule") + ns.run("ip", "-6", "rule")
            assert "ipsec0" not in ns.run("ip", "link")
            text = s.log.read_text().lower()
            for keys in (layout.a_to_b, layout.b_to_a):  # no key material in the log
                assert keys.enc_key.hex()[:16] not in text
                assert not keys.integ_key or keys.integ_key.hex()[:16] not in text


def test_second_daemon_in_same_run_dir_is_refused(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    daemon = [*PYIPSEC, "daemon", "--run-dir", str(run_dir), "--foreground"]
    with Netns.create("dup") as ns:
        log = tmp_path / "first.log"
        first = ns.popen([*daemon, "--tun", "ipsec0"], stderr=log.open("wb"))
        deadline = time.monotonic() + 15
        while not (run_dir / "control.sock").exists():
            assert first.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        second = subprocess.run(
            ns.cmd(*daemon, "--tun", "ipsec1"), capture_output=True, text=True, timeout=30
        )
        assert second.returncode != 0
        assert "already uses" in second.stderr
        # The refused daemon removed what it had built and left the first one alone.
        assert "ipsec1" not in ns.run("ip", "link")
        assert int((run_dir / "pyipsec.pid").read_text()) == first.pid
        doc = json.loads(ns.run(*PYIPSEC, "status", "--json", "--run-dir", str(run_dir)))
        assert doc["daemon"]["pid"] == first.pid
        os.kill(first.pid, signal.SIGINT)
        assert first.wait(15) == 0

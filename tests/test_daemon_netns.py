"""The daemon end to end: two namespaces, a daemon in each, an ESP tunnel between them.

    ns a: veth 192.0.2.1 / 2001:db8::1    lo 198.51.100.1 / 2001:db8:100::1  (protected)
    ns b: veth 192.0.2.2 / 2001:db8::2    lo 203.0.113.1  / 2001:db8:200::1  (protected)

SAs and policies are loaded by a launcher script that builds an ``Engine``, calls
``add_sa``/``add_policy`` and then runs ``Daemon`` (PF_KEY/setkey will replace it). Each
case pings across the tunnel, moves a few MB over TCP with a SHA-256 check (the client
does not bind: the route's ``src`` hint must pick the protected address), reads the
counters through ``pyipsec status --json``, stops the daemons with SIGTERM and checks that
rules, routes, TUN and pid file are gone.
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
from typing import Any

import pytest

from netns import Netns, namespaces, veth

pytestmark = pytest.mark.root

_LAUNCHER = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from pyipsec.cli.main import setup_logging
    from pyipsec.engine.processor import Engine
    from pyipsec.engine.sad import SASpec
    from pyipsec.engine.spd import Policy, Selector, Template
    from pyipsec.io.daemon import Daemon, DaemonOptions

    cfg = json.loads(sys.argv[1])
    setup_logging("info")
    engine = Engine()
    now = time.monotonic()
    for sa in cfg["sas"]:
        engine.add_sa(SASpec(
            spi=sa["spi"], src=sa["src"], dst=sa["dst"], mode="tunnel",
            enc=sa["enc"], enc_key=bytes.fromhex(sa["enc_key"]),
            integ=sa["integ"], integ_key=bytes.fromhex(sa["integ_key"]),
            encap=tuple(sa["encap"]) if sa["encap"] else None, replay_window=128,
        ), now)
    for p in cfg["policies"]:
        tmpl = Template(mode="tunnel", src=p["tsrc"], dst=p["tdst"])
        engine.add_policy(Policy(p["dir"], Selector(p["src"], p["dst"]), templates=[tmpl]))
    Daemon(DaemonOptions(run_dir=Path(cfg["run_dir"]), tun=cfg["tun"]), engine).run()
    """
)

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
    fam = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
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

ALGS = {
    "cbc": ("aes128", "sha256", 16, 32),
    "gcm": ("aes128gcm16", None, 20, 0),
}
TRANSFER = 4 * 1024 * 1024


def _keys(alg: str, spi: int) -> dict[str, Any]:
    enc, integ, enc_len, integ_len = ALGS[alg]
    # Test keys, different per SA (derived from the SPI), never used outside this test.
    seed = spi.to_bytes(4, "big") * 16
    return {
        "enc": enc,
        "enc_key": seed[:enc_len].hex(),
        "integ": integ,
        "integ_key": seed[::-1][:integ_len].hex(),
    }


def _config(side: str, outer: int, inner: int, encap: bool, alg: str, run_dir: Path) -> str:
    outer_a, outer_b = ("192.0.2.1", "192.0.2.2") if outer == 4 else ("2001:db8::1", "2001:db8::2")
    inner_a, inner_b = (
        ("198.51.100.1", "203.0.113.1") if inner == 4 else ("2001:db8:100::1", "2001:db8:200::1")
    )
    udp = [4500, 4500] if encap else None
    a_to_b = {"spi": 0x1001, "src": outer_a, "dst": outer_b, "encap": udp, **_keys(alg, 0x1001)}
    b_to_a = {"spi": 0x2002, "src": outer_b, "dst": outer_a, "encap": udp, **_keys(alg, 0x2002)}
    if side == "a":
        me, peer, mine, theirs = outer_a, outer_b, inner_a, inner_b
    else:
        me, peer, mine, theirs = outer_b, outer_a, inner_b, inner_a
    policies = [
        {"dir": "out", "src": mine, "dst": theirs, "tsrc": me, "tdst": peer},
        {"dir": "in", "src": theirs, "dst": mine, "tsrc": peer, "tdst": me},
    ]
    return json.dumps(
        {
            "sas": [a_to_b, b_to_a],
            "policies": policies,
            "run_dir": str(run_dir),
            "tun": "ipsec0",
        }
    )


def _wait_for(path: Path, proc: subprocess.Popen[bytes], log: Path, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            return
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    raise AssertionError(f"daemon did not come up:\n{log.read_text()}")


def _status(ns: Netns, run_dir: Path) -> dict[str, Any]:
    out = ns.run(
        sys.executable, "-m", "pyipsec.cli.main", "status", "--json", "--run-dir", str(run_dir)
    )
    doc: dict[str, Any] = json.loads(out)
    return doc


CASES = [
    pytest.param(4, 4, False, "cbc", id="v4-in-v4-esp-cbc"),
    pytest.param(4, 4, True, "gcm", id="v4-in-v4-udp-gcm"),
    pytest.param(6, 6, False, "gcm", id="v6-in-v6-esp-gcm"),
    pytest.param(6, 6, True, "cbc", id="v6-in-v6-udp-cbc"),
    pytest.param(6, 4, False, "cbc", id="v4-in-v6-esp-cbc"),
]


@pytest.mark.parametrize(("outer", "inner", "encap", "alg"), CASES)
def test_tunnel_between_two_daemons(
    tmp_path: Path, outer: int, inner: int, encap: bool, alg: str
) -> None:
    launcher = tmp_path / "launch.py"
    launcher.write_text(_LAUNCHER)
    (tmp_path / "server.py").write_text(_SERVER)
    (tmp_path / "client.py").write_text(_CLIENT)
    inner_a, inner_b = (
        ("198.51.100.1", "203.0.113.1") if inner == 4 else ("2001:db8:100::1", "2001:db8:200::1")
    )
    with namespaces("a", "b") as (a, b):
        veth(a, ["192.0.2.1/24", "2001:db8::1/64"], b, ["192.0.2.2/24", "2001:db8::2/64"])
        for ns, v4, v6 in ((a, "198.51.100.1/32", "2001:db8:100::1/128"),
                           (b, "203.0.113.1/32", "2001:db8:200::1/128")):  # fmt: skip
            ns.run("ip", "addr", "add", v4, "dev", "lo")
            ns.run("ip", "addr", "add", v6, "dev", "lo")
        daemons = {}
        for side, ns in (("a", a), ("b", b)):
            run_dir = tmp_path / f"run-{side}"
            log = tmp_path / f"daemon-{side}.log"
            cfg = _config(side, outer, inner, encap, alg, run_dir)
            proc = ns.popen([sys.executable, str(launcher), cfg], stderr=log.open("wb"))
            daemons[side] = (ns, proc, run_dir, log)
        for _, proc, run_dir, log in daemons.values():
            _wait_for(run_dir / "pyipsec.pid", proc, log)

        ping = a.run("ping", "-c", "3", "-i", "0.2", "-W", "2", inner_b, check=False)
        assert " 0% packet loss" in ping, ping + (tmp_path / "daemon-a.log").read_text()

        server = b.popen([sys.executable, str(tmp_path / "server.py"), inner_b],
                         stdout=subprocess.PIPE)  # fmt: skip
        assert server.stdout is not None
        assert server.stdout.readline().strip() == b"ready"
        client = json.loads(
            a.run(sys.executable, str(tmp_path / "client.py"), inner_b, str(TRANSFER), timeout=120)
        )
        got = json.loads(server.stdout.readline())
        server.wait(10)
        assert got["n"] == TRANSFER
        assert got["sha"] == client["sha"] == client["reply"]
        # No bind in the client: the route's src hint chose the protected address.
        assert client["src"] == inner_a and got["peer"] == inner_a
        print(f"\nTCP {TRANSFER >> 20} MB {outer=} {inner=} {encap=} {alg}: "
              f"{client['mbit']:.1f} Mbit/s")  # fmt: skip

        doc = _status(a, daemons["a"][2])
        stats = doc["stats"]
        assert stats["out_packets"] > TRANSFER // 1500
        assert stats["in_packets"] >= 3  # echo replies and TCP ACKs
        assert not {k for k in stats if k.startswith("Xfrm")}, stats
        # Nothing loops between the TUN and the bypass socket (IPv6 ND, MLD on the TUN).
        assert stats.get("bypass_out", 0) < 50, doc["daemon"]["io"]
        sas = {sa["spi"]: sa for sa in doc["sas"]}
        assert sas[0x1001]["counters"]["bytes"] >= TRANSFER
        assert sas[0x2002]["counters"]["packets"] == stats["in_packets"]
        assert sas[0x1001]["enc"] == ALGS[alg][0]
        out_policy = next(p for p in doc["policies"] if p["direction"] == "out")
        assert out_policy["hits"] == stats["out_packets"]
        assert doc["daemon"]["tun_mtu"] < 1500
        assert list(doc["daemon"]["routes"].values()) == [inner_a]
        if encap:
            assert doc["daemon"]["io"]["net_rx"] == stats["in_packets"]
        human = a.run(sys.executable, "-m", "pyipsec.cli.main", "status",
                      "--run-dir", str(daemons["a"][2]))  # fmt: skip
        assert "spi 0x00001001" in human and "out_packets" in human

        for ns, proc, run_dir, log in daemons.values():
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(15) == 0, log.read_text()
            assert not (run_dir / "pyipsec.pid").exists()
            assert not (run_dir / "control.sock").exists()
            assert "4301" not in ns.run("ip", "rule") + ns.run("ip", "-6", "rule")
            assert "ipsec0" not in ns.run("ip", "link")
            text = log.read_text().lower()
            for spi in (0x1001, 0x2002):  # no key material in the log, in any SA
                keys = _keys(alg, spi)
                assert keys["enc_key"][:16] not in text
                assert not keys["integ_key"] or keys["integ_key"][:16] not in text


def test_second_daemon_in_same_run_dir_is_refused(tmp_path: Path) -> None:
    launcher = tmp_path / "launch.py"
    launcher.write_text(_LAUNCHER)
    run_dir = tmp_path / "run"
    with Netns.create("dup") as ns:
        cfg = json.dumps({"sas": [], "policies": [], "run_dir": str(run_dir), "tun": "ipsec0"})
        log = tmp_path / "first.log"
        first = ns.popen([sys.executable, str(launcher), cfg], stderr=log.open("wb"))
        _wait_for(run_dir / "pyipsec.pid", first, log)
        cfg2 = json.loads(cfg) | {"tun": "ipsec1"}
        second = subprocess.run(
            ns.cmd(sys.executable, str(launcher), json.dumps(cfg2)),
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert second.returncode != 0
        assert "already uses" in second.stderr
        # The refused daemon removed what it had built and left the first one alone.
        assert "ipsec1" not in ns.run("ip", "link")
        assert int((run_dir / "pyipsec.pid").read_text()) == first.pid
        doc = _status(ns, run_dir)
        assert doc["daemon"]["pid"] == first.pid
        os.kill(first.pid, signal.SIGINT)
        assert first.wait(15) == 0

"""Live lifetimes against strongSwan: CHILD and IKE rekeys under traffic, DPD after charon
is killed, and the key log decrypting a live capture (same namespaces as
``test_interop_strongswan``: pyipsec 192.0.2.1 protecting 198.51.100.1, charon
192.0.2.2 protecting 203.0.113.1, ESP in UDP 4500 as kernel-libipsec sends it).

Short lifetimes on one side make the rekeys happen within seconds; a ping every 50 ms
(and, in one case, a TCP stream of 2 MiB/s for 15 s, SHA-256 checked) runs across them
and must lose nothing (make before break, RFC 7296 §2.8), and both sides must list the
same, new SPIs. Everything started is stopped whatever happens.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from interop_pair import PY_GW, PY_ID, PY_NET, SW_GW, SW_ID, SW_NET, Pyipsec, interop_pair
from netns import Netns
from strongswan import Charon, missing, wait_for
from test_interop_strongswan import _conn

pytestmark = [pytest.mark.root, pytest.mark.slow, pytest.mark.timeout(120)]

PROPOSALS, ESP = "aes128gcm16-prfsha256-x25519", "aes128gcm16"


def _skip_without_strongswan() -> None:
    reason = missing()
    if reason is not None:
        pytest.skip(f"needs the Debian package {reason} (scripts/install-system-deps.sh)")


def _sw_conf(extra: str = "", child_extra: str = "") -> str:
    return _conn(SW_GW, PY_GW, SW_ID, PY_ID, SW_NET, PY_NET, proposals=PROPOSALS, esp=ESP,
                 auth="psk", extra=extra, child_extra=child_extra)  # fmt: skip


def _py_conf(extra: str = "", child_extra: str = "") -> str:
    return _conn(PY_GW, SW_GW, PY_ID, SW_ID, PY_NET, SW_NET, proposals=PROPOSALS, esp=ESP,
                 auth="psk", extra=extra, child_extra=child_extra)  # fmt: skip


def _up(py: Pyipsec, sw: Charon) -> dict[str, Any]:
    out = py.cli("up", "gw", "--timeout", "20").stdout
    assert "ESTABLISHED" in out and "INSTALLED" in out, out
    wait_for(lambda: "INSTALLED" in sw.list_sas(), "charon's CHILD SA", 20, sw.log)
    (ike,) = py.established()
    return ike


def _ping_flood(ns: Netns, seconds: float) -> subprocess.Popen[str]:
    count = str(int(seconds / 0.05))
    return subprocess.Popen(
        ns.cmd("ping", "-c", count, "-i", "0.05", "-W", "2", "-I", PY_NET, SW_NET),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _loss(ping: subprocess.Popen[str]) -> tuple[int, int, str]:
    out, _ = ping.communicate(timeout=60)
    found = re.search(r"(\d+) packets transmitted, (\d+) received", out)
    assert found, out
    return int(found.group(1)), int(found.group(2)), out


def _child_spis(py: Pyipsec) -> tuple[str, str]:
    (ike,) = py.established()
    (child,) = [c for c in ike["children"] if c["state"] == "installed"]
    return child["spi_in"], child["spi_out"]


def _same_sas(py: Pyipsec, sw: Charon) -> tuple[str, str, tuple[str, str]]:
    """The IKE and CHILD SPIs pyipsec holds, once charon lists exactly the same."""
    found: dict[str, Any] = {}

    def same() -> bool:
        sas = py.established()
        if len(sas) != 1 or len(sas[0]["children"]) != 1:
            return False
        ike = sas[0]
        child = ike["children"][0]
        listing = sw.list_sas()
        found.update(ike=ike, child=child)
        return (
            all(
                x in listing
                for x in (ike["spi_i"], ike["spi_r"], child["spi_in"], child["spi_out"])
            )
            and listing.count("INSTALLED") == 1
        )

    wait_for(same, "the same SAs on both sides", 10, sw.log)
    ike, child = found["ike"], found["child"]
    return ike["spi_i"], ike["spi_r"], (child["spi_in"], child["spi_out"])


@pytest.mark.parametrize("rekeying", ["pyipsec", "charon"])
def test_child_rekey_under_traffic(tmp_path: Path, rekeying: str) -> None:
    _skip_without_strongswan()
    short = "rekey_time = 6s\n    life_time = 9s"
    with interop_pair(tmp_path) as (py, sw):
        sw.start(_sw_conf(child_extra=short if rekeying == "charon" else ""))
        py.start(_py_conf(child_extra=short if rekeying == "pyipsec" else ""))
        _up(py, sw)
        first = _same_sas(py, sw)
        ping = _ping_flood(py.ns, 16)  # ~2-3 rekeys at 3-6 s (charon: 5.4-6 s)
        seen = {first[2]}
        deadline = time.monotonic() + 16
        while time.monotonic() < deadline:
            time.sleep(1)
            sas = py.established()
            for sa in sas:
                seen.update((c["spi_in"], c["spi_out"]) for c in sa["children"])
        sent, received, out = _loss(ping)
        assert sent >= 250 and received == sent, out + py.tail()[-3000:]
        spi_i, spi_r, child = _same_sas(py, sw)
        assert (spi_i, spi_r) == first[:2]  # the IKE SA stays
        assert child != first[2] and len(seen) >= 3, seen  # new SPIs, seen by both sides
        assert len(py.status()["sas"]) == 2  # the replaced pairs are gone


# A paced TCP stream for the CHILD rekey case: the client sends random data at RATE for
# DURATION seconds, hashing it; the server hashes what arrives and answers with the
# digest and the byte count. Each reads its namespace's TCP counters (/proc/net/snmp is
# per network namespace) so the test can show retransmissions too.
RATE, DURATION = 2 * 1024 * 1024, 15.0

_STREAM_SERVER = textwrap.dedent(
    """
    import hashlib, socket, sys
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((sys.argv[1], int(sys.argv[2])))
    srv.listen(1)
    srv.settimeout(30)
    print("ready", flush=True)
    conn, _ = srv.accept()
    conn.settimeout(30)
    h, n = hashlib.sha256(), 0
    while chunk := conn.recv(1 << 16):
        h.update(chunk)
        n += len(chunk)
    conn.sendall(f"{h.hexdigest()} {n}".encode())
    conn.close()
    """
)
_STREAM_CLIENT = textwrap.dedent(
    """
    import hashlib, json, os, socket, sys, time

    def retrans():
        rows = [l.split() for l in open("/proc/net/snmp") if l.startswith("Tcp:")]
        return int(rows[1][rows[0].index("RetransSegs")])

    src, dst, port, rate, duration = sys.argv[1:6]
    rate, duration = int(rate), float(duration)
    before = retrans()
    s = socket.create_connection((dst, int(port)), timeout=30, source_address=(src, 0))
    h, sent, start = hashlib.sha256(), 0, time.monotonic()
    while (elapsed := time.monotonic() - start) < duration:
        if sent > rate * elapsed:
            time.sleep(0.01)
            continue
        chunk = os.urandom(1 << 16)
        s.sendall(chunk)
        h.update(chunk)
        sent += len(chunk)
    s.shutdown(socket.SHUT_WR)
    reply = s.recv(200).decode().split()
    print(json.dumps({"sha256": h.hexdigest(), "bytes": sent, "reply": reply,
                      "seconds": time.monotonic() - start, "retrans": retrans() - before}))
    """
)

_IPSEC_DROPS = ("XfrmInNoStates", "XfrmOutNoStates", "XfrmInStateProtoError",
                "XfrmInStateSeqError", "XfrmInStateExpired", "XfrmOutStateExpired",
                "XfrmInStateInvalid", "XfrmOutStateInvalid")  # fmt: skip


def _drops(py: Pyipsec) -> dict[str, int]:
    stats = py.status().get("stats", {})
    return {k: int(stats.get(k, 0)) for k in _IPSEC_DROPS}


def test_tcp_stream_across_child_rekeys(tmp_path: Path) -> None:
    """A TCP stream at 2 MiB/s for 15 s while pyipsec rekeys the CHILD SA every 3-6 s:
    every byte arrives (SHA-256), no SA is missing for a packet on our side, and at
    least two rekeys happened under it (make before break, RFC 7296 §2.8)."""
    _skip_without_strongswan()
    short = "rekey_time = 6s\n    life_time = 9s"
    with interop_pair(tmp_path) as (py, sw):
        sw.start(_sw_conf())
        py.start(_py_conf(child_extra=short))
        _up(py, sw)
        first = _same_sas(py, sw)
        drops = _drops(py)
        work = py.work
        (work / "server.py").write_text(_STREAM_SERVER)
        (work / "client.py").write_text(_STREAM_CLIENT)
        server = sw.ns.popen([sys.executable, str(work / "server.py"), SW_NET, "5003"],
                             stdout=subprocess.PIPE)  # fmt: skip
        assert server.stdout is not None
        assert server.stdout.readline().strip() == b"ready"
        client = py.ns.popen(
            [sys.executable, str(work / "client.py"), PY_NET, SW_NET, "5003", str(RATE),
             str(DURATION)],
            stdout=subprocess.PIPE,
        )  # fmt: skip
        seen = {first[2]}
        try:
            while client.poll() is None:
                time.sleep(1)
                for sa in py.established():
                    seen.update((c["spi_in"], c["spi_out"]) for c in sa["children"])
            out, _ = client.communicate(timeout=40)
        finally:
            if client.poll() is None:
                client.kill()
            server.wait(10)
        result = json.loads(out)
        digest, count = result["reply"]
        assert digest == result["sha256"] and int(count) == result["bytes"], result
        assert result["bytes"] >= RATE * DURATION * 0.9, result  # the stream kept its pace
        assert len(seen) >= 3, seen  # at least two CHILD rekeys under the stream
        assert _drops(py) == drops, (drops, py.tail()[-3000:])
        sys.stderr.write(f"tcp across rekeys: {result}, {len(seen) - 1} rekeys\n")
        _same_sas(py, sw)  # both sides agree on the last pair
        assert len(py.status()["sas"]) == 2  # the replaced pairs are gone


@pytest.mark.parametrize("rekeying", ["pyipsec", "charon"])
def test_ike_rekey_keeps_the_child_sa(tmp_path: Path, rekeying: str) -> None:
    _skip_without_strongswan()
    short = "rekey_time = 6s\n    over_time = 20s"
    with interop_pair(tmp_path) as (py, sw):
        sw.start(_sw_conf(extra=short if rekeying == "charon" else ""))
        py.start(_py_conf(extra=short if rekeying == "pyipsec" else ""))
        _up(py, sw)
        first = _same_sas(py, sw)
        ping = _ping_flood(py.ns, 9)
        wait_for(lambda: py.established()[0]["spi_i"] != first[0], "an IKE rekey", 15, py.log)
        sent, received, out = _loss(ping)
        assert received == sent, out
        spi_i, spi_r, child = _same_sas(py, sw)
        assert spi_i != first[0] and spi_r != first[1]
        assert child == first[2]  # RFC 7296 §2.18: the CHILD SA moved to the new IKE SA
        (ike,) = py.established()
        assert ike["initiator"] is (rekeying == "pyipsec")  # the rekey's initiator


def test_dpd_after_charon_is_killed(tmp_path: Path) -> None:
    _skip_without_strongswan()
    dpd = "dpd_delay = 2s\n    dpd_timeout = 3s"
    with interop_pair(tmp_path) as (py, sw):
        sw.start(_sw_conf())
        py.start(_py_conf(extra=dpd, child_extra="dpd_action = restart"))
        _up(py, sw)
        assert sw.proc is not None
        os.killpg(sw.proc.pid, signal.SIGKILL)
        sw.proc.wait(5)
        killed = time.monotonic()
        wait_for(lambda: not py.established(), "pyipsec to declare charon dead", 12, py.log)
        gone = time.monotonic() - killed
        assert gone <= 2 + 3 + 2.5, gone  # dpd_delay + dpd_timeout + a tick and the CLI
        assert py.status()["sas"] == []  # the CHILD SAs went with the IKE SA
        assert "peer dead" in py.tail()
        # dpd_action = restart: pyipsec keeps initiating; charon comes back, the tunnel too.
        sw2 = Charon(sw.ns, tmp_path / "charon2")
        try:
            sw2.start(_sw_conf())
            wait_for(lambda: len(py.established()) == 1, "the restarted IKE SA", 30, py.log)
            wait_for(lambda: "INSTALLED" in sw2.list_sas(), "charon's CHILD SA", 10, sw2.log)
            ping = _ping_flood(py.ns, 1)
            sent, received, out = _loss(ping)
            assert received == sent, out
        finally:
            sw2.close()


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")
def test_key_log_decrypts_a_live_capture(tmp_path: Path) -> None:
    _skip_without_strongswan()
    with interop_pair(tmp_path) as (py, sw):
        keys = tmp_path / "keys"
        pcap = tmp_path / "ike.pcap"
        sw.start(_sw_conf())
        py.start(_py_conf(), "--ike-keylog", str(keys))
        dump = py.ns.popen(["tcpdump", "-i", "any", "-U", "-w", str(pcap), "udp"],
                           stderr=subprocess.DEVNULL)  # fmt: skip
        try:
            time.sleep(1.5)  # tcpdump is listening
            _up(py, sw)
            ping = _ping_flood(py.ns, 1)
            _loss(ping)
            time.sleep(0.5)
        finally:
            dump.send_signal(signal.SIGINT)
            dump.wait(10)
        for name in ("ikev2_decryption_table", "esp_sa"):
            assert (keys / name).stat().st_mode & 0o077 == 0  # root only
        options = ["-o", "esp.enable_encryption_decode:TRUE"]
        for table in ("ikev2_decryption_table", "esp_sa"):
            for line in (keys / table).read_text().splitlines():
                options += ["-o", f"uat:{table}:{line}"]
        fields = ["isakmp.exchangetype", "isakmp.id.type", "isakmp.auth.method", "icmp.type"]

        def rows(opts: list[str]) -> list[list[str]]:
            cmd = ["tshark", "-n", "-r", str(pcap), *opts, "-T", "fields"]
            for f in fields:
                cmd += ["-e", f]
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=True)
            return [line.split("\t") for line in out.stdout.splitlines()]

        decrypted = rows(options)
        auth = [r for r in decrypted if r[0] == "35"]
        # IKE_AUTH request and response, read inside SK with nothing but the key log.
        assert len(auth) == 2 and all(r[1] and r[2] == "2" for r in auth), decrypted
        assert sum(1 for r in decrypted if r[3] in ("0", "8")) >= 10  # ESP: echo both ways
        # Without the key log the same capture shows nothing inside.
        blind = rows([])
        assert not [r for r in blind if r[0] == "35" and (r[1] or r[2])]
        assert not [r for r in blind if r[3]]

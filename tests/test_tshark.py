"""Evidence from an independent dissector: tshark decodes pyipsec's packets on the wire.

Two namespaces joined by a veth, a pyipsec daemon in each (SAs and policies installed
through the engine API by a small launcher), tshark capturing on b's veth while a pings b
across the tunnel:

    ns a: veth 192.0.2.1   lo 198.51.100.1        ns b: veth 192.0.2.2   lo 203.0.113.1

Then, reading the capture back, tshark must

- see only ESP (raw, or in UDP 4500 per RFC 3948) with the SPIs we installed: 0x1001 from
  a to b, 0x2002 back; and no ICMP without the keys;
- with the SA keys in its ``esp_sa`` table, decrypt every packet to the inner ICMP echo
  request/reply between the protected addresses, carrying the ping's payload pattern.

Done for AES-CBC + HMAC-SHA-256-128 (RFC 3602, RFC 4868) and AES-GCM-16 (RFC 4106).
"""

from __future__ import annotations

import json
import os
import shutil
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

A_OUT, B_OUT = "192.0.2.1", "192.0.2.2"
A_IN, B_IN = "198.51.100.1", "203.0.113.1"
SPI_AB, SPI_BA = 0x1001, 0x2002
PATTERN = "c0ffee15"  # ping -p: repeated through the echo payload

_LAUNCHER = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from pyipsec.engine.processor import Engine
    from pyipsec.engine.sad import SASpec
    from pyipsec.engine.spd import Policy, Selector, Template
    from pyipsec.io.daemon import Daemon, DaemonOptions

    cfg = json.loads(sys.argv[1])
    engine = Engine()
    for sa in cfg["sas"]:
        engine.add_sa(SASpec(
            spi=sa["spi"], src=sa["src"], dst=sa["dst"], mode="tunnel",
            enc=sa["enc"], enc_key=bytes.fromhex(sa["enc_key"]),
            integ=sa["integ"], integ_key=bytes.fromhex(sa["integ_key"]),
            encap=tuple(sa["encap"]) if sa["encap"] else None,
        ), time.monotonic())
    for p in cfg["policies"]:
        tmpl = Template(mode="tunnel", src=p["tsrc"], dst=p["tdst"])
        engine.add_policy(Policy(p["dir"], Selector(p["src"], p["dst"]), templates=[tmpl]))
    Daemon(DaemonOptions(run_dir=Path(cfg["run_dir"]), tun="ipsec0"), engine).run()
    """
)

# pyipsec algorithm -> (key bytes, integrity, integrity key bytes, tshark's names for them).
ALGS: dict[str, tuple[str, int, str | None, int, str, str]] = {
    "cbc": ("aes128", 16, "sha256", 32, "AES-CBC [RFC3602]", "HMAC-SHA-256-128 [RFC4868]"),
    # RFC 4106 §8.1: 16 bytes of key then the 4-byte salt; tshark takes them the same way.
    "gcm": ("aes128gcm16", 20, None, 0, "AES-GCM with 16 octet ICV [RFC4106]", "NULL"),
}


def _sas(alg: str, encap: bool) -> list[dict[str, Any]]:
    enc, enc_len, integ, integ_len, _, _ = ALGS[alg]
    sas = []
    for spi, src, dst in ((SPI_AB, A_OUT, B_OUT), (SPI_BA, B_OUT, A_OUT)):
        sas.append({
            "spi": spi, "src": src, "dst": dst, "enc": enc, "integ": integ,
            "enc_key": os.urandom(enc_len).hex(), "integ_key": os.urandom(integ_len).hex(),
            "encap": [4500, 4500] if encap else None,
        })  # fmt: skip
    return sas


def _config(side: str, sas: list[dict[str, Any]], run_dir: Path) -> str:
    me, peer, mine, theirs = (
        (A_OUT, B_OUT, A_IN, B_IN) if side == "a" else (B_OUT, A_OUT, B_IN, A_IN)
    )
    policies = [
        {"dir": "out", "src": mine, "dst": theirs, "tsrc": me, "tdst": peer},
        {"dir": "in", "src": theirs, "dst": mine, "tsrc": peer, "tdst": me},
    ]
    return json.dumps({"sas": sas, "policies": policies, "run_dir": str(run_dir)})


def esp_sa_uat(alg: str, sas: list[dict[str, Any]]) -> list[str]:
    """tshark options giving it the SAs: one ``uat:esp_sa`` record per SA.

    Fields, in the order of tshark 4.0's "ESP SAs" table: protocol, source, destination,
    SPI, encryption algorithm, encryption key, authentication algorithm, authentication key.
    """
    _, _, _, _, enc_name, auth_name = ALGS[alg]
    opts = ["-o", "esp.enable_encryption_decode:TRUE"]
    for sa in sas:
        fields = ["IPv4", sa["src"], sa["dst"], f"0x{sa['spi']:08x}", enc_name,
                  "0x" + sa["enc_key"], auth_name,
                  "0x" + sa["integ_key"] if sa["integ_key"] else ""]  # fmt: skip
        opts += ["-o", "uat:esp_sa:" + ",".join(f'"{f}"' for f in fields)]
    return opts


def _veth_name(ns: Netns) -> str:
    for line in ns.run("ip", "-o", "link", "show", "type", "veth").splitlines():
        return line.split(":")[1].strip().split("@")[0]
    raise AssertionError("no veth in namespace")


def _wait_file(path: Path, proc: subprocess.Popen[bytes], what: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.stat().st_size > 0:
            return
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    raise AssertionError(f"{what} did not start")


def _fields(pcap: Path, extra: list[str], *names: str) -> list[list[str]]:
    """One row per frame: the named fields (several occurrences joined by ',')."""
    cmd = ["tshark", "-n", "-r", str(pcap), *extra, "-T", "fields"]
    for name in names:
        cmd += ["-e", name]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=True).stdout
    return [line.split("\t") for line in out.splitlines() if line.strip()]


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")
@pytest.mark.parametrize("alg", ["cbc", "gcm"])
@pytest.mark.parametrize("encap", [False, True], ids=["esp", "udp4500"])
def test_tshark_decodes_and_decrypts_tunnel(tmp_path: Path, alg: str, encap: bool) -> None:
    launcher = tmp_path / "launch.py"
    launcher.write_text(_LAUNCHER)
    sas = _sas(alg, encap)
    pcap = tmp_path / "veth.pcap"
    with namespaces("a", "b") as (a, b):
        veth(a, [f"{A_OUT}/24"], b, [f"{B_OUT}/24"])
        a.run("ip", "addr", "add", f"{A_IN}/32", "dev", "lo")
        b.run("ip", "addr", "add", f"{B_IN}/32", "dev", "lo")
        for side, ns in (("a", a), ("b", b)):
            run_dir = tmp_path / f"run-{side}"
            log = tmp_path / f"daemon-{side}.log"
            proc = ns.popen([sys.executable, str(launcher), _config(side, sas, run_dir)],
                            stderr=log.open("wb"))  # fmt: skip
            _wait_file(run_dir / "pyipsec.pid", proc, f"daemon {side}: {log.read_text()}")
        capture = b.popen(
            ["tshark", "-n", "-q", "-i", _veth_name(b), "-w", str(pcap),
             "-f", "esp or udp port 4500"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        _wait_file(pcap, capture, "tshark capture")
        time.sleep(0.5)  # the pcap header comes just before the capture filter is live
        ping = a.run("ping", "-c", "3", "-i", "0.2", "-W", "2", "-p", PATTERN, "-I", A_IN, B_IN)
        assert " 0% packet loss" in ping
        time.sleep(0.3)
        capture.send_signal(signal.SIGINT)
        capture.wait(10)

    plain = _fields(pcap, [], "esp.spi", "ip.src", "ip.dst", "udp.dstport", "icmp.type")
    assert len(plain) >= 6, plain
    spis = {(row[0], row[1], row[2]) for row in plain}
    assert spis == {(f"0x{SPI_AB:08x}", A_OUT, B_OUT), (f"0x{SPI_BA:08x}", B_OUT, A_OUT)}
    assert all(row[3] == ("4500" if encap else "") for row in plain), plain
    assert all(row[4] == "" for row in plain), "ICMP visible without the keys"

    rows = _fields(pcap, esp_sa_uat(alg, sas), "esp.spi", "ip.src", "ip.dst", "icmp.type",
                   "icmp.seq", "data.data")  # fmt: skip
    requests = [r for r in rows if r[3] == "8"]
    replies = [r for r in rows if r[3] == "0"]
    assert len(requests) == len(replies) == 3, rows
    for row, spi, outer, inner in ((requests, SPI_AB, (A_OUT, B_OUT), (A_IN, B_IN)),
                                   (replies, SPI_BA, (B_OUT, A_OUT), (B_IN, A_IN))):  # fmt: skip
        for r in row:
            assert r[0] == f"0x{spi:08x}"
            # Outer then inner header: the decrypted packet is the one ping sent.
            assert r[1].split(",") == [outer[0], inner[0]]
            assert r[2].split(",") == [outer[1], inner[1]]
            assert PATTERN * 8 in r[5], r[5]
    assert sorted(int(r[4]) for r in requests) == [1, 2, 3]

    # A wrong key: tshark cannot decrypt (so the check above depended on the right keys).
    wrong = [dict(sa, enc_key=bytes(len(sa["enc_key"]) // 2).hex()) for sa in sas]
    rows = _fields(pcap, esp_sa_uat(alg, wrong), "icmp.type")
    assert not [r for r in rows if r[0] in ("0", "8")], rows

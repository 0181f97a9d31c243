"""Two pyipsec daemons in two namespaces, keyed with ``pyipsec setkey -f``: the shared
setup of tests/test_daemon_netns.py and tests/test_daemon_faults.py.

    ns a: veth 192.0.2.1 / 2001:db8::1    lo 198.51.100.1 / 2001:db8:100::1  (protected)
    ns b: veth 192.0.2.2 / 2001:db8::2    lo 203.0.113.1  / 2001:db8:200::1  (protected)

Each daemon is the real command (``pyipsec daemon --foreground``); SAs and policies reach
it only through its ``pfkey.sock``, written as a setkey file, as a user would do it.
Tunnel mode protects the two loopback addresses; transport mode protects the veth
addresses themselves (so ESP to the peer must bypass the daemon's own route: SO_MARK).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from netns import Netns, namespaces, veth

PYIPSEC = [sys.executable, "-m", "pyipsec.cli.main"]

OUTER = {4: ("192.0.2.1", "192.0.2.2"), 6: ("2001:db8::1", "2001:db8::2")}
INNER = {4: ("198.51.100.1", "203.0.113.1"), 6: ("2001:db8:100::1", "2001:db8:200::1")}

# setkey names and key lengths (bytes; the GCM one counts the 4-byte salt).
ALGS = {
    "cbc": ("aes-cbc", 16, "hmac-sha256", 32),
    "gcm": ("aes-gcm-16", 20, None, 0),
}


@dataclass(frozen=True)
class SaKeys:
    """One SA: SPI and test keys (derived from a seed, never used outside the tests)."""

    spi: int
    enc_key: bytes
    integ_key: bytes


def make_keys(alg: str, spi: int, seed: int = 0) -> SaKeys:
    _, enc_len, _, integ_len = ALGS[alg]
    material = (spi ^ (seed << 16)).to_bytes(4, "big") * 16
    return SaKeys(spi, material[:enc_len], material[::-1][:integ_len])


@dataclass(frozen=True)
class Layout:
    """What both setkey files describe: addresses, mode, encapsulation, algorithm, SAs."""

    outer: int = 4
    inner: int = 4
    mode: str = "tunnel"
    encap: bool = False
    alg: str = "cbc"
    a_to_b: SaKeys = field(default_factory=lambda: make_keys("cbc", 0x1001))
    b_to_a: SaKeys = field(default_factory=lambda: make_keys("cbc", 0x2002))

    @classmethod
    def of(
        cls,
        outer: int = 4,
        inner: int = 4,
        mode: str = "tunnel",
        encap: bool = False,
        alg: str = "cbc",
        spis: tuple[int, int] = (0x1001, 0x2002),
        seed: int = 0,
    ) -> Layout:
        return cls(
            outer,
            inner if mode == "tunnel" else outer,
            mode,
            encap,
            alg,
            make_keys(alg, spis[0], seed),
            make_keys(alg, spis[1], seed),
        )

    @property
    def gateways(self) -> tuple[str, str]:
        return OUTER[self.outer]

    @property
    def hosts(self) -> tuple[str, str]:
        """The addresses the traffic runs between (the protected ones)."""
        return INNER[self.inner] if self.mode == "tunnel" else OUTER[self.outer]


def _sa_line(layout: Layout, src: str, dst: str, keys: SaKeys) -> str:
    enc, _, integ, _ = ALGS[layout.alg]
    proto = "esp-udp" if layout.encap else "esp"
    # With esp-udp the endpoints carry the UDP ports (RFC 3948 §2.1: 4500 both ways).
    ports = "[4500]" if layout.encap else ""
    line = (
        f"add {src}{ports} {dst}{ports} {proto} 0x{keys.spi:x} -m {layout.mode} -r 64\n"
        f"    -E {enc} 0x{keys.enc_key.hex()}"
    )
    if integ is not None:
        line += f"\n    -A {integ} 0x{keys.integ_key.hex()}"
    return line + ";\n"


def setkey_text(layout: Layout, side: str, flush: bool = True) -> str:
    """The setkey file of one side: both SAs, and the policies seen from that side."""
    gw_a, gw_b = layout.gateways
    host_a, host_b = layout.hosts
    me, peer = (gw_a, gw_b) if side == "a" else (gw_b, gw_a)
    mine, theirs = (host_a, host_b) if side == "a" else (host_b, host_a)
    if layout.mode == "tunnel":
        out_req = f"esp/tunnel/{me}-{peer}/require"
        in_req = f"esp/tunnel/{peer}-{me}/require"
    else:
        out_req = in_req = "esp/transport//require"
    text = "flush;\nspdflush;\n" if flush else ""
    text += _sa_line(layout, gw_a, gw_b, layout.a_to_b)
    text += _sa_line(layout, gw_b, gw_a, layout.b_to_a)
    text += f"spdadd {mine} {theirs} any -P out ipsec {out_req};\n"
    text += f"spdadd {theirs} {mine} any -P in ipsec {in_req};\n"
    return text


@dataclass
class Side:
    ns: Netns
    run_dir: Path
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0


class Pair:
    """Two namespaces joined by a veth pair, a pyipsec daemon in each."""

    def __init__(self, a: Netns, b: Netns, tmp: Path, veths: tuple[str, str]) -> None:
        self.tmp = tmp
        self.veths = veths
        self.sides = {
            name: Side(ns, tmp / f"run-{name}", tmp / f"daemon-{name}.log")
            for name, ns in (("a", a), ("b", b))
        }

    def ns(self, side: str) -> Netns:
        return self.sides[side].ns

    def start(self, side: str) -> None:
        s = self.sides[side]
        s.run_dir.mkdir(mode=0o700, exist_ok=True)
        s.starts += 1
        with s.log.open("ab") as log:
            log.write(f"---- start {s.starts}\n".encode())
            log.flush()
            s.proc = s.ns.popen(
                [*PYIPSEC, "daemon", "--run-dir", str(s.run_dir), "--tun", "ipsec0",
                 "--foreground"],
                stdout=log, stderr=log,
            )  # fmt: skip
        deadline = time.monotonic() + 15
        while not (s.run_dir / "control.sock").exists():
            if s.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"daemon {side} did not come up:\n{s.log.read_text()}")
            time.sleep(0.05)

    def stop(self, side: str, sig: int = signal.SIGTERM) -> int:
        s = self.sides[side]
        if s.proc is None:
            return 0
        s.proc.send_signal(sig)
        code = s.proc.wait(15)
        s.proc = None
        return code

    def setkey(self, side: str, text: str, *args: str, check: bool = True) -> str:
        """``pyipsec setkey -f FILE`` in ``side``'s namespace (root-only file, as keys
        should be); its stdout, or stdout + stderr when ``check`` is False."""
        s = self.sides[side]
        conf = self.tmp / f"setkey-{side}.conf"
        conf.write_text(text)
        conf.chmod(0o600)
        proc = subprocess.run(
            s.ns.cmd(*PYIPSEC, "setkey", "--run-dir", str(s.run_dir), *args, "-f", str(conf)),
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        if check:
            assert proc.returncode == 0, proc.stderr
            return proc.stdout
        return proc.stdout + proc.stderr

    def setkey_cmd(self, side: str, *args: str) -> str:
        """``pyipsec setkey ARGS`` (``-D``, ``-D -P``, ``-F``...) in ``side``'s namespace."""
        s = self.sides[side]
        return s.ns.run(*PYIPSEC, "setkey", "--run-dir", str(s.run_dir), *args)

    def load(self, layout: Layout, *sides: str) -> None:
        for side in sides or ("a", "b"):
            self.setkey(side, setkey_text(layout, side))

    def status(self, side: str) -> dict[str, Any]:
        s = self.sides[side]
        out = s.ns.run(*PYIPSEC, "status", "--json", "--run-dir", str(s.run_dir))
        doc: dict[str, Any] = json.loads(out)
        return doc

    def sa(self, side: str, spi: int) -> dict[str, Any]:
        found: list[dict[str, Any]] = [sa for sa in self.status(side)["sas"] if sa["spi"] == spi]
        assert len(found) == 1, found
        return found[0]

    def ping(self, side: str, dst: str, count: int = 3, interval: float = 0.2) -> str:
        return self.ns(side).run(
            "ping", "-c", str(count), "-i", str(interval), "-W", "1", dst, check=False,
            timeout=count * interval + 15,
        )  # fmt: skip

    def logs(self) -> str:
        return "\n".join(f"== {n}\n{s.log.read_text()}" for n, s in self.sides.items())


def _veth_name(ns: Netns) -> str:
    line = ns.run("ip", "-o", "link", "show", "type", "veth").split(":")[1]
    return line.strip().split("@")[0]


@contextmanager
def daemon_pair(tmp: Path) -> Iterator[Pair]:
    """Namespaces, veth, protected loopback addresses and both daemons running; all of
    it removed on exit (``namespaces`` kills whatever is left inside)."""
    with namespaces("a", "b") as (a, b):
        veth(a, ["192.0.2.1/24", "2001:db8::1/64"], b, ["192.0.2.2/24", "2001:db8::2/64"])
        # netns.veth names the pair but does not return the names: ask each namespace.
        devs = (_veth_name(a), _veth_name(b))
        for ns, v4, v6 in ((a, "198.51.100.1/32", "2001:db8:100::1/128"),
                           (b, "203.0.113.1/32", "2001:db8:200::1/128")):  # fmt: skip
            ns.run("ip", "addr", "add", v4, "dev", "lo")
            ns.run("ip", "addr", "add", v6, "dev", "lo")
        pair = Pair(a, b, tmp, devs)
        pair.start("a")
        pair.start("b")
        try:
            yield pair
        finally:
            for side in ("a", "b"):
                if pair.sides[side].proc is not None:
                    pair.stop(side)

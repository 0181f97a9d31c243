"""`make demo`: two hosts in network namespaces, a pyipsec ESP tunnel between them.

    ns pyipsec-demo-a                                  ns pyipsec-demo-b
    198.51.100.1 (lo)                                  203.0.113.1 (lo)
        |  pyipsec daemon (TUN ipsec0)                     |  pyipsec daemon (TUN ipsec0)
    192.0.2.1 veth-a  ----------- ESP -----------  veth-b 192.0.2.2

Manual keys (fresh random ones each run) are loaded with `pyipsec setkey -f`, AES-CBC +
HMAC-SHA256 as manual keying should be. Then it pings across, shows `pyipsec status` on both
sides and what tcpdump saw on the wire, and tears everything down — also after a failure
or Ctrl-C, and it is safe to run twice.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NS_A, NS_B = "pyipsec-demo-a", "pyipsec-demo-b"
GW_A, GW_B = "192.0.2.1", "192.0.2.2"
HOST_A, HOST_B = "198.51.100.1", "203.0.113.1"
NET_A, NET_B = "198.51.100.0/24", "203.0.113.0/24"
SPI_AB, SPI_BA = 0x1001, 0x2002


def say(text: str) -> None:
    print(f"\n\033[1m== {text}\033[0m", flush=True)


def run(*cmd: str, check: bool = True, capture: bool = False) -> str:
    result = subprocess.run(cmd, check=check, text=True, capture_output=capture)
    return result.stdout if capture else ""


def in_ns(ns: str, *cmd: str) -> list[str]:
    return ["ip", "netns", "exec", ns, *cmd]


def pyipsec() -> list[str]:
    return [sys.executable, "-m", "pyipsec.cli.main"]


def cleanup(procs: list[subprocess.Popen[bytes]], workdir: Path | None) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
    for ns in (NS_A, NS_B):
        subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True)
    if workdir is not None:
        shutil.rmtree(workdir, ignore_errors=True)


def setkey_file(keys: list[str], me: str) -> str:
    """The same SAs on both sides; the policies mirror each other."""
    key_ab, auth_ab, key_ba, auth_ba = keys
    local, remote = (NET_A, NET_B) if me == GW_A else (NET_B, NET_A)
    peer = GW_B if me == GW_A else GW_A
    return f"""# pyipsec demo: manual keys, AES-CBC + HMAC-SHA256, tunnel mode
flush;
spdflush;
add {GW_A} {GW_B} esp 0x{SPI_AB:x} -m tunnel -r 64 -u 1
    -E aes-cbc 0x{key_ab}
    -A hmac-sha256 0x{auth_ab};
add {GW_B} {GW_A} esp 0x{SPI_BA:x} -m tunnel -r 64 -u 1
    -E aes-cbc 0x{key_ba}
    -A hmac-sha256 0x{auth_ba};
spdadd {local} {remote} any -P out ipsec esp/tunnel/{me}-{peer}/unique:1;
spdadd {remote} {local} any -P in ipsec esp/tunnel/{peer}-{me}/unique:1;
"""


def wait_for(path: Path, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 10
    while not path.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            sys.stderr.write(log.read_text(errors="replace"))
            raise SystemExit(f"demo: the daemon did not start ({path} missing)")
        time.sleep(0.05)


def main() -> int:
    if os.geteuid() != 0:
        print("demo: run as root (it creates network namespaces)", file=sys.stderr)
        return 1
    for tool in ("ip", "ping", "tcpdump"):
        if shutil.which(tool) is None:
            print(f"demo: {tool} is missing; run `make deps`", file=sys.stderr)
            return 1
    procs: list[subprocess.Popen[bytes]] = []
    cleanup(procs, None)  # leftovers of an interrupted run
    workdir = Path(tempfile.mkdtemp(prefix="pyipsec-demo-"))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        say("two namespaces joined by a veth pair")
        for ns in (NS_A, NS_B):
            run("ip", "netns", "add", ns)
            run(*in_ns(ns, "ip", "link", "set", "lo", "up"))
        run("ip", "link", "add", "veth-a", "netns", NS_A, "type", "veth", "peer", "veth-b",
            "netns", NS_B)  # fmt: skip
        for ns, dev, gw, host in ((NS_A, "veth-a", GW_A, HOST_A), (NS_B, "veth-b", GW_B, HOST_B)):
            run(*in_ns(ns, "ip", "addr", "add", f"{gw}/24", "dev", dev))
            run(*in_ns(ns, "ip", "link", "set", dev, "up"))
            run(*in_ns(ns, "ip", "addr", "add", f"{host}/32", "dev", "lo"))
            print(f"  {ns}: {gw} on {dev}, protected host {host} on lo")

        say("a pyipsec daemon in each namespace")
        run_dirs = {NS_A: workdir / "a", NS_B: workdir / "b"}
        for ns, run_dir in run_dirs.items():
            run_dir.mkdir(mode=0o700)
            log = run_dir / "daemon.log"
            cmd = [*pyipsec(), "daemon", "--run-dir", str(run_dir), "--tun", "ipsec0",
                   "--foreground"]  # fmt: skip
            with log.open("wb") as out:
                procs.append(subprocess.Popen(in_ns(ns, *cmd), stdout=out, stderr=out))
            wait_for(run_dir / "pfkey.sock", procs[-1], log)
            print(f"  {ns}: daemon pid {procs[-1].pid}, run dir {run_dir}")

        say("manual SAs and policies with `pyipsec setkey -f` (fresh random keys)")
        keys = [os.urandom(n).hex() for n in (16, 32, 16, 32)]
        for ns, me in ((NS_A, GW_A), (NS_B, GW_B)):
            conf = run_dirs[ns] / "ipsec.conf"
            conf.write_text(setkey_file(keys, me=me))
            conf.chmod(0o600)
            run(*in_ns(ns, *pyipsec(), "setkey", "--run-dir", str(run_dirs[ns]), "-f", str(conf)))
        shown = setkey_file([k[:8] + "..." for k in keys], me=GW_A)
        print("  " + shown.replace("\n", "\n  ").rstrip())

        say(f"ping {HOST_B} from {HOST_A} through the tunnel (tcpdump on veth-a)")
        dump = subprocess.Popen(
            in_ns(NS_A, "tcpdump", "-l", "-nn", "-i", "veth-a", "-c", "6", "ip proto 50"),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        time.sleep(1.0)  # let tcpdump attach before the first packet
        ping = subprocess.run(
            # -w: keep trying for up to 10 s until 3 replies came (a busy machine may lose
            # the first packet to ARP); the exit status says whether they did.
            in_ns(NS_A, "ping", "-c", "3", "-i", "0.3", "-w", "10", "-I", HOST_A, HOST_B),
            text=True,
            capture_output=True,
        )
        print(ping.stdout.rstrip())
        try:
            wire, _ = dump.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            dump.kill()
            wire, _ = dump.communicate()

        for ns in (NS_A, NS_B):
            say(f"pyipsec status in {ns}")
            run(*in_ns(ns, *pyipsec(), "status", "--run-dir", str(run_dirs[ns])))

        say("on the wire (veth-a): ESP only, no ICMP in the clear")
        print(wire.rstrip() or "  (tcpdump saw nothing)")
        esp_seen = wire.count("ESP(spi=")
        ok = ping.returncode == 0 and " 3 received" in ping.stdout and esp_seen >= 6
        say("result: " + ("the tunnel works" if ok else "FAILED"))
        print(f"  ping exit {ping.returncode}, {esp_seen} ESP packets seen on the wire")
        return 0 if ok else 1
    finally:
        say("teardown")
        cleanup(procs, workdir)
        print("  namespaces, daemons and run dirs removed")


if __name__ == "__main__":
    sys.exit(main())

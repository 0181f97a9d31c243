"""Tunnel throughput: iperf3 through pyipsec next to bare veth and strongSwan's userspace
ESP (charon with kernel-libipsec), all measured in the same run on the same topology.

    ns a (198.51.100.1) --- veth 192.0.2.0/24 --- ns b (203.0.113.1)

Each variant gets its own pair of namespaces, all up at once. iperf3 TCP runs for
``--time`` seconds, ``--runs`` times per variant, interleaved (median reported); then UDP
with 1400-byte datagrams: the highest rate with less than 1% loss (doubling from the TCP
median, at most 1 Gbit/s, until loss appears, then bisecting). iperf3 gets 2 MiB UDP
socket buffers (``--udp-buffer``, ``-w``) on both ends, for every variant alike: with the
default 208 KiB the receiving iperf3's socket overflows (``RcvbufErrors``) on any burst
of some 90 datagrams, which then measures iperf3's wakeups rather than the tunnel.
Variants:

- ``veth``: the underlay itself, no tunnel (the ceiling);
- ``strongswan``: charon + kernel-libipsec, IKEv2 PSK, aes128gcm16, ESP in UDP 4500 (the
  anchor: pyipsec / strongSwan is the ratio that counts);
- ``pyipsec-esp`` / ``pyipsec-udp``: two pyipsec daemons with aes128gcm16 SAs, raw ESP
  and ESP-in-UDP.

All TUN MTUs are set alike (kernel-libipsec's to what pyipsec computes for ESP-in-UDP).
``--profile S`` samples daemon a with py-spy during an extra pyipsec TCP run of S seconds
and prints the functions that dominate. Needs root, iperf3 and (for the anchor) the
strongSwan packages of scripts/install-system-deps.sh. Not a timed test: the numbers are
printed, never asserted. Run:

    sudo .venv/bin/python bench/tunnel.py [--time 10] [--runs 3] [--profile 8]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _netns import INNER_A, INNER_B, UNDERLAY_A, UNDERLAY_B, Netns, pair
from _tunnels import missing_strongswan, start_pyipsec, start_strongswan, tun_mtu

VARIANTS = ("veth", "strongswan", "pyipsec-esp", "pyipsec-udp")
MAX_LOSS = 1.0  # percent
UDP_PROBES = 6
UDP_START_MAX = 1000.0  # Mbit/s
IPERF_PORT = 5201


@dataclass
class Result:
    variant: str
    tcp: list[float] = field(default_factory=list)  # Mbit/s per run
    udp: float | None = None  # Mbit/s received at the best rate with < 1% loss
    udp_probes: list[tuple[float, float, float]] = field(default_factory=list)
    note: str = ""

    @property
    def tcp_median(self) -> float | None:
        return statistics.median(self.tcp) if self.tcp else None


def iperf(a: Netns, args: list[str], seconds: float) -> dict[str, object]:
    out = a.run("iperf3", *args, "-J", check=False, timeout=seconds + 30)
    try:
        doc: dict[str, object] = json.loads(out)
    except json.JSONDecodeError:
        return {"error": out[-500:] or "iperf3 printed nothing"}
    return doc


def tcp_run(a: Netns, dst: str, src: str, seconds: float) -> float:
    doc = iperf(a, ["-c", dst, "-B", src, "-p", str(IPERF_PORT), "-t", str(seconds),
                    "-O", "1"], seconds + 1)  # fmt: skip
    if "error" in doc:
        raise RuntimeError(f"iperf3 TCP: {doc['error']}")
    end = doc["end"]
    assert isinstance(end, dict)
    return float(end["sum_received"]["bits_per_second"]) / 1e6


def udp_probe(
    a: Netns, dst: str, src: str, mbit: float, size: int, seconds: float, buffer: str = ""
) -> tuple[float, float]:
    """(received Mbit/s, loss %) when sending ``mbit`` Mbit/s of ``size``-byte datagrams."""
    window = ["-w", buffer] if buffer else []
    doc = iperf(a, ["-c", dst, "-B", src, "-p", str(IPERF_PORT), "-u", "-b", f"{mbit:.1f}M",
                    "-l", str(size), "-t", str(seconds), *window], seconds)  # fmt: skip
    if "error" in doc:
        return 0.0, 100.0
    end = doc["end"]
    assert isinstance(end, dict)
    total = end["sum"]
    loss = float(total.get("lost_percent", 100.0))
    sent = float(total["bits_per_second"]) / 1e6
    return sent * (1 - loss / 100), loss


def udp_max(
    a: Netns, dst: str, src: str, hint: float, args: argparse.Namespace, r: Result
) -> float:
    """Highest received rate with < 1% loss: double until loss, then bisect."""
    good_rate, good_recv, bad = 0.0, 0.0, None
    # From the TCP rate, but below what one iperf3 UDP sender manages here (~2 Gbit/s).
    rate = min(max(hint, 20.0), UDP_START_MAX)
    for _ in range(UDP_PROBES):
        recv, loss = udp_probe(a, dst, src, rate, args.udp_size, args.udp_time, args.udp_buffer)
        r.udp_probes.append((rate, recv, loss))
        if loss < MAX_LOSS:
            good_rate, good_recv = rate, max(good_recv, recv)
            if recv < 0.9 * rate:
                r.note = "UDP: iperf3 client could not send faster"
                break
        else:
            bad = rate
        if bad is None:
            rate *= 2
        else:
            if good_rate and bad / good_rate < 1.1:
                break
            rate = (good_rate + bad) / 2 if good_rate else bad / 2
    return good_recv


def wait_reachable(a: Netns, dst: str, src: str) -> None:
    for _ in range(20):
        out = a.run("ping", "-c", "1", "-W", "1", "-I", src, dst, check=False)
        if " 0% packet loss" in out:
            return
        time.sleep(0.2)
    raise RuntimeError(f"{dst} not reachable from {src}")


def wait_listening(b: Netns) -> None:
    for _ in range(50):
        if f":{IPERF_PORT}" in b.run("ss", "-Hltn", check=False):
            return
        time.sleep(0.1)
    raise RuntimeError("iperf3 server did not start")


def profile(a: Netns, pids: dict[str, int], dst: str, src: str, seconds: float, work: Path) -> str:
    """Sample both daemons with py-spy during one more TCP run; a summary per daemon."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not os.access(py_spy, os.X_OK):
        return "py-spy not installed (pip install py-spy): no profile"
    spies = {}
    for side, pid in pids.items():
        raw = work / f"profile-{side}.txt"
        spies[side] = (raw, subprocess.Popen(
            [py_spy, "record", "-p", str(pid), "-d", str(int(seconds) + 1), "-r", "200",
             "-f", "raw", "-o", str(raw), "--nonblocking"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        ))  # fmt: skip
    try:
        time.sleep(0.5)
        tcp_run(a, dst, src, seconds)
    finally:
        out = []
        for side, (raw, spy) in spies.items():
            _, err = spy.communicate(timeout=seconds + 30)
            text = summarize_profile(raw.read_text()) if raw.exists() else err.decode()[-300:]
            out.append(f"daemon {side} ({'sender' if side == 'a' else 'receiver'}): {text}")
    return "\n".join(out)


def summarize_profile(folded: str, top: int = 18) -> str:
    """Self time and inclusive time per function from py-spy's folded stacks."""
    own: dict[str, int] = {}
    incl: dict[str, int] = {}
    total = 0
    for line in folded.splitlines():
        stack, _, count_s = line.rpartition(" ")
        if not stack or not count_s.isdigit():
            continue
        n = int(count_s)
        total += n
        frames = [f.split(" (")[0] + " (" + f.split(" (")[-1].split(":")[0].rsplit("/", 1)[-1]
                  + ")" for f in stack.split(";")]  # fmt: skip
        own[frames[-1]] = own.get(frames[-1], 0) + n
        for f in set(frames):
            incl[f] = incl.get(f, 0) + n
    if not total:
        return "no samples"
    lines = [f"{total} samples; self% / incl%  function (file)"]
    for name, n in sorted(own.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"  {100 * n / total:5.1f} / {100 * incl[name] / total:5.1f}  {name}")
    return "\n".join(lines)


@dataclass
class Setup:
    a: Netns
    b: Netns
    dst: str
    src: str
    pids: dict[str, int]


def bring_up(
    variant: str, args: argparse.Namespace, work: Path, stack: contextlib.ExitStack, r: Result
) -> Setup:
    """Namespaces, the tunnel of ``variant`` and an iperf3 server; torn down by ``stack``."""
    a, b = stack.enter_context(pair())
    pids: dict[str, int] = {}
    if variant == "veth":
        dst, src = UNDERLAY_B, UNDERLAY_A
    else:
        dst, src = INNER_B, INNER_A
        if variant == "strongswan":
            start_strongswan(a, b, work / "strongswan", args.libipsec_mtu)
        else:
            pids = start_pyipsec(a, b, work, encap=variant == "pyipsec-udp")
    b.popen(["iperf3", "-s", "-p", str(IPERF_PORT)], stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)  # fmt: skip
    wait_listening(b)
    wait_reachable(a, dst, src)
    if variant != "veth":
        mtu = tun_mtu(a)
        r.note = f"TUN mtu {mtu}"
        if args.udp_size + 28 > mtu:
            r.note += ", UDP datagrams fragmented"
    return Setup(a, b, dst, src, pids)


def measure(
    args: argparse.Namespace, order: list[str], work: Path
) -> tuple[dict[str, Result], str]:
    """All tunnels up side by side; TCP runs interleaved across variants (so a burst of
    load from elsewhere on the machine hits them alike), then UDP, then the profile."""
    results = {v: Result(v) for v in order}
    setups: dict[str, Setup] = {}
    profile_text = ""

    def failed(variant: str, exc: Exception) -> None:
        results[variant].note = f"FAILED: {str(exc).splitlines()[0][:80]}"
        setups.pop(variant, None)
        print(f"{variant}: {exc}", file=sys.stderr)

    with contextlib.ExitStack() as stack:
        for variant in order:
            if variant == "strongswan" and not args.libipsec_mtu:
                udp_note = results.get("pyipsec-udp")
                mtu = udp_note.note.split()[2].rstrip(",") if udp_note and udp_note.note else ""
                args.libipsec_mtu = int(mtu) if mtu.isdigit() else 1400
            try:
                setups[variant] = bring_up(variant, args, work, stack, results[variant])
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                failed(variant, exc)
        for _ in range(args.runs):
            for variant, s in list(setups.items()):
                try:
                    results[variant].tcp.append(tcp_run(s.a, s.dst, s.src, args.time))
                except (RuntimeError, subprocess.TimeoutExpired) as exc:
                    failed(variant, exc)
        if not args.no_udp:
            for variant, s in setups.items():
                r = results[variant]
                r.udp = udp_max(s.a, s.dst, s.src, r.tcp_median or 100.0, args, r)
        s_prof = setups.get(args.profile_variant)
        if args.profile and s_prof is not None:
            profile_text = profile(s_prof.a, s_prof.pids, s_prof.dst, s_prof.src,
                                   args.profile, work)  # fmt: skip
    return results, profile_text


def fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:8.1f}"


def table(results: list[Result], size: int) -> str:
    anchor = next((r for r in results if r.variant == "strongswan"), None)
    lines = [
        f"{'variant':<13} {'TCP Mbit/s':>10} {'runs':<22} {'x sS':>6} "
        f"{f'UDP{size} Mbit/s':>14} {'kpps':>6} {'x sS':>6}  note"
    ]
    for r in results:
        tcp, udp = r.tcp_median, r.udp
        ratio_tcp = ratio_udp = "-"
        if anchor and anchor.tcp_median and tcp is not None:
            ratio_tcp = f"{tcp / anchor.tcp_median:.2f}"
        if anchor and anchor.udp and udp is not None:
            ratio_udp = f"{udp / anchor.udp:.2f}"
        runs = " ".join(f"{x:.0f}" for x in r.tcp)
        kpps = "-" if udp is None else f"{udp * 1e6 / 8 / size / 1e3:.1f}"
        lines.append(
            f"{r.variant:<13} {fmt(tcp):>10} {runs:<22} {ratio_tcp:>6} "
            f"{fmt(udp):>14} {kpps:>6} {ratio_udp:>6}  {r.note}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--time", type=float, default=10.0, help="seconds per TCP run")
    ap.add_argument("--runs", type=int, default=3, help="TCP runs per variant (median)")
    ap.add_argument("--udp-time", type=float, default=2.0, help="seconds per UDP probe")
    ap.add_argument("--udp-size", type=int, default=1400, help="UDP payload bytes")
    ap.add_argument("--udp-buffer", default="2M", help="iperf3 -w for UDP ('': default)")
    ap.add_argument("--no-udp", action="store_true")
    ap.add_argument("--only", action="append", choices=VARIANTS, help="run only these")
    ap.add_argument("--profile", type=float, default=0.0, help="py-spy seconds (0: none)")
    ap.add_argument("--profile-variant", default="pyipsec-esp", choices=VARIANTS[2:])
    ap.add_argument("--libipsec-mtu", type=int, default=0, help="0: pyipsec's ESP-in-UDP MTU")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("bench/tunnel.py needs root (network namespaces, TUN)", file=sys.stderr)
        return 2
    for tool in ("iperf3", "ip", "ping", "ss"):
        if shutil.which(tool) is None:
            print(f"missing {tool}: run scripts/install-system-deps.sh", file=sys.stderr)
            return 2
    variants = list(args.only or VARIANTS)
    if "strongswan" in variants and (pkg := missing_strongswan()):
        print(f"strongSwan skipped: install the Debian package {pkg}", file=sys.stderr)
        variants.remove("strongswan")
    # pyipsec-udp first: its TUN MTU is the one kernel-libipsec gets.
    order = sorted(variants, key=lambda v: (v != "pyipsec-udp", VARIANTS.index(v)))
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="pyipsec-bench-") as tmp:
        results, profile_text = measure(args, order, Path(tmp))
    ordered = [results[v] for v in VARIANTS if v in results]
    print(
        f"\niperf3 TCP {args.time:g} s x {args.runs} (median); UDP {args.udp_size}-byte "
        f"datagrams, max rate with <{MAX_LOSS:g}% loss ({args.udp_time:g} s probes, "
        f"iperf3 -w {args.udp_buffer or 'default'}); "
        f"x sS = ratio to strongSwan libipsec; {time.monotonic() - started:.0f} s total"
    )
    print(table(ordered, args.udp_size))
    if profile_text:
        print(f"\npy-spy, {args.profile_variant}, TCP:\n{profile_text}")
    if args.json:
        args.json.write_text(json.dumps([r.__dict__ for r in ordered], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

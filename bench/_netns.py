"""Two network namespaces joined by a veth pair, for the tunnel benchmark.

    ns a: veth 192.0.2.1/24   lo 198.51.100.1/32 (protected side of a)
    ns b: veth 192.0.2.2/24   lo 203.0.113.1/32  (protected side of b)

Documentation prefixes only (RFC 5737). Everything started here is registered and torn
down by ``close``: processes first (SIGTERM, then SIGKILL), then anything still inside the
namespaces, then the namespaces themselves (which takes the veth with them).

Why this is not tests/netns.py: bench/ must not import tests/, and the namespace helper
is test and benchmark harness, not part of the stack (the daemon never creates a
namespace, and ``close`` kills every process inside one), so it does not belong in the
package either. The two copies differ on purpose in one place: ``popen`` here starts its
own process group so that strongSwan's whole tree (ip netns exec -> unshare -> charon)
goes at once. A fix to the teardown in one copy belongs in the other too.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import subprocess
from collections.abc import Iterator, Sequence
from typing import Any

UNDERLAY_A, UNDERLAY_B = "192.0.2.1", "192.0.2.2"
INNER_A, INNER_B = "198.51.100.1", "203.0.113.1"

_counter = itertools.count()


class Netns:
    def __init__(self, name: str) -> None:
        self.name = name
        self.procs: list[subprocess.Popen[bytes]] = []

    @classmethod
    def create(cls, tag: str) -> Netns:
        name = f"pyipsec-bench-{tag}-{os.getpid()}-{next(_counter)}"
        subprocess.run(["ip", "netns", "add", name], check=True)
        ns = cls(name)
        ns.run("ip", "link", "set", "lo", "up")
        return ns

    def cmd(self, *args: str) -> list[str]:
        return ["ip", "netns", "exec", self.name, *args]

    def run(self, *args: str, check: bool = True, timeout: float = 60) -> str:
        proc = subprocess.run(self.cmd(*args), capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed in {self.name}: {proc.stderr.strip()}")
        return proc.stdout

    def popen(self, args: Sequence[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        # Own process group: the whole tree (ip netns exec -> unshare -> charon) can be
        # signalled at once.
        proc = subprocess.Popen(self.cmd(*args), start_new_session=True, **kwargs)
        self.procs.append(proc)
        return proc

    def close(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(5)
        self.procs.clear()
        pids = subprocess.run(
            ["ip", "netns", "pids", self.name], capture_output=True, text=True
        ).stdout.split()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)


@contextlib.contextmanager
def pair() -> Iterator[tuple[Netns, Netns]]:
    """Namespaces a and b, joined and addressed as in the module docstring."""
    created: list[Netns] = []
    try:
        a = Netns.create("a")
        created.append(a)
        b = Netns.create("b")
        created.append(b)
        n = next(_counter)
        ea, eb = f"pb{os.getpid() % 10000}a{n}", f"pb{os.getpid() % 10000}b{n}"
        subprocess.run(
            ["ip", "link", "add", ea, "netns", a.name, "type", "veth", "peer", eb, "netns", b.name],
            check=True,
        )
        for ns, dev, under, inner in ((a, ea, UNDERLAY_A, INNER_A), (b, eb, UNDERLAY_B, INNER_B)):
            ns.run("ip", "addr", "add", f"{under}/24", "dev", dev)
            ns.run("ip", "link", "set", dev, "up")
            ns.run("ip", "addr", "add", f"{inner}/32", "dev", "lo")
        yield a, b
    finally:
        for ns in reversed(created):
            ns.close()

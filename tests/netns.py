"""A small helper for root tests: network namespaces joined by veth pairs, always removed.

    with Netns.create("a") as a, Netns.create("b") as b:
        veth(a, "192.0.2.1/24", b, "192.0.2.2/24")
        a.run("ping", "-c1", "192.0.2.2")

Namespace names get a per-process suffix, so parallel test runs never collide. Processes
started with ``popen`` are killed when the namespace is closed.

Tests that run Python inside a namespace do it in a child process (a namespace belongs to
a process): ``call_in_netns(__file__, name, "child_x", ...)`` runs ``child_x`` of the test
file there and returns what it printed as JSON.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from typing import Any

_counter = itertools.count()


class Netns:
    def __init__(self, name: str) -> None:
        self.name = name
        self.procs: list[subprocess.Popen[bytes]] = []

    @classmethod
    def create(cls, tag: str) -> Netns:
        name = f"pyipsec-{tag}-{os.getpid()}-{next(_counter)}"
        subprocess.run(["ip", "netns", "add", name], check=True)
        ns = cls(name)
        ns.run("ip", "link", "set", "lo", "up")
        return ns

    def cmd(self, *args: str) -> list[str]:
        return ["ip", "netns", "exec", self.name, *args]

    def run(self, *args: str, check: bool = True, timeout: float = 60) -> str:
        """Run a command in the namespace; its stdout (raises with stderr on failure)."""
        proc = subprocess.run(self.cmd(*args), capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise RuntimeError(f"{args} failed in {self.name}: {proc.stderr.strip()}")
        return proc.stdout

    def popen(self, args: Sequence[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(self.cmd(*args), **kwargs)
        self.procs.append(proc)
        return proc

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
        self.procs.clear()
        # Kill anything still inside (e.g. a daemon that detached), then remove it.
        pids = subprocess.run(
            ["ip", "netns", "pids", self.name], capture_output=True, text=True
        ).stdout.split()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), 9)
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)

    def __enter__(self) -> Netns:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def veth(a: Netns, a_addrs: Sequence[str], b: Netns, b_addrs: Sequence[str]) -> None:
    """Join two namespaces with a veth pair named after them, with the given addresses."""
    n = next(_counter)
    ea, eb = f"pv{os.getpid() % 10000}a{n}", f"pv{os.getpid() % 10000}b{n}"
    subprocess.run(
        ["ip", "link", "add", ea, "netns", a.name, "type", "veth", "peer", eb, "netns", b.name],
        check=True,
    )
    for ns, dev, addrs in ((a, ea, a_addrs), (b, eb, b_addrs)):
        for addr in addrs:
            extra = ["nodad"] if ":" in addr else []
            ns.run("ip", "addr", "add", addr, "dev", dev, *extra)
        ns.run("ip", "link", "set", dev, "up")


@contextlib.contextmanager
def namespaces(*tags: str) -> Iterator[list[Netns]]:
    """Several namespaces at once, all removed on exit whatever happens."""
    created: list[Netns] = []
    try:
        for tag in tags:
            created.append(Netns.create(tag))
        yield created
    finally:
        for ns in created:
            ns.close()


def call_in_netns(path: str, name: str, func: str, *args: str, timeout: float = 60) -> Any:
    """``func(*args)`` of the Python file ``path``, run in namespace ``name``; its JSON result.

    The child loads ``path`` with runpy (so the file's top level must be importable without
    side effects, with its own folder on the path, as pytest has it), calls ``func`` and
    prints the result as JSON on its last line.
    """
    code = (
        "import runpy, sys, json; "
        f"sys.path.insert(0, {os.path.dirname(os.path.abspath(path))!r}); "
        f"ns = runpy.run_path({path!r}); "
        f"print(json.dumps(ns[{func!r}](*sys.argv[1:])))"
    )
    out = subprocess.run(
        ["ip", "netns", "exec", name, sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def ip_in(name: str, *args: str) -> str:
    """``ip ARGS`` inside namespace ``name``: its stdout (the test fails with its stderr)."""
    out = subprocess.run(["ip", "-n", name, *args], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    return out.stdout

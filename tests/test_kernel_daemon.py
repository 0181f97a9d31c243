"""``pyipsec daemon --data-plane kernel`` against this machine's kernel, in a namespace the
test creates: the real command runs inside it; clients reach its Unix sockets from here
(a path socket belongs to no network namespace). What the daemon does is checked against
iproute2's view of the namespace's kernel.

This kernel may have no ESP: an ESP SA is then refused with the kernel's errno, which the
test probes first (and on a kernel with ESP, the SA must simply be installed).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from ipaddress import ip_address
from pathlib import Path
from typing import TypeVar

import pytest

from netns import Netns
from pyipsec.io.control import request
from pyipsec.keyapi import pfkey_const as k
from pyipsec.keyapi.pfkey import PfkeyMessage, build_message, parse_message

pytestmark = [pytest.mark.timeout(120)]
ROOT = (
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
    pytest.mark.skipif(shutil.which("ip") is None, reason="needs iproute2"),
)


def root(test: T) -> T:
    """Marks a test that needs root and iproute2 (namespaces, the kernel's xfrm)."""
    for mark in ROOT:
        test = mark(test)
    return test


T = TypeVar("T")
PYIPSEC = [sys.executable, "-m", "pyipsec.cli.main"]
KEY_ENC = "0x00112233445566778899aabbccddeeff"
KEY_AUTH = "0x" + "42" * 32


@dataclass
class KernelDaemon:
    ns: Netns
    run_dir: Path
    proc: subprocess.Popen[bytes]
    log: Path

    def pyipsec(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*PYIPSEC, *args[:1], "--run-dir", str(self.run_dir), *args[1:]],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )

    def ip(self, command: str) -> str:
        """``ip COMMAND`` in the namespace (words split on blanks); its stdout."""
        return self.ns.run("ip", *command.split())

    def log_text(self) -> str:
        return self.log.read_text()


def start(ns: Netns, base: Path, *extra: str) -> KernelDaemon:
    run_dir = base / "run"
    log = base / "daemon.log"
    with log.open("wb") as out:
        proc = ns.popen(
            [*PYIPSEC, "daemon", "--data-plane", "kernel", "--run-dir", str(run_dir),
             "--foreground", "--log", "debug", *extra],
            stdout=out,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    deadline = time.monotonic() + 15
    while True:
        if proc.poll() is not None:
            pytest.fail(f"daemon exited {proc.returncode}: {log.read_text()}")
        try:
            if request(run_dir / "control.sock", {"cmd": "ping"}, timeout=1) == "pong":
                return KernelDaemon(ns, run_dir, proc, log)
        except OSError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"daemon not ready: {log.read_text()}")
        time.sleep(0.1)


def stop(kd: KernelDaemon) -> int:
    kd.proc.send_signal(signal.SIGTERM)
    return kd.proc.wait(10)


@pytest.fixture(scope="module")
def kd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KernelDaemon]:
    with Netns.create("kd") as ns:
        daemon = start(ns, tmp_path_factory.mktemp("kd"))
        yield daemon
        stop(daemon)


class PfkeyClient:
    """A key manager's end of the daemon's pfkey.sock."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.sock.settimeout(5)
        self.sock.connect(str(path))
        self.seq = 0

    def send(self, msg_type: int, satype: int) -> None:
        self.seq += 1
        self.sock.send(build_message(PfkeyMessage(msg_type, satype, self.seq, os.getpid(), 0)))

    def wait_for(self, msg_type: int, timeout: float = 5) -> PfkeyMessage:
        """The next message of ``msg_type`` (others are skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            self.sock.settimeout(max(deadline - time.monotonic(), 0.01))
            try:
                msg = parse_message(self.sock.recv(65536), strict=False)
            except TimeoutError:
                pytest.fail(f"no {k.MESSAGE_NAMES.get(msg_type)} within {timeout}s")
            if msg.msg_type == msg_type:
                return msg

    def close(self) -> None:
        self.sock.close()


def policy_index(kd: KernelDaemon, needle: str) -> int:
    """The kernel's index of the policy whose ``ip xfrm policy`` block contains ``needle``."""
    blocks = kd.ip("-s xfrm policy").split("src ")
    for block in blocks:
        if needle in "src " + block:
            words = block.split()
            return int(words[words.index("index") + 1])
    raise AssertionError(f"no policy {needle!r} in the kernel")


# -- through the daemon into the kernel ---------------------------------------------------------


@root
def test_setkey_spdadd_lands_in_the_kernel_and_dumps_back(kd: KernelDaemon) -> None:
    spd = (
        "spdadd 198.51.100.0/24 203.0.113.0/24 any -P out ipsec "
        "esp/tunnel/192.0.2.1-192.0.2.2/require;\n"
    )
    done = kd.pyipsec("setkey", "-c", stdin=spd)
    assert done.returncode == 0, done.stderr
    text = kd.ip("xfrm policy")
    assert "src 198.51.100.0/24 dst 203.0.113.0/24 \n\tdir out" in text
    assert "tmpl src 192.0.2.1 dst 192.0.2.2\n\t\tproto esp" in text
    dump = kd.pyipsec("setkey", "-D", "-P")
    assert dump.returncode == 0, dump.stderr
    assert "198.51.100.0/24[any] 203.0.113.0/24[any] 255\n\tout prio def ipsec" in dump.stdout
    assert "esp/tunnel/192.0.2.1-192.0.2.2/require" in dump.stdout


@root
def test_xfrm_policy_list_through_the_daemon_is_the_kernels(kd: KernelDaemon) -> None:
    selector = "src 203.0.113.0/24 dst 198.51.100.0/24 proto udp dport 53"
    kd.ip(f"xfrm policy add {selector} dir fwd priority 9 action block")
    ours = kd.pyipsec("xfrm", "policy", "list")
    assert ours.returncode == 0, ours.stderr
    assert "proto udp dport 53 \n\tdir fwd action block priority 9" in ours.stdout
    # Same policies, same text as the kernel's own listing.
    assert ours.stdout == kd.ip("xfrm policy list")


def probe_esp(kd: KernelDaemon) -> int:
    """What this kernel answers to NEWSA for cbc(aes)+hmac(sha256): 0 or the errno."""
    code = (
        "from pyipsec.engine.sad import SASpec\n"
        "from pyipsec.errors import KeyApiError\n"
        "from pyipsec.io.netlink_socket import XfrmSocket\n"
        "from pyipsec.keyapi.xfrm_convert import sa_message\n"
        "spec = SASpec(0x7777, '192.0.2.1', '192.0.2.3', enc='aes128', enc_key=bytes(16),"
        " integ='sha256', integ_key=bytes(32))\n"
        "try:\n"
        "    XfrmSocket().request(sa_message(spec)); print(0)\n"
        "except KeyApiError as exc:\n"
        "    print(exc.errno)\n"
    )
    return int(kd.ns.run(sys.executable, "-c", code).split()[-1])


@root
def test_esp_add_gets_the_kernels_refusal_as_a_clear_message(kd: KernelDaemon) -> None:
    probe = probe_esp(kd)
    add = (
        f"add 192.0.2.1 192.0.2.2 esp 0x1000 -m tunnel -E aes-cbc {KEY_ENC} "
        f"-A hmac-sha256 {KEY_AUTH};\n"
    )
    done = kd.pyipsec("setkey", "-c", stdin=add)
    if probe == 0:  # a kernel with ESP: the SA is simply installed
        assert done.returncode == 0, done.stderr
        assert "spi 0x00001000" in kd.ip("xfrm state")
        return
    # PF_KEY carries the errno only: setkey shows it, the daemon logs the words.
    assert done.returncode != 0
    assert os.strerror(probe) in done.stderr
    clear = (
        "this kernel cannot run ESP with cbc(aes)+hmac(sha256): "
        f"{os.strerror(probe)}; use the embedded data plane"
    )
    assert clear in kd.log_text()
    assert KEY_ENC[2:] not in kd.log_text()
    # xfrm.sock carries the words (extended ACK), so `pyipsec xfrm` shows them.
    xfrm = kd.pyipsec(
        "xfrm", "state", "add", "src", "192.0.2.1", "dst", "192.0.2.2", "proto", "esp",
        "spi", "0x1001", "mode", "tunnel", "enc", "cbc(aes)", KEY_ENC,
        "auth-trunc", "hmac(sha256)", KEY_AUTH, "128",
    )  # fmt: skip
    assert xfrm.returncode != 0
    assert clear in xfrm.stderr
    assert "spi 0x0000100" not in kd.ip("xfrm state")


# -- from the kernel to the clients ------------------------------------------------------------


@root
def test_kernel_acquire_reaches_a_registered_pfkey_client(kd: KernelDaemon) -> None:
    # The flow 203.0.113.77 -> 198.51.100.77 is outside the earlier tests' policies.
    # lo is created with disable_xfrm=1: no policy lookup on loopback routes without this.
    kd.ns.run("sysctl", "-q", "-w", "net.ipv4.conf.lo.disable_xfrm=0")
    kd.ip("addr add 198.51.100.77/32 dev lo")
    kd.ip("addr add 203.0.113.77/32 dev lo")
    client = PfkeyClient(kd.run_dir / "pfkey.sock")
    try:
        client.send(k.SADB_REGISTER, k.SADB_SATYPE_ESP)
        client.wait_for(k.SADB_REGISTER)
        spd = (
            "spdadd 203.0.113.77 198.51.100.77 udp -P out ipsec "
            "esp/tunnel/192.0.2.1-192.0.2.9/require;\n"
        )
        done = kd.pyipsec("setkey", "-c", stdin=spd)
        assert done.returncode == 0, done.stderr
        index = policy_index(kd, "dst 198.51.100.77/32")
        send = (
            "import socket\n"
            "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
            "s.bind(('203.0.113.77', 40000))\n"
            "try:\n"
            "    s.sendto(b'trigger', ('198.51.100.77', 9))\n"
            "except OSError:\n"
            "    pass  # held or dropped while the kernel waits for an SA\n"
        )
        kd.ns.run(sys.executable, "-c", send)
        acquire = client.wait_for(k.SADB_ACQUIRE)
    finally:
        client.close()
    assert acquire.satype == k.SADB_SATYPE_ESP
    assert acquire.src is not None and acquire.src.addr == ip_address("192.0.2.1")
    assert acquire.dst is not None and acquire.dst.addr == ip_address("192.0.2.9")
    assert acquire.policy is not None and acquire.policy.policy_id == index
    assert f"ACQUIRE 192.0.2.1 -> 192.0.2.9 (policy {index})" in kd.log_text()


@root
def test_changes_made_by_others_are_broadcast_to_pfkey_clients(kd: KernelDaemon) -> None:
    client = PfkeyClient(kd.run_dir / "pfkey.sock")
    try:
        kd.ip("xfrm policy add src 198.51.100.5/32 dst 203.0.113.5/32 dir in priority 3")
        added = client.wait_for(k.SADB_X_SPDADD)
        kd.ip("xfrm policy delete src 198.51.100.5/32 dst 203.0.113.5/32 dir in")
        deleted = client.wait_for(k.SADB_X_SPDDELETE2)
    finally:
        client.close()
    assert added.src is not None and added.src.addr == ip_address("198.51.100.5")
    assert added.policy is not None and added.policy.direction == k.IPSEC_DIR_INBOUND
    assert deleted.policy is not None and deleted.policy.policy_id == added.policy.policy_id


@root
def test_xfrm_monitor_through_the_daemon_sees_the_kernels_changes(kd: KernelDaemon) -> None:
    monitor = subprocess.Popen(
        [*PYIPSEC, "xfrm", "--run-dir", str(kd.run_dir), "--count", "1", "policy", "monitor"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # The monitor subscribes on its own time: change the kernel until it has seen one.
        deadline = time.monotonic() + 15
        while monitor.poll() is None and time.monotonic() < deadline:
            kd.ip("xfrm policy add src 198.51.100.6/32 dst 203.0.113.6/32 dir out action block")
            kd.ip("xfrm policy delete src 198.51.100.6/32 dst 203.0.113.6/32 dir out")
            time.sleep(0.2)
        out, err = monitor.communicate(timeout=5)
    finally:
        if monitor.poll() is None:
            monitor.kill()
            monitor.wait()
    assert monitor.returncode == 0, err
    assert "src 198.51.100.6/32 dst 203.0.113.6/32" in out


@root
def test_status_reads_the_kernel(kd: KernelDaemon) -> None:
    done = kd.pyipsec("status", "--json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["daemon"]["data_plane"] == "kernel"
    assert doc["daemon"]["pid"] == int((kd.run_dir / "pyipsec.pid").read_text())
    counts = kd.ip("xfrm policy count").split()  # SPD IN n OUT n FWD n
    spd = doc["kernel"]["spd"]
    assert [spd["in"], spd["out"], spd["fwd"]] == [int(counts[i]) for i in (2, 4, 6)]
    assert doc["kernel"]["sad"]["count"] == int(kd.ip("xfrm state count").split()[-1])
    listed = {(p["direction"], p["src"], p["dst"]) for p in doc["policies"]}
    assert ("out", "198.51.100.0/24", "203.0.113.0/24") in listed
    text = kd.pyipsec("status")
    assert text.returncode == 0, text.stderr
    assert "data plane kernel" in text.stdout
    assert "out 198.51.100.0/24 -> 203.0.113.0/24 protect esp/tunnel" in text.stdout


# -- teardown ----------------------------------------------------------------------------------


@root
def test_sigterm_tears_down_and_leaves_the_kernel_alone(tmp_path: Path) -> None:
    with Netns.create("kdt") as ns:
        kd = start(ns, tmp_path)
        kd.ip("xfrm policy add src 198.51.100.1/32 dst 203.0.113.1/32 dir out action block")
        spd = "spdadd 198.51.100.2 203.0.113.2 any -P out discard;\n"
        assert kd.pyipsec("setkey", "-c", stdin=spd).returncode == 0
        assert stop(kd) == 0
        assert sorted(os.listdir(kd.run_dir)) == []  # sockets and pid file gone
        left = kd.ip("xfrm policy")
        assert "dst 203.0.113.1/32" in left and "dst 203.0.113.2/32" in left
        assert "SIGTERM: shutting down" in kd.log_text() and "stopped" in kd.log_text()


@root
def test_remove_on_exit_removes_only_what_went_through_the_daemon(tmp_path: Path) -> None:
    with Netns.create("kdr") as ns:
        kd = start(ns, tmp_path, "--remove-on-exit")
        kd.ip("xfrm policy add src 198.51.100.1/32 dst 203.0.113.1/32 dir out action block")
        spd = (
            "spdadd 198.51.100.2 203.0.113.2 any -P out discard;\n"
            "spdadd 198.51.100.3 203.0.113.3 any -P in none;\n"
            "spdadd 198.51.100.4 203.0.113.4 any -P fwd none;\n"
        )
        assert kd.pyipsec("setkey", "-c", stdin=spd).returncode == 0
        # Removed by someone else meanwhile: the daemon must not trip over it.
        kd.ip("xfrm policy delete src 198.51.100.4/32 dst 203.0.113.4/32 dir fwd")
        assert stop(kd) == 0
        left = kd.ip("xfrm policy")
        assert "dst 203.0.113.1/32" in left
        for gone in ("203.0.113.2/32", "203.0.113.3/32", "203.0.113.4/32"):
            assert gone not in left
        assert "removed what this daemon installed: 0 SAs, 2 policies" in kd.log_text()


# -- without root: refusals before any socket is opened ----------------------------------------


def test_a_live_pid_file_is_refused_and_left_alone(tmp_path: Path) -> None:
    from pyipsec.errors import ConfigError
    from pyipsec.io.daemon import DaemonOptions
    from pyipsec.io.kernel_daemon import KernelDaemon as Daemon

    (tmp_path / "pyipsec.pid").write_text(f"{os.getppid()}\n")  # a live process, not us
    daemon = Daemon(DaemonOptions(run_dir=tmp_path))
    with pytest.raises(ConfigError, match=f"pid {os.getppid()}"):
        daemon.start()
    assert daemon.kernel is None
    assert (tmp_path / "pyipsec.pid").read_text() == f"{os.getppid()}\n"


def test_cli_refuses_a_preloaded_engine_with_the_kernel_data_plane() -> None:
    from pyipsec.cli.main import build_parser, run_daemon
    from pyipsec.engine.processor import Engine
    from pyipsec.errors import ConfigError

    args = build_parser().parse_args(
        ["daemon", "--data-plane", "kernel", "--run-dir", "/nonexistent"]
    )
    assert args.data_plane == "kernel" and not args.remove_on_exit
    logger = logging.getLogger("pyipsec")  # run_daemon sets up logging: put it back
    saved = (logger.handlers[:], logger.level, logger.propagate)
    try:
        with pytest.raises(ConfigError, match="embedded"):
            run_daemon(args, Engine())
    finally:
        logger.handlers[:], logger.level, logger.propagate = saved

"""IKE on the Linux kernel's data plane: ``pyipsec daemon --data-plane kernel --config``.

Two namespaces joined by a veth pair: ``kd`` runs the real command on the kernel's data
plane (IKE installs into the namespace's kernel through xfrm netlink), ``sw`` runs
strongSwan's charon (kernel-libipsec: it always uses UDP 4500, as if behind a NAT, so
our daemon's own UDP_ENCAP_ESPINUDP socket on 4500 carries IKE_AUTH and everything
after).

    ns kd: veth 192.0.2.2, lo 203.0.113.1 (protected)
    ns sw: veth 192.0.2.1, lo 198.51.100.1 (protected)

The kernel is probed first. Without ESP (this machine's), no tunnel can come up: the
tests check that IKE itself completes, that the CHILD SA is refused with the kernel's
errno and the clear message, that the peer is told (NO_PROPOSAL_CHOSEN), that nothing is
left in the kernel's SAD/SPD, and that the daemon lives on. On a kernel with ESP the
same tests bring the tunnel up and ping through it.

Routing (io/ike_plane): the daemon installs no routes. The kernel looks the xfrm policy
up after the normal route lookup, so ``kd`` gets a route to the remote subnet with the
protected address as source, as an administrator would add it.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from netns import Netns, namespaces, veth
from pyipsec.ike.v2.constants import NotifyType
from pyipsec.io.control import request
from strongswan import Charon, missing, wait_for

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
    pytest.mark.skipif(shutil.which("ip") is None, reason="needs iproute2"),
    pytest.mark.timeout(150),
]

PYIPSEC = [sys.executable, "-m", "pyipsec.cli.main"]
KD_GW, SW_GW = "192.0.2.2", "192.0.2.1"
KD_NET, SW_NET = "203.0.113.1", "198.51.100.1"
KD_ID, SW_ID = "kd.example", "sw.example"
PROPOSALS = "aes128gcm16-prfsha256-x25519"
ESP = "aes256-sha256"  # the kernel's cbc(aes)+hmac(sha256), the one probe_esp tries
ESP_KERNEL_NAME = "cbc(aes)+hmac(sha256)"


def _conn(me: str, peer: str, me_id: str, peer_id: str, mine: str, theirs: str, psk: str,
          child_extra: str = "") -> str:  # fmt: skip
    return textwrap.dedent(
        f"""\
        connections {{
          gw {{
            version = 2
            local_addrs = {me}
            remote_addrs = {peer}
            proposals = {PROPOSALS}
            dpd_delay = 0
            local {{
              auth = psk
              id = {me_id}
            }}
            remote {{
              auth = psk
              id = {peer_id}
            }}
            children {{
              net {{
                local_ts = {mine}/32
                remote_ts = {theirs}/32
                esp_proposals = {ESP}
                {child_extra}
              }}
            }}
          }}
        }}
        secrets {{
          ike-gw {{
            id-1 = {me_id}
            id-2 = {peer_id}
            secret = 0s{psk}
          }}
        }}
        """
    )


@dataclass
class KernelIke:
    """The kernel-plane daemon with IKE, in its namespace."""

    ns: Netns
    run_dir: Path
    log: Path
    proc: subprocess.Popen[bytes]

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*PYIPSEC, args[0], "--run-dir", str(self.run_dir), *args[1:]],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip

    def status(self) -> dict[str, Any]:
        done = self.cli("status", "--json")
        assert done.returncode == 0, done.stderr
        doc: dict[str, Any] = json.loads(done.stdout)
        return doc

    def ike_sas(self) -> list[dict[str, Any]]:
        sas: list[dict[str, Any]] = self.status()["ike"]["ike_sas"]
        return sas

    def alive(self) -> bool:
        try:
            return self.proc.poll() is None and (
                request(self.run_dir / "control.sock", {"cmd": "ping"}, timeout=2) == "pong"
            )
        except OSError:
            return False

    def spd(self) -> list[str]:
        """The namespace's SPD entries (``ip xfrm policy`` blocks), per-socket ones
        (IKE's bypass policies, gone with the sockets) left out."""
        text = self.ns.run("ip", "xfrm", "policy")
        blocks = [b for b in re.split(r"(?m)^(?=src )", text) if b.strip()]
        return [b for b in blocks if "\tdir " in b]

    def sad(self) -> str:
        return self.ns.run("ip", "xfrm", "state")

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(15)


def start_kernel_ike(ns: Netns, work: Path, conf: str) -> KernelIke:
    work.mkdir(parents=True, exist_ok=True)
    path = work / "swanctl.conf"
    path.write_text(conf)
    path.chmod(0o600)
    run_dir, log = work / "run", work / "daemon.log"
    with log.open("wb") as out:
        proc = ns.popen(
            [*PYIPSEC, "daemon", "--data-plane", "kernel", "--run-dir", str(run_dir),
             "--config", str(path), "--foreground", "--log", "debug"],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    kd = KernelIke(ns, run_dir, log, proc)
    wait_for(lambda: kd.alive() or proc.poll() is not None, "the kernel-plane daemon", 15, log)
    assert proc.poll() is None, kd.log_text()
    return kd


def probe_esp(ns: Netns) -> int:
    """What this namespace's kernel answers to NEWSA for cbc(aes)+hmac(sha256): 0 (the
    kernel has ESP) or the errno it refuses with."""
    code = (
        "from pyipsec.engine.sad import SASpec\n"
        "from pyipsec.errors import KeyApiError\n"
        "from pyipsec.io.netlink_socket import XfrmSocket\n"
        "from pyipsec.keyapi.xfrm_convert import sa_message\n"
        "spec = SASpec(0x7777, '192.0.2.9', '192.0.2.10', enc='aes256', enc_key=bytes(32),"
        " integ='sha256', integ_key=bytes(32))\n"
        "sock = XfrmSocket()\n"
        "try:\n"
        "    sock.request(sa_message(spec)); print(0)\n"
        "except KeyApiError as exc:\n"
        "    print(exc.errno)\n"
    )
    errno = int(ns.run(sys.executable, "-c", code).split()[-1])
    if errno == 0:  # leave the namespace as it was
        ns.run("ip", "xfrm", "state", "delete", "src", "192.0.2.9", "dst", "192.0.2.10",
               "proto", "esp", "spi", "0x7777")  # fmt: skip
    return errno


@contextmanager
def two_sides(tmp_path: Path) -> Iterator[tuple[Netns, Netns, Charon]]:
    reason = missing()
    if reason is not None:
        pytest.skip(f"needs the Debian package {reason} (scripts/install-system-deps.sh)")
    with namespaces("kd", "sw") as (kd_ns, sw_ns):
        veth(kd_ns, [f"{KD_GW}/24"], sw_ns, [f"{SW_GW}/24"])
        kd_ns.run("ip", "addr", "add", f"{KD_NET}/32", "dev", "lo")
        sw_ns.run("ip", "addr", "add", f"{SW_NET}/32", "dev", "lo")
        # See the module docstring: a route to the remote subnet, from our protected side.
        dev = kd_ns.run("ip", "-o", "link", "show", "type", "veth").split(":")[1]
        kd_ns.run("ip", "route", "add", f"{SW_NET}/32", "dev", dev.strip().split("@")[0],
                  "src", KD_NET)  # fmt: skip
        charon = Charon(sw_ns, tmp_path / "charon")
        try:
            yield kd_ns, sw_ns, charon
        finally:
            charon.close()


def _ping(ns: Netns, src: str, dst: str, count: int = 3) -> str:
    return ns.run("ping", "-c", str(count), "-i", "0.2", "-W", "2", "-I", src, dst, check=False)


def _refused_message(errno: int) -> str:
    return (
        f"this kernel cannot run ESP with {ESP_KERNEL_NAME}: {os.strerror(errno)}; "
        "use the embedded data plane"
    )


def _events(kd: KernelIke, kind: str) -> list[dict[str, Any]]:
    return [e for e in kd.status()["ike"]["events"] if e["event"] == kind]


# ---------------------------------------------------------------------------------------


def _stop_and_check_clean(kd: KernelIke) -> None:
    """SIGTERM: exit 0, and nothing of IKE's left in the kernel (its policies and SAs are
    removed on exit; the per-socket bypass policies go with the sockets)."""
    assert kd.alive()
    assert kd.stop() == 0
    assert kd.ns.run("ip", "xfrm", "policy").strip() == ""
    # The kernel's own ACQUIRE placeholder (SPI 0, expiring after net.core.xfrm_acq_expires
    # seconds) is not ours; every SA with an SPI is.
    left = [b for b in re.split(r"(?m)^(?=src )", kd.sad()) if b.strip()]
    assert [b for b in left if "spi 0x00000000 " not in b] == []


def test_charon_initiates_to_the_kernel_plane_daemon(tmp_path: Path) -> None:
    psk = base64.b64encode(secrets.token_bytes(24)).decode()  # swanctl's "0s" form
    with two_sides(tmp_path) as (kd_ns, sw_ns, charon):
        esp = probe_esp(kd_ns)
        charon.start(_conn(SW_GW, KD_GW, SW_ID, KD_ID, SW_NET, KD_NET, psk))
        kd = start_kernel_ike(
            kd_ns, tmp_path / "kd", _conn(KD_GW, SW_GW, KD_ID, SW_ID, KD_NET, SW_NET, psk)
        )
        charon.swanctl("--initiate", "--child", "net", "--ike", "gw", "--timeout", "20",
                       check=False)  # fmt: skip
        # IKE_SA_INIT + IKE_AUTH completed on our side: the IKE SA is ESTABLISHED.
        wait_for(lambda: bool(kd.ike_sas()), "the daemon's IKE SA", 20, kd.log)
        [ike] = kd.ike_sas()
        assert ike["state"] == "established" and ike["initiator"] is False
        assert ike["remote_id"] == SW_ID
        # charon moved to 4500 (it always does with libipsec): IKE_AUTH came through the
        # daemon's own UDP_ENCAP_ESPINUDP socket, its non-ESP marker stripped.
        assert ike["local"] == f"{KD_GW}[4500]", ike
        assert f"IKE SA {ike['spi_i']}_i {ike['spi_r']}_r established" in kd.log_text()
        if esp == 0:
            # A kernel with ESP: the tunnel is up, in the kernel, with ESP in UDP 4500.
            wait_for(lambda: "INSTALLED" in charon.list_sas(), "charon's CHILD SA", 10, charon.log)
            assert "0% packet loss" in _ping(sw_ns, SW_NET, KD_NET)
            assert kd.sad().count("encap type espinudp sport 4500 dport 4500") == 2, kd.sad()
            assert any(f"src {KD_NET}/32 dst {SW_NET}/32" in b for b in kd.spd())
        else:
            # No ESP here: the CHILD SA install fails with the kernel's errno, in words.
            wait_for(lambda: bool(_events(kd, "ChildSaFailed")), "the CHILD SA failure", 10,
                     kd.log)  # fmt: skip
            assert _refused_message(esp) in kd.log_text()
            [failed] = _events(kd, "ChildSaFailed")
            notify = NotifyType(failed["notify"]).name
            assert kd.ike_sas()[0]["children"] == []
            # The peer is told: charon leaves CONNECTING, with no CHILD SA installed.
            wait_for(lambda: "CONNECTING" not in charon.list_sas(), "charon's answer", 10,
                     charon.log)  # fmt: skip
            sas = charon.list_sas()
            assert "INSTALLED" not in sas
            # Nothing half-installed stays in the kernel: no policy, no larval SA.
            assert kd.spd() == []
            assert kd.sad().strip() == ""
            assert kd.alive()
            # RFC 7296 §2.21.3: a CHILD error that leaves both IKE SAs standing.
            assert notify == "NO_PROPOSAL_CHOSEN", notify
            assert "gw:" in sas, sas
        # The IKE SA is deleted cleanly from our side: charon hears of it.
        wait_for(lambda: "ESTABLISHED" in charon.list_sas(), "charon's IKE SA", 10, charon.log)
        down = kd.cli("down", "gw")
        assert down.returncode == 0, down.stderr
        wait_for(lambda: "gw:" not in charon.list_sas(), "charon's IKE SA gone", 15, charon.log)
        wait_for(lambda: not kd.ike_sas(), "the daemon's IKE SA gone", 10, kd.log)
        assert kd.spd() == [] and kd.sad().strip() == ""
        _stop_and_check_clean(kd)
        assert psk not in kd.log_text()


def test_trap_policy_lands_in_the_kernel_and_its_acquire_starts_ike(tmp_path: Path) -> None:
    psk = base64.b64encode(secrets.token_bytes(24)).decode()
    with two_sides(tmp_path) as (kd_ns, _sw_ns, charon):
        esp = probe_esp(kd_ns)
        charon.start(_conn(SW_GW, KD_GW, SW_ID, KD_ID, SW_NET, KD_NET, psk))
        kd = start_kernel_ike(
            kd_ns,
            tmp_path / "kd",
            _conn(KD_GW, SW_GW, KD_ID, SW_ID, KD_NET, SW_NET, psk, "start_action = trap"),
        )
        # The trap: an out policy in the kernel's SPD, with a template naming both gateways.
        [trap] = kd.spd()
        assert f"src {KD_NET}/32 dst {SW_NET}/32" in trap and "dir out" in trap, trap
        assert f"tmpl src {KD_GW} dst {SW_GW}" in trap and "proto esp" in trap, trap
        assert [(t["name"], t["child"]) for t in kd.status()["ike"]["traps"]] == [("gw", "net")]
        assert "ike_sas" in kd.status()["ike"] and not kd.ike_sas()
        # A packet matching it: the kernel ACQUIREs, IKE negotiates.
        _ping(kd_ns, KD_NET, SW_NET, count=1)
        wait_for(lambda: f"ACQUIRE {KD_GW} -> {SW_GW}" in kd.log_text(), "the kernel's ACQUIRE",
                 10, kd.log)  # fmt: skip
        wait_for(lambda: "ESTABLISHED" in charon.list_sas(), "charon's IKE SA", 20, charon.log)
        assert f"{SW_GW}[4500]" in kd.log_text()  # IKE_AUTH went through our 4500 socket
        if esp == 0:
            wait_for(lambda: "INSTALLED" in charon.list_sas(), "charon's CHILD SA", 10, charon.log)
            assert "0% packet loss" in _ping(kd_ns, KD_NET, SW_NET)
        else:
            wait_for(lambda: _refused_message(esp) in kd.log_text(), "the refusal", 10, kd.log)
            # The trap is still the only policy: the CHILD SA's were never installed.
            assert [b for b in kd.spd() if "dir out" in b] == [trap]
            assert len(kd.spd()) == 1
        # What IKE installed (the trap, the CHILD SA if any) is removed on exit.
        _stop_and_check_clean(kd)

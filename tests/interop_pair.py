"""pyipsec's daemon and strongSwan's charon in two namespaces: the shared setup of
tests/test_interop_strongswan.py and tests/test_interop_rekey.py.

    ns py (pyipsec): veth 192.0.2.1/24   lo 198.51.100.1/32 (protected)
    ns sw (charon):  veth 192.0.2.2/24   lo 203.0.113.1/32  (protected)

``Pyipsec`` runs ``pyipsec daemon --config swanctl.conf --foreground`` in its namespace
and wraps its client commands; charon is ``strongswan.Charon``. ``interop_pair`` builds
the namespaces and both sides, prints both logs if the test fails, and stops everything
whatever happens.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from netns import Netns, namespaces, veth
from strongswan import Charon, wait_for

PY_GW, SW_GW = "192.0.2.1", "192.0.2.2"
PY_NET, SW_NET = "198.51.100.1", "203.0.113.1"
PY_ID, SW_ID = "py.example", "sw.example"


class Pyipsec:
    """``pyipsec daemon --config`` in a namespace, and its client commands."""

    def __init__(self, ns: Netns, work: Path) -> None:
        self.ns = ns
        self.work = work
        self.run_dir = work / "run"
        self.log = work / "pyipsec.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            self.ns.cmd(
                sys.executable, "-m", "pyipsec.cli.main", *args, "--run-dir", str(self.run_dir)
            ),
            capture_output=True,
            text=True,
            timeout=40,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"pyipsec {args}: {proc.stdout}{proc.stderr}\n{self.tail()}")
        return proc

    def start(self, config: str, *extra: str) -> None:
        """Start the daemon on ``config`` (swanctl.conf text); ``extra`` daemon arguments
        (``--ike-keylog DIR``...) follow the usual ones."""
        conf = self.work / "swanctl.conf"
        conf.write_text(config)
        args = [sys.executable, "-m", "pyipsec.cli.main", "daemon", "--foreground",
                "--config", str(conf), "--run-dir", str(self.run_dir), "--tun", "pyipsec0",
                "--log", "debug", *extra]  # fmt: skip
        with self.log.open("wb") as err:
            self.proc = self.ns.popen(args, stderr=err)
        proc = self.proc

        def up() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"pyipsec daemon exited:\n{self.tail()}")
            return (self.run_dir / "pyipsec.pid").exists()

        wait_for(up, "the pyipsec daemon", 15, self.log)

    def status(self) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads(self.cli("status", "--json").stdout)
        return doc

    def ike_sas(self) -> list[dict[str, Any]]:
        sas: list[dict[str, Any]] = self.status()["ike"]["ike_sas"]
        return sas

    def established(self) -> list[dict[str, Any]]:
        return [s for s in self.ike_sas() if s["state"] == "established"]

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-6000:] if self.log.exists() else ""


@contextmanager
def interop_pair(tmp_path: Path) -> Iterator[tuple[Pyipsec, Charon]]:
    """Both sides, not started, working in ``tmp_path/pyipsec`` and ``tmp_path/charon``
    (created if missing, so a test may write its PKI there first)."""
    py_dir, sw_dir = tmp_path / "pyipsec", tmp_path / "charon"
    py_dir.mkdir(exist_ok=True)
    sw_dir.mkdir(exist_ok=True)
    with namespaces("py", "sw") as (py_ns, sw_ns):
        veth(py_ns, [f"{PY_GW}/24"], sw_ns, [f"{SW_GW}/24"])
        py_ns.run("ip", "addr", "add", f"{PY_NET}/32", "dev", "lo")
        sw_ns.run("ip", "addr", "add", f"{SW_NET}/32", "dev", "lo")
        py, sw = Pyipsec(py_ns, py_dir), Charon(sw_ns, sw_dir)
        try:
            yield py, sw
        except BaseException:
            charon_log = sw.log.read_text(errors="replace")[-6000:] if sw.log.exists() else ""
            sys.stderr.write(f"--- pyipsec log\n{py.tail()}\n--- charon log\n{charon_log}\n")
            raise
        finally:
            sw.close()
            if py.proc is not None and py.proc.poll() is None:
                py.proc.terminate()
                py.proc.wait(10)

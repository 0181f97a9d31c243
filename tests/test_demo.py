"""`make demo` end to end: the main job a newcomer runs must keep working."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest


@pytest.mark.root
@pytest.mark.skipif(shutil.which("tcpdump") is None, reason="tcpdump missing (make deps)")
def test_demo_runs_and_cleans_up() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pyipsec.cli.demo"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "the tunnel works" in proc.stdout
    assert "ESP(spi=0x00001001" in proc.stdout and "ESP(spi=0x00002002" in proc.stdout
    assert "3 received" in proc.stdout
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert "pyipsec-demo" not in netns  # torn down
    # Running it twice works (leftovers of a run never block the next one).
    again = subprocess.run([sys.executable, "-m", "pyipsec.cli.demo"], capture_output=True,
                           text=True, timeout=120)  # fmt: skip
    assert again.returncode == 0, again.stdout + again.stderr

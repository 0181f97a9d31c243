"""The atheris targets in fuzz/ keep working: each runs a bounded number of inputs.

A target exits non-zero (and libFuzzer prints the crashing input) when anything but the
codec's documented errors escapes, so a short run here catches both a broken target
(import or setup errors) and an easy crash. Longer runs: see README, Development.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("atheris")

FUZZ = Path(__file__).resolve().parent.parent / "fuzz"
TARGETS = ("ike_message", "ike_payloads", "esp_packet", "pfkey_message", "xfrm_message")
RUNS = 3000


def test_every_target_is_listed() -> None:
    assert sorted(p.stem for p in FUZZ.glob("*.py")) == sorted(TARGETS)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("target", TARGETS)
def test_target_runs_clean(target: str, tmp_path: Path) -> None:
    # -seed fixes libFuzzer's choices so a failure here repeats; crash files go to tmp.
    proc = subprocess.run(
        [
            sys.executable,
            str(FUZZ / f"{target}.py"),
            f"-runs={RUNS}",
            "-seed=1",
            "-max_len=512",
            f"-artifact_prefix={tmp_path}/",
        ],
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"Done {RUNS} runs" in proc.stderr
    assert not list(tmp_path.iterdir())  # no crash-* or timeout-* input written

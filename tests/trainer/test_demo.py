"""``python -m trainer.demo`` piped (not a terminal), as a CI log or ``| tee`` captures it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_piped_demo_output_is_short_and_readable(tmp_path):
    work_dir = tmp_path / "digits_20261201_195337"  # as the demo names it by default
    result = subprocess.run(
        [sys.executable, "-m", "trainer.demo", "--work-dir", str(work_dir)], cwd=REPO,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stdout
    lines = result.stdout.splitlines()
    assert len(lines) <= 40, result.stdout
    assert "\r" not in result.stdout and "\x1b" not in result.stdout
    # One header, with the folder's timestamp not doubled.
    headers = [line for line in lines if line.startswith("Exp name:")]
    assert len(headers) == 1 and headers[0].startswith("Exp name: digits_20261201_195337  (")
    assert lines[0] == headers[0]
    bars = [line for line in lines if line.startswith("Epoch ") and "/12: " in line]
    assert len(bars) == 12  # one bar line per epoch, none for validation
    logged = [line.rsplit("loss: ", 1)[1].split()[0] for line in lines
              if line.startswith("Epoch(train)")]
    assert [line.split("loss=")[1][:6] for line in bars] == logged  # the same smoothed loss
    assert sum(line.startswith("Epoch(val)") for line in lines) == 12
    assert float(lines[-1].split("test accuracy: ")[1].split()[0]) > 0.9

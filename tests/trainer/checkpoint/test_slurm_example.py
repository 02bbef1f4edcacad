"""The SLURM example of docs/checkpoints.md: the job script parses, and train.py saves on SIGUSR1
and resumes when started again."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
DOC = REPO / "docs" / "checkpoints.md"
TIMEOUT_S = 300


def block(info: str) -> str:
    """The body of the fenced block whose info string is ``info`` (e.g. ``python train.py``)."""
    match = re.search(rf"^```{re.escape(info)}\n(.*?)^```$", DOC.read_text(), re.M | re.S)
    assert match, f"docs/checkpoints.md has no ```{info} block"
    return match.group(1)


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_the_job_script_is_valid_bash_and_asks_for_sigusr1(tmp_path):
    script = tmp_path / "slurm.sh"
    script.write_text(block("bash slurm.sh"))
    subprocess.run(["bash", "-n", str(script)], check=True, timeout=30)
    text = script.read_text()
    assert "#SBATCH --signal=USR1@120" in text
    assert f'"$code" -eq {128 + signal.SIGUSR1}' in text  # the exit code train.py ends with
    assert "srun python train.py" in text


def start(script: Path, work_dir: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, str(script), str(work_dir)], cwd=script.parent,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


@pytest.mark.slow
def test_train_py_saves_on_a_real_sigusr1_and_continues_when_started_again(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(block("python train.py"))
    assert 'interrupt_signals=("SIGTERM", "SIGUSR1")' in script.read_text()
    work_dir = tmp_path / "work_dirs" / "digits"
    job = start(script, work_dir)
    try:
        for line in job.stdout:  # wait for the first log line, then pre-empt the job
            if line.startswith("Iter(train) [ 50/300]"):
                job.send_signal(signal.SIGUSR1)
                break
        output = job.communicate(timeout=TIMEOUT_S)[0]
    finally:
        job.kill()
    assert job.returncode == 128 + signal.SIGUSR1, output[-3000:]
    (saved,) = work_dir.glob("interrupted_iter_*.pth")
    n = int(saved.stem.rsplit("_", 1)[1])
    assert 50 <= n < 300
    assert f"SIGUSR1: training stopped after iteration {n} and saved {saved}" in output

    again = start(script, work_dir)
    output = again.communicate(timeout=TIMEOUT_S)[0]
    assert again.returncode == 0, output[-3000:]
    assert f"resumed from {saved} at epoch" in output
    assert (work_dir / "iter_300.pth").exists()

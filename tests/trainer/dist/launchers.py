"""Starting this repository's scripts under ``torchrun``, on one or two stand-in "nodes"."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from trainer.dist import free_port

REPO = Path(__file__).resolve().parents[3]
ENV = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
TORCHRUN = [sys.executable, "-m", "torch.distributed.run"]


def torchrun(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    """``torchrun --nproc_per_node=2 <args>`` on one machine, killed after ``timeout`` seconds."""
    return subprocess.run(
        [*TORCHRUN, "--nproc_per_node=2", "--rdzv-backend=c10d", "--rdzv-endpoint=127.0.0.1:0",
         *args], cwd=REPO, capture_output=True, text=True, timeout=timeout, env=ENV)


def two_nodes(*args: str, node_env: Sequence[dict[str, str]] = ({}, {}),
              timeout: float = 180) -> list[subprocess.CompletedProcess]:
    """Two launchers with ``--nnodes=2 --nproc_per_node=1``, as on two machines of one job.

    They meet at a c10d rendezvous on a free local port; ``node_env[i]`` is added to node i's
    environment. Both are killed if the job is not over after ``timeout`` seconds.
    """
    port = free_port()
    procs = [subprocess.Popen(
        [*TORCHRUN, "--nnodes=2", "--nproc_per_node=1", f"--node_rank={rank}",
         "--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{port}", *args],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**ENV, **extra}) for rank, extra in enumerate(node_env)]
    deadline = time.monotonic() + timeout
    try:
        results = []
        for proc in procs:
            out, err = proc.communicate(timeout=max(deadline - time.monotonic(), 1))
            results.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
        return results
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()

"""``Trainer(devices=N)`` from a plain script or notebook: start N workers on this machine.

Workers are forked where possible (so models defined in a notebook work) and spawned when CUDA is
already initialised in the caller. Rank zero sends the finished state back through a file; an
exception on any rank stops every rank and is raised here with that rank's traceback.
"""

from __future__ import annotations

import os
import signal
import sys
import tempfile
from typing import Any

import torch
import torch.multiprocessing as mp

from trainer import dist
from trainer.checkpoint import interrupt


def start_method() -> str:
    forkable = "fork" in mp.get_all_start_methods()
    cuda_live = torch.cuda.is_available() and torch.cuda.is_initialized()
    return "fork" if forkable and not cuda_live else "spawn"


def run_workers(trainer: Any, nprocs: int, method: str, args: tuple) -> dict[str, Any]:
    """Run ``trainer.<method>(*args)`` on ``nprocs`` ranks; rank zero's ``worker_result()``."""
    port = dist.free_port()
    with tempfile.TemporaryDirectory() as tmp:
        result_path = os.path.join(tmp, "result.pt")
        workers = mp.start_processes(
            _worker, args=(trainer, nprocs, port, method, args, result_path), nprocs=nprocs,
            start_method=start_method(), join=False)
        try:
            with interrupt.forwarding(workers.pids(), trainer.interrupt_signals):
                while not workers.join():
                    pass
        except mp.ProcessExitedException as err:  # an interruption ends the caller likewise
            signum = interrupt.exit_code_signal(err.exit_code, trainer.interrupt_signals)
            if signum:
                interrupt.end_as(signum)
            raise
        return torch.load(result_path, weights_only=True)


def _worker(rank: int, trainer: Any, nprocs: int, port: int, method: str, args: tuple,
            result_path: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      LOCAL_RANK=str(rank), WORLD_SIZE=str(nprocs), LOCAL_WORLD_SIZE=str(nprocs))
    torch.set_num_threads(max(1, torch.get_num_threads() // nprocs))
    try:
        trainer.setup_distributed()
        getattr(trainer, method)(*args)
        result = trainer.worker_result()
        if rank == 0:
            torch.save(result, result_path)
    except KeyboardInterrupt:  # torch's worker wrapper would exit 0: tell the caller
        sys.exit(128 + signal.SIGINT)
    finally:
        dist.destroy_process_group()

"""Size of a checkpoint's data position, and the time to resume mid-epoch, at 10M samples.

A run over a shuffled 10M-sample data set saves a checkpoint after 3 batches; the figures are the
bytes of its ``data`` entry (what a resume needs to continue the epoch's order) against the bytes
the order itself would take as an int64 tensor, and the seconds from ``fit`` to the first batch
after resuming, against the same for a fresh run (which draws the epoch's order too).
Run with ``python benchmarks/data_position.py [--samples N]``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import tempfile
import time

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from trainer.callbacks import Callback

from trainer import BaseModel, Trainer
from trainer.checkpoint.io import load_checkpoint


class Indices(Dataset):
    """``n`` samples that cost nothing to hold: sample ``i`` is ``i`` as a float feature."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        return torch.tensor([float(i)]), 0


class Net(BaseModel):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(1, 2)

    def forward(self, x, y=None, mode="tensor"):
        return {"loss": nn.functional.cross_entropy(self.fc(x), y)}


def clocks() -> tuple[float, float]:
    """Wall-clock and CPU seconds (the latter is not inflated by other load on the machine)."""
    return time.perf_counter(), time.process_time()


class FirstBatch(Callback):
    """Seconds (wall-clock, CPU) from the start of ``fit`` until the first iteration begins."""

    def __init__(self) -> None:
        super().__init__()
        self.start = clocks()
        self.seconds: tuple[float, float] | None = None

    def before_train_iter(self, trainer, batch_idx, data_batch=None) -> None:
        if self.seconds is None:
            self.seconds = tuple(now - then for now, then in zip(clocks(), self.start))


def run(samples: int, work_dir: str, max_iters: int,
        resume: bool = False) -> tuple[Trainer, tuple[float, float]]:
    probe = FirstBatch()
    trainer = Trainer(max_iters=max_iters, work_dir=work_dir, resume=resume, seed=0,
                      callbacks=[probe], default_callbacks={"progress": None, "logger": None},
                      optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1)))
    probe.start = clocks()
    with contextlib.redirect_stdout(io.StringIO()):
        trainer.fit(Net(), DataLoader(Indices(samples), batch_size=32, shuffle=True))
    return trainer, probe.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=10_000_000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as work_dir:
        trainer, fresh = run(args.samples, work_dir, max_iters=3)
        ckpt = load_checkpoint(trainer.resolve_ckpt_path("last"))
        buffer = io.BytesIO()
        torch.save(ckpt["data"], buffer)
        _, resumed = run(args.samples, work_dir, max_iters=4, resume=True)
    order_bytes = args.samples * 8
    print(f"data position at {args.samples:,} samples: {buffer.tell():,} bytes in the checkpoint "
          f"(the order itself: {order_bytes / 2**20:,.0f} MiB); entry: {ckpt['data'][0]}")
    print(f"resume at {args.samples:,} samples: {resumed[0]:.2f} s wall-clock, {resumed[1]:.2f} s "
          f"CPU from fit() to the first batch (a fresh run: {fresh[0]:.2f} s, {fresh[1]:.2f} s CPU; "
          "both draw the epoch's order)")


if __name__ == "__main__":
    main()

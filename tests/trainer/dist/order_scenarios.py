"""Training runs that record which samples each rank saw, for the data-order matrix.

Imported by the tests (one process, ``devices=2``) and run as a script under ``torchrun``
(``python -m torch.distributed.run ... order_scenarios.py OUT [SCENARIO ...]``), so every launch
mode trains exactly the same scenarios. Each scenario writes ``OUT/<name>-rank<r>.json`` (the
recorded batches) and ``OUT/<name>-rank<r>.pt`` (the final weights; with ``devices=N`` only
rank zero's, which the caller holds).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset
from trainer.callbacks import Callback

from tests.conftest import ToyNet, toy_dataset
from trainer import Trainer

SAMPLES = 16
BATCH = 4
CUT = 6  # the first run stops after 6 // world_size iterations: in the middle of epoch 1


class IndexedSet(Dataset):
    """The toy samples as dicts that carry their own index."""

    def __init__(self, n: int = SAMPLES) -> None:
        self.x, self.y = toy_dataset(n).tensors

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> dict:
        return {"x": self.x[i], "y": self.y[i], "index": i}


class IndexedNet(ToyNet):
    def forward(self, x, y=None, index=None, mode="tensor"):
        return super().forward(x, y, mode=mode)


class RecordIndices(Callback):
    """Writes ``[epoch, iter, indices]`` of every training batch to ``<prefix>-rank<r>.json``."""

    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix, self.batches = prefix, []

    def before_train_iter(self, trainer, batch_idx, data_batch=None):
        self.batches.append([trainer.epoch, trainer.iter, data_batch["index"].tolist()])

    def after_train(self, trainer):
        Path(f"{self.prefix}-rank{trainer.rank}.json").write_text(json.dumps(self.batches))


def length(kind: str, world_size: int) -> dict:
    """Three epochs; iteration-based stops one batch into the third."""
    per_epoch = SAMPLES // (BATCH * world_size)
    return {"max_epochs": 3} if kind == "epoch" else {"max_iters": 2 * per_epoch + 1}


def train(out: Path, name: str, kind: str, devices: int, world_size: int, *,
          save_at: int = -1, resume_from: str | None = None,
          loader: DataLoader | None = None, strategy: str = "auto") -> Trainer:
    torch.manual_seed(1)
    model = IndexedNet(dropout=0.3)  # dropout: the resumed run must restore the RNG too
    trainer = Trainer(
        **length(kind, world_size), work_dir=str(out / name), devices=devices, seed=0,
        strategy=strategy,
        log_interval=1,
        resume=resume_from is not None, load_from=resume_from,
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1)),
        callbacks=[RecordIndices(str(out / name))],
        default_callbacks={"progress": None,
                           "checkpoint": {"interval": save_at, "by_epoch": False}})
    trainer.fit(model, loader or DataLoader(IndexedSet(), batch_size=BATCH, shuffle=True))
    # Under FSDP each rank holds shards (DTensors): every rank gathers the full weights.
    full = {k: v.full_tensor() if hasattr(v, "full_tensor") else v
            for k, v in model.state_dict().items()}
    torch.save(full, out / f"{name}-rank{trainer.rank}.pt")
    return trainer


def run(out: Path, kind: str, devices: int = 1, world_size: int | None = None,
        strategy: str = "auto") -> None:
    """``kind`` trained straight, and trained to the cut, then resumed to the end."""
    world_size = world_size or devices
    at = CUT // world_size
    train(out, f"{kind}-straight", kind, devices, world_size, strategy=strategy)
    train(out, f"{kind}-first", kind, devices, world_size, save_at=at, strategy=strategy)
    train(out, f"{kind}-resumed", kind, devices, world_size, strategy=strategy,
          resume_from=str(out / f"{kind}-first" / f"iter_{at}.pth"))


if __name__ == "__main__":  # under torchrun: the environment says how many processes
    import os

    for scenario in sys.argv[2:] or ["epoch", "iter"]:  # "fsdp:iter" trains under FSDP
        strategy, _, kind = scenario.rpartition(":")
        run(Path(sys.argv[1]), kind, world_size=int(os.environ["WORLD_SIZE"]),
            strategy=strategy or "auto")

"""Randomness inside DataLoader workers that a resume reproduces.

A worker's random streams (torch, NumPy, Python) start from a seed the loader draws when it is
iterated and advance with every sample the worker loads, so a loader restarted mid-epoch would
augment the remaining samples differently. Instead, each batch is loaded with all three streams
seeded from (the epoch's seed, the rank, the batch's position in the epoch): the same batch gets
the same random numbers whichever worker loads it and whether or not the run was resumed.
"""

from __future__ import annotations

import random
from typing import Any

import torch
from torch.utils.data import Dataset

_MASK64 = (1 << 64) - 1


def batch_seed(epoch_seed: int, rank: int, batch: int) -> int:
    """A well-mixed 63-bit seed for one batch (splitmix64 over the three numbers)."""
    x = (epoch_seed ^ (rank << 40) ^ ((batch + 1) * 0x9E3779B97F4A7C15)) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return (x ^ (x >> 31)) >> 1


def seed_streams(seed: int) -> None:
    """Seed torch, Python's ``random`` and NumPy's global generator (when NumPy is installed)."""
    torch.manual_seed(seed)
    random.seed(seed)
    try:
        import numpy as np
    except ImportError:
        return
    np.random.seed(seed & 0xFFFFFFFF)


class SeededDataset(Dataset):
    """The user's data set, loaded from ``(seed, indices)`` pairs that the resumable sampler yields.

    Only a loader with worker processes is given one: there the seeding touches the worker's
    own streams; in the main process the trainer's saved RNG state already replays them. Other
    attributes read and write through to the user's data set, so a callback that swaps
    ``trainer.train_loop.dataloader.dataset.pipeline`` (mmdet's pipeline switch) still works.
    """

    def __init__(self, dataset: Any) -> None:
        object.__setattr__(self, "dataset", dataset)

    # Hooks reach the data set through the loader they are given (``loader.dataset.pipeline = ...``
    # in MMDetection's PipelineSwitchHook): reads and writes go to the user's data set.
    def __getattr__(self, name: str) -> Any:
        if name == "dataset":  # not set yet (unpickling in a spawned worker)
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self.dataset, name, value)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, seeded: tuple[int, Any]) -> Any:
        seed, index = seeded  # batch_size=None: one index is one batch
        seed_streams(seed)
        return self.dataset[index]

    def __getitems__(self, seeded: tuple[int, Any]) -> list[Any]:
        seed, indices = seeded
        seed_streams(seed)
        getitems = getattr(self.dataset, "__getitems__", None)
        if getitems is not None:
            return getitems(list(indices))
        return [self.dataset[i] for i in indices]

"""Exact mid-epoch resume with DataLoader workers whose samples draw random numbers."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from tests.conftest import ToyNet, toy_dataset
from trainer import Trainer
from trainer.data.samplers import make_resumable
from trainer.data.workers import batch_seed


class Augmented(Dataset):
    """Noise from torch, NumPy and Python's ``random`` on every sample, as augmentations draw."""

    def __init__(self, n: int = 40) -> None:
        self.data = toy_dataset(n)

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i):
        x, y = self.data[i]
        noise = torch.randn(8) + float(np.random.rand()) + random.random()
        return x + 0.3 * noise, y


def train(work_dir, length, resume_from=None, ckpt_interval=-1):
    torch.manual_seed(123)
    model = ToyNet(dropout=0.2)
    trainer = Trainer(**length, work_dir=str(work_dir), seed=0, resume=resume_from is not None,
                      load_from=resume_from,
                      optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1, momentum=0.9)),
                      default_callbacks={"progress": None, "logger": None, "checkpoint": {
                          "interval": ckpt_interval, "by_epoch": False}})
    trainer.fit(model, DataLoader(Augmented(), batch_size=8, shuffle=True, num_workers=2))
    return model


@pytest.mark.parametrize("length", [{"max_epochs": 3}, {"max_iters": 13}])
def test_resume_with_two_workers_is_bit_identical(tmp_path, length):
    straight = train(tmp_path / "straight", length)
    train(tmp_path / "first", length, ckpt_interval=7)  # epoch 2, batch 2 of 5
    resumed = train(tmp_path / "resumed", length, resume_from=str(tmp_path / "first/iter_7.pth"))
    for key, value in straight.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key


def test_batches_are_augmented_differently_but_reproducibly():
    """Each batch gets its own random numbers, and the same ones whichever worker loads it."""
    def batches(num_workers):
        torch.manual_seed(0)
        loader, _ = make_resumable(DataLoader(Augmented(16), batch_size=4,
                                              num_workers=num_workers))
        return [x for x, _ in loader]

    two, one = batches(2), batches(1)
    assert all(torch.equal(a, b) for a, b in zip(two, one, strict=True))
    clean = toy_dataset(16).tensors[0]
    noises = [x - clean[4 * b:4 * b + 4] for b, x in enumerate(two)]
    assert all(not torch.allclose(noises[0], n) for n in noises[1:])
    assert len({batch_seed(1, 0, b) for b in range(1000)} | {batch_seed(1, 1, 0)}) == 1001

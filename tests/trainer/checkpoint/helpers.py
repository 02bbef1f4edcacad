"""The exact-resume run shared by the checkpoint tests, and a callback that signals the process."""

from __future__ import annotations

import os

import torch
from trainer.callbacks import Callback

from tests.conftest import ToyNet, accuracy, toy_loader
from trainer import Trainer

EPOCH_LEN = 5  # 40 samples, batch 8


def run(work_dir, length, resume_from=None, ckpt_interval=None, **kwargs):
    """Train with shuffling, dropout, accumulation, two schedulers and validation."""
    by_epoch = "max_epochs" in length
    torch.manual_seed(123)  # the model's init differs from the first run's; resume overwrites it
    model = ToyNet(dropout=0.3)
    checkpoint = {"interval": ckpt_interval or -1, "by_epoch": False, "save_best": "acc"}
    trainer = Trainer(
        **length, work_dir=work_dir, seed=0,
        val_interval=2 if by_epoch else 6,
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1, momentum=0.9),
                           accumulative_counts=3),
        param_scheduler=[dict(type="LinearLR", start_factor=0.2, by_epoch=False, end=4),
                         dict(type="MultiStepLR", milestones=[2], by_epoch=True)],
        val_evaluator={"acc": accuracy()},
        resume=kwargs.pop("resume", resume_from is not None), load_from=resume_from,
        default_callbacks={"progress": None, "logger": None, "checkpoint": checkpoint},
        **kwargs,
    )
    trainer.fit(model, toy_loader(n=40, shuffle=True), toy_loader(n=16, shuffle=True))
    return model, trainer


def assert_same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    different = [k for k in sa if not torch.equal(sa[k], sb[k])]
    assert not different, f"weights differ: {different}"


class SignalAt(Callback):
    """During iteration ``at``, rank ``rank`` sends ``signum`` to itself (or, with
    ``to_parent``, to the process that started the workers)."""

    def __init__(self, at: int, signum: int, rank: int = 0, to_parent: bool = False) -> None:
        super().__init__()
        self.at, self.signum, self.rank, self.to_parent = at, signum, rank, to_parent

    def after_train_iter(self, trainer, batch_idx, data_batch=None, outputs=None):
        if trainer.iter == self.at and trainer.rank == self.rank:
            os.kill(os.getppid() if self.to_parent else os.getpid(), self.signum)

"""Schedulers driven by the Trainer: the learning rate seen by every training iteration."""

from __future__ import annotations

import pytest
from trainer.callbacks import Callback

from tests.conftest import ToyNet, toy_loader
from trainer import Trainer


class RecordLR(Callback):
    def __init__(self):
        super().__init__()
        self.lrs: list[float] = []

    def before_train_iter(self, trainer, batch_idx, data_batch=None):
        self.lrs.append(trainer.optim_wrapper.get_lr()["lr"][0])


def run(length, schedulers, work_dir):
    rec = RecordLR()
    trainer = Trainer(**length, work_dir=work_dir, callbacks=[rec], param_scheduler=schedulers,
                      optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1)),
                      default_callbacks={"progress": None, "logger": None, "checkpoint": None})
    trainer.fit(ToyNet(), toy_loader(n=80))  # 10 iterations per epoch
    return rec.lrs


def warmup_then_steps(i: int, warmup: int = 15) -> float:
    """MMEngine: LinearLR reaches its end after end - begin - 1 steps; MultiStep at epoch 2."""
    factor = 0.1 + 0.9 * min(i, warmup - 1) / (warmup - 1)
    return 0.1 * factor * (0.1 if i >= 20 else 1.0)


@pytest.mark.parametrize("length", [{"max_epochs": 3}, {"max_iters": 30}])
def test_iteration_warmup_then_epoch_multistep(work_dir, length):
    lrs = run(length, [dict(type="LinearLR", start_factor=0.1, by_epoch=False, begin=0, end=15),
                       dict(type="MultiStepLR", milestones=[2], gamma=0.1, by_epoch=True)],
              work_dir)
    assert lrs == pytest.approx([warmup_then_steps(i) for i in range(30)], abs=1e-12)


def test_convert_to_iter_based_cosine_ends_at_the_run_end(work_dir):
    import math
    lrs = run({"max_epochs": 3}, dict(type="CosineAnnealingLR", by_epoch=True, eta_min=0.0,
                                      convert_to_iter_based=True), work_dir)
    expected = [0.05 * (1 + math.cos(math.pi * i / 30)) for i in range(30)]
    assert lrs == pytest.approx(expected, abs=1e-12)

"""No host-device synchronisation in a steady training iteration, only on iterations that log."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
import trainer.callbacks

from tests.conftest import ToyNet, toy_loader
from trainer import EpochBasedTrainLoop, IterBasedTrainLoop, Trainer

OURS = (str(Path(trainer.__file__).parent), str(Path(trainer.callbacks.__file__).parent))
READS = ("item", "tolist", "__bool__")  # what makes a GPU tensor's value reach the host


class SyncCounter:
    """Tensor reads made by the trainer's and callbacks' own code, per training iteration."""

    def __init__(self, monkeypatch) -> None:
        self.iteration: int | None = None
        self.calls: dict[int, list[str]] = {}
        for name in READS:
            monkeypatch.setattr(torch.Tensor, name, self._wrap(name, getattr(torch.Tensor, name)))

    def _wrap(self, name, method):
        counter = self

        def read(tensor, *args, **kwargs):
            caller = sys._getframe(1).f_code.co_filename
            if counter.iteration is not None and caller.startswith(OURS):
                counter.calls.setdefault(counter.iteration, []).append(f"{name} in {caller}")
            return method(tensor, *args, **kwargs)

        return read


def counting_loop(base, counter):
    """The built-in loop, with every call inside an iteration attributed to that iteration."""

    class Counting(base):
        def run_iter(self, batch_idx, data_batch):
            counter.iteration = self.trainer.iter
            try:
                super().run_iter(batch_idx, data_batch)
            finally:
                counter.iteration = None

    return Counting


@pytest.mark.parametrize("length", [{"max_epochs": 3}, {"max_iters": 30}])
def test_only_logging_iterations_read_tensors(tmp_path, monkeypatch, length):
    counter = SyncCounter(monkeypatch)
    base = EpochBasedTrainLoop if "max_epochs" in length else IterBasedTrainLoop
    trainer = Trainer(**length, work_dir=str(tmp_path), log_interval=4, seed=0,
                      train_loop=counting_loop(base, counter),
                      default_callbacks={"progress": {"mode": "plain"}})
    trainer.fit(ToyNet(dropout=0.1), toy_loader(n=80, shuffle=True))  # 10 batches an epoch
    assert trainer.iter == 30
    logged = {json.loads(line)["iter"] - 1
              for line in (Path(trainer.log_dir) / "scalars.jsonl").read_text().splitlines()}
    assert counter.calls, "the probe saw nothing: the logging iterations must read the losses"
    outside = {i: calls for i, calls in counter.calls.items() if i not in logged}
    assert not outside, outside
    assert len(logged) < 15  # most iterations are steady ones


@pytest.mark.gpu
def test_steady_cuda_iterations_make_no_host_sync(tmp_path):
    """20 iterations between two log lines run under CUDA's sync debug mode set to "error"."""
    from trainer.callbacks import Callback

    class SyncDebug(Callback):
        priority = "HIGHEST"

        def before_train_iter(self, trainer, batch_idx, data_batch=None):
            torch.cuda.set_sync_debug_mode("error" if 3 <= trainer.iter < 23 else "default")

        def after_train(self, trainer):
            torch.cuda.set_sync_debug_mode("default")

    loader = toy_loader(n=8 * 40, shuffle=True, pin_memory=True)
    trainer = Trainer(max_iters=30, accelerator="cuda", work_dir=str(tmp_path), log_interval=25,
                      seed=0, callbacks=[SyncDebug()],
                      optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1, momentum=0.9)))
    try:
        trainer.fit(ToyNet(dropout=0.1), loader)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert trainer.iter == 30

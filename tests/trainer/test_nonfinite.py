"""Non-finite losses: found without a per-iteration sync, before anything is saved or validated."""

from __future__ import annotations

import warnings

import pytest
import torch

from tests.conftest import ToyNet, accuracy, toy_loader
from trainer import Trainer
from trainer.nonfinite import NonFiniteCheck


class NaNFrom(ToyNet):
    """A model whose loss is NaN from training iteration ``start`` on."""

    def __init__(self, start: int, key: str = "loss_cls") -> None:
        super().__init__()
        self.start, self.key, self.steps = start, key, 0

    def forward(self, x, y=None, mode="tensor"):
        out = super().forward(x, y, mode)
        if mode != "loss":
            return out
        self.steps += 1
        bad = self.steps > self.start
        return {self.key: out["loss"] * (torch.nan if bad else 1.0), "loss_reg": 0 * out["loss"]}


def trainer_for(work_dir, length, **kwargs):
    by_epoch = "max_epochs" in length
    return Trainer(**length, work_dir=str(work_dir), val_interval=1 if by_epoch else 8,
                   val_evaluator={"acc": accuracy()},
                   default_callbacks={"progress": None, "logger": None,
                                      "checkpoint": {"save_best": "acc"}}, **kwargs)


@pytest.mark.parametrize("length", [{"max_iters": 20}, {"max_epochs": 2}])
def test_nan_from_iteration_6_stops_before_anything_is_written(tmp_path, length):
    trainer = trainer_for(tmp_path / "run", length)  # 12 batches per epoch, validation at 8
    with pytest.raises(FloatingPointError, match=r"non-finite training loss at iteration 6 "
                                                 r"\(trainer.iter, from 0\): loss_cls=nan, "
                                                 r"loss=nan.*on_nonfinite='warn'"):
        trainer.fit(NaNFrom(6), toy_loader(), toy_loader(n=16))
    assert trainer.iter <= 12 and trainer.epoch == 0  # at the first save or validation
    written = sorted(p.name for p in (tmp_path / "run").iterdir() if p.is_file())
    assert written == []  # no best_*, no checkpoint, no pointer


def test_nan_at_the_log_interval_stops_without_a_validation(tmp_path):
    trainer = Trainer(max_iters=50, work_dir=str(tmp_path / "run"), log_interval=5,
                      default_callbacks={"progress": None, "logger": None})
    with pytest.raises(FloatingPointError, match="at iteration 6"):
        trainer.fit(NaNFrom(6, key="loss"), toy_loader())
    assert trainer.iter == 9  # found by the look at iteration 10's log time


def test_warn_mode_warns_once_and_trains_on(tmp_path):
    trainer = trainer_for(tmp_path / "run", {"max_iters": 20}, on_nonfinite="warn",
                          log_interval=4)
    with pytest.warns(UserWarning, match=r"iteration 6 .*loss_cls=nan.*training goes on") as seen:
        trainer.fit(NaNFrom(6), toy_loader(), toy_loader(n=16))
    assert len([w for w in seen if "non-finite" in str(w.message)]) == 1
    assert trainer.iter == 20


def test_ignore_mode_trains_on_silently(tmp_path):
    trainer = trainer_for(tmp_path / "run", {"max_iters": 10}, on_nonfinite="ignore")
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="non-finite")
        trainer.fit(NaNFrom(2), toy_loader(), toy_loader(n=16))
    assert trainer.iter == 10


def test_bad_on_nonfinite_is_refused(work_dir):
    with pytest.raises(ValueError, match=r"on_nonfinite must be one of \['raise', 'warn', "
                                         r"'ignore'\], got 'stop'"):
        Trainer(max_iters=2, work_dir=work_dir, on_nonfinite="stop")


def test_check_finds_the_first_bad_iteration_among_many():
    check = NonFiniteCheck("raise", interval=100)
    for i in range(30):
        value = torch.tensor(float("inf") if i in (17, 23) else 1.0)
        check.record(i, {"loss": value, "acc": torch.tensor(float("nan"))})  # acc is no loss
    with pytest.raises(FloatingPointError, match=r"iteration 17 .*loss=inf"):
        check.check()
    check.check()  # what was looked at is forgotten

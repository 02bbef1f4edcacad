"""EarlyStoppingCallback stops at the validation that decides it, and resumes its count."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from trainer.callbacks import EarlyStoppingCallback

from tests.conftest import SaveAfterValidation, ToyNet, toy_loader
from trainer import Trainer
from trainer.checkpoint.io import load_checkpoint

QUIET = {"progress": None, "logger": None}


class Scripted(ToyNet):
    """Validation returns the next planned ``score`` (one validation batch per validation).

    The count is a buffer, so it is checkpointed and a resumed run continues the script. The
    sanity pass would count too, so the tests that follow the script switch it off.
    """

    def __init__(self, scores):
        super().__init__()
        self.scores = list(scores)
        self.register_buffer("validations", torch.tensor(0))

    def val_step(self, data):
        score = self.scores[min(int(self.validations), len(self.scores) - 1)]
        self.validations += 1
        score = torch.tensor(score, dtype=torch.float64)  # 0.6 stays 0.6
        return {"score": score, "loss": score}


# best 0.5, 0.6 (improves by >= 0.01), 0.55 (wait 1), 0.58 (wait 2: stop), 0.9 (never seen)
SCORES = [0.5, 0.6, 0.55, 0.58, 0.9, 0.9, 0.9, 0.9]


def early_stopping(**kwargs):
    return EarlyStoppingCallback(**{"monitor": "score", "rule": "greater", "min_delta": 0.01,
                                    "patience": 2, **kwargs})


def test_epoch_based_stops_after_the_deciding_validation(work_dir, capsys):
    stopper = early_stopping()
    model = Scripted(SCORES)
    trainer = Trainer(num_sanity_val_batches=0, max_epochs=10, work_dir=work_dir, callbacks=[stopper],
                      default_callbacks={"progress": None})
    trainer.fit(model, toy_loader(n=16), toy_loader(n=8))  # 2 iterations per epoch
    assert int(model.validations) == 4
    assert (trainer.epoch, trainer.iter, trainer.stop_training) == (4, 8, True)
    assert (stopper.wait_count, stopper.best_score) == (2, 0.6)
    assert stopper.stopped_at == {"epoch": 4, "iter": 8}
    assert Path(work_dir, "epoch_4.pth").exists() and not Path(work_dir, "epoch_5.pth").exists()
    assert ("Early stopping: score did not improve by 0.01 in the last 2 validations; the best "
            "score was 0.6000, at epoch 2 (iteration 4).") in capsys.readouterr().out


def test_iteration_based_stops_at_the_validation_iteration(work_dir):
    model = Scripted(SCORES)
    trainer = Trainer(num_sanity_val_batches=0, max_iters=100, val_interval=3, work_dir=work_dir,
                      callbacks=[early_stopping()], default_callbacks=QUIET)
    trainer.fit(model, toy_loader(n=16), toy_loader(n=8))
    assert int(model.validations) == 4
    assert trainer.iter == 12
    assert Path(work_dir, "iter_12.pth").exists()  # the last checkpoint, as usual


def test_resume_continues_the_count(tmp_path):
    path = str(tmp_path / "after_val_3.pth")
    first = Trainer(num_sanity_val_batches=0, max_epochs=10, work_dir=str(tmp_path / "a"),
                    default_callbacks=QUIET,
                    callbacks=[early_stopping(), SaveAfterValidation(path, after=3)])
    first.fit(Scripted(SCORES), toy_loader(n=16), toy_loader(n=8))
    saved = load_checkpoint(path)["callbacks"]
    assert saved["EarlyStoppingCallback"] == {"wait_count": 1, "best_score": 0.6,
                                              "best_value": 0.6,
                                              "best_at": {"epoch": 2, "iter": 4}}

    stopper = early_stopping()
    model = Scripted(SCORES)
    resumed = Trainer(num_sanity_val_batches=0, max_epochs=10, work_dir=str(tmp_path / "b"),
                      callbacks=[stopper],
                      resume=True, load_from=path, default_callbacks=QUIET)
    resumed.fit(model, toy_loader(n=16), toy_loader(n=8))
    assert int(model.validations) == 4 and resumed.epoch == 4  # as if never interrupted
    assert stopper.wait_count == 2


@pytest.mark.parametrize(("kwargs", "scores", "validations"), [
    ({"stopping_threshold": 0.7}, [0.5, 0.6, 0.71, 0.9], 3),  # strictly better than 0.7
    ({"stopping_threshold": 0.6}, [0.5, 0.6, 0.6, 0.6, 0.6], 4),  # equal is not better
    ({}, [0.5, math.nan, 0.9], 2),  # check_finite
    ({"check_finite": False}, [0.5, math.nan, 0.49, 0.9, 0.9], 3),  # NaN is no gain
    ({"patience": 1, "min_delta": 0.0}, [0.5, 0.5, 0.5, 0.4], 4),  # equal counts as a gain
])
def test_threshold_finite_and_delta(work_dir, kwargs, scores, validations):
    model = Scripted(scores)
    trainer = Trainer(num_sanity_val_batches=0, max_epochs=10, work_dir=work_dir,
                      callbacks=[early_stopping(**kwargs)],
                      default_callbacks=QUIET)
    trainer.fit(model, toy_loader(n=16), toy_loader(n=8))
    assert int(model.validations) == validations


def test_rule_less_inferred_from_a_loss_name_and_val_prefix(work_dir):
    stopper = EarlyStoppingCallback(monitor="val/loss", min_delta=0.05, patience=1)
    assert (stopper.monitor, stopper.rule) == ("loss", "less")
    model = Scripted([0.9, 0.8, 0.78, 0.5])
    trainer = Trainer(num_sanity_val_batches=0, max_epochs=10, work_dir=work_dir, callbacks=[stopper],
                      default_callbacks=QUIET)
    trainer.fit(model, toy_loader(n=16), toy_loader(n=8))
    assert int(model.validations) == 3 and stopper.best_score == pytest.approx(0.8)


def test_missing_monitor_fails_before_training_strict_or_not(work_dir, tmp_path):
    for i, strict in enumerate((True, False)):
        trainer = Trainer(max_epochs=2, work_dir=str(tmp_path / str(i)), default_callbacks=QUIET,
                          callbacks=[EarlyStoppingCallback(monitor="val_score", rule="greater",
                                                         strict=strict)])
        with pytest.raises(ValueError, match=r"EarlyStoppingCallback monitors 'val_score', but "
                                             r"validation returns \['loss', 'score'\]\. Did you "
                                             r"mean 'score'\?"):
            trainer.fit(Scripted(SCORES), toy_loader(n=16), toy_loader(n=8))
        assert trainer.iter == 0 and not list(tmp_path.glob(f"{i}/*.pth"))


def test_missing_monitor_without_sanity_pass(work_dir, tmp_path):
    trainer = Trainer(num_sanity_val_batches=0, max_epochs=2, work_dir=work_dir,
                      default_callbacks=QUIET,
                      callbacks=[EarlyStoppingCallback(monitor="accuracy", strict=True)])
    with pytest.raises(ValueError, match=r"monitors 'accuracy', which is not among the "
                                         r"validation metrics \['loss', 'score'\] \(strict=True\)"):
        trainer.fit(Scripted(SCORES), toy_loader(n=16), toy_loader(n=8))
    lenient = Trainer(num_sanity_val_batches=0, max_epochs=2, work_dir=str(tmp_path / "b"),
                      default_callbacks=QUIET,
                      callbacks=[EarlyStoppingCallback(monitor="accuracy")])
    with pytest.warns(UserWarning, match="not among the validation metrics"):
        lenient.fit(Scripted(SCORES), toy_loader(n=16), toy_loader(n=8))
    assert lenient.epoch == 2


def test_standalone_validation_decides_nothing(work_dir):
    stopper = early_stopping(patience=1)
    trainer = Trainer(max_epochs=1, work_dir=work_dir, callbacks=[stopper],
                      default_callbacks=QUIET)
    model = Scripted([0.5, 0.1, 0.1])
    trainer.fit(model, toy_loader(n=16), toy_loader(n=8))
    trainer.validate()
    assert stopper.wait_count == 0 and not trainer.stop_training


def test_mmengine_name_in_a_dict(work_dir):
    trainer = Trainer(max_iters=2, work_dir=work_dir, default_callbacks=QUIET, callbacks=[
        dict(type="EarlyStoppingHook", monitor="accuracy", patience=3)])
    (stopper,) = [cb for cb in trainer.callbacks if isinstance(cb, EarlyStoppingCallback)]
    assert (stopper.rule, stopper.patience, stopper.min_delta, stopper.priority) == (
        "greater", 3, 0.1, "LOWEST")


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"monitor": "f"}, ValueError, "cannot infer whether 'f' should grow or shrink"),
    ({"monitor": "acc", "rule": "max"}, ValueError, "rule must be 'greater', 'less' or None"),
    ({"monitor": "acc", "min_delta": -1}, ValueError, "min_delta must be a number >= 0"),
    ({"monitor": "acc", "patience": -1}, ValueError, "patience must be a non-negative int"),
    ({"monitor": "acc", "stopping_threshold": "0.9"}, TypeError, "stopping_threshold must be"),
    ({"monitor": None}, TypeError, "monitor must be a metric name"),
])
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        EarlyStoppingCallback(**kwargs)


def test_reports_the_real_best_when_gains_were_below_min_delta(work_dir, capsys):
    # 0.9405 is the reference; 0.9740 is better, but by less than min_delta=0.1 (the run).
    stopper = EarlyStoppingCallback(monitor="score", rule="greater", patience=2)
    trainer = Trainer(num_sanity_val_batches=0, max_epochs=10, work_dir=work_dir,
                      callbacks=[stopper], default_callbacks={"progress": None})
    trainer.fit(Scripted([0.9405, 0.9740, 0.96]), toy_loader(n=16), toy_loader(n=8))
    assert (stopper.best_score, stopper.best_value, stopper.best_at) == (
        0.9405, 0.974, {"epoch": 2, "iter": 4})
    assert "the best score was 0.9740, at epoch 2 (iteration 4)." in capsys.readouterr().out

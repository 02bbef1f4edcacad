"""ReduceOnPlateau schedulers against values worked out by hand, alone and in a Trainer."""

from __future__ import annotations

import io

import pytest
import torch
from torch import nn
from trainer.callbacks import Callback

from tests.conftest import SaveAfterValidation, ToyNet, toy_loader
from trainer import Trainer
from trainer.schedulers import (
    ReduceOnPlateauLR,
    ReduceOnPlateauMomentum,
    ReduceOnPlateauParamScheduler,
)

# Validation losses; rule "less", threshold 0.1 relative (better means < 0.9 * best),
# patience 2, cooldown 1, factor 0.5, min_value 0.02, starting from lr 0.1:
#   v1 1.00 best            v6 0.80 bad 3 > 2: lr 0.05, cooldown 1
#   v2 0.95 bad 1           v7 0.80 bad, but in the cooldown: 0
#   v3 0.85 best (< 0.9)    v8-v9 0.80 bad 1, 2
#   v4 0.84 bad 1 (>0.765)  v10 0.80 bad 3: lr 0.025, cooldown 1
#   v5 0.80 bad 2           v11 cooldown; v12-v13 bad 1, 2; v14 bad 3: lr max(0.0125, 0.02)
SCRIPT = [1.0, 0.95, 0.85, 0.84, 0.80] + [0.80] * 9 + [0.0]
# The learning rate in use after each validation (lrs[k] follows validation k+1).
AFTER = [0.1] * 5 + [0.05] * 4 + [0.025] * 4 + [0.02, 0.02]
SETTINGS = dict(monitor="loss", rule="less", factor=0.5, patience=2, threshold=0.1,
                threshold_rule="rel", cooldown=1, min_value=0.02)


def sgd(lr=0.1):
    return torch.optim.SGD(nn.Linear(2, 1).parameters(), lr=lr, momentum=0.9)


def drive(scheduler, metrics):
    """One training epoch and its validation, as the scheduler callback steps them."""
    scheduler.step()
    scheduler.step({"loss": metrics})
    return scheduler.optimizer.param_groups[0]["lr"]


def test_reduce_on_plateau_follows_the_hand_computed_sequence():
    scheduler = ReduceOnPlateauLR(sgd(), **SETTINGS)
    lrs = [drive(scheduler, v) for v in SCRIPT[:14]]
    assert lrs == pytest.approx(AFTER[:14])
    assert scheduler.get_last_value() == pytest.approx([0.02])
    assert scheduler.best == 0.85 and scheduler.last_step == 13


def test_greater_and_absolute_threshold():
    # better means > best + 0.05: 0.5 best, 0.54 bad 1, 0.56 best, 0.60 bad 1, 0.605 bad 2 -> cut
    scheduler = ReduceOnPlateauParamScheduler(sgd(), "lr", monitor="acc", rule="greater",
                                              threshold=0.05, threshold_rule="abs",
                                              patience=1, factor=0.1)
    lrs = []
    for acc in (0.5, 0.54, 0.56, 0.60, 0.605, 0.62):
        scheduler.step()
        scheduler.step({"acc": torch.tensor(acc)})  # a 0-dim tensor metric is fine
        lrs.append(scheduler.optimizer.param_groups[0]["lr"])
    assert lrs == pytest.approx([0.1, 0.1, 0.1, 0.1, 0.01, 0.01])


def test_state_dict_resumes_in_the_middle_of_the_patience_window():
    straight = ReduceOnPlateauLR(sgd(), **SETTINGS)
    expected = [drive(straight, v) for v in SCRIPT[:14]]

    first = ReduceOnPlateauLR(sgd(), **SETTINGS)
    lrs = [drive(first, v) for v in SCRIPT[:8]]  # after v8: one bad validation counted
    assert first.num_bad_epochs == 1 and first.cooldown_counter == 0
    buffer = io.BytesIO()
    torch.save({"scheduler": first.state_dict(),
                "optimizer": first.optimizer.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)

    optimizer = sgd(lr=0.7)  # a new process: its own lr, overwritten by the state
    optimizer.load_state_dict(saved["optimizer"])
    second = ReduceOnPlateauLR(optimizer, **SETTINGS)
    second.load_state_dict(saved["scheduler"])
    assert second.num_bad_epochs == 1
    lrs += [drive(second, v) for v in SCRIPT[8:14]]
    assert lrs == expected


def test_momentum_variant_reduces_betas_of_adam():
    opt = torch.optim.Adam(nn.Linear(2, 1).parameters(), lr=0.1, betas=(0.9, 0.99))
    scheduler = ReduceOnPlateauMomentum(opt, monitor="loss", patience=0, factor=0.5)
    scheduler.step()
    scheduler.step({"loss": 1.0})
    scheduler.step()
    scheduler.step({"loss": 1.0})
    assert opt.param_groups[0]["betas"] == (pytest.approx(0.45), 0.99)


def test_window_counts_training_epochs():
    scheduler = ReduceOnPlateauLR(sgd(), monitor="loss", patience=0, begin=2)
    assert drive(scheduler, 1.0) == 0.1 and scheduler.last_step == -1  # epoch 1: not yet
    drive(scheduler, 1.0)  # epoch 2: the first counted validation sets the best
    assert drive(scheduler, 1.0) == pytest.approx(0.01)


def bad_plateau_arguments():
    yield lambda: ReduceOnPlateauLR(sgd(), by_epoch=False), ValueError, "only supports by_epoch"
    yield lambda: ReduceOnPlateauLR(sgd(), factor=1.0), ValueError, "factor should be < 1.0"
    yield lambda: ReduceOnPlateauLR(sgd(), rule="max"), ValueError, "rule must be one of"
    yield (lambda: ReduceOnPlateauLR(sgd(), threshold_rule="pct"), ValueError,
           "threshold_rule must be one of")
    yield lambda: ReduceOnPlateauLR(sgd(), threshold=-1), ValueError, "threshold must be a number"
    yield lambda: ReduceOnPlateauLR(sgd(), patience=1.5), ValueError, "patience must be a whole"
    yield lambda: ReduceOnPlateauLR(sgd(), cooldown=-1), ValueError, "cooldown must be a whole"
    yield (lambda: ReduceOnPlateauLR(sgd(), min_value=[0.1, 0.2]), ValueError,
           "expected 1 min_value entries")
    yield lambda: ReduceOnPlateauLR(sgd(), monitor=""), TypeError, "monitor must be the name"
    yield lambda: ReduceOnPlateauLR(sgd()).step([1.0]), TypeError, "metrics type should be dict"
    yield (lambda: ReduceOnPlateauLR(sgd(), monitor="acc").step({"loss": 1.0}), KeyError,
           r"monitor='acc' is not among the validation metrics \['loss'\]")
    yield (lambda: ReduceOnPlateauLR.build_iter_from_epoch(sgd(), epoch_length=3), TypeError,
           "has no iteration-based form")


@pytest.mark.parametrize("make, error, match", list(bad_plateau_arguments()))
def test_bad_plateau_arguments_raise_clear_errors(make, error, match):
    with pytest.raises(error, match=match):
        make()


# --------------------------------------------------------------------------- in a Trainer
class ScriptedLoss(Callback):
    """Replaces the validation loss with the script (first in line, before the scheduler)."""

    priority = "HIGHEST"

    def after_val_epoch(self, trainer, metrics=None):
        metrics["loss"] = SCRIPT[trainer.epoch - 1]


class RecordLR(Callback):
    """The learning rate after each validation (once the scheduler has judged it), checking
    that every rank holds the same one."""

    priority = "LOWEST"

    def __init__(self):
        super().__init__()
        self.lrs = []

    def after_val_epoch(self, trainer, metrics=None):
        from trainer.dist import all_gather_object

        lr = trainer.optim_wrapper.get_lr()["lr"][0]
        assert len(set(all_gather_object(lr))) == 1
        self.lrs.append(lr)

    def state_dict(self):  # how a devices=2 run hands the record back
        return {"lrs": self.lrs}

    def load_state_dict(self, state_dict):
        self.lrs = list(state_dict["lrs"])


class LossOnVal(ToyNet):
    def forward(self, x, y=None, mode="tensor"):
        if mode == "predict":
            return {"loss": nn.functional.cross_entropy(self.body(x), y)}
        return super().forward(x, y, mode)


# Epoch-based: 15 epochs of 4 batches; iteration-based: 60 iterations, validating after each
# pass over the same 4 batches, so both see the same validations.
LOOPS = {"epochs": dict(max_epochs=15), "iters": dict(max_iters=60, val_interval=4)}


def fit(work_dir, callbacks, loop="epochs", **kwargs):
    torch.manual_seed(0)
    model = LossOnVal()
    trainer = Trainer(work_dir=work_dir, callbacks=[ScriptedLoss(), *callbacks],
                      default_callbacks={"progress": None, "logger": None},
                      param_scheduler=dict(type="ReduceOnPlateauLR", **SETTINGS),
                      **LOOPS[loop], **kwargs)
    trainer.fit(model, toy_loader(n=32), toy_loader(n=8))
    return trainer, model


@pytest.mark.parametrize("loop", list(LOOPS))
def test_trainer_steps_the_plateau_scheduler_after_each_validation(tmp_path, loop):
    record = RecordLR()
    trainer, _ = fit(str(tmp_path / "straight"), [record], loop)
    # v15 falls outside the window: end defaults to the run's 15 (training) epochs.
    assert record.lrs == pytest.approx(AFTER)
    assert trainer.optim_wrapper.get_lr()["lr"] == [pytest.approx(0.02)]


@pytest.mark.parametrize("loop", list(LOOPS))
def test_trainer_resume_in_the_middle_of_the_patience_window_is_exact(tmp_path, loop):
    straight, straight_model = fit(str(tmp_path / "straight"), [], loop)
    path = str(tmp_path / "after_val_8.pth")
    fit(str(tmp_path / "first"), [SaveAfterValidation(path, after=8, stop=True)], loop)
    record = RecordLR()
    resumed, resumed_model = fit(str(tmp_path / "second"), [record], loop, resume=True,
                                 load_from=path)
    assert record.lrs == pytest.approx(AFTER[8:])
    assert resumed.param_schedulers[0].state_dict() == straight.param_schedulers[0].state_dict()
    for a, b in zip(straight_model.state_dict().values(), resumed_model.state_dict().values()):
        assert torch.equal(a, b)


@pytest.mark.slow
def test_two_processes_reduce_together(tmp_path):
    record = RecordLR()
    fit(str(tmp_path / "ddp"), [record], devices=2, strategy="ddp")
    assert record.lrs == pytest.approx(AFTER)

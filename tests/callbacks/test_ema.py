"""EMACallback against a hand computation, in validation, in checkpoints and across a resume."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from trainer.callbacks import Callback, EMACallback

from tests.conftest import ToyNet, accuracy, toy_loader
from trainer import BaseModel, Trainer
from trainer.checkpoint.io import load_checkpoint

QUIET = {"progress": None, "logger": None}


class KeepWeights(Callback):
    """The weights after every training iteration, and those seen by each validation."""

    priority = "HIGHEST"

    def __init__(self):
        super().__init__()
        self.after_iter: list[dict[str, torch.Tensor]] = []
        self.in_val: list[dict[str, torch.Tensor]] = []

    def after_train_iter(self, trainer, batch_idx, data_batch=None, outputs=None):
        self.after_iter.append(clone(trainer.model))

    def before_val_iter(self, trainer, batch_idx, data_batch=None):
        if batch_idx == 0:
            self.in_val.append(clone(trainer.model))


def clone(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def fit(work_dir, callbacks, max_iters=8, val_interval=100, **kwargs):
    torch.manual_seed(0)
    model = ToyNet()
    kwargs.setdefault("default_callbacks", QUIET)
    trainer = Trainer(max_iters=max_iters, val_interval=val_interval, work_dir=str(work_dir),
                      val_evaluator=accuracy(), callbacks=callbacks, **kwargs)
    trainer.fit(model, toy_loader(shuffle=True, n=32), toy_loader(n=8))
    return trainer, model


def ema_by_hand(weights, momentum, updates):
    """MMEngine's ExponentialMovingAverage: the first update copies, then
    average = (1 - momentum) * average + momentum * weights."""
    average = dict(weights[updates[0]])
    for i in updates[1:]:
        average = {k: (1 - momentum) * average[k] + momentum * weights[i][k] for k in average}
    return average


def assert_close(actual, expected):
    assert actual.keys() == expected.keys()
    for k in expected:
        torch.testing.assert_close(actual[k], expected[k], rtol=1e-6, atol=1e-7)


def test_average_matches_the_hand_computation(tmp_path):
    keep = KeepWeights()
    ema = EMACallback(momentum=0.25, interval=2, begin_iter=3)
    fit(tmp_path / "w", [keep, ema], max_iters=8)
    # Averaging begins at iteration 3 (index 2); every second update counts: indices 2, 4, 6.
    expected = ema_by_hand(keep.after_iter, 0.25, updates=[2, 4, 6])
    assert_close(clone(ema.ema_model), expected)
    assert ema.steps == 6
    # Checkpoints keep the raw weights in state_dict and the average in ema_state_dict.
    ckpt = load_checkpoint(str(tmp_path / "w" / "iter_8.pth"))
    assert_close(ckpt["ema_state_dict"], expected)
    assert_close(ckpt["state_dict"], keep.after_iter[-1])
    assert ckpt["callbacks"]["EMACallback"] == {"steps": 6}


@pytest.mark.parametrize(("ema_type", "momenta"), [
    ("MomentumAnnealingEMA", lambda steps: max(0.01, 2 / (2 + steps))),
    ("StochasticWeightAverage", lambda steps: 1 / (steps + 1)),
])
def test_other_averages(tmp_path, ema_type, momenta):
    keep = KeepWeights()
    ema = EMACallback(ema_type=ema_type, momentum=0.01, gamma=2)
    fit(tmp_path / "w", [keep, ema], max_iters=5)
    average = dict(keep.after_iter[0])
    for steps in range(1, 5):
        m = momenta(steps)
        average = {k: (1 - m) * average[k] + m * keep.after_iter[steps][k] for k in average}
    assert_close(clone(ema.ema_model), average)


def test_validation_sees_the_average_and_training_the_raw_weights(tmp_path):
    keep = KeepWeights()
    ema = EMACallback(momentum=0.5)
    trainer, with_ema = fit(tmp_path / "a", [keep, ema], max_iters=8, val_interval=4)
    assert len(keep.in_val) == 2
    assert_close(keep.in_val[0], ema_by_hand(keep.after_iter, 0.5, updates=range(4)))
    assert_close(keep.in_val[1], ema_by_hand(keep.after_iter, 0.5, updates=range(8)))
    # The swaps leave training untouched: bit-identical to a run without the callback.
    _, without = fit(tmp_path / "b", [], max_iters=8, val_interval=4)
    assert all(torch.equal(with_ema.state_dict()[k], v) for k, v in without.state_dict().items())
    # validate() and test() after fit use the average too, and give the weights back.
    raw = clone(with_ema)
    keep.in_val.clear()
    trainer.validate()
    assert_close(keep.in_val[0], clone(ema.ema_model))
    assert_close(clone(with_ema), raw)

    class InTest(Callback):
        seen = None

        def before_test_iter(self, trainer, batch_idx, data_batch=None):
            InTest.seen = clone(trainer.model)

    trainer.callbacks.append(InTest())
    trainer.test(dataloader=toy_loader(n=8))
    assert_close(InTest.seen, clone(ema.ema_model))
    assert_close(clone(with_ema), raw)


def test_resume_continues_the_average_exactly(tmp_path):
    straight_ema = EMACallback(momentum=0.3, interval=2)
    fit(tmp_path / "straight", [straight_ema], max_iters=8)
    first = EMACallback(momentum=0.3, interval=2)
    fit(tmp_path / "first", [first], max_iters=8,
        default_callbacks={**QUIET, "checkpoint": {"interval": 5, "by_epoch": False}})
    resumed = EMACallback(momentum=0.3, interval=2)
    fit(tmp_path / "resumed", [resumed], max_iters=8, resume=True,
        load_from=str(tmp_path / "first" / "iter_5.pth"))
    assert resumed.steps == 8
    average, expected = clone(resumed.ema_model), clone(straight_ema.ema_model)
    assert all(torch.equal(average[k], expected[k]) for k in expected)


def test_fresh_trainer_tests_with_the_saved_average(tmp_path):
    ema = EMACallback(momentum=0.5)
    fit(tmp_path / "w", [ema], max_iters=4)
    seen = {}

    class InTest(Callback):
        def before_test_iter(self, trainer, batch_idx, data_batch=None):
            seen.update(clone(trainer.model))

    trainer = Trainer(max_iters=4, work_dir=str(tmp_path / "w"), test_evaluator=accuracy(),
                      callbacks=[EMACallback(momentum=0.5), InTest()], default_callbacks=QUIET)
    trainer.test(ToyNet(), dataloader=toy_loader(n=8), ckpt_path=str(tmp_path / "w/iter_4.pth"))
    assert_close(seen, clone(ema.ema_model))


class BatchNormNet(BaseModel):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(),
                                  nn.Linear(16, 3))

    def forward(self, x, y=None, mode="tensor"):
        logits = self.body(x)
        if mode == "loss":
            return {"loss": nn.functional.cross_entropy(logits, y)}
        return logits.argmax(1), y

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


@pytest.mark.parametrize("update_buffers", [False, True])
def test_buffers(tmp_path, update_buffers):
    keep = KeepWeights()
    ema = EMACallback(momentum=0.5, update_buffers=update_buffers)
    trainer = Trainer(max_iters=3, work_dir=str(tmp_path), callbacks=[keep, ema],
                      default_callbacks=QUIET)
    trainer.fit(BatchNormNet(), toy_loader(n=32))
    ckpt = load_checkpoint(str(tmp_path / "iter_3.pth"))
    averaged = ckpt["ema_state_dict"]
    assert averaged.keys() == ckpt["state_dict"].keys()
    mean = "body.1.running_mean"
    if update_buffers:
        expected = ema_by_hand(keep.after_iter, 0.5, updates=range(3))[mean]
        torch.testing.assert_close(averaged[mean], expected)
        assert averaged["body.1.num_batches_tracked"] == 3  # integers are copied, not averaged
    else:  # the model's own statistics go with the averaged parameters
        assert torch.equal(averaged[mean], keep.after_iter[-1][mean])


def test_begin_epoch(tmp_path):
    keep = KeepWeights()
    ema = EMACallback(momentum=0.5, begin_epoch=2)
    trainer = Trainer(max_epochs=3, work_dir=str(tmp_path), callbacks=[keep, ema],
                      default_callbacks=QUIET)
    trainer.fit(ToyNet(), toy_loader(n=16))  # two iterations per epoch
    assert_close(clone(ema.ema_model), ema_by_hand(keep.after_iter, 0.5, updates=[2, 3, 4, 5]))


def test_dict_registration_by_mmengine_name(tmp_path):
    trainer = Trainer(max_iters=2, work_dir=str(tmp_path), default_callbacks=QUIET,
                      callbacks=[dict(type="EMAHook", momentum=0.1, priority="ABOVE_NORMAL")])
    (ema,) = [cb for cb in trainer.callbacks if isinstance(cb, EMACallback)]
    assert ema.momentum == 0.1 and ema.priority == "ABOVE_NORMAL"


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"momentum": 1.0}, r"momentum must be in \(0, 1\), got 1.0"),
    ({"interval": 0}, "EMACallback interval must be a positive int, got 0"),
    ({"begin_iter": 2, "begin_epoch": 1}, "takes begin_iter or begin_epoch, not both"),
    ({"ema_type": "ExpMomentumEMA"}, "ema_type must be one of"),
    ({"begin_iter": -1}, "begin_iter must be a non-negative int"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        EMACallback(**kwargs)


def test_begin_after_the_end_is_refused(work_dir):
    trainer = Trainer(max_iters=3, work_dir=work_dir, callbacks=[EMACallback(begin_iter=10)],
                      default_callbacks=QUIET)
    with pytest.raises(ValueError, match=r"begin_iter=10 is after the last iteration"):
        trainer.fit(ToyNet(), toy_loader(n=16))


def test_a_checkpoint_saved_during_validation_still_splits_raw_and_average(tmp_path):
    path = str(tmp_path / "during_val.pth")

    class SaveInValidation(Callback):
        priority = "HIGHEST"  # before EMACallback swaps the raw weights back

        def after_val_epoch(self, trainer, metrics=None):
            trainer.save_checkpoint(path)

    keep = KeepWeights()
    ema = EMACallback(momentum=0.5)
    fit(tmp_path / "w", [keep, ema, SaveInValidation()], max_iters=4, val_interval=4)
    ckpt = load_checkpoint(path)
    assert_close(ckpt["state_dict"], keep.after_iter[-1])
    assert_close(ckpt["ema_state_dict"], ema_by_hand(keep.after_iter, 0.5, updates=range(4)))

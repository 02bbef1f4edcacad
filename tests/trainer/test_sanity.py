"""Mistakes fail before the first training iteration, and the sanity pass leaves no trace."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from trainer.callbacks import Callback, EarlyStoppingCallback

from tests.conftest import ToyNet, accuracy, toy_loader
from trainer import BaseModel, Trainer

QUIET = {"progress": None, "logger": None}


class CountIters(Callback):
    """Counts the training iterations that started, to show an error came before any."""

    def __init__(self):
        super().__init__()
        self.started = 0
        self.val_hooks = 0

    def before_train_iter(self, trainer, batch_idx, data_batch=None):
        self.started += 1

    def before_val_iter(self, trainer, batch_idx, data_batch=None):
        self.val_hooks += 1


def fails_before_training(work_dir, model, match, error=ValueError, val=True, **kwargs):
    """``fit`` raises ``error`` matching ``match`` with no iteration started, no checkpoint."""
    counter = CountIters()
    kwargs.setdefault("default_callbacks", QUIET)
    trainer = Trainer(max_epochs=3, work_dir=work_dir, callbacks=[counter, *kwargs.pop(
        "callbacks", [])], **kwargs)
    with pytest.raises(error, match=match):
        trainer.fit(model, toy_loader(n=32), toy_loader(n=16) if val else None)
    assert counter.started == 0 and trainer.iter == 0
    assert not list(Path(work_dir).glob("*.pth"))
    return trainer


def test_validation_without_evaluator_and_tuple_outputs(work_dir):
    fails_before_training(work_dir, ToyNet(), r"val_step/test_step returned \(Tensor\[8\] int64, "
                          r"Tensor\[8\] int64\) and val_evaluator has no metric", TypeError)


def test_save_best_name_that_the_evaluator_does_not_return(work_dir):
    fails_before_training(
        work_dir, ToyNet(), r"CheckpointCallback monitors 'acc', but validation returns "
        r"\['accuracy'\]\. Did you mean 'accuracy'\?", val_evaluator={"accuracy": accuracy()},
        default_callbacks={**QUIET, "checkpoint": {"save_best": "acc"}})


def test_early_stopping_monitor_that_the_evaluator_does_not_return(work_dir):
    fails_before_training(
        work_dir, ToyNet(), r"EarlyStoppingCallback monitors 'val_acc', but validation returns "
        r"\['accuracy'\]\. Did you mean 'accuracy'\?", val_evaluator={"accuracy": accuracy()},
        callbacks=[EarlyStoppingCallback(monitor="val_acc")])


class MonitorsLoss(Callback):
    """Any callback can declare what it monitors; a "val/" prefix is accepted."""

    monitored_metrics = ("val/los",)


def test_any_callback_declares_monitored_metrics(work_dir):
    fails_before_training(work_dir, ScalarVal(), r"MonitorsLoss monitors 'los'.*\['loss'\]\. Did "
                          r"you mean 'loss'\?", callbacks=[MonitorsLoss()])


def test_a_reduce_on_plateau_monitor_is_checked_too(work_dir):
    fails_before_training(work_dir, ScalarVal(), r"ReduceOnPlateauLR monitors 'val_loss'.*Did you "
                          r"mean 'loss'\?", optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1)),
                          param_scheduler=dict(type="ReduceOnPlateauLR", monitor="val_loss"))


class ScalarVal(ToyNet):
    """Validation returns a dict of scalars: averaged without an evaluator."""

    def val_step(self, data):
        x, y = data
        return {"loss": nn.functional.cross_entropy(self(x), y)}


def test_sanity_pass_fires_no_hooks_and_sets_sanity_checking(work_dir):
    seen = []

    class Spy(ScalarVal):
        def val_step(self, data):
            seen.append(trainer.sanity_checking)
            return super().val_step(data)

    counter = CountIters()
    trainer = Trainer(max_iters=1, work_dir=work_dir, callbacks=[counter],
                      default_callbacks=QUIET, num_sanity_val_batches=3)
    trainer.fit(Spy(), toy_loader(n=16), toy_loader(n=64))  # then one validation of 8 batches
    assert seen == [True] * 3 + [False] * 8 and counter.val_hooks == 8
    assert not trainer.sanity_checking


def test_zero_switches_the_sanity_pass_off(work_dir):
    counter = CountIters()
    trainer = Trainer(max_iters=4, val_interval=2, work_dir=work_dir, default_callbacks=QUIET,
                      num_sanity_val_batches=0, val_evaluator={"accuracy": accuracy()},
                      callbacks=[counter, EarlyStoppingCallback(monitor="nope", rule="less",
                                                                strict=True)])
    with pytest.raises(ValueError, match="'nope', which is not among"):
        trainer.fit(ToyNet(), toy_loader(n=16), toy_loader(n=16))
    assert counter.started == 2  # found only at the first validation
    with pytest.raises(ValueError, match="num_sanity_val_batches must be a non-negative int"):
        Trainer(num_sanity_val_batches=-1)


def run_logged(work_dir, sanity, **length):
    """Dropout, shuffled loaders (drawing from the global RNG), an evaluator, a logger."""
    torch.manual_seed(5)
    model = ToyNet(dropout=0.3)
    trainer = Trainer(**length, work_dir=work_dir, seed=0, num_sanity_val_batches=sanity,
                      val_interval=2 if "max_epochs" in length else 5,
                      val_evaluator={"acc": accuracy()},
                      default_callbacks={"progress": None, "checkpoint": {"save_best": "acc"}},
                      log_interval=2)
    trainer.fit(model, toy_loader(n=40, shuffle=True), toy_loader(n=24, shuffle=True))
    scalars = Path(trainer.log_dir, "scalars.jsonl").read_text().splitlines()
    timings = ("time", "_per_s", "memory", "mfu")  # differ from run to run
    records = [{k: v for k, v in json.loads(line).items() if not any(t in k for t in timings)}
               for line in scalars]
    return model, trainer, records


@pytest.mark.parametrize("length", [{"max_epochs": 3}, {"max_iters": 12}])
def test_weights_logs_and_counters_are_the_same_with_and_without_the_sanity_pass(tmp_path,
                                                                                   length):
    on, trainer_on, logs_on = run_logged(str(tmp_path / "on"), 2, **length)
    off, trainer_off, logs_off = run_logged(str(tmp_path / "off"), 0, **length)
    for key, value in on.state_dict().items():
        assert torch.equal(value, off.state_dict()[key]), key
    assert logs_on == logs_off and len(logs_on) > 3
    assert (trainer_on.epoch, trainer_on.iter) == (trainer_off.epoch, trainer_off.iter)
    hub_on, hub_off = trainer_on.message_hub.scalars, trainer_off.message_hub.scalars
    assert sorted(hub_on) == sorted(hub_off)
    assert hub_on["val/acc"].values() == hub_off["val/acc"].values()
    assert sorted(p.name for p in tmp_path.glob("on/*.pth")) == sorted(
        p.name for p in tmp_path.glob("off/*.pth"))


# Lightning habits and other mistakes in the model.
class LightningStyle(BaseModel):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 3)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.cross_entropy(self.fc(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_training_step_without_forward_mode_shows_the_two_ways(work_dir):
    fails_before_training(work_dir, LightningStyle(), r"(?s)LightningStyle has no forward\(\) and "
                          r"defines training_step.*1\. forward\(self, x, y=None, mode=\"tensor\"\)"
                          r".*2\. keep your own step methods: override train_step", TypeError)


class PlainForward(LightningStyle):
    def forward(self, x):
        return self.fc(x)


def test_forward_without_mode_parameter(work_dir):
    fails_before_training(work_dir, PlainForward(),
                          r"PlainForward has a forward\(\) without a mode parameter", TypeError)


class TwoHeads(BaseModel):
    def __init__(self):
        super().__init__()
        self.generator, self.discriminator = nn.Linear(8, 8), nn.Linear(8, 3)

    def forward(self, x, y=None, mode="tensor"):
        logits = self.discriminator(self.generator(x))
        if mode == "loss":
            return {"loss": nn.functional.cross_entropy(logits, y)}
        return (logits.argmax(1), y) if mode == "predict" else logits

    def configure_optimizers(self):
        return [torch.optim.SGD(self.generator.parameters(), lr=0.1),
                torch.optim.SGD(self.discriminator.parameters(), lr=0.1)]


def test_list_of_optimizers_without_train_step_says_override_train_step(work_dir):
    fails_before_training(work_dir, TwoHeads(), r"TwoHeads has several optimizers \(\['generator', "
                          r"'discriminator'\]\) but uses the default train_step.*override "
                          r"train_step\(self, data, optim_wrapper\)", TypeError,
                          val_evaluator=accuracy())


class TwoHeadsStep(TwoHeads):
    def train_step(self, data, optim_wrapper):
        for name in ("generator", "discriminator"):
            with optim_wrapper[name].optim_context(self):
                loss = self(*data, mode="loss")["loss"]
            optim_wrapper[name].update_params(loss)
        return {"loss": loss.detach()}


def test_list_of_optimizers_are_named_after_their_submodules(work_dir):
    model = TwoHeadsStep()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainer = Trainer(max_iters=3, work_dir=work_dir, default_callbacks=QUIET)
    trainer.fit(model, toy_loader(n=32))
    assert sorted(trainer.optim_wrapper.keys()) == ["discriminator", "generator"]
    assert all(not torch.equal(before[k], v) for k, v in model.state_dict().items()
               if k.endswith("weight"))


class SharedParams(TwoHeads):
    def configure_optimizers(self):
        return [torch.optim.SGD(self.parameters(), lr=0.1),
                torch.optim.SGD(self.discriminator.parameters(), lr=0.1)]


def test_list_of_optimizers_that_cannot_be_named(work_dir):
    fails_before_training(work_dir, SharedParams(), r"returned 2 optimizers in a list.*Name them: "
                          r"return \{'generator': g_opt, 'discriminator': d_opt\}")


class DictSamples(Dataset):
    def __len__(self):
        return 16

    def __getitem__(self, i):
        return {"image": torch.randn(8), "label": i % 3}


def test_dict_batch_keys_that_forward_does_not_take(work_dir):
    message = (r"a dict batch is passed to forward as keyword arguments: keys \['image', "
               r"'label'\] \+ mode, but ToyNet.forward\(x, y=None, mode='tensor'\)")
    counter = CountIters()
    trainer = Trainer(max_epochs=1, work_dir=work_dir, default_callbacks=QUIET,
                      val_evaluator=accuracy(), callbacks=[counter])
    loader = DataLoader(DictSamples(), batch_size=4)
    with pytest.raises(TypeError, match=message):  # found by the sanity pass
        trainer.fit(ToyNet(), loader, loader)
    assert counter.started == 0
    with pytest.raises(TypeError, match=message):  # without validation: in the first step
        Trainer(max_epochs=1, work_dir=work_dir + "2", default_callbacks=QUIET,
                callbacks=[counter]).fit(ToyNet(), loader)
    assert counter.started == 1 and not list(Path(work_dir + "2").glob("*.pth"))


def test_a_type_error_inside_forward_is_not_blamed_on_the_batch(work_dir):
    class Broken(ToyNet):
        def forward(self, x, y=None, mode="tensor"):
            raise TypeError("my own bug")

    with pytest.raises(TypeError, match=r"^my own bug$"):
        Trainer(max_iters=1, work_dir=work_dir, default_callbacks=QUIET).fit(
            Broken(), toy_loader(n=8))

"""The facade: argument checks, and fit/validate/test/predict training real models."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tests.conftest import ToyNet, accuracy, toy_loader
from trainer import Trainer
from trainer.optim import OptimWrapper

QUIET = {"progress": None, "logger": None}


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"max_epochs": 2, "max_iters": 10}, "exactly one of max_epochs"),
    ({"max_epochs": 0}, "max_epochs must be a positive int, got 0"),
    ({"max_iters": -5}, "max_iters must be a positive int, got -5"),
    ({"max_iters": 2.5}, "max_iters must be a positive int"),
    ({"max_iters": 5, "val_interval": 0}, "val_interval must be a positive int"),
    ({"max_iters": 5, "val_begin": -1}, "val_begin must be a positive int"),
    ({"max_iters": 5, "log_interval": 0}, "log_interval must be a positive int"),
    ({"max_iters": 5, "precision": "fp16"}, r"precision must be one of \['32', 'bf16-mixed'"),
    ({"max_iters": 5, "accelerator": "tpu"}, r"accelerator must be one of \['auto', 'cpu'"),
    ({"max_iters": 5, "strategy": "deepspeed"}, r"strategy must be one of \['auto', 'ddp', 'fsdp'\]"),
    ({"max_iters": 5, "devices": 0}, "devices must be a positive int"),
    ({"max_iters": 5, "default_callbacks": {"loger": None}}, r"unknown names \['loger'\]"),
    ({"max_iters": 5, "optim_wrapper": dict(optimizer=dict(type="SGDD", lr=0.1))},
     r"unknown optim_wrapper optimizer type 'SGDD'.*'SGD'"),
    ({"max_iters": 5, "optim_wrapper": dict(type="AmpOptimWraper", optimizer=dict(type="SGD"))},
     r"unknown optim_wrapper type 'AmpOptimWraper'.*'AmpOptimWrapper'"),
    ({"max_iters": 5, "param_scheduler": [dict(type="MultiStepLR", milestones=[1]),
                                          dict(type="CosineLR")]},
     r"unknown param_scheduler type 'CosineLR'"),
    ({"max_iters": 5, "param_scheduler": dict(milestones=[1])}, "has no 'type' key"),
])
def test_bad_arguments_are_value_errors_naming_the_argument(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Trainer(**kwargs)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"work_dir": 3}, "work_dir must be a non-empty path"),
    ({"resume": "yes"}, "resume must be True or False"),
    ({"load_from": 3}, "load_from must be a checkpoint path"),
    ({"seed": "0"}, "seed must be an int or None"),
    ({"callbacks": "logger"}, "callbacks must be a list"),
    ({"callbacks": [object()]}, "a callback must be a Callback or a dict"),
    ({"val_evaluator": 3}, "val_evaluator"),
    ({"default_callbacks": {"logger": 3}}, r"default_callbacks\['logger'\] must be"),
    ({"default_callbacks": ["logger"]}, "default_callbacks must be a dict"),
])
def test_bad_argument_types_are_type_errors(kwargs, match):
    with pytest.raises(TypeError, match=match):
        Trainer(max_iters=5, **kwargs)


def test_cuda_requested_without_cuda():
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    with pytest.raises(ValueError, match="no CUDA device is available"):
        Trainer(max_iters=5, accelerator="cuda")


def test_fit_learns_loss_down_accuracy_up(work_dir):
    model = ToyNet()
    trainer = Trainer(max_epochs=6, work_dir=work_dir, seed=0, val_evaluator={"acc": accuracy()},
                      default_callbacks=QUIET)
    before = trainer.validate(model, toy_loader(n=48, seed=1))["acc"]
    trainer.fit(model, toy_loader(shuffle=True), toy_loader(n=48, seed=1))
    after = trainer.validate()["acc"]
    losses = trainer.message_hub.get_scalar("train/loss")
    assert after > 0.9 > before
    assert losses.mean(12) < 0.25 * losses.global_mean()  # the first losses sit near ln 3
    assert trainer.message_hub.get_scalar("val/acc").current() == pytest.approx(after)


def test_fit_rejects_what_is_not_a_model(work_dir):
    trainer = Trainer(max_iters=2, work_dir=work_dir, default_callbacks=QUIET)
    with pytest.raises(TypeError, match=r"model must be a trainer\.BaseModel"):
        trainer.fit(nn.Linear(8, 3), toy_loader())
    with pytest.raises(TypeError, match="train_dataloader must be an iterable of batches"):
        trainer.fit(ToyNet(), torch.zeros(3))


def test_no_optimizer_anywhere_is_a_clear_error(work_dir):
    class NoOptim(ToyNet):
        def configure_optimizers(self):
            return None

    trainer = Trainer(max_iters=2, work_dir=work_dir, default_callbacks=QUIET)
    with pytest.raises(ValueError, match="no optimizer: pass Trainer\\(optim_wrapper="):
        trainer.fit(NoOptim(), toy_loader())


@pytest.mark.parametrize("form", ["dict", "optimizer", "wrapper", "configure"])
def test_every_optim_wrapper_form_trains(work_dir, form):
    model = ToyNet()
    optim_wrapper = {
        "dict": dict(optimizer=dict(type="SGD", lr=0.05), clip_grad=dict(max_norm=10.0)),
        "optimizer": torch.optim.SGD(model.parameters(), lr=0.05),
        "wrapper": OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.05)),
        "configure": None,
    }[form]
    trainer = Trainer(max_iters=4, work_dir=work_dir, optim_wrapper=optim_wrapper,
                      default_callbacks=QUIET)
    before = [p.detach().clone() for p in model.parameters()]
    trainer.fit(model, toy_loader())
    assert isinstance(trainer.optim_wrapper, OptimWrapper)
    assert all(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_configure_optimizers_with_schedulers(work_dir):
    class WithScheduler(ToyNet):
        def configure_optimizers(self):
            from trainer.schedulers import StepLR
            optimizer = torch.optim.SGD(self.parameters(), lr=0.1)
            return optimizer, [StepLR(optimizer, step_size=1, gamma=0.5, by_epoch=True)]

    trainer = Trainer(max_epochs=3, work_dir=work_dir, default_callbacks=QUIET)
    trainer.fit(WithScheduler(), toy_loader(n=16))
    assert trainer.optim_wrapper.get_lr()["lr"] == [pytest.approx(0.1 * 0.5**3)]


def test_validate_and_test_return_named_floats_and_log_them(work_dir):
    trainer = Trainer(max_iters=3, work_dir=work_dir, default_callbacks=QUIET,
                      val_evaluator=accuracy(), test_evaluator={"top1": accuracy()})
    model = ToyNet()
    val = trainer.validate(model, toy_loader(n=40))
    test = trainer.test(model, toy_loader(n=40))
    assert list(val) == ["MulticlassAccuracy"] and isinstance(val["MulticlassAccuracy"], float)
    assert list(test) == ["top1"] and test["top1"] == pytest.approx(val["MulticlassAccuracy"])
    assert trainer.message_hub.get_scalar("test/top1").current() == pytest.approx(test["top1"])


def test_validate_without_evaluator_averages_dict_outputs(work_dir):
    class LossOnly(ToyNet):
        def val_step(self, data):
            x, y = data
            return {"loss": nn.functional.cross_entropy(self(x), y, reduction="mean")}

    model = LossOnly()
    loader = toy_loader(n=20, batch_size=8)  # batches of 8, 8, 4: a plain mean would be wrong
    trainer = Trainer(max_iters=1, work_dir=work_dir, default_callbacks=QUIET)
    x, y = loader.dataset.tensors
    with torch.no_grad():
        expected = nn.functional.cross_entropy(model(x), y).item()
    assert trainer.validate(model, loader)["loss"] == pytest.approx(expected, rel=1e-5)


def test_eval_without_model_or_loader_is_a_clear_error(work_dir):
    trainer = Trainer(max_iters=1, work_dir=work_dir, default_callbacks=QUIET)
    with pytest.raises(ValueError, match="needs a model: pass model= or call fit"):
        trainer.validate()
    with pytest.raises(ValueError, match="pass dataloader="):
        trainer.test(ToyNet())


def test_predict_returns_each_batch_output_in_order(work_dir):
    model = ToyNet()
    trainer = Trainer(max_iters=1, work_dir=work_dir, default_callbacks=QUIET)
    outputs = trainer.predict(model, toy_loader(n=20, batch_size=8))
    assert [len(preds) for preds, _ in outputs] == [8, 8, 4]
    x = toy_loader(n=20).dataset.tensors[0]
    assert torch.equal(torch.cat([p for p, _ in outputs]), model(x).argmax(1))


def test_test_with_ckpt_path_loads_those_weights_first(work_dir):
    model = ToyNet()
    trainer = Trainer(max_epochs=2, work_dir=work_dir, val_evaluator=accuracy(),
                      default_callbacks=QUIET)
    trainer.fit(model, toy_loader())
    trained = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
    scrambled = trainer.test(dataloader=toy_loader())["MulticlassAccuracy"]
    restored = trainer.test(dataloader=toy_loader(), ckpt_path=f"{work_dir}/epoch_2.pth")
    assert all(torch.equal(model.state_dict()[k], v) for k, v in trained.items())
    assert restored["MulticlassAccuracy"] > scrambled
    last = trainer.test(dataloader=toy_loader(), ckpt_path="last")
    assert last == restored


def test_seed_makes_runs_repeatable(work_dir):
    def run(name):
        trainer = Trainer(max_epochs=2, work_dir=f"{work_dir}/{name}", seed=7,
                          default_callbacks=QUIET)
        model = ToyNet(dropout=0.2)  # built after the Trainer: its init is seeded too
        trainer.fit(model, toy_loader(shuffle=True))
        return model.state_dict()

    a, b = run("a"), run("b")
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize(("length", "expected"), [
    ({"max_epochs": 3}, (3, 30)), ({"max_iters": 25}, (3, 25))])
def test_run_length_is_settled_before_the_loops_are_built(work_dir, length, expected):
    from trainer.loops import EpochBasedTrainLoop, IterBasedTrainLoop

    seen = []
    base = EpochBasedTrainLoop if "max_epochs" in length else IterBasedTrainLoop

    class Recording(base):
        def __init__(self, trainer, *args, **kwargs):
            seen.append((trainer.max_epochs, trainer.max_iters))
            super().__init__(trainer, *args, **kwargs)

    trainer = Trainer(**length, work_dir=work_dir, default_callbacks=QUIET, train_loop=Recording)
    trainer.fit(ToyNet(), toy_loader(n=40, batch_size=4))  # 10 batches an epoch
    assert seen == [expected]
    assert (trainer.max_epochs, trainer.max_iters) == expected


def test_a_failed_run_still_ends_its_callbacks_run(work_dir):
    """after_run runs when fit raises, so log files, bars and tracker runs are closed; the
    run's own error stays the error, with a failing after_run as a note."""
    from trainer.callbacks import Callback, LoggerCallback

    ended = []

    class Ends(Callback):
        def after_train_iter(self, trainer, batch_idx, data_batch=None, outputs=None):
            if batch_idx == 1:
                raise RuntimeError("step 1 broke")

        def after_run(self, trainer):
            ended.append(trainer.iter)
            raise OSError("disk gone")

    trainer = Trainer(max_iters=5, work_dir=work_dir, callbacks=[Ends()],
                      default_callbacks={"progress": None})
    with pytest.raises(RuntimeError, match="step 1 broke") as info:
        trainer.fit(ToyNet(), toy_loader())
    assert ended == [1]
    assert any("after_run failed too: OSError: disk gone" in note
               for note in info.value.__notes__)
    logger = trainer.callbacks.get(LoggerCallback)[0]
    assert logger.log._files == {}  # the log files were closed

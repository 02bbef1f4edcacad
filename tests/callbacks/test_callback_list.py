"""Registration checks, priority order and error reporting of the callback list."""

from __future__ import annotations

import pytest
from trainer.callbacks import Callback, CallbackList, build_callback
from trainer.callbacks.base import PRIORITIES, get_priority

from tests.conftest import ToyNet, toy_loader
from trainer import Trainer


class Tag(Callback):
    def __init__(self, name, log, priority=None):
        super().__init__(priority)
        self.name, self.log = name, log

    def before_train(self, trainer):
        self.log.append(self.name)


def test_priority_order_is_stable_for_equal_priorities(work_dir):
    log: list[str] = []
    cbs = [Tag("a", log, "LOW"), Tag("b", log, "HIGH"), Tag("c", log), Tag("d", log, 50),
           Tag("e", log, "HIGHEST"), Tag("f", log, 30)]
    trainer = Trainer(max_iters=1, work_dir=work_dir, callbacks=cbs,
                      default_callbacks={"progress": None, "logger": None, "checkpoint": None})
    trainer.fit(ToyNet(), toy_loader())
    assert log == ["e", "b", "f", "c", "d", "a"]


def test_default_callbacks_sit_at_mmengine_priorities(work_dir):
    trainer = Trainer(max_iters=1, work_dir=work_dir)
    assert [(type(cb).__name__, get_priority(cb.priority)) for cb in trainer.callbacks] == [
        ("RuntimeInfoCallback", 10), ("ProgressBarCallback", 40), ("IterTimerCallback", 50),
        ("DistSamplerSeedCallback", 50), ("LoggerCallback", 60), ("ParamSchedulerCallback", 70),
        ("CheckpointCallback", 90)]


def test_dict_registration_with_priority_and_mmengine_alias(work_dir):
    cb = build_callback(dict(type="CheckpointHook", interval=2, priority="LOW"))
    assert type(cb).__name__ == "CheckpointCallback" and cb.interval == 2 and cb.priority == "LOW"
    with pytest.raises(ValueError, match=r"unknown callback type 'LoggerHok'.*'LoggerHook'"):
        build_callback(dict(type="LoggerHok"))


def test_misspelt_hook_is_refused_with_the_valid_names():
    class Typo(Callback):
        def after_train_iteration(self, trainer):
            pass

    with pytest.raises(ValueError, match=r"after_train_iteration looks like a hook.*after_train_iter"):
        CallbackList([Typo()])


def test_lightning_style_name_is_refused():
    class Lightning(Callback):
        def on_train_epoch_end(self, trainer):
            pass

    with pytest.raises(ValueError, match="on_train_epoch_end looks like a hook"):
        CallbackList([Lightning()])


def test_hook_that_cannot_take_the_arguments_is_refused():
    class WrongSignature(Callback):
        def after_train_iter(self, trainer):
            pass

    with pytest.raises(TypeError, match=r"after_train_iter must accept \(trainer, batch_idx, "
                                        r"data_batch, outputs\)"):
        CallbackList([WrongSignature()])


@pytest.mark.parametrize("priority", ["SOMETIMES", 101, -1, 2.5])
def test_bad_priority(priority):
    with pytest.raises(ValueError, match="priority"):
        CallbackList([Callback(priority=priority)])


def test_not_a_callback():
    with pytest.raises(TypeError, match="callbacks must be Callback instances, got str"):
        CallbackList(["logger"])


def test_exception_in_a_callback_names_it(work_dir):
    class Broken(Callback):
        def after_train_iter(self, trainer, batch_idx, data_batch=None, outputs=None):
            raise RuntimeError("boom")

    trainer = Trainer(max_iters=2, work_dir=work_dir, callbacks=[Broken()],
                      default_callbacks={"progress": None})
    with pytest.raises(RuntimeError, match="boom") as info:
        trainer.fit(ToyNet(), toy_loader())
    assert str(info.value) == "boom (raised in Broken.after_train_iter)"
    assert "raised in Broken.after_train_iter" in info.value.__notes__


def test_priority_names_match_mmengine():
    assert PRIORITIES == {"HIGHEST": 0, "VERY_HIGH": 10, "HIGH": 30, "ABOVE_NORMAL": 40,
                          "NORMAL": 50, "BELOW_NORMAL": 60, "LOW": 70, "VERY_LOW": 90,
                          "LOWEST": 100}


def test_dispatch_skips_the_runner_keyword_wrapper_and_keeps_instance_hooks():
    seen = []

    class Hooked(Callback):
        def after_train_iter(self, trainer, batch_idx, data_batch=None, outputs=None):
            seen.append(("class", trainer, batch_idx))

    plain, patched = Hooked(), Hooked()
    patched.after_train_iter = lambda trainer, batch_idx, data_batch=None, outputs=None: (
        seen.append(("instance", trainer, batch_idx)))
    callbacks = CallbackList([plain, patched])
    callbacks.call("after_train_iter", "T", 1, None, None)
    plain.after_train_iter(runner="R", batch_idx=3)  # MMEngine's spelling still works directly
    assert seen == [("class", "T", 1), ("instance", "T", 1), ("class", "R", 3)]


def test_hooks_of_any_parameter_order_get_their_arguments_by_name(work_dir):
    seen = []

    class Standard(Callback):
        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            seen.append(("standard", batch_idx, type(data_batch).__name__, sorted(outputs)))

    class Reordered(Callback):
        def after_train_iter(self, trainer, outputs=None, data_batch=None, batch_idx=None):
            seen.append(("reordered", batch_idx, type(data_batch).__name__, sorted(outputs)))

    class Catchall(Callback):
        def after_train_iter(self, trainer, **kwargs):
            seen.append(("catchall", kwargs["batch_idx"], type(kwargs["data_batch"]).__name__,
                         sorted(kwargs["outputs"])))

    trainer = Trainer(max_iters=2, work_dir=work_dir, callbacks=[Standard(), Reordered(),
                      Catchall()], default_callbacks={"progress": None, "logger": None})
    trainer.fit(ToyNet(), toy_loader())
    assert seen == [(kind, i, "list", ["loss"]) for i in (0, 1)
                    for kind in ("standard", "reordered", "catchall")]


def test_call_hook_takes_mmengine_keywords_and_refuses_unknown_ones(work_dir):
    seen = []

    class Saver(Callback):
        def before_save_checkpoint(self, trainer, checkpoint):
            seen.append(checkpoint)

        def before_test_iter(self, trainer, batch_idx, data_batch=None):
            seen.append((batch_idx, data_batch))

    trainer = Trainer(max_iters=1, work_dir=work_dir, callbacks=[Saver()])
    trainer.call_hook("before_save_checkpoint", checkpoint={"meta": 1})
    trainer.call_hook("before_test_iter", batch_idx=4)  # data_batch left out: None
    trainer.call_hook("before_test_iter", 5, data_batch="b")
    assert seen == [{"meta": 1}, (4, None), (5, "b")]
    with pytest.raises(TypeError, match=r"call_hook\('before_test_iter'\) got unexpected "
                       r"keywords \['outputs'\]; before_test_iter takes \['batch_idx', "
                       r"'data_batch'\]"):
        trainer.call_hook("before_test_iter", batch_idx=1, outputs={})

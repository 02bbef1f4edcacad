"""Hook semantics against MMEngine's runner: the full call sequence, arguments and state.

The expected sequences are written out from MMEngine's documented order (``Runner.train`` /
``Runner.val`` / ``Runner.test``, ``EpochBasedTrainLoop``, ``IterBasedTrainLoop``, ``ValLoop``,
``TestLoop`` and ``CheckpointHook``), not derived from this project's loops.
"""

from __future__ import annotations

import pytest
import torch
from trainer.callbacks import HOOK_NAMES, Callback, EarlyStoppingCallback, EMACallback

from tests.conftest import ToyNet, accuracy, toy_loader
from trainer import Trainer
from trainer.checkpoint.io import load_checkpoint

QUIET = {"progress": None, "logger": None}
IT = ["before_train_iter", "after_train_iter"]


class Recorder(Callback):
    """Records every hook call with its keyword arguments."""

    def __init__(self, priority=None):
        super().__init__(priority)
        self.calls: list[tuple[str, dict]] = []


def _record(name):
    def hook(self, trainer, **kwargs):
        self.calls.append((name, kwargs))
    return hook


for _name in HOOK_NAMES:
    setattr(Recorder, _name, _record(_name))


def names(recorder):
    return [name for name, _ in recorder.calls]


# MMEngine's order, as its documentation and loops spell it out.
def mm_eval(stage, n_batches):
    """``ValLoop.run``/``TestLoop.run``: before_<stage>, before_<stage>_epoch, each batch's
    before/after_<stage>_iter, after_<stage>_epoch(metrics), after_<stage>."""
    return [f"before_{stage}", f"before_{stage}_epoch",
            *[f"{when}_{stage}_iter" for _ in range(n_batches) for when in ("before", "after")],
            f"after_{stage}_epoch", f"after_{stage}"]


def mm_epoch_based_fit(max_epochs, n_train, n_val, val_interval=1):
    """``Runner.train``: before_run, (load_or_resume), ``EpochBasedTrainLoop.run``: before_train,
    per epoch ``run_epoch`` (before_train_epoch, iterations, after_train_epoch, in which
    ``CheckpointHook(interval=1)`` saves: before_save_checkpoint), then validation when
    ``epoch % val_interval == 0`` or the last epoch; after_train; after_run."""
    seq = ["before_run", "before_train"]
    for epoch in range(1, max_epochs + 1):
        seq += ["before_train_epoch", *IT * n_train, "after_train_epoch", "before_save_checkpoint"]
        if epoch % val_interval == 0 or epoch == max_epochs:
            seq += mm_eval("val", n_val)
    return [*seq, "after_train", "after_run"]


def mm_iter_based_fit(max_iters, n_val, val_interval):
    """``IterBasedTrainLoop.run``: before_train, before_train_epoch (the whole run is one big
    epoch), per iteration run_iter then validation when ``iter % val_interval == 0`` or the last
    one; ``CheckpointHook(interval=-1, by_epoch=False)`` saves after the last iteration;
    after_train_epoch, after_train."""
    seq = ["before_run", "before_train", "before_train_epoch"]
    for it in range(1, max_iters + 1):
        seq += IT
        if it == max_iters:
            seq.append("before_save_checkpoint")
        if it % val_interval == 0 or it == max_iters:
            seq += mm_eval("val", n_val)
    return [*seq, "after_train_epoch", "after_train", "after_run"]


def mm_standalone(stage, n_batches):
    """``Runner.val``/``Runner.test``: before_run, (load_or_resume), the loop, after_run."""
    return ["before_run", *mm_eval(stage, n_batches), "after_run"]


@pytest.mark.parametrize(("length", "checkpoint", "fit_calls"), [
    ({"max_epochs": 2}, {}, mm_epoch_based_fit(max_epochs=2, n_train=3, n_val=2)),
    # MMEngine's default CheckpointHook saves iteration-based runs only at the end
    ({"max_iters": 5, "val_interval": 2}, {"interval": -1},
     mm_iter_based_fit(max_iters=5, n_val=2, val_interval=2)),
])
def test_fit_validate_test_match_mmengine(work_dir, length, checkpoint, fit_calls):
    rec = Recorder()
    trainer = Trainer(**length, work_dir=work_dir, callbacks=[rec], val_evaluator=accuracy(),
                      default_callbacks={**QUIET, "checkpoint": checkpoint})
    trainer.fit(ToyNet(), toy_loader(n=24), toy_loader(n=16))  # 3 train, 2 val batches
    assert names(rec) == fit_calls
    rec.calls.clear()
    trainer.validate()
    assert names(rec) == mm_standalone("val", 2)
    rec.calls.clear()
    trainer.test(dataloader=toy_loader(n=24))
    assert names(rec) == mm_standalone("test", 3)


def test_hooks_get_mmengine_arguments(work_dir):
    rec = Recorder()
    trainer = Trainer(max_iters=3, val_interval=3, work_dir=work_dir, callbacks=[rec],
                      val_evaluator={"acc": accuracy()}, default_callbacks=QUIET)
    trainer.fit(ToyNet(), toy_loader(n=16), toy_loader(n=16))
    calls = rec.calls
    kwargs_of = {name: set(kwargs) for name, kwargs in calls}
    assert kwargs_of["before_train_iter"] == kwargs_of["before_val_iter"] == {
        "batch_idx", "data_batch"}
    assert kwargs_of["after_train_iter"] == kwargs_of["after_val_iter"] == {
        "batch_idx", "data_batch", "outputs"}
    assert kwargs_of["after_val_epoch"] == {"metrics"}
    assert kwargs_of["before_save_checkpoint"] == {"checkpoint"}
    assert kwargs_of["before_run"] == kwargs_of["after_train_epoch"] == set()

    # Iteration-based: batch_idx is the global iteration (IterBasedTrainLoop passes self._iter).
    assert [k["batch_idx"] for n, k in calls if n == "after_train_iter"] == [0, 1, 2]
    assert [k["batch_idx"] for n, k in calls if n == "after_val_iter"] == [0, 1]
    first = next(k for n, k in calls if n == "after_train_iter")
    _, y = first["data_batch"]
    assert torch.equal(y, toy_loader(n=16).dataset.tensors[1][:8])
    assert set(first["outputs"]) == {"loss"} and first["outputs"]["loss"].ndim == 0
    preds, target = next(k for n, k in calls if n == "after_val_iter")["outputs"]
    assert preds.shape == target.shape == (8,)
    (metrics,) = [k["metrics"] for n, k in calls if n == "after_val_epoch"]
    assert set(metrics) == {"acc"} and 0.0 <= metrics["acc"] <= 1.0
    (ckpt,) = [k["checkpoint"] for n, k in calls if n == "before_save_checkpoint"]
    assert ckpt["meta"]["iter"] == 3 and set(ckpt["state_dict"]) == set(trainer.model.state_dict())


def test_resume_calls_after_load_checkpoint_right_after_before_run(tmp_path):
    Trainer(max_iters=2, work_dir=str(tmp_path / "a"), default_callbacks=QUIET).fit(
        ToyNet(), toy_loader(n=16))
    rec = Recorder()
    trainer = Trainer(max_iters=4, work_dir=str(tmp_path / "b"), callbacks=[rec], resume=True,
                      load_from=str(tmp_path / "a" / "iter_2.pth"), default_callbacks=QUIET)
    trainer.fit(ToyNet(), toy_loader(n=16))
    # Runner.train: before_run, then load_or_resume "so checkpoint hooks follow before_run".
    assert names(rec)[:4] == ["before_run", "after_load_checkpoint", "before_train",
                              "before_train_epoch"]
    ckpt = dict(rec.calls)["after_load_checkpoint"]["checkpoint"]
    assert ckpt["meta"]["iter"] == 2
    assert [k["batch_idx"] for n, k in rec.calls if n == "before_train_iter"] == [2, 3]


def test_test_with_ckpt_path_calls_after_load_checkpoint_like_mmengine(work_dir):
    rec = Recorder()
    trainer = Trainer(max_iters=2, work_dir=work_dir, callbacks=[rec], test_evaluator=accuracy(),
                      default_callbacks=QUIET)
    trainer.fit(ToyNet(), toy_loader(n=16))
    rec.calls.clear()
    trainer.test(dataloader=toy_loader(n=8), ckpt_path="last")
    assert names(rec) == ["before_run", "after_load_checkpoint", *mm_eval("test", 1),
                          "after_run"]


def test_priority_order_holds_for_every_hook_and_is_stable(work_dir):
    order: list[str] = []

    class Tag(Callback):
        def __init__(self, tag, priority=None):
            super().__init__(priority)
            self.tag = tag

        def after_train_iter(self, trainer, batch_idx, data_batch=None, outputs=None):
            order.append(self.tag)

        def after_val_epoch(self, trainer, metrics=None):
            order.append(self.tag)

    callbacks = [Tag("low", "LOW"), Tag("normal-1"), dict(type=Tag, tag="highest",
                                                          priority="HIGHEST"),
                 Tag("normal-2", 50), Tag("very-low", "VERY_LOW")]
    trainer = Trainer(max_iters=2, val_interval=2, work_dir=work_dir, callbacks=callbacks,
                      val_evaluator=accuracy(), default_callbacks=QUIET)
    trainer.fit(ToyNet(), toy_loader(n=16), toy_loader(n=8))
    once = ["highest", "normal-1", "normal-2", "low", "very-low"]
    assert order == once * 3  # two iterations and one validation


class Counter(Callback):
    """Counts training iterations; the count must survive a resume."""

    def __init__(self, priority=None):
        super().__init__(priority)
        self.count = 0
        self.loaded: dict | None = None

    def after_train_iter(self, trainer, batch_idx, data_batch=None, outputs=None):
        self.count += 1

    def state_dict(self):
        return {"count": self.count}

    def load_state_dict(self, state_dict):
        self.loaded = dict(state_dict)
        self.count = state_dict["count"]


def test_callback_states_round_trip_through_a_checkpoint_file(tmp_path):
    def callbacks():
        return [Counter(), Counter(), EarlyStoppingCallback(monitor="acc", patience=50),
                EMACallback(momentum=0.5)]

    first = callbacks()
    trainer = Trainer(max_iters=6, val_interval=3, work_dir=str(tmp_path / "a"), callbacks=first,
                      val_evaluator={"acc": accuracy()}, default_callbacks=QUIET)
    trainer.fit(ToyNet(), toy_loader(n=16), toy_loader(n=8))
    first[1].count = 100  # two callbacks of one class are told apart
    path = str(tmp_path / "state.pth")
    trainer.save_checkpoint(path)

    saved = load_checkpoint(path)["callbacks"]  # torch.load(weights_only=True) reads it
    assert saved["Counter"] == {"count": 6} and saved["Counter#1"] == {"count": 100}
    assert saved["EarlyStoppingCallback"] == {
        "wait_count": first[2].wait_count, "best_score": first[2].best_score,
        "best_value": first[2].best_value, "best_at": first[2].best_at}
    assert saved["EMACallback"] == {"steps": 6}

    second = callbacks()
    resumed = Trainer(max_iters=8, val_interval=3, work_dir=str(tmp_path / "b"),
                      callbacks=second, val_evaluator={"acc": accuracy()}, resume=True,
                      load_from=path, default_callbacks=QUIET)
    resumed.fit(ToyNet(), toy_loader(n=16), toy_loader(n=8))
    assert second[0].loaded == {"count": 6} and second[0].count == 8
    assert second[1].loaded == {"count": 100} and second[1].count == 102
    assert second[2].best_score >= first[2].best_score
    assert second[3].steps == 8


def test_registration_by_dotted_path_with_a_priority_name(work_dir):
    trainer = Trainer(max_iters=3, work_dir=work_dir, default_callbacks=QUIET, callbacks=[
        dict(type="tests.callbacks.test_hooks.Counter", priority="LOW")])
    (counter,) = trainer.callbacks.get(Counter)
    assert counter.priority == "LOW"
    trainer.fit(ToyNet(), toy_loader(n=16))
    assert counter.count == 3

"""CheckpointCallback's schedule, the last_checkpoint pointer and best checkpoints."""

from __future__ import annotations

from pathlib import Path

import fsspec
import pytest
import torch
from trainer.callbacks import CheckpointCallback

from tests.conftest import ToyNet, accuracy, toy_loader
from trainer import Trainer
from trainer.checkpoint.io import load_checkpoint, read_last_checkpoint

QUIET = {"progress": None, "logger": None}


def listing(work_dir):
    fs, root = fsspec.core.url_to_fs(work_dir)
    return sorted(p.rsplit("/", 1)[-1] for p in fs.ls(root, detail=False))


def test_epoch_based_default_saves_every_epoch(work_dir):
    trainer = Trainer(max_epochs=3, work_dir=work_dir, default_callbacks=QUIET)
    trainer.fit(ToyNet(), toy_loader(n=16))
    assert [f for f in listing(work_dir) if f.endswith(".pth")] == [
        "epoch_1.pth", "epoch_2.pth", "epoch_3.pth"]
    assert read_last_checkpoint(work_dir) == f"{work_dir}/epoch_3.pth"
    meta = load_checkpoint(f"{work_dir}/epoch_2.pth")["meta"]
    assert (meta["epoch"], meta["iter"], meta["batch_idx"]) == (2, 4, 0)


def test_iteration_based_default_saves_at_the_end_into_memory_fs():
    work_dir = "memory://ckpt_iter"
    trainer = Trainer(max_iters=7, work_dir=work_dir, default_callbacks=QUIET)
    model = ToyNet()
    trainer.fit(model, toy_loader(n=16))
    assert [f for f in listing(work_dir) if f.endswith(".pth")] == ["iter_7.pth"]
    ckpt = load_checkpoint(read_last_checkpoint(work_dir))
    assert ckpt["meta"]["iter"] == 7 and ckpt["meta"]["epoch"] == 3
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in ckpt["state_dict"].items())
    assert set(ckpt) >= {"meta", "state_dict", "optimizer", "message_hub", "callbacks", "rng"}


def test_interval_max_keep_and_save_begin(work_dir):
    trainer = Trainer(max_iters=12, work_dir=work_dir, default_callbacks={
        **QUIET, "checkpoint": {"interval": 2, "max_keep_ckpts": 2, "save_begin": 4}})
    trainer.fit(ToyNet(), toy_loader(n=16))
    assert [f for f in listing(work_dir) if f.endswith(".pth")] == ["iter_10.pth", "iter_12.pth"]


def test_save_best_keeps_one_best_file(work_dir):
    trainer = Trainer(max_epochs=4, work_dir=work_dir, val_evaluator={"acc": accuracy()},
                      default_callbacks={**QUIET, "checkpoint": {"save_best": "acc"}})
    trainer.fit(ToyNet(lr=0.05), toy_loader(shuffle=True), toy_loader(n=48, seed=3))
    (cb,) = trainer.callbacks.get(CheckpointCallback)
    best = [f for f in listing(work_dir) if f.startswith("best_") and f.endswith(".pth")]
    assert len(best) == 1 and best[0].startswith("best_acc_epoch_")
    assert trainer.resolve_ckpt_path("best").endswith(best[0])
    assert Path(work_dir, "best_checkpoint").read_text() == trainer.resolve_ckpt_path("best")
    saved = load_checkpoint(trainer.resolve_ckpt_path("best"))
    assert saved["callbacks"]["CheckpointCallback"]["best_scores"]["acc"] == cb.best_scores["acc"]


def test_best_without_save_best_is_a_clear_error(work_dir):
    trainer = Trainer(max_epochs=1, work_dir=work_dir, default_callbacks=QUIET)
    trainer.fit(ToyNet(), toy_loader(n=16))
    with pytest.raises(ValueError, match="holds no best checkpoint"):
        trainer.test(dataloader=toy_loader(), ckpt_path="best")


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"interval": 0}, "interval must be a positive int or -1"),
    ({"max_keep_ckpts": 0}, "max_keep_ckpts must be a positive int or -1"),
    ({"rule": "bigger"}, "rule must be 'greater', 'less' or None"),
])
def test_bad_checkpoint_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        CheckpointCallback(**kwargs)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_max_keep_and_best_survive_a_resume(work_dir, seed):
    kwargs = dict(work_dir=work_dir, val_interval=4, seed=seed, val_evaluator={"acc": accuracy()},
                  default_callbacks={**QUIET, "checkpoint": {
                      "interval": 2, "by_epoch": False, "max_keep_ckpts": 2, "save_best": "acc"}})
    first = Trainer(max_iters=8, **kwargs)
    first.fit(ToyNet(), toy_loader(n=16), toy_loader(n=16, seed=2))
    (cb,) = first.callbacks.get(CheckpointCallback)
    best_before = dict(cb.best_scores)
    resumed = Trainer(max_iters=12, resume=True, **kwargs)
    resumed.fit(ToyNet(), toy_loader(n=16), toy_loader(n=16, seed=2))
    (cb2,) = resumed.callbacks.get(CheckpointCallback)
    files = listing(work_dir)
    assert [f for f in files if f.startswith("iter_")] == ["iter_10.pth", "iter_12.pth"]
    assert cb2.best_scores["acc"] >= best_before["acc"]
    assert len([f for f in files if f.startswith("best_") and f.endswith(".pth")]) == 1


@pytest.mark.parametrize("with_validation", [True, False])
def test_iteration_based_default_saves_at_every_validation(work_dir, with_validation):
    trainer = Trainer(max_iters=10, val_interval=4, work_dir=work_dir, default_callbacks=QUIET,
                      val_evaluator={"acc": accuracy()} if with_validation else None)
    trainer.fit(ToyNet(), toy_loader(n=16), toy_loader(n=8) if with_validation else None)
    assert [f for f in listing(work_dir) if f.endswith(".pth")] == [
        "iter_10.pth", "iter_4.pth", "iter_8.pth"]
    assert read_last_checkpoint(work_dir) == f"{work_dir}/iter_10.pth"

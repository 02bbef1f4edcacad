"""Running again into a used work_dir: nothing lost, the earlier run moved aside, leftovers gone."""

from __future__ import annotations

import re

import fsspec
import pytest
import torch

from tests.conftest import ToyNet, accuracy, toy_loader
from tests.trainer.checkpoint.helpers import assert_same_weights
from trainer import Trainer
from trainer.checkpoint.io import load_checkpoint, read_last_checkpoint

QUIET = {"progress": None, "logger": None}


def fit(work_dir, max_iters=8, trainer=None, **checkpoint):
    """Train with interval checkpoints, rotation and a best checkpoint."""
    trainer = trainer or Trainer(
        max_iters=max_iters, work_dir=str(work_dir), val_interval=2,
        val_evaluator={"acc": accuracy()}, default_callbacks={**QUIET, "checkpoint": {
            "interval": 2, "by_epoch": False, "max_keep_ckpts": 2, "save_best": "acc",
            **checkpoint}})
    model = ToyNet()
    trainer.fit(model, toy_loader(n=32), toy_loader(n=16, seed=3))
    return model, trainer


def top_level(work_dir):
    return sorted(p.name for p in work_dir.iterdir() if p.is_file())


def run_folders(work_dir):
    return sorted(p for p in work_dir.iterdir() if p.is_dir())


def assert_readable_run(folder):
    """Every checkpoint of a moved run loads, and its pointer names one of them."""
    checkpoints = sorted(folder.glob("*.pth"))
    assert checkpoints
    for path in checkpoints:
        assert torch.load(path, weights_only=True)["state_dict"]
    assert read_last_checkpoint(str(folder)) == str(folder / "iter_8.pth")
    return [p.name for p in checkpoints]


def test_second_run_into_a_used_work_dir_keeps_every_file_of_the_first(tmp_path, capsys):
    work_dir = tmp_path / "run"
    first_model, first = fit(work_dir)
    first_files = top_level(work_dir)
    assert "iter_8.pth" in first_files and any(f.startswith("best_acc") for f in first_files)
    second_model, second = fit(work_dir)
    line = capsys.readouterr().out
    assert re.search(rf"{work_dir} held an earlier run: its checkpoints and pointers moved to "
                     rf"{work_dir}/{first.timestamp}.*resume=True would have continued it", line)
    assert second.iter == 8 and second.timestamp != first.timestamp
    folder = work_dir / first.timestamp
    assert assert_readable_run(folder) == [f for f in first_files if f.endswith(".pth")]
    restored = ToyNet()
    restored.load_state_dict(load_checkpoint(str(folder / "iter_8.pth"))["state_dict"])
    assert_same_weights(first_model, restored)
    assert read_last_checkpoint(str(work_dir)) == str(work_dir / "iter_8.pth")
    assert torch.equal(load_checkpoint(str(work_dir / "iter_8.pth"))["state_dict"][
        "body.0.weight"], second_model.body[0].weight)
    # A third run moves the second run's files into the second run's folder.
    fit(work_dir)
    assert assert_readable_run(work_dir / second.timestamp)
    assert assert_readable_run(folder) == [f for f in first_files if f.endswith(".pth")]


def test_second_fit_on_the_same_trainer_is_a_new_run(tmp_path):
    work_dir = tmp_path / "run"
    _, trainer = fit(work_dir)
    first_stamp = trainer.timestamp
    fit(work_dir, trainer=trainer)
    assert trainer.iter == 8
    assert trainer.timestamp != first_stamp
    assert assert_readable_run(work_dir / first_stamp)
    assert read_last_checkpoint(str(work_dir)) == str(work_dir / "iter_8.pth")


def test_resume_continues_the_run_in_place(tmp_path):
    work_dir = tmp_path / "run"
    fit(work_dir, max_iters=6)
    _, resumed = fit(work_dir, trainer=Trainer(
        max_iters=10, work_dir=str(work_dir), resume=True, val_interval=2,
        val_evaluator={"acc": accuracy()}, default_callbacks={**QUIET, "checkpoint": {
            "interval": 2, "by_epoch": False, "max_keep_ckpts": 2, "save_best": "acc"}}))
    assert resumed.iter == 10
    assert [f for f in top_level(work_dir) if f.startswith("iter_")] == [
        "iter_10.pth", "iter_8.pth"]  # the run's own rotation went on
    assert not [p for p in run_folders(work_dir) if list(p.glob("*.pth"))]


def test_resuming_another_runs_checkpoint_moves_the_current_one_aside(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    fit(first)
    fit(second)
    resumed = Trainer(max_iters=10, work_dir=str(second), resume=True,
                      load_from=str(first / "iter_6.pth"),
                      default_callbacks={**QUIET, "checkpoint": {"max_keep_ckpts": 1}})
    resumed.fit(ToyNet(), toy_loader(n=32))
    assert resumed.iter == 10
    assert (first / "iter_6.pth").exists() and (first / "iter_8.pth").exists()  # not rotated
    (moved,) = [p for p in run_folders(second) if list(p.glob("*.pth"))]
    assert assert_readable_run(moved)


def test_leftovers_of_killed_saves_are_removed_by_the_next_run(tmp_path):
    work_dir = tmp_path / "run"
    fit(work_dir, max_iters=4)
    (work_dir / "iter_6.pth.tmp-1a2b3c4d").write_bytes(b"half a checkpoint")
    (work_dir / "last_checkpoint.tmp-5e6f7a8b").write_text("half a pointer")
    trainer = Trainer(max_iters=6, work_dir=str(work_dir), resume=True, default_callbacks=QUIET)
    trainer.fit(ToyNet(), toy_loader(n=32))
    assert trainer.iter == 6
    assert not list(work_dir.rglob("*.tmp-*"))
    assert read_last_checkpoint(str(work_dir)) == str(work_dir / "iter_6.pth")


def test_memory_work_dir_rerun_and_leftovers():
    work_dir = "memory://rerun_workdir"
    fs = fsspec.filesystem("memory")
    fit(work_dir, max_iters=4)
    fs.pipe_file("/rerun_workdir/iter_5.pth.tmp-00000000", b"half")
    fit(work_dir, max_iters=4)
    names = [p.rsplit("/", 1)[-1] for p in fs.find("/rerun_workdir")]
    assert not [n for n in names if ".tmp-" in n]
    assert names.count("iter_4.pth") == 2  # the second run's and the first run's, moved
    assert read_last_checkpoint(work_dir) == f"{work_dir}/iter_4.pth"


def test_work_dir_that_is_a_file_is_refused_when_the_trainer_is_built(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("not a directory")
    with pytest.raises(NotADirectoryError, match=r"work_dir .*notes\.txt is a file"):
        Trainer(max_iters=2, work_dir=str(path))

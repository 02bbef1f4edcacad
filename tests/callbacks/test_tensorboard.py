"""TensorBoard event files, read back with tensorboard's own reader."""

from __future__ import annotations

import json
import subprocess
import sys

import fsspec
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from trainer.callbacks import LRMonitorCallback, TensorBoardCallback

from tests.conftest import ToyNet, accuracy, toy_loader
from trainer import Trainer, dist

QUIET = {"progress": None, "checkpoint": None}


def read_events(log_dir: str) -> EventAccumulator:
    events = EventAccumulator(log_dir)
    events.Reload()
    return events


def scalars(events: EventAccumulator, tag: str) -> list[tuple[int, float]]:
    return [(e.step, e.value) for e in events.Scalars(tag)]


def test_every_logged_scalar_is_in_the_event_files(work_dir):
    trainer = Trainer(max_epochs=2, work_dir=work_dir, log_interval=5,
                      val_evaluator={"acc": accuracy()},
                      optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1, momentum=0.9)),
                      callbacks=[TensorBoardCallback(), LRMonitorCallback()],
                      default_callbacks=QUIET)
    trainer.fit(ToyNet(), toy_loader(n=80), toy_loader(n=16))  # 10 iterations per epoch
    test = trainer.test(dataloader=toy_loader(n=24))

    events = read_events(f"{trainer.log_dir}/tensorboard")
    assert set(events.Tags()["scalars"]) == {
        "train/loss", "train/lr", "train/lr/pg0", "train/momentum/pg0", "train/time",
        "train/data_time", "train/memory", "train/iters_per_s", "train/samples_per_s",
        "train/flops", "val/acc", "test/acc"}
    # The same numbers as the logger's scalars.jsonl, at the logged iterations.
    with open(f"{trainer.log_dir}/scalars.jsonl") as f:
        records = [json.loads(line) for line in f]
    train = [r for r in records if r["mode"] == "train"]
    assert [step for step, _ in scalars(events, "train/loss")] == [5, 10, 15, 20]
    for tag in ("loss", "time", "data_time", "lr", "momentum/pg0"):
        assert scalars(events, f"train/{tag}") == [
            (r["iter"], pytest.approx(r[tag], rel=1e-6)) for r in train], tag
    assert scalars(events, "train/momentum/pg0")[0][1] == pytest.approx(0.9)
    # Validation metrics at step epoch (log_metric_by_epoch), the test metric at step iter.
    val = [r["val/acc"] for r in records if r["mode"] == "val"]
    assert scalars(events, "val/acc") == [(1, pytest.approx(val[0])), (2, pytest.approx(val[1]))]
    assert scalars(events, "test/acc") == [(20, pytest.approx(test["acc"]))]
    config = events.Tensors("config")[0]  # the run configuration, in the Text tab
    assert "| max_epochs | 2 |" in config.tensor_proto.string_val[0].decode()


def test_metrics_by_iteration_and_a_remote_work_dir(tmp_path):
    work_dir = "memory://tensorboard_test"
    trainer = Trainer(max_iters=6, val_interval=3, work_dir=work_dir, log_interval=3,
                      val_evaluator={"acc": accuracy()}, callbacks=[TensorBoardCallback()],
                      default_callbacks={**QUIET, "logger": {"log_metric_by_epoch": False}})
    trainer.fit(ToyNet(), toy_loader(n=16), toy_loader(n=8))
    fs, root = fsspec.core.url_to_fs(work_dir)
    (remote,) = fs.glob(f"{root}/*/tensorboard/events.out.tfevents.*")
    local = tmp_path / "tb"
    local.mkdir()
    (local / remote.rsplit("/", 1)[-1]).write_bytes(fs.cat_file(remote))
    events = read_events(str(local))
    assert [step for step, _ in scalars(events, "val/acc")] == [3, 6]
    assert [step for step, _ in scalars(events, "train/loss")] == [3, 6]


def test_log_dir_option_and_rank_zero_only(monkeypatch, tmp_path):
    log_dir = tmp_path / "tb"
    trainer = Trainer(max_iters=2, work_dir=str(tmp_path / "a"), log_interval=1,
                      callbacks=[dict(type="TensorBoardCallback", log_dir=str(log_dir))],
                      default_callbacks=QUIET)
    trainer.fit(ToyNet(), toy_loader(n=16))
    assert [s for s, _ in scalars(read_events(str(log_dir)), "train/loss")] == [1, 2]

    monkeypatch.setattr(dist, "get_rank", lambda: 1)
    other = tmp_path / "tb_rank1"
    trainer = Trainer(max_iters=2, work_dir=str(tmp_path / "b"), log_interval=1,
                      callbacks=[TensorBoardCallback(log_dir=str(other))],
                      default_callbacks=QUIET)
    trainer.fit(ToyNet(), toy_loader(n=16))
    assert not other.exists()


def test_needs_the_logger(work_dir):
    trainer = Trainer(max_iters=2, work_dir=work_dir, callbacks=[TensorBoardCallback()],
                      default_callbacks={**QUIET, "logger": None})
    with pytest.raises(ValueError, match="TensorBoardCallback writes what LoggerCallback logs"):
        trainer.fit(ToyNet(), toy_loader(n=16))


def test_bad_log_dir():
    with pytest.raises(TypeError, match="log_dir must be a path or URL string, got 3"):
        TensorBoardCallback(log_dir=3)


def test_importing_and_building_the_trainer_does_not_import_tensorboard():
    code = ("import sys, trainer, callbacks; "
            "callbacks.TensorBoardCallback(); trainer.Trainer(max_iters=1); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'tensorboard'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"

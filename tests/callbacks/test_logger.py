"""What the default logging writes: progress lines, scalars.jsonl, and nothing synced in between."""

from __future__ import annotations

import json

import fsspec
import pytest
import torch

from callbacks import Callback, LoggerCallback
from tests.conftest import ToyNet, accuracy, toy_loader
from trainer import Trainer


def read_jsonl(work_dir: str) -> list[dict]:
    fs, root = fsspec.core.url_to_fs(work_dir)
    (path,) = fs.glob(f"{root}/*/scalars.jsonl")
    return [json.loads(line) for line in fs.cat_file(path).decode().splitlines()]


def test_log_lines_and_scalars_file(capsys):
    work_dir = "memory://logger_test"
    trainer = Trainer(max_epochs=2, work_dir=work_dir, log_interval=5, val_evaluator=accuracy(),
                      param_scheduler=dict(type="LinearLR", start_factor=0.5, by_epoch=False,
                                           end=6),
                      default_callbacks={"progress": None})
    trainer.fit(ToyNet(), toy_loader(n=80), toy_loader(n=16))  # 10 iterations per epoch
    out = capsys.readouterr().out.splitlines()
    train_lines = [line for line in out if line.startswith("Epoch(train)")]
    assert [line.split("  ")[0] for line in train_lines] == [
        "Epoch(train) [1][ 5/10]", "Epoch(train) [1][10/10]",
        "Epoch(train) [2][ 5/10]", "Epoch(train) [2][10/10]"]
    for key in ("lr: ", "eta: ", "time: ", "data_time: ", "memory: ", "loss: "):
        assert all(key in line for line in train_lines), key
    assert [line.split("  ")[0] for line in out if "(val)" in line] == [
        "Epoch(val) [1]", "Epoch(val) [2]"]

    records = read_jsonl(work_dir)
    train = [r for r in records if r["mode"] == "train"]
    assert [r["iter"] for r in train] == [5, 10, 15, 20]
    # MMEngine's LinearLR reaches its end factor after end - begin - 1 = 5 steps.
    assert train[0]["lr"] == pytest.approx(0.1 * (0.5 + 0.5 * 4 / 5))  # lr of iteration 5
    assert train[-1]["lr"] == pytest.approx(0.1)
    val = [r for r in records if r["mode"] == "val"]
    assert [r["epoch"] for r in val] == [1, 2]
    assert 0 <= val[-1]["val/MulticlassAccuracy"] <= 1


def test_logged_loss_is_the_window_mean(capsys, work_dir):
    losses: list[float] = []

    class Keep(Callback):
        def after_train_iter(self, trainer, batch_idx, data_batch=None, outputs=None):
            losses.append(outputs["loss"].item())

    trainer = Trainer(max_iters=8, work_dir=work_dir, log_interval=8, callbacks=[Keep()],
                      default_callbacks={"progress": None, "logger": {"window_size": 4}})
    trainer.fit(ToyNet(), toy_loader())
    line = next(line for line in capsys.readouterr().out.splitlines()
                if line.startswith("Iter(train)"))
    assert line.startswith("Iter(train) [8/8]")
    logged = float(line.split("loss: ")[1].split()[0])
    assert logged == pytest.approx(sum(losses[-4:]) / 4, abs=1e-4)


def test_no_tensor_is_read_back_on_iterations_that_do_not_log(work_dir, monkeypatch):
    """Only logging iterations convert tensors to numbers (one batch per log line)."""
    calls = []
    original = torch.Tensor.tolist
    monkeypatch.setattr(torch.Tensor, "tolist", lambda t: calls.append(1) or original(t))
    trainer = Trainer(max_iters=40, work_dir=work_dir, log_interval=20,
                      default_callbacks={"progress": None, "checkpoint": None})
    trainer.fit(ToyNet(), toy_loader())
    assert 0 < len(calls) <= 2 * 6  # at most once per scalar key per log line


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"interval": 0}, "interval must be a positive int"),
    ({"window_size": -1}, "window_size must be a positive int"),
])
def test_bad_logger_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LoggerCallback(**kwargs)

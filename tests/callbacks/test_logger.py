"""What the default logging writes: progress lines, scalars.jsonl, and nothing synced in between."""

from __future__ import annotations

import json

import fsspec
import pytest
import torch
from trainer.callbacks import Callback, LoggerCallback

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


def train_lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith(("Epoch(train)", "Iter(train)"))]


def test_custom_statistics_per_key(capsys, work_dir):
    losses: list[float] = []

    class Keep(Callback):
        def after_train_iter(self, trainer, batch_idx, data_batch=None, outputs=None):
            losses.append(outputs["loss"].item())

    custom = [dict(data_src="loss", window_size="global", log_name="loss_global"),
              dict(data_src="loss", method_name="max", window_size="epoch", log_name="loss_max"),
              dict(data_src="loss", method_name="current")]  # replaces the windowed mean
    trainer = Trainer(max_epochs=2, work_dir=work_dir, log_interval=3, callbacks=[Keep()],
                      default_callbacks={"progress": None, "checkpoint": None,
                                         "logger": {"custom_cfg": custom, "window_size": 2}})
    trainer.fit(ToyNet(), toy_loader(n=40))  # 5 iterations per epoch: logs at 3 and 5
    records = [r for r in read_jsonl(work_dir) if r["mode"] == "train"]
    assert [r["iter"] for r in records] == [3, 5, 8, 10]
    logged_at = [2, 4, 7, 9]  # 0-based iterations that logged
    epoch_start = [0, 0, 5, 5]
    for record, i, start in zip(records, logged_at, epoch_start):
        assert record["loss"] == pytest.approx(losses[i])
        assert record["loss_global"] == pytest.approx(sum(losses[:i + 1]) / (i + 1))
        assert record["loss_max"] == pytest.approx(max(losses[start:i + 1]))
    line = train_lines(capsys.readouterr().out)[-1]
    assert f"loss_global: {records[-1]['loss_global']:.4f}" in line


def test_interval_counts_inside_the_epoch_and_ignore_last(capsys, tmp_path):
    def lines(**logger):
        trainer = Trainer(max_epochs=2, work_dir=str(tmp_path / str(len(logger))), log_interval=4,
                          default_callbacks={"progress": None, "checkpoint": None,
                                             "logger": logger})
        trainer.fit(ToyNet(), toy_loader(n=80))  # 10 iterations per epoch
        return [line.split("  ")[0] for line in train_lines(capsys.readouterr().out)]

    assert lines() == ["Epoch(train) [1][ 4/10]", "Epoch(train) [1][ 8/10]",
                       "Epoch(train) [1][10/10]", "Epoch(train) [2][ 4/10]",
                       "Epoch(train) [2][ 8/10]", "Epoch(train) [2][10/10]"]
    assert lines(ignore_last=True) == [
        "Epoch(train) [1][ 4/10]", "Epoch(train) [1][ 8/10]",
        "Epoch(train) [2][ 4/10]", "Epoch(train) [2][ 8/10]"]


def test_one_header_per_run_and_exp_name_every_interval_exp_name(capsys, work_dir):
    trainer = Trainer(max_epochs=2, work_dir=work_dir, log_interval=100,
                      default_callbacks={"progress": None, "checkpoint": None,
                                         "logger": {"interval_exp_name": 3}})
    trainer.fit(ToyNet(), toy_loader(n=32))  # 4 iterations per epoch
    out = capsys.readouterr().out.splitlines()
    exp = f"Exp name: work_{trainer.timestamp}"
    assert out[0] == (f"{exp}  (2 epochs of 4 iterations; checkpoints in {work_dir}, logs in "
                      f"{trainer.log_dir})")
    # Then iterations 3 and 6 only: nothing at the end of each epoch.
    assert [line for line in out[1:] if line.startswith("Exp name")] == [exp] * 2


def test_default_prints_the_name_once_without_a_doubled_timestamp(capsys, tmp_path):
    work_dir = str(tmp_path / "digits_20261201_195337")
    trainer = Trainer(max_epochs=3, work_dir=work_dir, log_interval=2,
                      default_callbacks={"progress": None, "checkpoint": None})
    trainer.fit(ToyNet(), toy_loader(n=32))
    names = [line for line in capsys.readouterr().out.splitlines() if "Exp name" in line]
    assert len(names) == 1 and names[0].startswith("Exp name: digits_20261201_195337  (3 epochs")


@pytest.mark.parametrize(("by_epoch", "steps"), [(True, [1, 2]), (False, [4, 8])])
def test_log_metric_by_epoch_sets_the_step_of_published_metrics(work_dir, by_epoch, steps):
    published: list[tuple[str, dict, int]] = []
    trainer = Trainer(max_epochs=2, work_dir=work_dir, val_evaluator={"acc": accuracy()},
                      log_interval=2, default_callbacks={
                          "progress": None, "checkpoint": None,
                          "logger": {"log_metric_by_epoch": by_epoch}})
    trainer.message_hub.subscribe(lambda mode, scalars, step: published.append(
        (mode, dict(scalars), step)))
    trainer.fit(ToyNet(), toy_loader(n=32), toy_loader(n=8))
    trainer.test(dataloader=toy_loader(n=8))
    val = [(step, set(scalars)) for mode, scalars, step in published if mode == "val"]
    assert val == [(steps[0], {"acc"}), (steps[1], {"acc"})]
    train = [(step, scalars) for mode, scalars, step in published if mode == "train"]
    assert [step for step, _ in train] == [2, 4, 6, 8]
    assert set(train[0][1]) >= {"loss", "lr", "time", "data_time", "memory"}
    assert [(step, set(s)) for mode, s, step in published if mode == "test"] == [(8, {"acc"})]


def test_history_buffer_statistics():
    from trainer.message_hub import HistoryBuffer

    buffer = HistoryBuffer(window=4)
    for value in (torch.tensor(1.0), 5.0, torch.tensor(3.0), 2.0, 4.0, 0.0):
        buffer.update(value)
    assert buffer.values() == [3.0, 2.0, 4.0, 0.0]  # only the last 4 are kept
    assert buffer.statistics("current") == 0.0
    assert buffer.statistics("mean", 2) == 2.0
    assert buffer.statistics("max", 3) == 4.0 and buffer.statistics("min") == 0.0
    assert buffer.statistics("mean", "global") == pytest.approx(15 / 6)  # all 6 values
    with pytest.raises(ValueError, match=r"statistics method must be one of .*'median'"):
        buffer.statistics("median")


@pytest.mark.parametrize(("custom_cfg", "error", "match"), [
    ("loss", TypeError, "custom_cfg must be a list of dicts, got str"),
    ([dict(method_name="mean")], ValueError, "needs data_src="),
    ([dict(data_src="loss", method_name="median")], ValueError, "method_name must be one of"),
    ([dict(data_src="loss", window_size=0)], ValueError, "window_size must be a positive int"),
    ([dict(data_src="loss"), dict(data_src="loss", method_name="max")], ValueError,
     "custom_cfg logs 'loss' twice: give each entry its own log_name"),
    ([dict(data_src="loss", window="global")], ValueError, r"unknown keys \['window'\]"),
])
def test_bad_custom_cfg(custom_cfg, error, match):
    with pytest.raises(error, match=match):
        LoggerCallback(custom_cfg=custom_cfg)


def test_bad_mean_pattern():
    with pytest.raises(ValueError, match="mean_pattern must be a regular expression"):
        LoggerCallback(mean_pattern="(loss")


def test_memory_is_the_whole_process_peak_also_when_another_thread_allocates():
    import resource
    import threading

    from trainer.callbacks.logger import peak_memory_mb

    def process_peak_mb() -> int:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 2**10

    before = peak_memory_mb(torch.device("cpu"))
    assert abs(before - process_peak_mb()) <= 1
    held = []  # more than the peak so far, so resident memory must pass it by 64 MB
    size = (before + 64) * 2**20 // 4
    worker = threading.Thread(target=lambda: held.append(torch.ones(size)))
    worker.start()
    worker.join()
    after = peak_memory_mb(torch.device("cpu"))
    assert after >= before + 64
    assert abs(after - process_peak_mb()) <= 1


def test_a_log_line_stands_on_its_own_line_with_and_without_an_open_bar(capsys):
    import sys

    from tqdm import tqdm

    from trainer.logger import write_line

    write_line("no bar")
    assert capsys.readouterr().out == "no bar\n"
    with tqdm(total=4, file=sys.stdout, ascii=True) as bar:
        bar.update(2)
        write_line("between")
    out = capsys.readouterr().out
    # tqdm clears the bar, the line follows, and the bar is drawn again after it.
    assert "\rbetween\n" in out
    assert out.index("between") < out.rindex("2/4")

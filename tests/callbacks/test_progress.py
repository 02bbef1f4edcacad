"""The progress bar in a terminal, in a log that is not a terminal, in a notebook, off rank 0."""

from __future__ import annotations

import io
import re
import sys

import pytest
import torch
from trainer.callbacks import Callback, ProgressBarCallback
from trainer.callbacks.progress import detect_mode

from tests.conftest import ToyNet, accuracy, toy_loader
from tests.test_docs import REPO
from tests.test_docs import kernel_manager_factory as notebook_kernels  # noqa: F401 (fixture)
from trainer import Trainer, dist

NO_FILES = {"checkpoint": None}


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_detect_mode_without_a_notebook():
    assert detect_mode(Terminal()) == "terminal"
    assert detect_mode(io.StringIO()) == "plain"
    assert detect_mode(object()) == "plain"


def test_plain_lines_when_output_is_not_a_terminal(capsys, work_dir):
    trainer = Trainer(max_epochs=3, work_dir=work_dir, log_interval=5, val_evaluator=accuracy(),
                      default_callbacks=NO_FILES)
    trainer.fit(ToyNet(), toy_loader(n=80), toy_loader(n=16))  # 10 train, 2 val batches
    captured = capsys.readouterr()
    err, log_lines = captured.err, captured.out.splitlines()
    assert "\r" not in err and "\x1b" not in err  # no redraws, no escape codes in a CI log
    bars = err.splitlines()
    # One line per epoch, none for validation (the logger prints its metrics).
    assert [line.split(" [")[0] for line in bars] == [f"Epoch {e}/3: 10/10" for e in (1, 2, 3)]
    assert all("[100%]" in line and "it/s" in line for line in bars)
    # The bar's loss is the log line's (smoothed the same way), and the validation shows.
    logged = next(re.search(r"loss: (\d\.\d{4})(?:  |$)", line) for line in log_lines
              if line.startswith("Epoch(train) [2][10/10]")).group(1)
    assert re.search(rf"loss={logged}, lr=1\.000e-01, val/MulticlassAccuracy=\d\.\d{{4}}$",
                     bars[1])
    assert "val/" not in bars[0]  # the first validation comes after the first epoch's bar


def test_plain_interval_and_iteration_based_bar(capsys, work_dir):
    trainer = Trainer(max_iters=12, work_dir=work_dir, log_interval=5, default_callbacks={
        **NO_FILES, "progress": {"plain_interval": 5}})
    trainer.fit(ToyNet(), toy_loader(n=16))
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(" [")[0] for line in lines] == ["Train: 5/12", "Train: 10/12",
                                                       "Train: 12/12"]
    assert "loss=" in lines[1]
    default = Trainer(max_iters=30, work_dir=work_dir + "2", default_callbacks=NO_FILES)
    default.fit(ToyNet(), toy_loader(n=16))
    assert len(capsys.readouterr().err.splitlines()) == 10  # about ten lines per run


class EveryIteration(ProgressBarCallback):
    """Overrides ``after_train_iter`` alone, so the list calls it on every iteration."""

    def after_train_iter(self, trainer, batch_idx, data_batch=None, outputs=None):
        super().after_train_iter(trainer, batch_idx, data_batch, outputs)


def plain_bar_lines(capsys, bar, length, work_dir, resume=False):
    """The counts of a plain bar's lines (``Train: 5/23`` ...), the times left out."""
    trainer = Trainer(**length, work_dir=work_dir, log_interval=4, resume=resume,
                      callbacks=[bar], default_callbacks={"progress": None})
    trainer.fit(ToyNet(), toy_loader(n=80))  # 10 batches an epoch
    return [line.split(" [")[0] for line in capsys.readouterr().err.splitlines()]


@pytest.mark.parametrize("length", [{"max_epochs": 3}, {"max_iters": 23}], ids=["epochs", "iters"])
@pytest.mark.parametrize("interval", [None, 3, 4])
def test_a_plain_bar_skips_iterations_without_changing_its_lines(capsys, tmp_path, length,
                                                                 interval):
    # The bar sees only the iterations on which it writes, and catches up from the loop's
    # count: the same lines, fresh and resumed, as a bar told of every iteration.
    seen = {}
    for name, cls in (("skipping", ProgressBarCallback), ("every", EveryIteration)):
        work_dir = str(tmp_path / name)
        short = {"max_epochs": 1} if "max_epochs" in length else {"max_iters": 7}
        first = plain_bar_lines(capsys, cls(mode="plain", plain_interval=interval), short,
                                work_dir)
        resumed = plain_bar_lines(capsys, cls(mode="plain", plain_interval=interval), length,
                                  work_dir, resume=True)
        seen[name] = first, resumed
    assert seen["skipping"] == seen["every"]
    first, resumed = seen["skipping"]
    if "max_epochs" in length:
        expected = [f"Epoch {e}/3: {n}/10" for e in (2, 3)
                    for n in (*range(interval or 10, 10, interval or 10), 10)]
        assert resumed == expected
    else:
        step = interval or 3  # about ten lines a run: every ceil(23 / 10)
        assert resumed == [f"Train: {n}/23" for n in (*range(step * (7 // step + 1), 23, step),
                                                      23)]


def test_a_failed_run_leaves_the_plain_bar_at_the_iterations_done(capsys, work_dir):
    class FailAt12(Callback):
        def before_train_iter(self, trainer, batch_idx, data_batch=None):
            if trainer.iter == 12:
                raise RuntimeError("the data ran dry")

    trainer = Trainer(max_iters=30, work_dir=work_dir, callbacks=[FailAt12()],
                      default_callbacks={**NO_FILES, "progress": {"mode": "plain",
                                                                  "plain_interval": 5}})
    with pytest.raises(RuntimeError, match="the data ran dry"):
        trainer.fit(ToyNet(), toy_loader(n=80))
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(" [")[0] for line in lines] == ["Train: 5/30", "Train: 10/30",
                                                       "Train: 12/30"]


def test_terminal_bar_with_log_lines_in_between(monkeypatch, work_dir):
    tty = Terminal()
    monkeypatch.setattr(sys, "stderr", tty)
    monkeypatch.setattr(sys, "stdout", tty)  # as in a terminal, both streams share the screen
    trainer = Trainer(max_iters=6, work_dir=work_dir, log_interval=3, val_interval=6,
                      val_evaluator=accuracy(), default_callbacks=NO_FILES)
    trainer.fit(ToyNet(), toy_loader(n=16), toy_loader(n=8))
    out = tty.getvalue()
    assert "\r" in out  # a redrawn bar
    out = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", out)  # cursor moves of the nested bar
    assert re.search(r"Train: 100%\|\S+\| 6/6 \[.*loss=\d\.\d{4}, lr=1\.000e-01, "
                     r"val/MulticlassAccuracy=\d\.\d{4}\]", out)
    # tqdm.write clears the bar first, so each log line stands on a line of its own.
    pieces = re.split(r"[\r\n]", out)
    assert sum(p.startswith("Iter(train) [") for p in pieces) == 2
    assert any(p.startswith("Iter(val) [6]") for p in pieces)


def test_no_sync_beyond_logging_iterations(monkeypatch, work_dir):
    synced_at: list[int] = []
    trainer = Trainer(max_iters=40, work_dir=work_dir, log_interval=20,
                      default_callbacks={**NO_FILES, "progress": {"mode": "plain"}})
    original = torch.Tensor.tolist
    monkeypatch.setattr(torch.Tensor, "tolist",
                        lambda t: synced_at.append(trainer.iter) or original(t))
    trainer.fit(ToyNet(), toy_loader())
    assert synced_at and set(synced_at) == {19, 39}


def test_off_on_ranks_other_than_zero(monkeypatch, capsys, work_dir):
    monkeypatch.setattr(dist, "get_rank", lambda: 1)
    trainer = Trainer(max_epochs=1, work_dir=work_dir, val_evaluator=accuracy(),
                      default_callbacks={**NO_FILES, "logger": None,
                                         "progress": {"mode": "terminal"}})
    assert trainer.rank == 1
    trainer.fit(ToyNet(), toy_loader(n=16), toy_loader(n=8))
    trainer.test(dataloader=toy_loader(n=8))
    assert capsys.readouterr().err == ""


NOTEBOOK_CELL = """
import sys
from trainer.callbacks.progress import detect_mode
from tests.conftest import ToyNet, toy_loader
from trainer import Trainer
print("mode:", detect_mode(sys.stderr))
trainer = Trainer(max_iters=4, work_dir=WORK_DIR, log_interval=2,
                  default_callbacks={"checkpoint": None})
trainer.fit(ToyNet(), toy_loader(n=16))
print("done at", trainer.iter)
"""


def test_in_a_notebook_kernel(tmp_path, request):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    make_kernel = request.getfixturevalue("notebook_kernels")  # from tests/test_docs.py

    code = NOTEBOOK_CELL.replace("WORK_DIR", repr(str(tmp_path / "work")))
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
    client = nbclient.NotebookClient(notebook, km=make_kernel(), timeout=60,
                                     resources={"metadata": {"path": str(REPO)}})
    client.execute()
    outputs = notebook.cells[0].outputs
    stdout = "".join(o.get("text", "") for o in outputs if o.get("name") == "stdout")
    stderr = "".join(o.get("text", "") for o in outputs if o.get("name") == "stderr")
    widgets = [o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.get(
        "data", {})]
    assert "mode: notebook" in stdout and "done at 4" in stdout
    assert "Iter(train) [4/4]" in stdout
    # A widget, or whole lines without ipywidgets (a redrawn text bar would leave fragments).
    assert widgets or ("Train: 4/4 [100%]" in stdout and "\r" not in stdout + stderr)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"mode": "fancy"}, r"mode must be one of \('auto', 'terminal', 'notebook', 'plain'\)"),
    ({"plain_interval": 2.5}, "plain_interval must be a positive int or None, got 2.5"),
])
def test_bad_progress_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ProgressBarCallback(**kwargs)

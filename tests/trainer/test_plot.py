"""``python -m trainer plot``: a run's curves, across resumes, in a PNG of the expected size."""

from __future__ import annotations

import struct
import subprocess
import sys

import pytest

from tests.conftest import ToyNet, accuracy, toy_loader
from trainer import Trainer
from trainer.cli import main
from trainer.plot import load_run, plot_run


def png_size(path) -> tuple[int, int]:
    with open(path, "rb") as f:
        header = f.read(24)
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", header[16:24])


def train(work_dir, max_iters, **kwargs) -> Trainer:
    trainer = Trainer(max_iters=max_iters, val_interval=4, log_interval=2, work_dir=work_dir,
                      seed=0, val_evaluator={"acc": accuracy()},
                      param_scheduler=dict(type="LinearLR", start_factor=0.1, by_epoch=False,
                                           end=8),
                      **{"default_callbacks": {"progress": None}, **kwargs})
    trainer.fit(ToyNet(), toy_loader(), toy_loader(n=24))
    return trainer


def test_curves_join_a_resumed_run_and_the_command_writes_the_png(work_dir, tmp_path, capsys):
    train(work_dir, 8)
    train(work_dir, 16, resume=True)
    records, starts = load_run(work_dir)
    train_iters = [r["iter"] for r in records if r["mode"] == "train"]
    assert train_iters == list(range(2, 17, 2))  # both parts, once each, in order
    assert [r["iter"] for r in records if r["mode"] == "val"] == [4, 8, 12, 16]
    assert starts in ([], [10])  # [] when both parts shared one log folder (same second)

    out = tmp_path / "curves.png"
    capsys.readouterr()
    assert main(["plot", work_dir, "-o", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert png_size(out) == (1500, 450)


def test_a_fresh_rerun_is_plotted_alone(work_dir):
    no_checkpoints = {"progress": None, "checkpoint": None}
    train(work_dir, 8, default_callbacks=no_checkpoints)
    train(work_dir, 4, default_callbacks=no_checkpoints)  # not resumed: another run
    records, starts = load_run(work_dir)
    assert [r["iter"] for r in records if r["mode"] == "train"] == [2, 4] and starts == []
    assert png_size(plot_run(work_dir)) == (1500, 450)  # default: <work_dir>/curves.png


def test_module_command_and_a_folder_without_runs(tmp_path, work_dir):
    train(work_dir, 4)
    done = subprocess.run([sys.executable, "-m", "trainer", "plot", work_dir],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert png_size(f"{work_dir}/curves.png") == (1500, 450)
    empty = subprocess.run([sys.executable, "-m", "trainer", "plot", str(tmp_path / "none")],
                           capture_output=True, text=True, timeout=120)
    assert empty.returncode == 2
    assert "error: no scalars.jsonl under" in empty.stderr


def test_plot_a_remote_work_dir():
    work_dir = "memory://plot_test"
    train(work_dir, 4)
    path = plot_run(work_dir)
    import fsspec

    with fsspec.open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(FileNotFoundError, match=r"no scalars\.jsonl under memory://nothing_here"):
        plot_run("memory://nothing_here")

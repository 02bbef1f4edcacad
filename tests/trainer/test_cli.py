"""``python -m trainer``: train, test, migrate and print-config, as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from trainer.cli import _amp_options, main
from trainer.config.load import load_config

REPO = Path(__file__).resolve().parents[2]
CONFIG = """\
model = dict(type='tests.conftest.ToyNet')
train_dataloader = dict(
    dataset=dict(type='tests.conftest.toy_dataset', n=48),
    batch_size=8, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=True))
test_dataloader = dict(
    dataset=dict(type='tests.conftest.toy_dataset', n=24, seed=5),
    batch_size=8, sampler=dict(type='DefaultSampler', shuffle=False))
test_cfg = dict()
test_evaluator = dict(type='Accuracy', task='multiclass', num_classes=3)
train_cfg = dict(by_epoch=True, max_epochs=2)
optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.1))
default_hooks = dict(progress=None, logger=dict(type='LoggerHook', interval=3))
randomness = dict(seed=0)
"""


@pytest.fixture
def config(tmp_path) -> Path:
    path = tmp_path / "toy.py"
    path.write_text(CONFIG)
    return path


def run_main(*argv) -> int:
    return main([str(a) for a in argv])


def test_help_a_new_user_can_follow(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    for expected in ("train", "test", "migrate", "print-config", "examples:",
                     "torchrun --nproc_per_node=2 -m trainer train", "docs/config.md"):
        assert expected in text
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    for expected in ("--work-dir", "--resume [CHECKPOINT]", "--amp", "--cfg-options",
                     "--launcher {none,pytorch}", "optim_wrapper.optimizer.lr=0.01"):
        assert expected in text
    with pytest.raises(SystemExit):
        main(["test", "--help"])
    assert "CONFIG CHECKPOINT" in capsys.readouterr().out


def test_train_runs_a_config_end_to_end_as_a_command(config, tmp_path):
    work_dir = tmp_path / "work"
    result = subprocess.run(
        [sys.executable, "-m", "trainer", "train", str(config), "--work-dir", str(work_dir),
         "--cfg-options", "train_cfg.max_epochs=3", "optim_wrapper.optimizer.lr=0.05"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
        env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr
    assert "trained to epoch 3, iteration 18" in result.stderr
    assert sorted(p.name for p in work_dir.glob("*.pth")) == [
        "epoch_1.pth", "epoch_2.pth", "epoch_3.pth"]
    meta = torch.load(work_dir / "epoch_3.pth", weights_only=True)["meta"]
    assert (meta["epoch"], meta["iter"]) == (3, 18)


def test_test_prints_the_metrics_of_a_checkpoint(config, tmp_path, capsys):
    work_dir = tmp_path / "work"
    assert run_main("train", config, "--work-dir", work_dir) == 0
    capsys.readouterr()
    assert run_main("test", config, work_dir / "epoch_2.pth", "--work-dir", work_dir) == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert 0.5 < metrics["MulticlassAccuracy"] <= 1.0


def test_resume_continues_from_the_latest_or_a_given_checkpoint(config, tmp_path):
    work_dir = tmp_path / "work"
    assert run_main("train", config, "--work-dir", work_dir) == 0
    assert run_main("train", config, "--work-dir", work_dir, "--resume",
                    "--cfg-options", "train_cfg.max_epochs=4") == 0
    meta = torch.load(work_dir / "epoch_4.pth", weights_only=True)["meta"]
    assert (meta["epoch"], meta["iter"]) == (4, 24)
    other = tmp_path / "other"
    assert run_main("train", config, "--work-dir", other,
                    "--resume", work_dir / "epoch_1.pth") == 0
    assert sorted(p.name for p in other.glob("*.pth")) == ["epoch_2.pth"]


def test_amp_switches_every_optimizer_wrapper(config, tmp_path):
    single = load_config(config)
    assert _amp_options(single) == {"optim_wrapper.type": "AmpOptimWrapper",
                                    "optim_wrapper.loss_scale": "dynamic"}
    multi = {"optim_wrapper": {"gen": {"optimizer": {}}, "dis": {"optimizer": {}}}}
    assert _amp_options(multi) == {
        "optim_wrapper.gen.type": "AmpOptimWrapper", "optim_wrapper.gen.loss_scale": "dynamic",
        "optim_wrapper.dis.type": "AmpOptimWrapper", "optim_wrapper.dis.loss_scale": "dynamic"}
    work_dir = tmp_path / "work"
    assert run_main("train", config, "--work-dir", work_dir, "--amp",
                    "--cfg-options", "train_cfg.max_epochs=1") == 0
    state = torch.load(work_dir / "epoch_1.pth", weights_only=True)["optimizer"]
    assert "loss_scaler" in state  # saved by AmpOptimWrapper only


@pytest.mark.parametrize(("argv", "message"), [
    (["--cfg-options", "lr"], "takes KEY=VALUE pairs"),
    (["--cfg-options", "optim_wraper.optimizer.lr=0.1"], "did you mean 'optim_wrapper'"),
    (["--cfg-options", "model.type=tests.conftest.ToyNett"], "closest: 'ToyNet'"),
    (["--launcher", "pytorch"], "needs processes started by torchrun"),
    (["--cfg-options", "train_cfg=None"], "has no train_cfg, so there is nothing to train"),
])
def test_config_mistakes_end_in_one_line(config, tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.delenv("RANK", raising=False)
    assert run_main("train", config, "--work-dir", tmp_path / "w", *argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and message in err[-1]
    assert not any("Traceback" in line for line in err)


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert not any("Traceback" in line for line in err)
    assert err[-1].startswith("error: ") and err[-1].endswith("(--debug shows the traceback)")
    return err[-1]


def test_test_with_a_missing_checkpoint_is_one_line_and_exit_2(config, tmp_path, capsys):
    missing = tmp_path / "nope.pth"
    assert run_main("test", config, missing, "--work-dir", tmp_path / "w") == 2
    assert str(missing) in one_error_line(capsys)
    with pytest.raises(FileNotFoundError):  # --debug, before or after the command, re-raises
        run_main("--debug", "test", config, missing, "--work-dir", tmp_path / "w")
    with pytest.raises(FileNotFoundError):
        run_main("test", config, missing, "--work-dir", tmp_path / "w", "--debug")


def test_a_mistake_found_by_the_sanity_pass_is_one_line(config, tmp_path, capsys):
    config.write_text(CONFIG + "val_dataloader = test_dataloader\nval_cfg = dict()\n"
                      "val_evaluator = test_evaluator\n"
                      "default_hooks = dict(progress=None, checkpoint=dict(type='CheckpointHook', "
                      "save_best='acc'))\n")
    assert run_main("train", config, "--work-dir", tmp_path / "w") == 2
    assert "monitors 'acc', but validation returns ['MulticlassAccuracy']" in one_error_line(
        capsys)
    assert not list((tmp_path / "w").glob("*.pth"))


def test_a_missing_config_file(tmp_path, capsys):
    assert run_main("train", tmp_path / "nope.py") == 2
    assert "nope.py does not exist" in capsys.readouterr().err


def test_migrate_prints_or_writes_the_new_config(tmp_path, capsys):
    old = Path(__file__).parent / "config" / "mmcv_configs" / "detection.py"
    assert run_main("migrate", old) == 0
    text = capsys.readouterr().out
    assert "param_scheduler = [" in text and "# NOTE: evaluation.metric='bbox'" in text
    out = tmp_path / "new.py"
    assert run_main("migrate", old, "-o", out, "--epoch-length", 12) == 0
    assert out.read_text() == text
    assert run_main("migrate", tmp_path / "nope.py") == 2
    assert "does not exist" in capsys.readouterr().err


def test_print_config_shows_the_resolved_config(config, capsys):
    assert run_main("print-config", config, "--cfg-options", "train_cfg.max_epochs=7",
                    "optim_wrapper.optimizer.lr=0.3") == 0
    text = capsys.readouterr().out
    assert "train_cfg = dict(by_epoch=True, max_epochs=7)" in text
    assert "lr=0.3" in text


def test_console_script_entry_point():
    text = (REPO / "pyproject.toml").read_text()
    section = text.split("[project.scripts]\n", 1)[1].split("\n[", 1)[0]
    assert 'trainer = "trainer.cli:main"' in section.splitlines()

"""validate/test/predict need no run length; ckpt_path="best"/"last" resolve from the files."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from trainer.callbacks import CheckpointCallback

from tests.conftest import ToyNet, accuracy, toy_loader
from trainer import Trainer

REPO = Path(__file__).resolve().parents[2]
QUIET = {"progress": None, "logger": None}


def test_a_fresh_trainer_validates_tests_and_predicts_without_max(work_dir):
    trainer = Trainer(work_dir=work_dir, val_evaluator={"acc": accuracy()},
                      default_callbacks=QUIET)
    model = ToyNet()
    assert set(trainer.validate(model, toy_loader(n=16))) == {"acc"}
    assert set(trainer.test(dataloader=toy_loader(n=16))) == {"acc"}
    assert len(trainer.predict(dataloader=toy_loader(n=16))) == 2


def test_fit_needs_a_run_length_before_anything_runs(work_dir):
    with pytest.raises(ValueError, match=r"fit\(\) needs exactly one of max_epochs=.*validate\(\), "
                                         r"test\(\) and predict\(\) need neither"):
        Trainer(work_dir=work_dir, default_callbacks=QUIET).fit(ToyNet(), toy_loader())
    assert not Path(work_dir).exists()


def fit_with_best(work_dir):
    trainer = Trainer(max_epochs=4, work_dir=work_dir, seed=0, val_evaluator={"acc": accuracy()},
                      default_callbacks={**QUIET, "checkpoint": {"save_best": "acc"}})
    trainer.fit(ToyNet(), toy_loader(shuffle=True), toy_loader(n=48, seed=1))
    return trainer


@pytest.mark.slow  # a fresh interpreter imports torch
def test_best_and_last_resolve_in_a_new_process(work_dir):
    trainer = fit_with_best(work_dir)
    (checkpointer,) = trainer.callbacks.get(CheckpointCallback)
    pointer = Path(work_dir, "best_checkpoint").read_text()
    assert Path(pointer).name.startswith("best_acc_epoch_") and Path(pointer).exists()
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(REPO)!r})
        from tests.conftest import ToyNet, accuracy, toy_loader
        from trainer import Trainer
        trainer = Trainer(work_dir={work_dir!r}, val_evaluator={{"acc": accuracy()}},
                          default_callbacks={{"progress": None, "logger": None}})
        print(trainer.resolve_ckpt_path("best"), trainer.resolve_ckpt_path("last"))
        print(trainer.test(ToyNet(), toy_loader(n=48, seed=1), ckpt_path="best")["acc"])
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True, env={"OMP_NUM_THREADS": "1", "PATH": ""}).stdout.split()
    assert out[0] == pointer and out[1] == str(Path(work_dir, "epoch_4.pth"))
    assert float(out[2]) == pytest.approx(checkpointer.best_scores["acc"])  # the best weights


def test_best_falls_back_to_the_file_names(work_dir):
    fit_with_best(work_dir)
    best = Path(Path(work_dir, "best_checkpoint").read_text())
    Path(work_dir, "best_checkpoint").unlink()
    assert Trainer(work_dir=work_dir).resolve_ckpt_path("best") == str(best)


def test_best_without_any_best_file_says_how_to_get_one(work_dir):
    Trainer(max_epochs=1, work_dir=work_dir, default_callbacks=QUIET).fit(ToyNet(), toy_loader())
    with pytest.raises(ValueError, match=r"holds no best checkpoint \(no best_checkpoint pointer, "
                                         r"no best_\*\.pth\).*save_best"):
        Trainer(work_dir=work_dir).test(ToyNet(), toy_loader(), ckpt_path="best")


def test_fit_returns_none_so_a_notebook_cell_shows_nothing(work_dir):
    model = ToyNet()
    before = model.body[0].weight.clone()
    assert Trainer(max_iters=2, work_dir=work_dir, default_callbacks=QUIET).fit(
        model, toy_loader(n=16)) is None
    assert not model.body[0].weight.equal(before)  # the caller's model holds the weights

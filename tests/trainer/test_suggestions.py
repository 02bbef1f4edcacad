"""Typos get "did you mean", Lightning's keywords get their spelling here, from one table."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from trainer import Trainer
from trainer.suggestions import LIGHTNING_KEYWORDS, closest, lightning_table

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"max_iter": 100}, r"unexpected keyword argument 'max_iter'\. Did you mean 'max_iters'\?"),
    ({"val_intreval": 2}, r"Did you mean 'val_interval'\?"),
    ({"gpus": 2}, r"takes no keyword 'gpus' \(that is Lightning's\); here write devices=2, "
                  r"accelerator='cuda'"),
    ({"gradient_clip_val": 1.0}, r"here write optim_wrapper=dict\(optimizer=\.\.\., "
                                 r"clip_grad=dict\(max_norm=1\.0\)\)"),
    ({"accumulate_grad_batches": 4}, r"optim_wrapper=dict\(optimizer=\.\.\., "
                                     r"accumulative_counts=4\)"),
    ({"check_val_every_n_epoch": 2}, r"here write val_interval=2 \(with max_epochs=\)"),
    ({"max_steps": 500}, r"here write max_iters=500"),
])
def test_unknown_keywords_say_what_to_write(kwargs, match):
    with pytest.raises(TypeError, match=match):
        Trainer(max_epochs=1, **kwargs)


def test_lightning_precision_values_get_this_spelling():
    with pytest.raises(ValueError, match=r"got '16' \(that is Lightning's spelling; write "
                                         r"precision='16-mixed'\)"):
        Trainer(max_epochs=1, precision=16)
    with pytest.raises(ValueError, match=r"write precision='bf16-mixed'"):
        Trainer(max_epochs=1, precision="bf16")


def test_gpu_is_accepted_as_cuda():
    if torch.cuda.is_available():
        assert Trainer(max_epochs=1, accelerator="gpu").accelerator == "cuda"
    else:  # accepted as a name: the refusal is about the machine, not the spelling
        with pytest.raises(ValueError, match="accelerator='cuda' but no CUDA device"):
            Trainer(max_epochs=1, accelerator="gpu")


def test_closest_names():
    assert closest("acc", ["loss", "accuracy"]) == "accuracy"
    assert closest("val_acc", ["accuracy"]) == "accuracy"
    assert closest("val/los", ["loss"]) == "loss"
    assert closest("zzz", ["loss"]) is None


def test_the_migration_guide_shows_the_code_table():
    text = (REPO / "docs" / "migration.md").read_text(encoding="utf-8")
    assert lightning_table() in text
    assert all(f"`{name}=" in text for name in LIGHTNING_KEYWORDS)

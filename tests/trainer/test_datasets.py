"""``trainer.datasets.Digits``: the shipped data set, by name from a config as docs/config.md shows."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from trainer import Trainer
from trainer.datasets import Digits, digits_splits

REPO = Path(__file__).resolve().parents[2]


def test_splits_are_disjoint_and_match_digits_splits():
    parts = {split: Digits(split=split) for split in ("train", "val", "test")}
    assert [len(parts[s]) for s in ("train", "val", "test")] == [1259, 269, 269]
    image, label = parts["val"][3]
    assert image.shape == (1, 8, 8) and image.dtype == torch.float32 and 0 <= label < 10
    val_set = digits_splits()[1]
    assert torch.equal(val_set[3][0], image) and int(val_set[3][1]) == int(label)
    seen = [{tuple(x.flatten().tolist()) for x in parts[s].images} for s in parts]
    assert sum(len(s) for s in seen) >= len(set().union(*seen)) > 1700  # (duplicates exist)
    with pytest.raises(ValueError, match=r"Digits split must be one of \('train', 'val', 'test'\)"):
        Digits(split="validation")


def docs_config() -> str:
    """The ``configs/digits.py`` example of docs/config.md."""
    text = (REPO / "docs" / "config.md").read_text(encoding="utf-8")
    return re.search(r"```python\n(# configs/digits\.py\n.*?)```", text, re.DOTALL).group(1)


def test_the_config_example_of_the_docs_trains(tmp_path):
    source = docs_config()
    assert 'type="trainer.datasets.Digits", split="train"' in source
    path = tmp_path / "digits.py"
    path.write_text(source)
    trainer = Trainer.from_config(str(path), {
        "train_cfg.max_epochs": 2, "work_dir": str(tmp_path / "work"),
        "train_dataloader.num_workers": 0, "train_dataloader.persistent_workers": False,
        "default_hooks.progress": None})
    trainer.fit()
    assert (trainer.epoch, trainer.iter) == (2, 80)
    assert trainer.test(ckpt_path="best")["MulticlassAccuracy"] > 0.8

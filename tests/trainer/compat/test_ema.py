"""EMA the MMEngine way: subclasses that call EMAHook's methods, and checkpoint conversion."""

from __future__ import annotations

import pytest
import torch

from tests.conftest import ToyNet, accuracy, toy_loader
from trainer import Trainer
from trainer.checkpoint.io import load_checkpoint
from trainer.cli import main
from trainer.compat.ema import convert_ema_checkpoint
from trainer.compat.mmengine import EMAHook, Hook


class SwapOnlyForValidation(EMAHook):
    """As OpenMMLab subclasses do: own hooks, no super(), EMAHook's helper methods."""

    def before_val_epoch(self, runner) -> None:
        self._swap_ema_parameters()

    def after_val_epoch(self, runner, metrics=None) -> None:
        self._swap_ema_parameters()

    def before_train(self, runner) -> None:  # skips EMAHook's checks; averaging still works
        assert self.src_model is runner.model


class WeightsInValidation(Hook):
    def __init__(self):
        self.seen = []

    def before_val_iter(self, runner, batch_idx, data_batch=None):
        if batch_idx == 0:
            self.seen.append({k: v.clone() for k, v in runner.model.state_dict().items()})


def fit(work_dir, callbacks, max_epochs=2):
    torch.manual_seed(0)
    model = ToyNet()
    trainer = Trainer(max_epochs=max_epochs, val_interval=max_epochs, work_dir=work_dir,
                      callbacks=callbacks, val_evaluator=accuracy(),
                      default_callbacks={"progress": None, "logger": None})
    trainer.fit(model, toy_loader(), toy_loader(n=16))
    return trainer, model


def test_subclass_calling_swap_ema_parameters_validates_the_average(tmp_path):
    ema, record = SwapOnlyForValidation(momentum=0.1), WeightsInValidation()
    trainer, model = fit(str(tmp_path / "w"), [ema, record])
    assert ema.steps == trainer.iter == 24
    average = ema.ema_model.state_dict()
    assert len(record.seen) == 1
    for key, weights in record.seen[0].items():
        assert torch.equal(weights, average[key])
        if weights.is_floating_point():
            assert not torch.equal(weights, model.state_dict()[key])  # swapped back after


def test_convert_ema_to_mmengine_layout_and_back(tmp_path, capsys):
    ema = EMAHook(momentum=0.1)
    trainer, _ = fit(str(tmp_path / "w"), [ema])
    src = f"{trainer.work_dir}/epoch_2.pth"
    ours = load_checkpoint(src)
    dst = str(tmp_path / "mmengine.pth")
    assert main(["convert-ema", src, dst, "--to", "mmengine"]) == 0
    assert "(trainer layout)" in capsys.readouterr().err
    theirs = load_checkpoint(dst)
    assert set(theirs["state_dict"]) == set(ours["state_dict"])
    for key, average in ours["ema_state_dict"].items():
        assert torch.equal(theirs["state_dict"][key], average)
        assert torch.equal(theirs["ema_state_dict"][f"module.{key}"], ours["state_dict"][key])
    assert int(theirs["ema_state_dict"]["steps"]) == 24
    assert theirs["meta"] == ours["meta"]

    back = str(tmp_path / "back.pth")
    assert main(["convert-ema", dst, back, "--to", "trainer"]) == 0
    again = load_checkpoint(back)
    for part in ("state_dict", "ema_state_dict"):
        assert again[part].keys() == ours[part].keys()
        assert all(torch.equal(again[part][k], ours[part][k]) for k in ours[part])
    assert again["callbacks"]["EMACallback"]["steps"] == 24


def test_swap_ema_state_dict_is_its_own_inverse():
    ours = {"state_dict": {"w": torch.ones(2)}, "ema_state_dict": {"w": torch.zeros(2)}}
    checkpoint = dict(ours)
    EMAHook._swap_ema_state_dict(checkpoint)
    assert torch.equal(checkpoint["state_dict"]["w"], torch.zeros(2))
    EMAHook._swap_ema_state_dict(checkpoint)
    assert torch.equal(checkpoint["state_dict"]["w"], torch.ones(2))
    assert torch.equal(checkpoint["ema_state_dict"]["w"], torch.zeros(2))


def test_convert_ema_refuses_what_it_cannot_convert(tmp_path, capsys):
    with pytest.raises(ValueError, match="needs both 'state_dict' and 'ema_state_dict'"):
        convert_ema_checkpoint({"state_dict": {}}, to="mmengine")
    with pytest.raises(ValueError, match="matches neither layout"):
        convert_ema_checkpoint({"state_dict": {"w": 1}, "ema_state_dict": {"v": 1}}, "trainer")
    with pytest.raises(ValueError, match=r"to must be one of \('mmengine', 'trainer'\)"):
        convert_ema_checkpoint({"state_dict": {}, "ema_state_dict": {}}, to="torch")
    path = str(tmp_path / "plain.pth")
    torch.save({"state_dict": {"w": torch.ones(1)}}, path)
    assert main(["convert-ema", path, str(tmp_path / "out.pth")]) == 2
    assert "has no EMA weights to convert" in capsys.readouterr().err

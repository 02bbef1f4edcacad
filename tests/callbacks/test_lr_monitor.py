"""LRMonitorCallback: the learning rate and momentum of every parameter group."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn
from trainer.callbacks import LRMonitorCallback

from tests.conftest import ToyNet, toy_loader
from trainer import OptimWrapper, OptimWrapperDict, Trainer

QUIET = {"progress": None, "checkpoint": None}


def two_groups(model):
    first, last = model.body[0], model.body[3]
    return torch.optim.SGD([
        {"params": first.parameters(), "lr": 0.1, "momentum": 0.9, "weight_decay": 1e-4},
        {"params": last.parameters(), "lr": 0.01},
    ], lr=0.05, momentum=0.5)


def test_every_group_every_iteration(capsys, work_dir):
    model = ToyNet()
    trainer = Trainer(
        max_iters=4, work_dir=work_dir, log_interval=2, optim_wrapper=two_groups(model),
        param_scheduler=dict(type="StepLR", step_size=1, gamma=0.5, by_epoch=False),
        callbacks=[dict(type="LRMonitorCallback", log_weight_decay=True)],
        default_callbacks=QUIET)
    trainer.fit(model, toy_loader(n=32))
    hub = trainer.message_hub
    # The values each iteration trained with: the scheduler halves them after every iteration.
    assert list(hub.get_scalar("train/lr/pg0").values()) == pytest.approx(
        [0.1, 0.05, 0.025, 0.0125])
    assert list(hub.get_scalar("train/lr/pg1").values()) == pytest.approx(
        [0.01, 0.005, 0.0025, 0.00125])
    assert hub.get_scalar("train/momentum/pg0").current() == 0.9
    assert hub.get_scalar("train/momentum/pg1").current() == 0.5
    assert hub.get_scalar("train/weight_decay/pg0").current() == pytest.approx(1e-4)
    assert hub.get_scalar("train/weight_decay/pg1").current() == 0.0
    line = next(line for line in capsys.readouterr().out.splitlines()
                if line.startswith("Iter(train) [4/4]"))
    for shown in ("lr/pg0: 1.2500e-02", "lr/pg1: 1.2500e-03", "momentum/pg0: 9.0000e-01",
                  "weight_decay/pg0: 1.0000e-04"):
        assert f"  {shown}  " in line, shown
    with open(f"{trainer.log_dir}/scalars.jsonl") as f:
        last = [json.loads(line) for line in f][-1]
    assert last["lr/pg1"] == pytest.approx(0.00125) and last["momentum/pg1"] == 0.5


class TwoOptimizers(ToyNet):
    def train_step(self, data, optim_wrapper):
        x, y = data
        loss = nn.functional.cross_entropy(self(x), y)
        optim_wrapper["head"].update_params(loss)
        return {"loss": loss.detach()}


def test_adam_betas_and_several_optimizers(work_dir):
    model = TwoOptimizers()
    wrappers = OptimWrapperDict(
        body=OptimWrapper(torch.optim.Adam(model.body[0].parameters(), lr=1e-3,
                                           betas=(0.8, 0.99))),
        head=OptimWrapper(torch.optim.SGD(model.body[3].parameters(), lr=0.1)))
    trainer = Trainer(max_iters=2, work_dir=work_dir, optim_wrapper=wrappers,
                      callbacks=[LRMonitorCallback(log_momentum=True)], default_callbacks=QUIET)
    trainer.fit(model, toy_loader(n=16))
    assert trainer.message_hub.latest("train/body.") == {  # with RuntimeInfoCallback's lr
        "train/body.lr": 1e-3, "train/body.lr/pg0": 1e-3, "train/body.momentum/pg0": 0.8}
    assert trainer.message_hub.latest("train/head.") == {
        "train/head.lr": 0.1, "train/head.lr/pg0": 0.1, "train/head.momentum/pg0": 0.0}


def test_momentum_can_be_left_out(work_dir):
    trainer = Trainer(max_iters=1, work_dir=work_dir, callbacks=[
        LRMonitorCallback(log_momentum=False)], default_callbacks=QUIET)
    trainer.fit(ToyNet(), toy_loader(n=8))
    assert not [k for k in trainer.message_hub.scalars if "momentum" in k]

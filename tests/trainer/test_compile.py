"""``Trainer(compile=...)``: the same losses as eager, plain checkpoint keys, clear errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tests.conftest import ToyNet, toy_loader
from trainer import BaseModel, Trainer
from trainer.checkpoint.io import load_checkpoint
from trainer.compile import repeated_blocks

# Compiled graphs may reorder float reductions, so losses agree closely, not bit for bit. The CPU
# test traces with dynamo and AOT autograd ("aot_eager") but skips inductor's C++ code generation,
# which takes minutes on a small shared machine.
LOSS_TOLERANCE = dict(rtol=1e-4, atol=1e-5)
BACKEND = "aot_eager"


class BlockNet(ToyNet):
    """ToyNet with a stack of repeated blocks, for regional compiling."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(8, 16), nn.Sequential(
            *(nn.Sequential(nn.Linear(16, 16), nn.Tanh()) for _ in range(3))), nn.Linear(16, 3))




def train(tmp_path, name, compile, model_cls=ToyNet):
    torch.manual_seed(0)
    model = model_cls()
    trainer = Trainer(max_iters=12, work_dir=str(tmp_path / name), seed=0, log_interval=1,
                      compile=compile, default_callbacks={"progress": None})
    trainer.fit(model, toy_loader(n=48, shuffle=True))
    losses = trainer.message_hub.get_scalar("train/loss").values()
    return model, trainer, losses


@pytest.mark.slow
@pytest.mark.parametrize("regional", [False, True])
def test_a_compiled_run_gives_the_eager_losses_and_plain_checkpoint_keys(tmp_path, regional):
    model_cls = BlockNet if regional else ToyNet
    eager, _, eager_losses = train(tmp_path, "eager", False, model_cls)
    compiled, trainer, losses = train(
        tmp_path, "compiled", dict(backend=BACKEND, dynamic=False, regional=regional), model_cls)
    assert len(losses) == len(eager_losses) == 12
    torch.testing.assert_close(torch.tensor(losses), torch.tensor(eager_losses),
                               **LOSS_TOLERANCE)
    compiled_parts = [compiled.body[1][0], compiled.body[1][2]] if regional else [compiled]
    assert all(m._compiled_call_impl is not None for m in compiled_parts)
    assert (compiled._compiled_call_impl is None) == regional
    ckpt = load_checkpoint(trainer.resolve_ckpt_path("last"))
    assert list(ckpt["state_dict"]) == list(eager.state_dict())  # no _orig_mod. prefix
    fresh = model_cls()
    fresh.load_state_dict(ckpt["state_dict"])  # an uncompiled model loads it
    torch.testing.assert_close(fresh.state_dict(), compiled.state_dict())


class Stack(BaseModel):
    def __init__(self):
        super().__init__()
        self.stem = nn.Linear(4, 8)
        self.layers = nn.ModuleList(nn.Sequential(nn.Linear(8, 8), nn.ReLU()) for _ in range(3))
        self.head = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))  # mixed: not one


def test_regional_compiling_finds_the_outermost_repeated_blocks():
    model = Stack()
    assert repeated_blocks(model) == list(model.layers)
    assert repeated_blocks(nn.Linear(2, 2)) == []


def test_regional_compiling_without_repeated_blocks_compiles_the_whole_model():
    from trainer.compile import compile_model

    model = ToyNet()
    with pytest.warns(UserWarning, match="ToyNet has no repeated blocks"):
        compile_model(model, {"regional": True, "backend": BACKEND})
    assert model._compiled_call_impl is not None


@pytest.mark.parametrize(("value", "error", "match"), [
    ("yes", TypeError, r"compile must be True, False or a dict, got 'yes'"),
    (dict(mode="fastest"), ValueError, r"compile mode must be one of \[.*'default'.*\], got"),
    (dict(backend="inductor", full_graph=True), ValueError,
     r"compile has unknown keys \['full_graph'\]; accepted: \['mode', 'fullgraph'"),
    (dict(regional="blocks"), TypeError, r"compile regional must be True or False"),
    (dict(dynamic="auto"), TypeError, r"compile dynamic must be True, False or None"),
])
def test_bad_compile_values_are_refused_when_the_trainer_is_built(value, error, match):
    with pytest.raises(error, match=match):
        Trainer(max_iters=1, compile=value)


def test_a_config_compile_field_reaches_the_trainer(tmp_path):
    cfg = dict(model=dict(type=ToyNet), work_dir=str(tmp_path), compile=dict(mode="default"),
               train_cfg=dict(by_epoch=False, max_iters=2),
               optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1)))
    assert Trainer.from_config(cfg).compile_options == {"mode": "default"}

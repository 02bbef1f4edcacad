"""BaseModel: batch dispatch, parse_losses, the data preprocessor."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tests.conftest import ToyNet
from trainer import BaseModel, OptimWrapper


class Echo(BaseModel):
    def forward(self, *args, mode="tensor", **kwargs):
        return args, kwargs, mode


@pytest.mark.parametrize(("batch", "args", "kwargs"), [
    ({"x": 1, "y": 2}, (), {"x": 1, "y": 2}),
    ((1, 2), (1, 2), {}),
    ([1, 2], (1, 2), {}),
    (torch.tensor(3), (torch.tensor(3),), {}),
])
def test_batch_is_passed_as_kwargs_args_or_one_argument(batch, args, kwargs):
    got_args, got_kwargs, mode = Echo().val_step(batch)
    assert got_args == args and got_kwargs == kwargs and mode == "predict"


def test_parse_losses_sums_every_loss_key_and_lists():
    model = ToyNet()
    w = torch.tensor(2.0, requires_grad=True)
    losses = {"loss_cls": w * 1.0, "loss_aux": [w * 2.0, w * 3.0], "acc": torch.tensor(0.5)}
    total, log_vars = model.parse_losses(losses)
    assert total.item() == pytest.approx(12.0)
    assert {k: float(v) for k, v in log_vars.items()} == {
        "loss_cls": 2.0, "loss_aux": 10.0, "acc": 0.5, "loss": 12.0}
    assert not any(v.requires_grad for v in log_vars.values())


@pytest.mark.parametrize(("losses", "error", "match"), [
    (torch.tensor(1.0), TypeError, "must return a dict"),
    ({"acc": torch.tensor(1.0)}, ValueError, "no key contains 'loss'"),
    ({"loss": torch.ones(4, requires_grad=True)}, ValueError, r"must be a scalar tensor, got \(4,\)"),
    ({"loss": 1.5}, ValueError, "must be a scalar tensor, got float"),
    ({"loss": torch.tensor(1.0)}, ValueError, "does not require grad"),
])
def test_parse_losses_errors(losses, error, match):
    with pytest.raises(error, match=match):
        ToyNet().parse_losses(losses)


def test_train_step_updates_weights_and_returns_detached_logs():
    model = ToyNet()
    wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
    before = model.body[0].weight.detach().clone()
    x, y = torch.randn(4, 8), torch.tensor([0, 1, 2, 0])
    expected = nn.functional.cross_entropy(model(x), y).item()
    logs = model.train_step((x, y), wrapper)
    assert logs["loss"].item() == pytest.approx(expected)
    assert not torch.equal(before, model.body[0].weight)


def test_preprocessor_moves_nested_batches_with_the_model():
    model = ToyNet()
    model.to("meta")  # a device other than the CPU, available without an accelerator
    batch = {"x": [torch.ones(2)], "meta": {"ids": torch.arange(2)}, "name": "a"}
    out = model.data_preprocessor(batch)
    assert model.data_preprocessor.device.type == "meta"
    assert out["x"][0].device.type == "meta" and out["meta"]["ids"].device.type == "meta"
    assert out["name"] == "a"
    assert "_device_anchor" not in model.state_dict()


def test_preprocessor_leaves_cpu_batches_untouched():
    batch = (torch.ones(2), torch.zeros(2))
    out = ToyNet().data_preprocessor(batch)
    assert out[0] is batch[0] and out[1] is batch[1]


@pytest.mark.parametrize("batches", [
    [(torch.ones(2), torch.zeros(2)), (torch.ones(3), torch.zeros(3))],
    [{"x": torch.ones(2)}, {"x": torch.ones(3)}],
    [(torch.ones(2), torch.zeros(2)), (torch.ones(2), "label")],      # the structure changes
    [(torch.ones(2), [torch.zeros(2)]), [torch.ones(2), torch.ones(1)]],  # nested, then a list
])
def test_preprocessor_moves_every_batch_when_it_learns_the_structure(batches):
    model = ToyNet()
    model.to("meta")
    for batch in batches:
        out = model.data_preprocessor(batch)
        assert type(out) is type(batch)
        values = list(out.values()) if isinstance(out, dict) else list(out)
        for moved, original in zip(values, batch.values() if isinstance(batch, dict) else batch):
            if isinstance(original, torch.Tensor):
                assert moved.device.type == "meta" and moved.shape == original.shape
            elif isinstance(original, list):
                assert moved[0].device.type == "meta"
            else:
                assert moved == original

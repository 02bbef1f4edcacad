"""paramwise_cfg: per-parameter lr and weight decay with MMEngine's constructor rules."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from trainer.optim.paramwise import build_param_groups

BASE_LR, BASE_WD = 0.1, 1e-4


class Net(nn.Module):
    """Every kind of parameter the rules tell apart."""

    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4),
                                      nn.Conv2d(4, 4, 3, groups=4))  # depth-wise
        self.neck = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4), nn.GroupNorm(2, 4))
        self.head = nn.Linear(4, 2)
        self.scale = nn.Parameter(torch.ones(2))  # a flat parameter of the root
        self.frozen = nn.Linear(2, 2)
        self.frozen.requires_grad_(False)


def settings(model, cfg, base_lr=BASE_LR, base_wd=BASE_WD):
    """``{parameter name: (lr, weight_decay)}`` with the optimizer's defaults filled in."""
    names = {id(p): n for n, p in model.named_parameters()}
    groups = build_param_groups(model, base_lr, base_wd, cfg)
    assert sorted(id(g["params"][0]) for g in groups) == sorted(names)
    return {names[id(g["params"][0])]: (g.get("lr", base_lr), g.get("weight_decay", base_wd))
            for g in groups}


def test_no_rules_keeps_the_defaults():
    model = Net()
    assert set(settings(model, {}).values()) == {(BASE_LR, BASE_WD)}


def test_bias_norm_depthwise_and_flat_rules():
    got = settings(Net(), dict(bias_lr_mult=2.0, bias_decay_mult=0.5, norm_decay_mult=0.0,
                               dwconv_decay_mult=0.3, flat_decay_mult=0.7))
    lr2 = BASE_LR * 2
    assert got["backbone.0.weight"] == (BASE_LR, BASE_WD)
    assert got["backbone.0.bias"] == (lr2, BASE_WD * 0.5)
    # Norm layers: their bias keeps the base lr, and norm_decay_mult wins over bias_decay_mult.
    for norm in ("backbone.1", "neck.1", "neck.2"):
        assert got[f"{norm}.weight"] == (BASE_LR, 0.0)
        assert got[f"{norm}.bias"] == (BASE_LR, 0.0)
    assert got["backbone.2.weight"] == (BASE_LR, BASE_WD * 0.3)
    assert got["backbone.2.bias"] == (lr2, BASE_WD * 0.5)
    assert got["neck.0.bias"] == (lr2, BASE_WD * 0.5)
    assert got["scale"] == (BASE_LR, BASE_WD * 0.7)
    assert got["frozen.weight"] == (BASE_LR, BASE_WD)  # requires_grad=False: untouched
    assert got["head.weight"] == (BASE_LR, BASE_WD)


def test_custom_keys_win_longest_first_and_copy_their_settings():
    model = Net()
    cfg = dict(norm_decay_mult=0.0, custom_keys={
        "backbone": dict(lr_mult=0.1),
        "backbone.1": dict(lr_mult=0.5, decay_mult=2.0),
        "head": dict(lr_mult=10.0, decay_mult=0.0, betas=(0.8, 0.9)),
    })
    got = settings(model, cfg)
    assert got["backbone.0.weight"] == pytest.approx((0.01, BASE_WD))
    assert got["backbone.1.weight"] == pytest.approx((0.05, 2 * BASE_WD))  # not the norm rule
    assert got["head.bias"] == (1.0, 0.0)
    groups = build_param_groups(model, BASE_LR, BASE_WD, cfg)
    head_group = next(g for g in groups if g["params"][0] is model.head.weight)
    assert head_group["betas"] == (0.8, 0.9)
    # ".scale" at the root matches a key "scale" like MMEngine's f"{prefix}.{name}".
    assert settings(model, dict(custom_keys={".scale": dict(lr_mult=3.0)}))["scale"] == \
        pytest.approx((0.3, BASE_WD))


def test_groups_build_an_optimizer_that_steps():
    model = Net()
    groups = build_param_groups(model, BASE_LR, BASE_WD, dict(bias_lr_mult=0.0))
    optimizer = torch.optim.SGD(groups, lr=BASE_LR, weight_decay=BASE_WD)
    before = model.head.bias.detach().clone()
    model.head(torch.randn(3, 4)).sum().backward()
    optimizer.step()
    assert torch.equal(model.head.bias, before)  # lr 0 for biases
    assert len(optimizer.param_groups) == len(list(model.parameters()))


def test_shared_parameters():
    shared = nn.Linear(2, 2)
    model = nn.ModuleDict({"a": nn.Sequential(shared), "b": nn.Sequential(shared)})
    with pytest.raises(ValueError, match=r"b.0.weight is the same tensor as a.0.weight .* "
                                         r"bypass_duplicate=True"):
        build_param_groups(model, BASE_LR, BASE_WD, {})
    groups = build_param_groups(model, BASE_LR, BASE_WD, dict(bypass_duplicate=True))
    assert len(groups) == 2


@pytest.mark.parametrize(("cfg", "base_lr", "base_wd", "error", "message"), [
    (dict(bias_lr=2.0), BASE_LR, BASE_WD, ValueError, r"unknown keys \['bias_lr'\]"),
    (dict(norm_decay_mult=0.0), BASE_LR, None, ValueError,
     r"sets \['norm_decay_mult'\], which multiply the optimizer's weight_decay"),
    (dict(custom_keys={"head": dict(decay_mult=0.0)}), BASE_LR, None, ValueError,
     "custom_keys\\['head'\\].decay_mult"),
    (dict(bias_lr_mult=2.0), None, BASE_WD, ValueError, "multiply the optimizer's lr"),
    (dict(custom_keys=["head"]), BASE_LR, BASE_WD, TypeError, "custom_keys must map"),
    (dict(norm_decay_mult="0"), BASE_LR, BASE_WD, TypeError, "norm_decay_mult must be a number"),
    (dict(dcn_offset_lr_mult=0.1), BASE_LR, BASE_WD, NotImplementedError, "deformable"),
    ("norm", BASE_LR, BASE_WD, TypeError, "paramwise_cfg must be a dict"),
])
def test_mistakes(cfg, base_lr, base_wd, error, message):
    with pytest.raises(error, match=message):
        build_param_groups(Net(), base_lr, base_wd, cfg)
    with pytest.raises(TypeError, match=r"needs the model as an nn\.Module"):
        build_param_groups([nn.Parameter(torch.ones(1))], BASE_LR, BASE_WD, {})

"""Per-parameter learning rates and weight decays: MMEngine's ``paramwise_cfg``.

``optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1, weight_decay=1e-4),
paramwise_cfg=dict(norm_decay_mult=0.0, bias_lr_mult=2.0, custom_keys={"backbone":
dict(lr_mult=0.1)}))`` gives each parameter its own param group, with the rules of MMEngine's
``DefaultOptimWrapperConstructor``:

* ``custom_keys``: the first key (longest first, then alphabetical) that is a substring of the
  parameter's name ``"<module path>.<name>"`` sets ``lr = base_lr * lr_mult`` and
  ``weight_decay = base_wd * decay_mult`` (both default to 1) and copies its other entries
  into the group; the rules below are then skipped for that parameter.
* ``bias_lr_mult``: the ``bias`` of every module except normalisation layers.
* weight decay, first rule that applies: ``norm_decay_mult`` for every parameter of a
  normalisation layer (batch, instance, group, layer norm), ``bias_decay_mult`` for other
  biases, ``dwconv_decay_mult`` for depth-wise ``Conv2d`` weights, ``flat_decay_mult`` for
  other one-dimensional parameters.
* parameters with ``requires_grad=False`` get a group of their own with the defaults;
  ``bypass_duplicate=True`` skips a parameter shared by two modules (else it is an error).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from trainer.arguments import is_number

__all__ = ["PARAMWISE_KEYS", "build_param_groups"]

PARAMWISE_KEYS = (
    "custom_keys", "bias_lr_mult", "bias_decay_mult", "norm_decay_mult", "dwconv_decay_mult",
    "flat_decay_mult", "bypass_duplicate", "dcn_offset_lr_mult",
)
_DECAY_KEYS = ("bias_decay_mult", "norm_decay_mult", "dwconv_decay_mult", "flat_decay_mult")
_NORMS = (nn.modules.batchnorm._BatchNorm, nn.modules.instancenorm._InstanceNorm, nn.GroupNorm,
          nn.LayerNorm)


def build_param_groups(model: nn.Module, base_lr: float | None, base_wd: float | None,
                       paramwise_cfg: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One param group per parameter of ``model``, with its ``lr``/``weight_decay`` set.

    Args:
        model: the module whose parameters are optimized.
        base_lr: the optimizer's ``lr``; needed when a rule multiplies it.
        base_wd: the optimizer's ``weight_decay``; needed when a rule multiplies it.
        paramwise_cfg: the rules (see the module docstring).

    Example:
        >>> net = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
        >>> groups = build_param_groups(net, 0.1, 1e-4, dict(norm_decay_mult=0.0,
        ...                                                  bias_lr_mult=2.0))
        >>> [(g.get("lr", 0.1), g.get("weight_decay", 1e-4)) for g in groups]
        [(0.1, 0.0001), (0.2, 0.0001), (0.1, 0.0), (0.1, 0.0)]
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"paramwise_cfg needs the model as an nn.Module, got "
                        f"{type(model).__name__}")
    cfg = _checked(paramwise_cfg, base_lr, base_wd)
    groups: list[dict[str, Any]] = []
    seen: dict[int, str] = {}
    _add_params(groups, seen, model, "", cfg, base_lr, base_wd)
    return groups


def _checked(cfg: Any, base_lr: Any, base_wd: Any) -> dict[str, Any]:
    if not isinstance(cfg, Mapping):
        raise TypeError(f"paramwise_cfg must be a dict, got {type(cfg).__name__}")
    unknown = sorted(set(cfg) - set(PARAMWISE_KEYS))
    if unknown:
        raise ValueError(f"paramwise_cfg has unknown keys {unknown}; it takes "
                         f"{list(PARAMWISE_KEYS)}")
    if cfg.get("dcn_offset_lr_mult") is not None:
        raise NotImplementedError("paramwise_cfg dcn_offset_lr_mult applies to MMCV's "
                                  "deformable convolutions, which this library does not have")
    custom = cfg.get("custom_keys", {}) or {}
    if not isinstance(custom, Mapping) or not all(
            isinstance(k, str) and isinstance(v, Mapping) for k, v in custom.items()):
        raise TypeError("paramwise_cfg custom_keys must map name substrings to dicts such as "
                        f"{{'backbone': dict(lr_mult=0.1, decay_mult=1.0)}}, got {custom!r}")
    for name, value in cfg.items():
        if name in (*_DECAY_KEYS, "bias_lr_mult") and value is not None and (
                not is_number(value)):
            raise TypeError(f"paramwise_cfg {name} must be a number, got {value!r}")
    needs_wd = [k for k in _DECAY_KEYS if cfg.get(k) is not None] + [
        f"custom_keys[{k!r}].decay_mult" for k, v in custom.items() if "decay_mult" in v]
    if needs_wd and base_wd is None:
        raise ValueError(f"paramwise_cfg sets {needs_wd}, which multiply the optimizer's "
                         "weight_decay, but the optimizer config has none; add weight_decay=...")
    needs_lr = (["bias_lr_mult"] if cfg.get("bias_lr_mult") is not None else []) + [
        f"custom_keys[{k!r}]" for k in custom]
    if needs_lr and base_lr is None:
        raise ValueError(f"paramwise_cfg sets {needs_lr}, which multiply the optimizer's lr, "
                         "but the optimizer config has none; add lr=...")
    return {**cfg, "custom_keys": dict(custom)}


def _add_params(groups: list[dict[str, Any]], seen: dict[int, str], module: nn.Module,
                prefix: str, cfg: dict[str, Any], base_lr: Any, base_wd: Any) -> None:
    custom = cfg["custom_keys"]
    keys = sorted(sorted(custom), key=len, reverse=True)
    is_norm = isinstance(module, _NORMS)
    is_dwconv = isinstance(module, nn.Conv2d) and module.in_channels == module.groups
    for name, param in module.named_parameters(recurse=False):
        full_name = f"{prefix}.{name}" if prefix else name
        if id(param) in seen:
            if cfg.get("bypass_duplicate", False):
                continue
            raise ValueError(f"parameter {full_name} is the same tensor as {seen[id(param)]} "
                             "(a shared module); set paramwise_cfg bypass_duplicate=True to "
                             "optimize it once")
        seen[id(param)] = full_name
        group: dict[str, Any] = {"params": [param]}
        groups.append(group)
        if not param.requires_grad:
            continue
        key = next((k for k in keys if k in f"{prefix}.{name}"), None)
        if key is not None:
            group["lr"] = base_lr * custom[key].get("lr_mult", 1.0)
            if base_wd is not None:
                group["weight_decay"] = base_wd * custom[key].get("decay_mult", 1.0)
            group.update(custom[key])
            continue
        if name == "bias" and not is_norm and cfg.get("bias_lr_mult") is not None:
            group["lr"] = base_lr * cfg["bias_lr_mult"]
        if base_wd is None:
            continue
        if is_norm and cfg.get("norm_decay_mult") is not None:
            group["weight_decay"] = base_wd * cfg["norm_decay_mult"]
        elif name == "bias" and cfg.get("bias_decay_mult") is not None:
            group["weight_decay"] = base_wd * cfg["bias_decay_mult"]
        elif is_dwconv and cfg.get("dwconv_decay_mult") is not None:
            group["weight_decay"] = base_wd * cfg["dwconv_decay_mult"]
        elif param.ndim == 1 and cfg.get("flat_decay_mult") is not None:
            group["weight_decay"] = base_wd * cfg["flat_decay_mult"]
    for child_name, child in module.named_children():
        child_prefix = f"{prefix}.{child_name}" if prefix else child_name
        _add_params(groups, seen, child, child_prefix, cfg, base_lr, base_wd)

"""Turn whatever the user passed as ``optim_wrapper`` into an ``OptimWrapper(Dict)``.

Accepted: a wrapper (returned as is), a torch optimizer (wrapped), an MMEngine-style config
``dict(type="OptimWrapper", optimizer=dict(type="SGD", lr=0.1), ...)``, or a dict of such
configs keyed by submodule name (one optimizer per submodule, MMEngine's multi-optimizer form).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from torch.optim import Optimizer

from trainer.optim.amp import AmpOptimWrapper
from trainer.optim.paramwise import build_param_groups
from trainer.optim.wrapper import OptimWrapper
from trainer.optim.wrapper_dict import OptimWrapperDict

OPTIMIZERS: dict[str, type[Optimizer]] = {
    name: cls for name, cls in vars(torch.optim).items()
    if isinstance(cls, type) and issubclass(cls, Optimizer) and cls is not Optimizer
}
OPTIM_WRAPPERS: dict[str, type[OptimWrapper]] = {
    "OptimWrapper": OptimWrapper,
    "AmpOptimWrapper": AmpOptimWrapper,
}
_SINGLE = "DefaultOptimWrapperConstructor"
_MULTI = "MultiOptimWrapperConstructor"
_FORMS = ("an OptimWrapper, an OptimWrapperDict, a torch.optim.Optimizer, a dict such as "
          "dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.1)), or a dict of such "
          "dicts keyed by submodule name")


def build_optim_wrapper(cfg: Any, model: nn.Module | None) -> OptimWrapper | OptimWrapperDict:
    """Build the optimizer wrapper(s) for ``model`` from any accepted form of ``cfg``.

    Example:
        >>> model = nn.Linear(4, 1)
        >>> build_optim_wrapper(dict(optimizer=dict(type="SGD", lr=0.1)), model).get_lr()
        {'lr': [0.1]}
    """
    if isinstance(cfg, (OptimWrapper, OptimWrapperDict)):
        return cfg
    if isinstance(cfg, Optimizer):
        return OptimWrapper(cfg)
    if not isinstance(cfg, Mapping):
        raise TypeError(f"optim_wrapper must be {_FORMS}; got {type(cfg).__name__} {cfg!r}")
    cfg = dict(cfg)
    constructor = cfg.pop("constructor", None)
    if constructor not in (None, _SINGLE, _MULTI):
        raise ValueError(
            f"optim_wrapper constructor {constructor!r} is not supported; use {_SINGLE!r}, "
            f"{_MULTI!r} or leave it out"
        )
    if constructor == _MULTI or (constructor is None and _is_multi(cfg)):
        return _build_multi(cfg, model)
    return _build_single(cfg, lambda: _module(model, "model"), "optim_wrapper")


def _is_multi(cfg: Mapping[str, Any]) -> bool:
    return (bool(cfg) and "optimizer" not in cfg and "type" not in cfg
            and all(isinstance(v, (Mapping, OptimWrapper, Optimizer)) for v in cfg.values()))


def _build_multi(cfg: Mapping[str, Any], model: nn.Module | None) -> OptimWrapperDict:
    if not cfg:
        raise ValueError("optim_wrapper with the multi-optimizer form needs at least one "
                         "'<submodule name>': dict(optimizer=...) entry, got none")
    root = _unwrap(model)
    wrappers: dict[str, OptimWrapper] = {}
    for name, sub_cfg in cfg.items():
        what = f"optim_wrapper[{name!r}]"
        if not isinstance(name, str):
            raise TypeError(f"optim_wrapper keys must be submodule names, got {name!r}")

        def params(name: str = name, what: str = what) -> nn.Module:
            children = dict(root.named_children()) if isinstance(root, nn.Module) else {}
            if name not in children:
                raise ValueError(
                    f"{what}: the model ({type(root).__name__}) has no submodule {name!r}; "
                    f"with several optimizers each key names a submodule, e.g. {list(children)}"
                )
            return _module(children[name], f"model.{name}")

        wrapper = _build_single(sub_cfg, params, what)
        if not isinstance(wrapper, OptimWrapper):
            raise TypeError(f"{what} must build one OptimWrapper, got {type(wrapper).__name__}")
        wrappers[name] = wrapper
    return OptimWrapperDict(**wrappers)


def _build_single(cfg: Any, params: Any, what: str) -> OptimWrapper:
    """``params`` is called only when an optimizer must be built from a config."""
    if isinstance(cfg, OptimWrapper):
        return cfg
    if isinstance(cfg, Optimizer):
        return OptimWrapper(cfg)
    if not isinstance(cfg, Mapping):
        raise TypeError(f"{what} must be an OptimWrapper, an Optimizer or a config dict, got "
                        f"{type(cfg).__name__} {cfg!r}")
    from trainer.config.types import build_object, resolve_type  # loaded when a dict is used

    cfg = dict(cfg)
    paramwise_cfg = cfg.pop("paramwise_cfg", None)
    if "optimizer" not in cfg:
        raise ValueError(
            f"{what} config {cfg!r} has no 'optimizer' key; write e.g. "
            "dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.1))"
        )
    cfg.setdefault("type", "OptimWrapper")
    wrapper_type = cfg["type"]
    wrapper_cls = (OPTIMIZERS[wrapper_type] if isinstance(wrapper_type, str)
                   and wrapper_type in OPTIMIZERS else
                   resolve_type(wrapper_type, OPTIM_WRAPPERS, what))
    if not (isinstance(wrapper_cls, type) and issubclass(wrapper_cls, OptimWrapper)):
        hint = (" It is an optimizer: put it under optimizer=dict(type=...)."
                if isinstance(wrapper_cls, type) and issubclass(wrapper_cls, Optimizer) else "")
        raise TypeError(f"{what} type {cfg['type']!r} is not an OptimWrapper class; use one of "
                        f"{sorted(OPTIM_WRAPPERS)}.{hint}")
    optimizer = _build_optimizer(cfg.pop("optimizer"), params, f"{what} optimizer",
                                 paramwise_cfg)
    return build_object({**cfg, "type": wrapper_cls}, OPTIM_WRAPPERS, what, optimizer=optimizer)


def _build_optimizer(cfg: Any, params: Any, what: str, paramwise_cfg: Any = None) -> Optimizer:
    if isinstance(cfg, Optimizer):
        return cfg
    if not isinstance(cfg, Mapping):
        raise TypeError(f"{what} must be a torch.optim.Optimizer or a dict such as "
                        f"dict(type='SGD', lr=0.1), got {type(cfg).__name__} {cfg!r}")
    if "type" not in cfg:
        raise ValueError(f"{what} config {dict(cfg)!r} has no 'type' key; write e.g. "
                         "dict(type='SGD', lr=0.1)")
    if "params" in cfg:
        raise ValueError(f"{what} config must not set 'params'; they are taken from the model")
    from trainer.config.types import build_object, check_kwargs, resolve_type

    cls = resolve_type(cfg["type"], OPTIMIZERS, what)
    if not (isinstance(cls, type) and issubclass(cls, Optimizer)):
        raise TypeError(f"{what} type {cfg['type']!r} is not a torch.optim.Optimizer subclass")
    check_kwargs(cls, {k: v for k, v in cfg.items() if k != "type"}, what)  # before params()
    module = params()
    groups = (list(module.parameters()) if paramwise_cfg is None else build_param_groups(
        module, cfg.get("lr"), cfg.get("weight_decay"), paramwise_cfg))
    return build_object({**cfg, "type": cls}, OPTIMIZERS, what, params=groups)


def _unwrap(model: Any) -> Any:
    parallel = (nn.DataParallel, nn.parallel.DistributedDataParallel)
    return model.module if isinstance(model, parallel) else model


def _module(module: Any, what: str) -> nn.Module:
    module = _unwrap(module)
    if not isinstance(module, nn.Module):
        raise TypeError(f"building an optimizer from a config needs {what} to be an "
                        f"nn.Module, got {type(module).__name__}")
    if next(module.parameters(), None) is None:
        raise ValueError(f"{what} ({type(module).__name__}) has no parameters to optimize")
    return module


def build_optim_wrapper_for(cfg: Any, model: nn.Module, precision: str,
                            device_type: str) -> tuple[Any, Any]:
    """The Trainer's wrapper: from ``cfg``, or the model's ``configure_optimizers()`` (which may
    also return schedulers), at the Trainer's ``precision``."""
    schedulers = None
    if cfg is None:
        cfg, schedulers = split_configure_optimizers(model.configure_optimizers(), model)
    wrapper = build_optim_wrapper(cfg, model)
    if precision != "32":
        wrapper = wrapper.with_precision(precision, device_type)
    return wrapper, schedulers


def split_configure_optimizers(result: Any, model: nn.Module) -> tuple[Any, Any]:
    """``(optimizer config, schedulers)`` from what ``configure_optimizers()`` returned.

    Accepted: an optimizer (or wrapper or config); ``(optimizer, schedulers)``; a list or tuple
    of optimizers (Lightning's several optimizers), named after the submodule each one trains;
    ``([optimizers], schedulers)``; a dict of named optimizers.
    """
    if result is None:
        raise ValueError(
            "no optimizer: pass Trainer(optim_wrapper=dict(optimizer=dict(type='SGD', "
            "lr=0.01))) or implement configure_optimizers() on the model")
    if not isinstance(result, (list, tuple)):
        return result, None
    if result and all(isinstance(item, Optimizer) for item in result):
        return name_optimizers(result, model), None
    if len(result) == 2 and not isinstance(result[1], Optimizer):
        first, schedulers = result
        if isinstance(first, (list, tuple)):
            first = name_optimizers(first, model) if len(first) > 1 else first[0]
        return first, schedulers
    raise TypeError(
        f"configure_optimizers() returned a {type(result).__name__} of "
        f"{[type(item).__name__ for item in result]}; return an optimizer, "
        "(optimizer, [schedulers]), a list of optimizers, or a dict of named optimizers")


def name_optimizers(optimizers: Any, model: nn.Module) -> dict[str, Optimizer]:
    """Name each optimizer after the one direct submodule whose parameters it trains."""
    children = list(_unwrap(model).named_children())
    owned = {name: {id(p) for p in child.parameters()} for name, child in children}
    names = []
    for optimizer in optimizers:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"configure_optimizers() returned a list holding a "
                            f"{type(optimizer).__name__}; a list must hold only optimizers")
        params = {id(p) for group in optimizer.param_groups for p in group["params"]}
        owners = [name for name, ids in owned.items() if params and params <= ids]
        names.append(owners[0] if len(owners) == 1 else None)
    if None in names or len(set(names)) != len(names):
        raise ValueError(
            f"configure_optimizers() returned {len(optimizers)} optimizers in a list, and they "
            "cannot be named after the submodules they train (each must train the parameters "
            "of exactly one direct submodule, a different one each). Name them: return "
            "{'generator': g_opt, 'discriminator': d_opt}, and use "
            "optim_wrapper['generator'] in your train_step")
    return dict(zip(names, optimizers, strict=True))

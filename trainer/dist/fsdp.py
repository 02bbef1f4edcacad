"""FSDP2: shard a model in place with ``torch.distributed.fsdp.fully_shard``.

Each selected submodule (``wrap``) becomes its own shard unit and the root always is one, so
every rank holds 1/N of the parameters, gradients and optimizer state. The model keeps its
identity (``fully_shard`` changes its class in place): ``trainer.model`` is the sharded model,
its parameters are DTensors, and it is not a wrapper with a ``.module``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

WrapPolicy = Callable[[nn.Module], bool]


@dataclass(frozen=True)
class FSDPOptions:
    """Options of ``strategy=dict(type="fsdp", ...)``.

    Attributes:
        wrap: module classes (``[Block]``) or a callable ``module -> bool`` choosing the
            submodules that become their own shard unit; the root always is one.
        reshard_after_forward: free the gathered parameters after each unit's forward (less
            memory, one more all-gather in backward).
        cpu_offload: keep the sharded parameters, gradients and optimizer state in CPU memory.
        activation_checkpointing: recompute the activations of every ``wrap`` unit in backward.
        timeout_s: seconds a collective may wait before failing instead of hanging.
    """

    wrap: tuple[type[nn.Module], ...] | WrapPolicy = ()
    reshard_after_forward: bool = True
    cpu_offload: bool = False
    activation_checkpointing: bool = False
    timeout_s: float = 1800.0

    @classmethod
    def from_dict(cls, options: Mapping[str, Any]) -> FSDPOptions:
        wrap = options.get("wrap") or ()
        if isinstance(wrap, type):
            wrap = (wrap,)
        if not callable(wrap):
            if not isinstance(wrap, Sequence) or not all(
                    isinstance(c, type) and issubclass(c, nn.Module) for c in wrap):
                raise ValueError(
                    "strategy 'fsdp' wrap must be a list of nn.Module classes (wrap=[Block]) or "
                    f"a callable module -> bool, got {wrap!r}")
            wrap = tuple(wrap)
        for flag in ("reshard_after_forward", "cpu_offload", "activation_checkpointing"):
            if not isinstance(options.get(flag, False), bool):
                raise ValueError(f"strategy 'fsdp' {flag} must be True or False, "
                                 f"got {options[flag]!r}")
        return cls(**{**options, "wrap": wrap})


def check_arguments(work_dir: str, precision: str, callbacks: Any) -> None:
    """What FSDP cannot do, refused when the Trainer is built rather than mid-run."""
    if work_dir.startswith("memory://"):
        raise ValueError(
            f"work_dir {work_dir!r}: a memory:// store lives in one process, but every FSDP rank "
            "writes its shard of each checkpoint; use a local path or a shared fsspec URL")
    if precision == "16-mixed":
        raise ValueError("strategy='fsdp' supports precision='32' or 'bf16-mixed' (bf16 "
                         "compute, fp32 reduce), not '16-mixed'; use 'bf16-mixed' or DDP")
    from trainer.callbacks.ema import EMACallback

    if any(isinstance(cb, EMACallback) for cb in callbacks):
        raise ValueError(
            "EMACallback keeps a copy of the model, and an FSDP-sharded model cannot be copied; "
            "use strategy='ddp' for EMA, or train with FSDP and average the consolidated "
            "checkpoints afterwards")


def shard_units(model: nn.Module, wrap: tuple[type[nn.Module], ...] | WrapPolicy) -> list[nn.Module]:
    """The submodules ``wrap`` selects, innermost first (the order ``fully_shard`` needs)."""
    select = wrap if callable(wrap) else (lambda m: isinstance(m, wrap))
    if isinstance(wrap, tuple):
        present = {type(m) for m in model.modules()}
        absent = [c.__name__ for c in wrap if not any(issubclass(p, c) for p in present)]
        if absent:
            classes = sorted({t.__name__ for t in present if t is not type(model)})
            raise ValueError(
                f"strategy 'fsdp' wrap names {absent}, which {type(model).__name__} does not "
                f"contain; choose among its module classes {classes}")
    units = [m for m in model.modules() if m is not model and select(m)]
    return units[::-1]


def shard_model(model: nn.Module, options: FSDPOptions, precision: str,
                device: torch.device) -> nn.Module:
    """``model`` (already on ``device``) sharded in place over all ranks; returns it."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import CPUOffloadPolicy, MixedPrecisionPolicy, fully_shard

    from trainer import dist

    mesh = init_device_mesh(device.type, (dist.get_world_size(),))
    kwargs: dict[str, Any] = {"mesh": mesh,
                              "reshard_after_forward": options.reshard_after_forward}
    if precision == "bf16-mixed":  # bf16 compute, fp32 gradient reduce and master weights
        kwargs["mp_policy"] = MixedPrecisionPolicy(param_dtype=torch.bfloat16,
                                                   reduce_dtype=torch.float32)
    if options.cpu_offload:
        kwargs["offload_policy"] = CPUOffloadPolicy(pin_memory=device.type == "cuda")
    for unit in shard_units(model, options.wrap):
        if options.activation_checkpointing:
            checkpoint_forward(unit)
        fully_shard(unit, **kwargs)
    fully_shard(model, **kwargs)
    return model


def checkpoint_forward(module: nn.Module) -> None:
    """Recompute ``module``'s activations in backward (non-reentrant ``torch.utils.checkpoint``).

    The forward is replaced on the instance, so parameter names and state-dict keys stay as
    they were; FSDP's hooks around the call gather the parameters for the recomputation too.
    """
    from torch.utils.checkpoint import checkpoint

    forward = module.forward

    def checkpointed(*args: Any, **kwargs: Any) -> Any:
        return checkpoint(forward, *args, use_reentrant=False, **kwargs)

    module.forward = checkpointed  # type: ignore[method-assign]


def is_sharded(model: nn.Module) -> bool:
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)


def _fsdp_modules(model: nn.Module) -> list[nn.Module]:
    from torch.distributed.fsdp import FSDPModule

    return [m for m in model.modules() if isinstance(m, FSDPModule)]


@contextlib.contextmanager
def gathered(model: nn.Module, reshard_after_forward: bool) -> Iterator[None]:
    """Every unit's parameters gathered once for the whole block, then sharded again.

    Evaluation shards the data without padding, so ranks may run different numbers of
    forwards; with the parameters already gathered a forward needs no collective and cannot
    hang. Costs one full copy of the parameters per rank while it lasts.
    """
    if not is_sharded(model):
        yield
        return
    units = _fsdp_modules(model)
    model.set_reshard_after_forward(False)
    for unit in units:
        unit.unshard()
    try:
        yield
    finally:
        for unit in units:
            unit.reshard()
        model.set_reshard_after_forward(reshard_after_forward)  # as the strategy configured


def check_optimizer(optim_wrapper: Any, model: nn.Module) -> None:
    """Refuse an optimizer built before sharding: it would hold parameters nothing updates."""
    wrappers = optim_wrapper.values() if hasattr(optim_wrapper, "values") else [optim_wrapper]
    own = {id(p) for p in model.parameters()}
    for wrapper in wrappers:
        if any(id(p) not in own for g in wrapper.optimizer.param_groups for p in g["params"]):
            raise ValueError(
                "under strategy='fsdp' the optimizer must be built after the model is sharded; "
                "pass optim_wrapper as a dict (dict(optimizer=dict(type='AdamW', lr=1e-3))) or "
                "build it in the model's configure_optimizers(), not as an optimizer object")


# Gradients of an open accumulation window. With set_requires_gradient_sync(False) FSDP keeps
# each rank's unreduced gradients on the unsharded parameters (fp32 ``unsharded_accumulated_grad``
# under a mixed-precision policy); torch has no public API for them, so these two functions are
# the only place that reads FSDP's parameter records.
def _fsdp_params(model: nn.Module) -> list[Any]:
    return [p for unit in _fsdp_modules(model)
            for group in unit._get_fsdp_state()._fsdp_param_groups for p in group.fsdp_params]


def local_accumulated_grads(model: nn.Module) -> list[torch.Tensor | None]:
    """This rank's unreduced gradients of the open window, one per sharded parameter."""
    grads: list[torch.Tensor | None] = []
    for param in _fsdp_params(model):
        grad = param.unsharded_accumulated_grad
        if grad is None and hasattr(param, "_unsharded_param"):
            grad = param._unsharded_param.grad
        grads.append(None if grad is None else grad.detach().clone())
    return grads


def restore_accumulated_grads(model: nn.Module, grads: list[torch.Tensor | None]) -> None:
    """Put back what :func:`local_accumulated_grads` returned (on the same number of ranks)."""
    params = _fsdp_params(model)
    if len(params) != len(grads):
        raise ValueError(f"the checkpoint holds {len(grads)} accumulated gradients but the "
                         f"sharded model has {len(params)} parameters")
    for unit in _fsdp_modules(model):
        unit.unshard()  # creates the unsharded parameters the gradients live on
    for param, grad in zip(params, grads):
        if grad is None:
            continue
        if grad.dtype == param._unsharded_param.dtype:
            param._unsharded_param.grad = grad.to(param._unsharded_param.device)
        else:
            param.unsharded_accumulated_grad = grad.to(param._unsharded_param.device)
    for unit in _fsdp_modules(model):
        unit.reshard()

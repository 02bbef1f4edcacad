"""Where a run executes: one process, or DDP over a process group (gloo on CPU, NCCL on CUDA)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any

import torch
from torch import nn

from trainer import dist
from trainer.data.samplers import distribute_train_loader, shard_eval_loader
from trainer.dist.ddp import wrap_model


@dataclass(frozen=True)
class DDPOptions:
    """Options of ``strategy=dict(type="ddp", ...)``.

    Attributes:
        find_unused_parameters: let DDP tolerate parameters that get no gradient.
        broadcast_buffers: copy rank zero's buffers (BatchNorm statistics) every forward;
            passed as DDP's ``forward_sync_buffers`` where torch has it (see ``wrap_model``).
        sync_batchnorm: convert BatchNorm layers to ``SyncBatchNorm``.
        timeout_s: seconds a collective may wait before failing instead of hanging.
    """

    find_unused_parameters: bool = False
    broadcast_buffers: bool = True
    sync_batchnorm: bool = False
    timeout_s: float = 1800.0


def parse_strategy(strategy: Any) -> tuple[str, DDPOptions]:
    """``"auto"``, ``"ddp"`` or ``dict(type="ddp", **DDPOptions)``."""
    if isinstance(strategy, Mapping):
        options = dict(strategy)
        kind = options.pop("type", "ddp")
        known = {f.name for f in fields(DDPOptions)}
        unknown = set(options) - known
        if kind != "ddp" or unknown:
            raise ValueError(
                f"strategy dict must be dict(type='ddp', ...) with options from {sorted(known)}; "
                f"got type={kind!r} and unknown options {sorted(unknown)}")
        return "ddp", DDPOptions(**options)
    if strategy not in ("auto", "ddp"):
        raise ValueError(f"strategy must be one of ['auto', 'ddp'] or dict(type='ddp', ...), "
                         f"got {strategy!r}")
    return strategy, DDPOptions()


class Strategy:
    """Sets up the process group, and adapts the model and loaders to it.

    In one process every method hands its argument back unchanged.
    """

    def __init__(self, kind: str, options: DDPOptions, *, devices: int, device_type: str) -> None:
        self.kind, self.devices, self.device_type, self.options = kind, devices, device_type, options

    def setup(self) -> torch.device:
        """Join the process group when launched by torchrun or by ``spawn``; the device to use."""
        if dist.launched_externally():
            dist.init_process_group(self.device_type, self.options.timeout_s)
        if self.device_type == "cuda":
            return torch.device("cuda", dist.local_rank() if dist.is_distributed() else
                                torch.cuda.current_device())
        return torch.device(self.device_type)

    @property
    def needs_spawn(self) -> bool:
        """``devices > 1`` asked for in a plain process: the trainer starts the workers."""
        return self.devices > 1 and not dist.is_distributed()

    def wrap_model(self, model: nn.Module, device: torch.device) -> nn.Module:
        if dist.get_world_size() == 1:
            return model
        o = self.options
        return wrap_model(model, device, find_unused_parameters=o.find_unused_parameters,
                          broadcast_buffers=o.broadcast_buffers, sync_batchnorm=o.sync_batchnorm)

    def train_loader(self, loader: Iterable, seed: int) -> Iterable:
        return distribute_train_loader(loader, dist.get_rank(), dist.get_world_size(), seed)

    def eval_loader(self, loader: Iterable) -> Iterable:
        return shard_eval_loader(loader, dist.get_rank(), dist.get_world_size())

"""Everything that hooks into a run: the ``Callback`` base and the built-in callbacks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from trainer.callbacks.base import HOOK_NAMES, PRIORITIES, Callback
from trainer.callbacks.callback_list import CallbackList
from trainer.callbacks.checkpoint import CheckpointCallback
from trainer.callbacks.early_stopping import EarlyStoppingCallback
from trainer.callbacks.ema import EMACallback
from trainer.callbacks.logger import LoggerCallback
from trainer.callbacks.lr_monitor import LRMonitorCallback
from trainer.callbacks.param_scheduler import ParamSchedulerCallback
from trainer.callbacks.profiler import ProfilerCallback
from trainer.callbacks.progress import ProgressBarCallback
from trainer.callbacks.runtime_info import RuntimeInfoCallback
from trainer.callbacks.sampler_seed import DistSamplerSeedCallback
from trainer.callbacks.tensorboard import TensorBoardCallback
from trainer.callbacks.timer import IterTimerCallback

CALLBACKS: dict[str, type[Callback]] = {
    cls.__name__: cls for cls in (
        CheckpointCallback, DistSamplerSeedCallback, EarlyStoppingCallback, EMACallback,
        IterTimerCallback, LoggerCallback, LRMonitorCallback, ParamSchedulerCallback,
        ProfilerCallback, ProgressBarCallback, RuntimeInfoCallback, TensorBoardCallback,
    )
}
# MMEngine's hook names, so configs that name them keep working.
CALLBACKS.update({
    "CheckpointHook": CheckpointCallback, "DistSamplerSeedHook": DistSamplerSeedCallback,
    "IterTimerHook": IterTimerCallback, "LoggerHook": LoggerCallback,
    "ParamSchedulerHook": ParamSchedulerCallback, "RuntimeInfoHook": RuntimeInfoCallback,
    "EMAHook": EMACallback, "EarlyStoppingHook": EarlyStoppingCallback,
})



def build_callback(cfg: Callback | Mapping[str, Any]) -> Callback:
    """A ``Callback`` as is, or one built from ``dict(type="Name", priority=..., **options)``."""
    if isinstance(cfg, Callback):
        return cfg
    if isinstance(cfg, Mapping):
        from trainer.config.types import build_object  # the resolver, loaded when a dict is used

        return build_object(cfg, CALLBACKS, "callback")
    raise TypeError(
        f"a callback must be a Callback or a dict(type=...), got {type(cfg).__name__}")


__all__ = [
    "CALLBACKS", "HOOK_NAMES", "PRIORITIES", "Callback", "CallbackList", "CheckpointCallback",
    "DistSamplerSeedCallback", "EMACallback", "EarlyStoppingCallback", "IterTimerCallback",
    "LRMonitorCallback", "LoggerCallback", "ParamSchedulerCallback", "ProfilerCallback",
    "ProgressBarCallback",
    "RuntimeInfoCallback", "TensorBoardCallback", "build_callback",
]

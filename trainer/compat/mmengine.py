"""MMEngine's names for what hooks and models import, so that porting is changing the imports.

The whole table, one MMEngine import per line, is in docs/migration.md; in short::

    from mmengine.hooks import Hook             ->  from trainer.compat.mmengine import Hook
    from mmengine.model import is_model_wrapper ->  from trainer.compat.mmengine import is_model_wrapper
    from mmengine.registry import HOOKS         ->  from trainer.compat.mmengine import HOOKS
    from mmengine.optim import ...              ->  from trainer.optim / trainer.schedulers import ...

``HOOKS.register_module()`` (and the other registries) keep the decorator lines working but
register nothing: a config names a class by its import path (``type="mypkg.hooks.MyHook"``) or
by the class itself.
"""

from __future__ import annotations

from typing import Any

from trainer.callbacks import (
    Callback,
    CheckpointCallback,
    DistSamplerSeedCallback,
    EarlyStoppingCallback,
    EMACallback,
    IterTimerCallback,
    LoggerCallback,
    ParamSchedulerCallback,
    RuntimeInfoCallback,
)
from trainer.compat.wrappers import is_model_wrapper
from trainer.dist import all_reduce, barrier, get_rank, get_world_size, is_main_process, master_only
from trainer.evaluation.metric import BaseMetric
from trainer.message_hub import HistoryBuffer, MessageHub
from trainer.model import BaseDataPreprocessor, BaseModel

Hook = Callback
CheckpointHook = CheckpointCallback
DistSamplerSeedHook = DistSamplerSeedCallback
EarlyStoppingHook = EarlyStoppingCallback
EMAHook = EMACallback
IterTimerHook = IterTimerCallback
LoggerHook = LoggerCallback
ParamSchedulerHook = ParamSchedulerCallback
RuntimeInfoHook = RuntimeInfoCallback


class Registry:
    """Stands in for an MMEngine registry in ported code: ``register_module`` returns the
    class unchanged, because this library resolves config types without a registry."""

    def __init__(self, name: str) -> None:
        self.name = name

    def register_module(self, name: str | None = None, force: bool = False,
                        module: type | None = None) -> Any:
        if module is not None:
            return module
        if isinstance(name, type):
            raise TypeError(f"{self.name}.register_module is a decorator factory: write "
                            "@register_module(), with the parentheses")

        def register(cls: type) -> type:
            return cls

        return register

    def __repr__(self) -> str:
        return f"Registry({self.name!r}) (registers nothing; configs use import paths)"


HOOKS = Registry("HOOKS")
MODELS = Registry("MODELS")
METRICS = Registry("METRICS")
DATASETS = Registry("DATASETS")
TRANSFORMS = Registry("TRANSFORMS")
LOOPS = Registry("LOOPS")
PARAM_SCHEDULERS = Registry("PARAM_SCHEDULERS")
OPTIM_WRAPPERS = Registry("OPTIM_WRAPPERS")


__all__ = [
    "DATASETS", "HOOKS", "LOOPS", "METRICS", "MODELS", "OPTIM_WRAPPERS", "PARAM_SCHEDULERS",
    "TRANSFORMS", "BaseDataPreprocessor", "BaseMetric", "BaseModel", "CheckpointHook",
    "DistSamplerSeedHook", "EMAHook", "EarlyStoppingHook", "HistoryBuffer", "Hook",
    "IterTimerHook", "LoggerHook", "MessageHub", "ParamSchedulerHook", "Registry",
    "RuntimeInfoHook", "all_reduce", "barrier", "get_rank", "get_world_size",
    "is_main_process", "is_model_wrapper", "master_only",
]

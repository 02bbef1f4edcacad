"""The default callbacks: the one table of their names and classes, and building the set."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from trainer.callbacks import build_callback
from trainer.callbacks.base import Callback
from trainer.callbacks.checkpoint import CheckpointCallback
from trainer.callbacks.logger import LoggerCallback
from trainer.callbacks.param_scheduler import ParamSchedulerCallback
from trainer.callbacks.progress import ProgressBarCallback
from trainer.callbacks.runtime_info import RuntimeInfoCallback
from trainer.callbacks.sampler_seed import DistSamplerSeedCallback
from trainer.callbacks.timer import IterTimerCallback

__all__ = ["DEFAULT_CALLBACKS", "build_callbacks", "default_options"]

# Name (as in ``Trainer(default_callbacks=...)`` and a config's ``default_hooks``) -> class,
# in the order they are registered.
DEFAULT_CALLBACKS: dict[str, type[Callback]] = {
    "runtime_info": RuntimeInfoCallback, "timer": IterTimerCallback,
    "sampler_seed": DistSamplerSeedCallback, "param_scheduler": ParamSchedulerCallback,
    "logger": LoggerCallback, "checkpoint": CheckpointCallback, "progress": ProgressBarCallback,
}


def default_options(name: str, *, by_epoch: bool, val_interval: int,
                    jsonl: bool = True) -> dict[str, Any]:
    """The options a default callback gets before the user's overrides.

    Checkpoints are saved every epoch, or every ``val_interval`` iterations (at each validation).

    Example:
        >>> default_options("checkpoint", by_epoch=False, val_interval=50)
        {'interval': 50, 'by_epoch': False}
    """
    if name == "checkpoint":
        return {"interval": 1, "by_epoch": True} if by_epoch \
            else {"interval": val_interval, "by_epoch": False}
    if name == "logger" and not jsonl:  # Trainer(loggers=[...]) without "jsonl"
        return {"scalars_file": False}
    return {}


def build_callbacks(extra: Sequence[Any] | None, overrides: Mapping[str, Any] | None, *,
                    by_epoch: bool, val_interval: int, jsonl: bool = True) -> list[Callback]:
    """The default callbacks, adjusted by ``overrides``, followed by ``extra``; ``jsonl`` says
    whether the logger writes ``scalars.jsonl``.

    Example:
        >>> built = build_callbacks(None, {"progress": None, "timer": None}, by_epoch=True,
        ...                         val_interval=1)
        >>> [type(c).__name__ for c in built]
        ['RuntimeInfoCallback', 'DistSamplerSeedCallback', 'ParamSchedulerCallback', \
'LoggerCallback', 'CheckpointCallback']
    """
    if not isinstance(overrides or {}, Mapping):
        raise TypeError(f"default_callbacks must be a dict, got {type(overrides).__name__}")
    overrides = dict(overrides or {})
    unknown = set(overrides) - set(DEFAULT_CALLBACKS)
    if unknown:
        raise ValueError(f"default_callbacks has unknown names {sorted(unknown)}; known: "
                         f"{list(DEFAULT_CALLBACKS)}")
    built: list[Callback] = []
    for name, cls in DEFAULT_CALLBACKS.items():
        override = overrides.get(name, {})
        if override is None:
            continue
        if isinstance(override, Callback):
            built.append(override)
        elif isinstance(override, Mapping):
            options = default_options(name, by_epoch=by_epoch, val_interval=val_interval,
                                      jsonl=jsonl)
            # With no overrides there is nothing to resolve or check: the config layer stays unloaded.
            built.append(cls(**options) if not override
                         else build_callback({"type": cls, **options, **override}))
        else:
            raise TypeError(
                f"default_callbacks[{name!r}] must be a dict of options, a Callback or None, "
                f"got {type(override).__name__}")
    if extra is not None and not isinstance(extra, (list, tuple)):
        raise TypeError(f"callbacks must be a list of callbacks, got {type(extra).__name__}")
    built.extend(build_callback(c) for c in extra or ())
    return built

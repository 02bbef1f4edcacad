"""The callback fields of a config: ``default_hooks``, ``custom_hooks``, ``log_processor`` and
``visualizer`` as the Trainer's ``default_callbacks`` and ``callbacks``.

MMEngine's hook names are accepted as ``type`` (``LoggerHook``, ``CheckpointHook``, ...). Under
a default name, the default callback's own type becomes keyword overrides, so
``checkpoint=dict(type="CheckpointHook", interval=2)`` is ``{"checkpoint": {"interval": 2}}``.
"""

from __future__ import annotations

import types
from collections.abc import Mapping, Sequence
from typing import Any

from trainer import callbacks as cb
from trainer.callbacks.defaults import DEFAULT_CALLBACKS
from trainer.config.types import check_kwargs, expect_mapping, resolve_type

__all__ = ["callback_kwargs"]

# MMEngine hook arguments with no effect here: dropped, with a note.
IGNORED_HOOK_ARGS: dict[type, tuple[str, ...]] = {
    cb.LoggerCallback: ("ignore_last", "interval_exp_name", "out_dir", "out_suffix",
                        "keep_local", "file_client_args", "backend_args"),
    cb.CheckpointCallback: ("file_client_args", "backend_args", "published_keys",
                            "greater_keys", "less_keys", "create_symlink"),
}


def callback_kwargs(config: Mapping[str, Any], modules: Sequence[types.ModuleType],
                    notes: list[str]) -> dict[str, Any]:
    """``default_callbacks`` and ``callbacks`` for the Trainer; remarks go to ``notes``.

    Example:
        >>> callback_kwargs(dict(default_hooks=dict(checkpoint=dict(type="CheckpointHook",
        ...                                                          interval=2), timer=None)),
        ...                 (), [])
        {'default_callbacks': {'checkpoint': {'interval': 2}, 'timer': None}}
    """
    overrides, extra = _default_hooks(config.get("default_hooks"), modules, notes)
    _log_processor(overrides, config.get("log_processor"), notes)
    extra += _custom_hooks(config.get("custom_hooks"), modules, notes)
    extra += _visualizer(config.get("visualizer"), notes)
    kwargs: dict[str, Any] = {}
    if overrides:
        kwargs["default_callbacks"] = overrides
    if extra:
        kwargs["callbacks"] = extra
    return kwargs


def _default_hooks(default_hooks: Any, modules: Sequence[types.ModuleType],
                   notes: list[str]) -> tuple[dict[str, Any], list[Any]]:
    overrides: dict[str, Any] = {}
    extra: list[Any] = []
    hooks = expect_mapping(default_hooks or {}, "default_hooks",
                           "dict(checkpoint=dict(type='CheckpointHook', interval=1))")
    for name, entry in hooks.items():
        known = name in DEFAULT_CALLBACKS
        if name == "visualization":
            if entry is not None:
                notes.append("default_hooks.visualization is ignored: there is no visualizer "
                             "(losses and metrics go to the run log)")
            continue
        if entry is None or isinstance(entry, cb.Callback):
            if known:
                overrides[name] = entry
            elif entry is not None:
                extra.append(entry)
            continue
        entry = dict(expect_mapping(entry, f"default_hooks.{name}", "dict(type='...Hook')"))
        hook_type = entry.pop("type", None)
        if hook_type is None and not known:
            raise ValueError(f"default_hooks.{name} needs a type (there is no default callback "
                             f"named {name!r}; they are {list(DEFAULT_CALLBACKS)})")
        cls = DEFAULT_CALLBACKS[name] if hook_type is None else resolve_type(
            hook_type, cb.CALLBACKS, f"default_hooks.{name}", modules)
        entry = _hook_kwargs(cls, entry, f"default_hooks.{name}", notes)
        if known and cls is DEFAULT_CALLBACKS[name]:
            overrides[name] = entry
        elif known:
            overrides[name] = cls(**entry)
        else:
            extra.append(cls(**entry))
    return overrides, extra


def _hook_kwargs(cls: Any, kwargs: dict[str, Any], what: str,
                 notes: list[str]) -> dict[str, Any]:
    for key in IGNORED_HOOK_ARGS.get(cls, ()):
        if key in kwargs:
            notes.append(f"{what}: {key}={kwargs.pop(key)!r} is ignored (an MMEngine option "
                         f"{cls.__name__} has no use for)")
    check_kwargs(cls, kwargs, what)
    return kwargs


def _log_processor(overrides: dict[str, Any], cfg: Any, notes: list[str]) -> None:
    """``window_size`` and ``by_epoch`` become options of the logger callback."""
    if cfg is None:
        return
    cfg = dict(expect_mapping(cfg, "log_processor", "dict(window_size=10, by_epoch=True)"))
    cfg.pop("type", None)
    logger = overrides.get("logger", {})
    if not isinstance(logger, dict):
        notes.append("log_processor is ignored: default_hooks.logger is switched off or given "
                     "as an object")
        return
    if "window_size" in cfg:
        logger.setdefault("window_size", cfg.pop("window_size"))
    if "by_epoch" in cfg:
        logger.setdefault("log_metric_by_epoch", cfg.pop("by_epoch"))
    for key in sorted(cfg):
        notes.append(f"log_processor.{key} is ignored: the logger averages every train/ "
                     "scalar over window_size")
    overrides["logger"] = logger


def _custom_hooks(hooks: Any, modules: Sequence[types.ModuleType],
                  notes: list[str]) -> list[Any]:
    if hooks is None:
        return []
    if not isinstance(hooks, (list, tuple)):
        raise TypeError(f"custom_hooks must be a list of dict(type=...), got {hooks!r}")
    built = []
    for i, hook in enumerate(hooks):
        what = f"custom_hooks[{i}]"
        if isinstance(hook, cb.Callback):
            built.append(hook)
            continue
        hook = dict(expect_mapping(hook, what, "dict(type='EMAHook')"))
        cls = resolve_type(hook.pop("type", None), cb.CALLBACKS, what, modules)
        if not (isinstance(cls, type) and issubclass(cls, cb.Callback)):
            raise TypeError(f"{what} type must be a Callback subclass, got {cls!r}")
        built.append(cls(**_hook_kwargs(cls, hook, what, notes)))
    return built


def _visualizer(cfg: Any, notes: list[str]) -> list[Any]:
    """A ``TensorBoardCallback`` for MMEngine's ``TensorboardVisBackend``."""
    if cfg is None:
        return []
    backends = [b.get("type") if isinstance(b, Mapping) else b
                for b in (cfg.get("vis_backends") or [] if isinstance(cfg, Mapping) else [])]
    if "TensorboardVisBackend" in backends:
        notes.append("visualizer: TensorboardVisBackend becomes a TensorBoardCallback")
        return [cb.TensorBoardCallback()]
    notes.append(f"visualizer is ignored ({backends or cfg!r}): scalars go to the run log in "
                 "work_dir")
    return []

"""``Trainer(compile=...)``: ``torch.compile`` applied in place, whole model or block by block.

``nn.Module.compile`` keeps the module itself (no ``OptimizedModule`` wrapper), so state dict
keys stay those of the plain model and checkpoints load into an uncompiled one.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

from torch import nn

COMPILE_KEYS = ("mode", "fullgraph", "dynamic", "backend", "options", "regional")
_EXAMPLE = "compile=True or compile=dict(mode='max-autotune', fullgraph=False, regional=False)"


def check_compile(value: Any) -> dict[str, Any] | None:
    """The ``torch.compile`` keywords (plus ``regional``) asked for, ``None`` for no compiling."""
    if value is False or value is None:
        return None
    if value is True:
        return {}
    if not isinstance(value, Mapping):
        raise TypeError(f"compile must be True, False or a dict, got {value!r}; {_EXAMPLE}")
    unknown = sorted(set(value) - set(COMPILE_KEYS))
    if unknown:
        raise ValueError(f"compile has unknown keys {unknown}; accepted: {list(COMPILE_KEYS)}")
    options = dict(value)
    for key in ("fullgraph", "regional"):
        if not isinstance(options.get(key, False), bool):
            raise TypeError(f"compile {key} must be True or False, got {options[key]!r}")
    if options.get("dynamic") is not None and not isinstance(options["dynamic"], bool):
        raise TypeError(f"compile dynamic must be True, False or None, got {options['dynamic']!r}")
    mode = options.get("mode")
    if mode is not None:
        from torch._inductor import list_mode_options  # loaded only when a mode is named

        modes = sorted(list_mode_options())
        if mode not in modes:
            raise ValueError(f"compile mode must be one of {modes}, got {mode!r}")
    return options


def repeated_blocks(module: nn.Module) -> list[nn.Module]:
    """The outermost children of ``ModuleList``/``Sequential`` containers whose children are
    two or more modules of one class (a transformer's layers, a ResNet stage's blocks)."""
    found: list[nn.Module] = []
    for child in module.children():
        members = list(child.children())
        if (isinstance(child, (nn.ModuleList, nn.Sequential)) and len(members) > 1
                and len({type(m) for m in members}) == 1):
            found.extend(members)
        else:
            found.extend(repeated_blocks(child))
    return found


def compile_model(model: nn.Module, options: dict[str, Any] | None) -> None:
    """Compile ``model`` in place; with ``regional=True`` compile each repeated block instead."""
    if options is None:
        return
    options = dict(options)
    if options.pop("regional", False):
        blocks = repeated_blocks(model)
        if blocks:
            for block in blocks:
                _compile_once(block, options)
            return
        warnings.warn(f"compile=dict(regional=True): {type(model).__name__} has no repeated "
                      "blocks (a ModuleList or Sequential of one class); compiling the whole "
                      "model", stacklevel=3)
    _compile_once(model, options)


def _compile_once(module: nn.Module, options: dict[str, Any]) -> None:
    if getattr(module, "_compiled_call_impl", None) is None:  # a second fit keeps the first
        module.compile(**options)

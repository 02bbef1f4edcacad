"""Resolve MMEngine-style ``dict(type=..., **kwargs)`` configs to objects.

There is no global registry: each caller passes the small table of names it accepts, and any
``type`` may also be a class or a dotted import path such as ``"mypkg.models.Net"``.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Mapping
from typing import Any


def resolve_type(type_: Any, table: Mapping[str, Callable], what: str) -> Callable:
    """Return the class named by ``type_``: a callable, a key of ``table`` or a dotted path."""
    if callable(type_):
        return type_
    if not isinstance(type_, str):
        raise TypeError(f"{what} type must be a class or a string, got {type_!r}")
    if type_ in table:
        return table[type_]
    if "." in type_:
        module_name, _, attr = type_.rpartition(".")
        try:
            return getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as err:
            raise ValueError(f"Cannot import {what} type {type_!r}: {err}") from err
    close = difflib.get_close_matches(type_, list(table), n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
    raise ValueError(
        f"Unknown {what} type {type_!r}.{hint} Use one of {sorted(table)} "
        "or a dotted import path such as 'mypkg.module.Class'."
    )


def build_from_cfg(cfg: Mapping[str, Any], table: Mapping[str, Callable], what: str,
                   **defaults: Any) -> Any:
    """Build ``cfg["type"](**defaults, **rest_of_cfg)``; ``cfg`` is not modified."""
    if not isinstance(cfg, Mapping):
        raise TypeError(f"{what} config must be a dict with a 'type' key, got {type(cfg).__name__}")
    if "type" not in cfg:
        raise ValueError(f"{what} config {dict(cfg)!r} has no 'type' key")
    kwargs = {k: v for k, v in cfg.items() if k != "type"}
    cls = resolve_type(cfg["type"], table, what)
    return cls(**{**defaults, **kwargs})

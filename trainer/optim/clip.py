"""Validate an MMEngine-style ``clip_grad`` config once, so a typo fails at construction.

``dict(max_norm=1.0, norm_type=2)`` clips the total norm (``type`` defaults to ``"norm"``);
``dict(type="value", clip_value=0.5)`` clamps every gradient element.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from trainer.arguments import is_number

_KEYS = {
    "norm": ({"max_norm"}, {"max_norm", "norm_type", "error_if_nonfinite", "foreach"}),
    "value": ({"clip_value"}, {"clip_value", "foreach"}),
}
_EXAMPLES = "dict(max_norm=1.0, norm_type=2) or dict(type='value', clip_value=0.5)"


def parse_clip_grad(clip_grad: Mapping[str, Any] | None) -> tuple[str, dict[str, Any]] | None:
    """Return ``(kind, kwargs for the torch clip function)``, or ``None`` for no clipping."""
    if clip_grad is None:
        return None
    if not isinstance(clip_grad, Mapping):
        raise ValueError(
            f"clip_grad must be None or a dict such as {_EXAMPLES}; "
            f"got {type(clip_grad).__name__} {clip_grad!r}"
        )
    kwargs = dict(clip_grad)
    kind = kwargs.pop("type", "norm")
    if kind not in _KEYS:
        raise ValueError(
            f"clip_grad type must be 'norm' or 'value', got {kind!r} in {dict(clip_grad)!r}"
        )
    required, allowed = _KEYS[kind]
    missing = sorted(required - kwargs.keys())
    if missing:
        raise ValueError(
            f"clip_grad of type {kind!r} needs {missing}, got {dict(clip_grad)!r}; "
            f"for example {_EXAMPLES}"
        )
    unknown = sorted(kwargs.keys() - allowed)
    if unknown:
        raise ValueError(
            f"clip_grad of type {kind!r} does not accept {unknown}; accepted keys are "
            f"{sorted(allowed | {'type'})}"
        )
    for key in ("max_norm", "clip_value"):
        if key in kwargs:
            kwargs[key] = _positive(key, kwargs[key])
    if "norm_type" in kwargs:
        kwargs["norm_type"] = _norm_type(kwargs["norm_type"])
    return kind, kwargs


def _positive(key: str, value: Any) -> float:
    if not is_number(value) or not value > 0:
        raise ValueError(f"clip_grad {key} must be a positive number, got {value!r}")
    return float(value)


def _norm_type(value: Any) -> float:
    if isinstance(value, str) and value.lower() == "inf":
        return math.inf
    if not is_number(value) or not value > 0:
        raise ValueError(
            f"clip_grad norm_type must be a positive number or 'inf', got {value!r}"
        )
    return float(value)

"""What the experiment-tracker sinks share: the lazy import of an optional extra."""

from __future__ import annotations

import importlib
from types import ModuleType


def import_extra(module: str, extra: str, sink: str) -> ModuleType:
    """``import module``, or an ImportError that names the pip extra providing it."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(
            f"{sink} needs the {module!r} package, which is not installed: pip install "
            f"'trainer[{extra}]' (or pip install {module})") from err

"""Writing a config back as a Python config file: ``format_config`` and ``dump_config``."""

from __future__ import annotations

import importlib
import keyword
import math
import numbers
import posixpath
import textwrap
import types
from collections.abc import Mapping
from typing import Any

import fsspec

__all__ = ["dump_config", "format_config"]


def format_config(cfg: Mapping[str, Any], header: str | None = None,
                  comments: Mapping[str, str] | None = None) -> str:
    """``cfg`` as the text of a Python config file that loads back to the same dict.

    Classes and functions are written as their import paths (which ``type=`` accepts); a value
    no config file can hold (a dataset object, say) is written as its ``repr`` string under a
    ``# NOTE`` saying so.

    Args:
        cfg: the config.
        header: text put first, as comment lines.
        comments: per top-level key, comment lines to put above it.
    """
    lines = _comment_lines(header) if header else []
    if lines:
        lines.append("")
    for key, value in cfg.items():
        writer = _Writer()
        text = writer.value(value, 0, str(key), used=len(str(key)) + 3)
        lines.extend(_comment_lines((comments or {}).get(key, "")))
        lines.extend(_comment_lines("\n".join(f"NOTE: {note}" for note in writer.notes)))
        if isinstance(key, str) and key.isidentifier() and not keyword.iskeyword(key):
            lines.append(f"{key} = {text}")
        else:
            lines.extend(_comment_lines(f"NOTE: key {key!r} is not a Python name, so it is "
                                        f"left out: {key!r} = {text}"))
    return "\n".join(lines) + "\n"


def _comment_lines(text: str) -> list[str]:
    lines = []
    for paragraph in text.splitlines():
        wrapped = textwrap.wrap(paragraph, width=_Writer.width - 2, subsequent_indent="  ",
                                break_long_words=False, break_on_hyphens=False)
        lines.extend(f"# {line}" for line in wrapped or [""])
    return [line.rstrip() for line in lines]


def dump_config(config: Mapping[str, Any], url: str, header: str | None = None) -> None:
    """Write ``config`` as a readable Python config file to a path or fsspec URL."""
    text = format_config(config, header=header)
    fs, fs_path = fsspec.core.url_to_fs(str(url))
    parent = posixpath.dirname(fs_path)
    if parent:
        fs.makedirs(parent, exist_ok=True)
    with fs.open(fs_path, "w", encoding="utf-8") as f:
        f.write(text)


class _Writer:
    """Formats one value as Python source, collecting notes about what it had to change."""

    width = 96

    def __init__(self) -> None:
        self.notes: list[str] = []

    def value(self, value: Any, indent: int, where: str, used: int = 0) -> str:
        """``value`` as source; ``indent`` of its lines, ``used`` characters before it."""
        if value is None or isinstance(value, (bool, str, int)):
            return repr(value)
        if isinstance(value, float):
            return repr(value) if math.isfinite(value) else f"float({str(value)!r})"
        if isinstance(value, Mapping):
            names = all(isinstance(k, str) and k.isidentifier() and not keyword.iskeyword(k)
                        for k in value)
            keys = [f"{k}=" if names else f"{k!r}: " for k in value]
            items = [(key, self.value(v, indent + 4, f"{where}.{k}", indent + 4 + len(key)))
                     for key, (k, v) in zip(keys, value.items(), strict=True)]
            return self._join(items, "dict(" if names else "{", ")" if names else "}", indent,
                              used)
        if isinstance(value, (list, tuple)):
            items = [("", self.value(v, indent + 4, f"{where}.{i}", indent + 4))
                     for i, v in enumerate(value)]
            if isinstance(value, list):
                return self._join(items, "[", "]", indent, used)
            return self._join(items, "(", ",)" if len(items) == 1 else ")", indent, used)
        if isinstance(value, numbers.Integral):
            return repr(int(value))
        if isinstance(value, numbers.Real):
            return self.value(float(value), indent, where, used)
        if isinstance(value, (type, types.FunctionType, types.BuiltinFunctionType)):
            path = _import_path(value)
            if path is not None:
                return repr(path)
        self.notes.append(f"{where} holds a {type(value).__name__} object, which a config file "
                          "cannot hold; it is written as its repr")
        return repr(repr(value))

    def _join(self, items: list[tuple[str, str]], open_: str, close: str, indent: int,
              used: int) -> str:
        if not items:
            return "dict()" if open_ == "dict(" else open_ + close.lstrip(",")
        one_line = open_ + ", ".join(k + v for k, v in items) + close
        if "\n" not in one_line and max(used, indent) + len(one_line) + 1 <= self.width:
            return one_line
        pad = " " * (indent + 4)
        body = "".join(f"{pad}{k}{v},\n" for k, v in items)
        return f"{open_}\n{body}{' ' * indent}{close.lstrip(',')}"


def _import_path(obj: Any) -> str | None:
    """``"module.Qualified"`` if importing it gives ``obj`` back, else ``None``."""
    module, name = getattr(obj, "__module__", None), getattr(obj, "__qualname__", "")
    if not module or not name or "<" in name:
        return None
    try:
        found: Any = importlib.import_module(module)
        for part in name.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError):
        return None
    return f"{module}.{name}" if found is obj else None

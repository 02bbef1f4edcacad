"""Changing a config: a child merged into its base, dotted-key overrides, command-line values."""

from __future__ import annotations

import ast
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["DELETE_KEY", "apply_overrides", "copy_tree", "merge_config", "parse_cfg_options",
           "parse_value", "strip_delete"]

DELETE_KEY = "_delete_"


def merge_config(base: Mapping[str, Any], child: Mapping[str, Any],
                 where: str = "config") -> dict[str, Any]:
    """``child`` merged into a copy of ``base``: MMEngine's rule for ``_base_``.

    A dict in ``child`` merges into the dict of ``base`` under the same key unless it holds
    ``_delete_=True``, in which case it replaces it; every other value replaces.

    Example:
        >>> merge_config(dict(opt=dict(type="SGD", lr=0.1)), dict(opt=dict(lr=0.01)))
        {'opt': {'type': 'SGD', 'lr': 0.01}}
        >>> merge_config(dict(opt=dict(type="SGD", lr=0.1)),
        ...              dict(opt=dict(_delete_=True, type="Adam")))
        {'opt': {'type': 'Adam'}}
    """
    out = copy_tree(dict(base))
    for key, value in child.items():
        if isinstance(value, Mapping) and key in out and not value.get(DELETE_KEY, False):
            if not isinstance(out[key], Mapping):
                raise TypeError(
                    f"{where}: {key} is a dict here but a {type(out[key]).__name__} "
                    f"({out[key]!r}) in the base config, so it cannot be merged; add "
                    f"{DELETE_KEY}=True to the dict to replace the base value")
            out[key] = merge_config(out[key], {k: v for k, v in value.items()
                                               if k != DELETE_KEY}, f"{where}: {key}")
        else:  # replaced: _delete_ flags inside have nothing left to delete
            out[key] = strip_delete(copy_tree(value))
    return out


def strip_delete(value: Any) -> Any:
    """``value`` without any ``_delete_`` keys."""
    if isinstance(value, dict):
        return {k: strip_delete(v) for k, v in value.items() if k != DELETE_KEY}
    if isinstance(value, list):
        return [strip_delete(v) for v in value]
    return value


# --------------------------------------------------------------------------- overrides
def apply_overrides(cfg: Mapping[str, Any], options: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``cfg`` with each ``"a.b.c": value`` of ``options`` set.

    Missing dict keys are created; a digit walks into a list (``"hooks.0.interval"``); a dict
    value merges into an existing dict (``_delete_=True`` replaces it instead).

    Example:
        >>> apply_overrides(dict(train_cfg=dict(max_iters=10, val_interval=5)),
        ...                 {"train_cfg.max_iters": 100})
        {'train_cfg': {'max_iters': 100, 'val_interval': 5}}
    """
    if not isinstance(options, Mapping):
        raise TypeError(f"cfg_options must be a dict of 'dotted.key': value, "
                        f"got {type(options).__name__}")
    out = copy_tree(dict(cfg))
    for full_key, value in options.items():
        parts = full_key.split(".") if isinstance(full_key, str) else []
        if not parts or not all(parts):
            raise ValueError(f"cfg_options key {full_key!r} must be a dotted path such as "
                             "'optim_wrapper.optimizer.lr'")
        node: Any = out
        for depth, part in enumerate(parts[:-1]):
            node = _step_into(node, part, full_key, ".".join(parts[:depth + 1]))
        _set_leaf(node, parts[-1], value, full_key)
    return out


def _step_into(node: Any, part: str, full_key: str, here: str) -> Any:
    if isinstance(node, list):
        return node[_index(node, part, full_key)]
    if part not in node:
        node[part] = {}
    child = node[part]
    if not isinstance(child, (dict, list)):
        raise ValueError(f"cannot set {full_key}: {here} is {child!r} (a "
                         f"{type(child).__name__}), not a dict or a list")
    return child


def _set_leaf(node: Any, part: str, value: Any, full_key: str) -> None:
    key: Any = _index(node, part, full_key) if isinstance(node, list) else part
    old = node[key] if isinstance(node, list) else node.get(key)
    if isinstance(value, Mapping) and isinstance(old, Mapping) and not value.get(DELETE_KEY):
        node[key] = merge_config(old, value, f"cfg_options {full_key}")
    else:
        node[key] = strip_delete(copy_tree(value))


def _index(node: list, part: str, full_key: str) -> int:
    if not part.isdigit():
        raise ValueError(f"cannot set {full_key}: {part!r} indexes a list, so it must be a "
                         f"number from 0 to {len(node) - 1}")
    if int(part) >= len(node):
        raise ValueError(f"cannot set {full_key}: index {part} is past the end of a list of "
                         f"{len(node)}")
    return int(part)


def parse_cfg_options(items: Sequence[str]) -> dict[str, Any]:
    """``["a.b=1", "c=[6,8]"]`` (what ``--cfg-options`` receives) as ``{"a.b": 1, "c": [6, 8]}``."""
    options: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--cfg-options takes KEY=VALUE pairs such as "
                             f"optim_wrapper.optimizer.lr=0.01, got {item!r}")
        options[key.strip()] = parse_value(text)
    return options


def parse_value(text: str) -> Any:
    """A command-line value as Python: numbers, ``True``/``true``, ``None``, lists, strings.

    Python literals are read as such (``0.01``, ``[6, 8]``, ``(1, 2)``, ``'x'``,
    ``{'a': 1}``), and so is ``dict(type='SGD', lr=0.1)``; bare words stay strings, and
    ``a,b`` or ``[a,b]`` become lists, as with MMEngine's ``DictAction``.

    Example:
        >>> parse_value("[6, 8]"), parse_value("false"), parse_value("SGD"), parse_value("a,b")
        ([6, 8], False, 'SGD', ['a', 'b'])
        >>> parse_value("dict(type='Adam', lr=1e-3)")
        {'type': 'Adam', 'lr': 0.001}
    """
    text = text.strip()
    parts = _split_top_level(text)
    if len(parts) > 1:
        return [parse_value(part) for part in parts if part.strip()]
    try:
        return _literal(ast.parse(text, mode="eval").body)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        pass
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    if text.lower() in ("none", "null"):
        return None
    if len(text) >= 2 and text[0] + text[-1] in ("[]", "()"):
        items = [parse_value(part) for part in _split_top_level(text[1:-1]) if part.strip()]
        return items if text[0] == "[" else tuple(items)
    return text


def _literal(node: ast.AST) -> Any:
    """``ast.literal_eval`` that also reads ``dict(key=literal, ...)``."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and \
            node.func.id == "dict" and not node.args and all(k.arg for k in node.keywords):
        return {k.arg: _literal(k.value) for k in node.keywords}
    if isinstance(node, (ast.List, ast.Tuple)):
        items = [_literal(n) for n in node.elts]
        return items if isinstance(node, ast.List) else tuple(items)
    if isinstance(node, ast.Dict) and None not in node.keys:
        return {_literal(k): _literal(v) for k, v in zip(node.keys, node.values, strict=True)}
    return ast.literal_eval(node)


def _split_top_level(text: str) -> list[str]:
    """``text`` split at the commas that are outside brackets and quotes."""
    parts, depth, start, quote = [], 0, 0, ""
    for i, char in enumerate(text):
        if quote:
            quote = "" if char == quote else quote
            continue
        if char in "'\"":
            quote = char
        depth += char in "([{"
        depth -= char in ")]}"
        if char == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def copy_tree(value: Any) -> Any:
    """A copy of the dicts, lists and tuples of ``value``; other objects are shared."""
    if isinstance(value, Mapping):
        return {k: copy_tree(v) for k, v in value.items()}
    if isinstance(value, list):
        return [copy_tree(v) for v in value]
    if isinstance(value, tuple):
        return tuple(copy_tree(v) for v in value)
    return value

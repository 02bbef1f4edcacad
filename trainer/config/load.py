"""Config files: load, inherit, override, resolve and dump MMEngine-style configs.

A config is a Python file of top-level assignments, a JSON or YAML file, or a dict. Loading does
what MMEngine's ``Config.fromfile`` does, in this order:

1. ``{{fileDirname}}``, ``{{fileBasename}}``, ``{{fileBasenameNoExtension}}``,
   ``{{fileExtname}}`` and ``{{$ENV_VAR:default}}`` are substituted in the file's text.
2. ``_base_`` (a path or a list of paths, relative to the file) is loaded recursively and the
   file is merged into it: dicts merge key by key, anything else is replaced, and a dict with
   ``_delete_=True`` replaces the base dict instead of merging. A Python file can read the base
   values as ``_base_.model.backbone`` (or ``{{_base_.model}}``, as in MMEngine).
3. ``cfg_options`` (``{"optim_wrapper.optimizer.lr": 0.01}``, what ``--cfg-options`` gives)
   are applied: dotted keys walk dicts and list indices, a dict value merges into a dict.
4. ``${key.path}`` references in strings are resolved against the final config, so an override
   of ``data_root`` reaches every ``"${data_root}/train"``; ``$${`` writes a literal ``${``.

Only the config file itself runs (its text is compiled and executed in a fresh namespace), and
only what it imports is imported. Top-level names bound to modules, functions or classes, and
names starting with ``__``, are helpers rather than fields and are left out of the result.
"""

from __future__ import annotations

import ast
import copy
import difflib
import json
import os
import re
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from trainer.config.edit import (
    apply_overrides,
    copy_tree,
    merge_config,
    parse_cfg_options,
    parse_value,
    strip_delete,
)
from trainer.config.format import dump_config, format_config

__all__ = [
    "apply_overrides", "dump_config", "format_config", "load_config", "merge_config",
    "parse_cfg_options", "parse_value", "resolve_references",
]

BASE_KEY = "_base_"
SUFFIXES = (".py", ".json", ".yaml", ".yml")
_PREDEFINED = ("fileDirname", "fileBasename", "fileBasenameNoExtension", "fileExtname")
_ENV = re.compile(r"\{\{\s*\$(\w+)\s*(?::\s*(.*?))?\s*\}\}")
_BASE_REF_PY = re.compile(  # {{_base_.key}}, quoted or not
    r"""(?P<q>['"])\{\{\s*_base_\.(?P<key>[\w.]+)\s*\}\}(?P=q)"""
    r"""|\{\{\s*_base_\.(?P<bare>[\w.]+)\s*\}\}""")
_BASE_REF_VALUE = re.compile(r"^\{\{\s*_base_\.([\w.]+)\s*\}\}$")
_REF = re.compile(r"\$\$\{|\$\{([^{}]*)\}")
_WHOLE_REF = re.compile(r"^\$\{([^{}]+)\}$")


# --------------------------------------------------------------------------- loading
def load_config(source: str | os.PathLike | Mapping[str, Any],
                cfg_options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The fully resolved config of a file or a dict, as plain dicts and lists.

    Args:
        source: a ``.py``, ``.json``, ``.yaml``/``.yml`` path, or a dict (whose ``_base_`` paths
            are relative to the working directory). A dict is not modified.
        cfg_options: dotted-key overrides applied after inheritance.

    Example:
        >>> cfg = load_config(dict(lr=0.1, optim=dict(lr="${lr}")), {"lr": 0.02})
        >>> cfg["optim"]["lr"]
        0.02
    """
    if isinstance(source, Mapping):
        cfg = copy_tree(dict(source))
        bases = cfg.pop(BASE_KEY, None)
        base = _load_bases(bases, Path.cwd() / "<dict>", ())
        cfg = merge_config(base, _replace_base_values(cfg, base, "<dict>"))
    elif isinstance(source, (str, os.PathLike)):
        cfg = _load_file(Path(source), ())
    else:
        raise TypeError(f"a config must be a file path or a dict, got {type(source).__name__}")
    if cfg_options:
        cfg = apply_overrides(cfg, cfg_options)
    return resolve_references(strip_delete(cfg))


def _load_file(path: Path, chain: tuple[Path, ...]) -> dict[str, Any]:
    path = path.expanduser().resolve()
    if path in chain:
        loop = " -> ".join(str(p) for p in (*chain, path))
        raise ValueError(f"config {path} inherits from itself through _base_: {loop}")
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} does not exist")
    if path.suffix.lower() not in SUFFIXES:
        raise ValueError(f"config {path}: unknown file type {path.suffix!r}; use one of "
                         f"{list(SUFFIXES)}")
    text = _substitute_env(_substitute_predefined(path.read_text(encoding="utf-8"), path), path)
    chain = (*chain, path)
    if path.suffix == ".py":
        return _load_python(text, path, chain)
    data = _parse_data(text, path)
    base = _load_bases(data.pop(BASE_KEY, None), path, chain)
    return merge_config(base, _replace_base_values(data, base, str(path)), where=str(path))


def _load_python(text: str, path: Path, chain: tuple[Path, ...]) -> dict[str, Any]:
    text = _BASE_REF_PY.sub(
        lambda m: f"__base_ref__({(m.group('key') or m.group('bare'))!r})", text)
    tree = ast.parse(text, filename=str(path))
    bases, body = None, []
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else []
        if any(isinstance(t, ast.Name) and t.id == BASE_KEY for t in targets):
            try:
                bases = ast.literal_eval(node.value)
            except ValueError:
                raise ValueError(f"{path}:{node.lineno}: _base_ must be a path or a list of "
                                 "paths written out as strings") from None
            continue
        body.append(node)
    tree.body = body
    base = _load_bases(bases, path, chain)

    def base_ref(key: str) -> Any:
        return _AttrDict.wrap(copy.deepcopy(_lookup(base, key, f"{{{{_base_.{key}}}}}", path)))

    namespace: dict[str, Any] = {
        "__name__": "__trainer_config__", "__file__": str(path),
        "__base_ref__": base_ref, BASE_KEY: _AttrDict.wrap(copy.deepcopy(base)),
    }
    exec(compile(tree, str(path), "exec"), namespace)
    fields = {k: copy_tree(v) for k, v in namespace.items() if _is_field(k, v)}
    return merge_config(base, fields, where=str(path))


def _is_field(name: str, value: Any) -> bool:
    return not (name.startswith("__") or name == BASE_KEY or isinstance(
        value, (types.ModuleType, types.FunctionType, types.BuiltinFunctionType, type)))


def _parse_data(text: str, path: Path) -> dict[str, Any]:
    if path.suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"config {path} is not valid JSON: {err}") from None
    else:
        try:
            import yaml
        except ImportError:
            raise ImportError(f"config {path} is YAML, which needs PyYAML: pip install pyyaml "
                              "(or write the config as .py or .json)") from None
        data = yaml.safe_load(text)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ValueError(f"config {path} must hold a mapping of fields at the top, "
                         f"got {type(data).__name__}")
    return data


def _load_bases(bases: Any, path: Path, chain: tuple[Path, ...]) -> dict[str, Any]:
    if bases is None:
        return {}
    names = [bases] if isinstance(bases, (str, os.PathLike)) else bases
    if not isinstance(names, (list, tuple)) or not all(
            isinstance(n, (str, os.PathLike)) for n in names):
        raise TypeError(f"{path}: _base_ must be a path or a list of paths, got {bases!r}")
    merged: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for name in names:
        if isinstance(name, str) and "::" in name:
            raise ValueError(f"{path}: _base_ {name!r} names a file inside another package "
                             "(MMEngine's 'package::path'); copy the file and refer to it by "
                             "its path instead")
        base_path = Path(name).expanduser()
        if not base_path.is_absolute():
            base_path = path.parent / base_path
        cfg = _load_file(base_path, chain)
        twice = sorted(set(cfg) & set(merged))
        if twice:
            raise ValueError(f"{path}: the _base_ files {origin[twice[0]]} and {base_path} both "
                             f"set {twice}; a key may come from one base file only")
        merged.update(cfg)
        origin.update(dict.fromkeys(cfg, str(base_path)))
    return merged


def _substitute_predefined(text: str, path: Path) -> str:
    values = {"fileDirname": str(path.parent), "fileBasename": path.name,
              "fileBasenameNoExtension": path.stem, "fileExtname": path.suffix}
    for name in _PREDEFINED:
        text = re.sub(r"\{\{\s*" + name + r"\s*\}\}", lambda _m, v=values[name]: v, text)
    return text


def _substitute_env(text: str, path: Path) -> str:
    def value(match: re.Match) -> str:
        name, default = match.group(1), match.group(2)
        if name in os.environ:
            return os.environ[name]
        if default is None:
            raise ValueError(f"config {path}: environment variable {name} is not set and "
                             f"{match.group(0)} gives no default; write {{{{${name}:default}}}}")
        return default
    return _ENV.sub(value, text)


def _replace_base_values(data: Any, base: dict[str, Any], where: str) -> Any:
    """JSON/YAML: a string that is exactly ``{{_base_.key}}`` becomes that base value."""
    if isinstance(data, dict):
        return {k: _replace_base_values(v, base, where) for k, v in data.items()}
    if isinstance(data, list):
        return [_replace_base_values(v, base, where) for v in data]
    if isinstance(data, str):
        match = _BASE_REF_VALUE.match(data)
        if match:
            return copy.deepcopy(_lookup(base, match.group(1), data, where))
    return data


class _AttrDict(dict):
    """The base config inside a Python config file: ``_base_.model.backbone`` reads a key."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            close = difflib.get_close_matches(name, [str(k) for k in self], n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise AttributeError(f"the base config has no key {name!r}{hint}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    @classmethod
    def wrap(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return cls({k: cls.wrap(v) for k, v in value.items()})
        if isinstance(value, list):
            return [cls.wrap(v) for v in value]
        return value


def resolve_references(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """``cfg`` with every ``${a.b}`` in its strings replaced by the value at ``a.b``.

    A string that is exactly one reference takes the referenced value itself (a number stays a
    number); inside a longer string the value is formatted with ``str``. References may chain;
    a cycle is an error. ``$${`` stands for a literal ``${``.

    Example:
        >>> resolve_references(dict(root="/data", train=dict(path="${root}/train", n="${k}"),
        ...                         k=3))["train"]
        {'path': '/data/train', 'n': 3}
    """
    root = dict(cfg)
    resolved: dict[str, Any] = {}

    def value_of(path: str, stack: tuple[str, ...], where: str) -> Any:
        if path in stack:
            loop = stack[stack.index(path):]
            raise ValueError(f"config references form a cycle: "
                             f"{' -> '.join(f'${{{p}}}' for p in (*loop, path))}")
        if path not in resolved:
            raw = _lookup(root, path, f"${{{path}}}", where)
            resolved[path] = walk(raw, (*stack, path), path)
        return copy.deepcopy(resolved[path])

    def walk(value: Any, stack: tuple[str, ...], where: str) -> Any:
        if isinstance(value, dict):
            return {k: walk(v, stack, f"{where}.{k}" if where else str(k))
                    for k, v in value.items()}
        if isinstance(value, list) or type(value) is tuple:
            items = [walk(v, stack, f"{where}.{i}") for i, v in enumerate(value)]
            return items if isinstance(value, list) else tuple(items)
        if not isinstance(value, str) or "${" not in value:
            return value
        here = stack if where in stack else (*stack, where)
        whole = _WHOLE_REF.match(value)
        if whole:
            return value_of(whole.group(1).strip(), here, where)

        def substitute(match: re.Match) -> str:
            if match.group(0) == "$${":
                return "${"
            return str(value_of(match.group(1).strip(), here, where))
        return _REF.sub(substitute, value)

    return walk(root, (), "")


def _lookup(root: Any, path: str, ref: str, where: Any) -> Any:
    node = root
    for depth, part in enumerate(path.split(".")):
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, (list, tuple)) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            here = ".".join(path.split(".")[:depth]) or "the top level"
            keys = [str(k) for k in node] if isinstance(node, Mapping) else []
            close = difflib.get_close_matches(part, keys, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else \
                (f"; keys there: {keys}" if keys else "")
            raise ValueError(f"{where}: {ref} refers to {path!r}, but {here} has no "
                             f"{part!r}{hint}")
    return node

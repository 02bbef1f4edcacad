"""The one way to turn ``dict(type=..., **kwargs)`` into an object, with checked arguments.

There is no global registry: ``type=`` is a class or function, a name from the small table the
caller passes, a name found in a module listed in the config's ``custom_imports``, or a dotted
import path (``"mypkg.models.Net"``). Mistakes name what was asked for and the closest known names.
Every caller (Trainer arguments, optim, schedulers, evaluators, callbacks, configs) uses it.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import types
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["build_object", "check_kwargs", "expect_mapping", "import_custom_modules", "resolve_type"]


def resolve_type(type_: Any, table: Mapping[str, Any], what: str,
                        modules: Sequence[types.ModuleType] = ()) -> Any:
    """The class or function ``type_`` names.

    Example:
        >>> resolve_type("torch.nn.Linear", {}, "model")
        <class 'torch.nn.modules.linear.Linear'>
    """
    if callable(type_):
        return type_
    if not isinstance(type_, str) or not type_:
        raise TypeError(f"{what} type must be a class, a function or a name, got {type_!r}")
    if type_ in table:
        return table[type_]
    if "." in type_:
        return _import(type_, what)
    for module in modules:
        if hasattr(module, type_):
            return getattr(module, type_)
    known = sorted({*table, *(n for m in modules for n in _public_names(m))})
    close = difflib.get_close_matches(type_, known, n=3, cutoff=0.6)
    hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
    shown = f" Known names: {known}." if known and len(known) <= 40 else ""
    raise ValueError(
        f"unknown {what} type {type_!r}.{hint}{shown} Give a dotted import path such as "
        f"'mypkg.module.{type_}', a class, or list the module that defines it in "
        "custom_imports=dict(imports=['mypkg.module'])")


def _import(path: str, what: str) -> Any:
    parts = path.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        module_name = ".".join(parts[:cut])
        try:
            found: Any = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name and module_name.startswith(err.name):
                continue  # not a module: try a shorter prefix
            raise ImportError(f"{what} type {path!r}: importing {module_name} failed: "
                              f"{err}") from err
        for depth, attr in enumerate(parts[cut:]):
            if not hasattr(found, attr):
                owner = ".".join(parts[:cut + depth])
                close = difflib.get_close_matches(attr, _public_names(found), n=3, cutoff=0.6)
                hint = f"; closest: {', '.join(map(repr, close))}" if close else ""
                raise ValueError(f"unknown {what} type {path!r}: {owner} has no {attr!r}{hint}")
            found = getattr(found, attr)
        return found
    raise ValueError(f"unknown {what} type {path!r}: no module {parts[0]!r} can be imported "
                     "(is the package installed, or the working directory on sys.path?)")


def _public_names(module: Any) -> list[str]:
    return [n for n in dir(module) if not n.startswith("_") and callable(getattr(module, n, None))]


def expect_mapping(value: Any, what: str, example: str) -> Mapping[str, Any]:
    """``value`` if it is a dict, else a ``TypeError`` showing an example of one."""
    if not isinstance(value, Mapping):
        raise TypeError(f"{what} must be a dict such as {example}, got {value!r}")
    return value


def check_kwargs(func: Callable, kwargs: Mapping[str, Any], what: str) -> None:
    """Refuse keyword arguments ``func`` does not take, naming the ones it does."""
    try:
        params = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):  # no introspectable signature: the call decides
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return
    accepted = [p.name for p in params if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                                     inspect.Parameter.KEYWORD_ONLY)]
    for key in kwargs:
        if key not in accepted:
            close = difflib.get_close_matches(key, accepted, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            name = getattr(func, "__name__", type(func).__name__)
            raise TypeError(f"{what}: {name} does not take {key!r}.{hint} It takes {accepted}")


def build_object(cfg: Mapping[str, Any], table: Mapping[str, Any], what: str,
                 modules: Sequence[types.ModuleType] = (), **defaults: Any) -> Any:
    """``type(**defaults, **rest_of_cfg)`` with the type resolved and the arguments checked."""
    if not isinstance(cfg, Mapping):
        raise TypeError(f"{what} must be a dict with a 'type' key, got {type(cfg).__name__}")
    if "type" not in cfg:
        raise ValueError(f"{what} {dict(cfg)!r} has no 'type' key; write e.g. "
                         "dict(type='mypkg.module.Class', ...)")
    factory = resolve_type(cfg["type"], table, what, modules)
    kwargs = {**defaults, **{k: v for k, v in cfg.items() if k != "type"}}
    check_kwargs(factory, kwargs, what)
    return factory(**kwargs)


def import_custom_modules(custom_imports: Any) -> list[types.ModuleType]:
    """The modules named by MMEngine's ``custom_imports=dict(imports=[...])``."""
    if custom_imports is None:
        return []
    if not isinstance(custom_imports, Mapping) or "imports" not in custom_imports:
        raise TypeError("custom_imports must be dict(imports=['mypkg.module', ...], "
                        f"allow_failed_imports=False), got {custom_imports!r}")
    names = custom_imports["imports"]
    names = [names] if isinstance(names, str) else list(names)
    allow_failed = custom_imports.get("allow_failed_imports", False)
    modules = []
    for name in names:
        try:
            modules.append(importlib.import_module(name))
        except ImportError as err:
            if not allow_failed:
                raise ImportError(f"custom_imports: cannot import {name!r}: {err}") from err
            warnings.warn(f"custom_imports: {name!r} failed to import and is skipped: {err}",
                          stacklevel=2)
    return modules

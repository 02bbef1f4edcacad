"""What to write instead: "did you mean" for typos, and this library's spelling of Lightning's
``Trainer`` keywords.

One table (``LIGHTNING_KEYWORDS``) serves both the error a ``Trainer(gpus=2)`` raises and the
Lightning section of docs/migration.md (``lightning_table()`` renders it; a test compares them).
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Equivalent:
    """A Lightning keyword's example value, how to say it here for a given value, and a note."""

    example: Any
    write: Callable[[Any], str]
    note: str = ""


def _clip(value: Any) -> str:
    return f"optim_wrapper=dict(optimizer=..., clip_grad=dict(max_norm={value!r}))"


def _clip_algorithm(value: Any) -> str:
    if value == "value":
        return "optim_wrapper=dict(optimizer=..., clip_grad=dict(type='value', clip_value=...))"
    return "optim_wrapper=dict(optimizer=..., clip_grad=dict(max_norm=..., norm_type=2))"


def _precision(value: Any) -> str:
    text = str(value)
    if text in ("16", "16-mixed"):
        return "precision='16-mixed'"
    if "bf16" in text:
        return "precision='bf16-mixed'"
    return "precision='32'"


LIGHTNING_KEYWORDS: dict[str, Equivalent] = {
    "gpus": Equivalent(2, lambda v: f"devices={v!r}, accelerator='cuda'"),
    "num_processes": Equivalent(2, lambda v: f"devices={v!r}, accelerator='cpu'"),
    "max_steps": Equivalent(1000, lambda v: f"max_iters={v!r}"),
    "gradient_clip_val": Equivalent(1.0, _clip),
    "gradient_clip_algorithm": Equivalent("value", _clip_algorithm),
    "accumulate_grad_batches": Equivalent(
        4, lambda v: f"optim_wrapper=dict(optimizer=..., accumulative_counts={v!r})"),
    "check_val_every_n_epoch": Equivalent(2, lambda v: f"val_interval={v!r}", "with max_epochs="),
    "val_check_interval": Equivalent(
        1000, lambda v: f"val_interval={v!r}", "with max_iters=: it counts iterations"),
    "log_every_n_steps": Equivalent(50, lambda v: f"log_interval={v!r}"),
    "default_root_dir": Equivalent("runs", lambda v: f"work_dir={v!r}"),
    "num_sanity_val_steps": Equivalent(2, lambda v: f"num_sanity_val_batches={v!r}"),
    "resume_from_checkpoint": Equivalent(
        "last.ckpt", lambda v: f"resume=True, load_from={v!r}", "or fit(..., ckpt_path=path)"),
    "enable_progress_bar": Equivalent(
        False, lambda v: "default_callbacks={'progress': None}", "the bar is on by default"),
    "enable_checkpointing": Equivalent(
        False, lambda v: "default_callbacks={'checkpoint': None}", "checkpoints are on by default"),
    "logger": Equivalent("tensorboard", lambda v: f"loggers=[{v!r}]" if isinstance(v, str)
                         else "loggers=['jsonl', 'tensorboard', dict(type='wandb', ...)]"),
    "sync_batchnorm": Equivalent(True, lambda v: f"strategy=dict(type='ddp', sync_batchnorm={v!r})"),
    "fast_dev_run": Equivalent(True, lambda v: "max_iters=1, val_interval=1"),
    "benchmark": Equivalent(
        True, lambda v: f"torch.backends.cudnn.benchmark = {v!r}", "a torch setting, before fit"),
}

# Values of a keyword this library shares with Lightning but spells differently.
LIGHTNING_VALUES: dict[str, dict[Any, str]] = {
    "precision": {16: _precision(16), "16": _precision(16), "bf16": _precision("bf16"),
                  "32-true": _precision(32)},
}


def closest(name: str, known: Iterable[str]) -> str | None:
    """The known name ``name`` most likely stands for: a near spelling (``max_iter`` ->
    ``max_iters``), else one that starts with it or it ends in (``acc``, ``val_acc`` ->
    ``accuracy``)."""
    known = [k for k in known if isinstance(k, str)]
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    if close:
        return close[0]
    stem = name.lower().rsplit("/", 1)[-1]
    for prefix in ("val_", "valid_", "train_", "test_"):
        stem = stem.removeprefix(prefix)
    partial = [k for k in known if stem and (k.lower().startswith(stem) or stem in k.lower())]
    return partial[0] if partial else None


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """``" Did you mean 'max_iters'?"``, or ``""`` when nothing is close."""
    match = closest(name, known)
    return f" Did you mean {match!r}?" if match else ""


def unknown_keyword_message(owner: str, name: str, value: Any, known: Iterable[str]) -> str:
    """The error for ``owner(name=value)`` when ``owner`` takes no such keyword."""
    if name in LIGHTNING_KEYWORDS:
        equivalent = LIGHTNING_KEYWORDS[name]
        note = f" ({equivalent.note})" if equivalent.note else ""
        return (f"{owner}() takes no keyword {name!r} (that is Lightning's); here write "
                f"{equivalent.write(value)}{note}")
    return (f"{owner}() got an unexpected keyword argument {name!r}.{did_you_mean(name, known)} "
            f"Accepted: {', '.join(sorted(known))}")


def keyword_names(func: Callable[..., Any]) -> list[str]:
    """The names ``func`` accepts as keywords (not its ``*args``/``**kwargs``)."""
    kinds = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return [name for name, p in inspect.signature(func).parameters.items() if p.kind in kinds]


def check_keywords(owner: str, unknown: Mapping[str, Any], known: Iterable[str]) -> None:
    """Raise ``TypeError`` for the first keyword in ``unknown``, saying what to write instead."""
    for name, value in unknown.items():
        raise TypeError(unknown_keyword_message(owner, name, value, known))


def lightning_value_hint(name: str, value: Any) -> str:
    """``" (Lightning's spelling; write precision='16-mixed')"`` for a known Lightning value."""
    try:
        hint = LIGHTNING_VALUES.get(name, {}).get(value)
    except TypeError:  # an unhashable value
        hint = None
    return f" (that is Lightning's spelling; write {hint})" if hint else ""


def lightning_table() -> str:
    """The Markdown table of docs/migration.md: Lightning's keyword and what to write here."""
    rows = ["| Lightning `Trainer(...)` | here | note |", "| --- | --- | --- |"]
    for name, eq in LIGHTNING_KEYWORDS.items():
        rows.append(f"| `{name}={eq.example!r}` | `{eq.write(eq.example)}` | {eq.note} |")
    for name, values in LIGHTNING_VALUES.items():
        for value, hint in values.items():
            rows.append(f"| `{name}={value!r}` | `{hint}` |  |")
    return "\n".join(rows)

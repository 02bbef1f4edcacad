"""Checkpoint files through fsspec: atomic saves, ``weights_only`` loads, the latest-file pointer."""

from __future__ import annotations

import contextlib
import pickle
import posixpath
import uuid
import warnings
from typing import Any

import fsspec
import torch
from torch import nn

LAST_CHECKPOINT = "last_checkpoint"
BEST_CHECKPOINT = "best_checkpoint"  # the latest best checkpoint of the first save_best metric
TMP_MARK = ".tmp-"  # in the name of every file being written; never ends in .pth


def join(base: str, *parts: str) -> str:
    """Join path parts of a local path or any fsspec URL."""
    return posixpath.join(str(base), *parts)


def save_checkpoint(checkpoint: dict[str, Any], path: str) -> None:
    """Write ``checkpoint`` to ``path`` so that no half-written file ever carries the real name.

    The bytes stream to ``<path>.tmp-<random>`` in the same directory, which is then renamed
    (atomic on local disks); an interrupted save leaves the previous files untouched. A failed
    write (full disk, a filesystem error) is an ``OSError`` that names ``path``.
    """
    fs, fs_path = fsspec.core.url_to_fs(str(path))
    tmp_path = f"{fs_path}{TMP_MARK}{uuid.uuid4().hex[:8]}"
    try:
        fs.makedirs(posixpath.dirname(fs_path) or ".", exist_ok=True)
        with fs.open(tmp_path, "wb") as f:
            torch.save(checkpoint, f)
        fs.mv(tmp_path, fs_path)
    except (OSError, RuntimeError) as err:
        if isinstance(err, RuntimeError) and "inline_container" not in str(err):
            raise  # not a write failure
        message = (f"could not write checkpoint {path}: {err}; the previous checkpoint and "
                   "last_checkpoint are unchanged")
        code = getattr(err, "errno", None)
        raise (OSError(code, message) if code else OSError(message)) from err
    finally:
        with contextlib.suppress(OSError):
            if fs.exists(tmp_path):
                fs.rm(tmp_path)


def load_checkpoint(path: str, map_location: Any = "cpu",
                    weights_only: bool = True) -> dict[str, Any]:
    """Read a checkpoint with ``torch.load(weights_only=True)``; clear errors for bad files."""
    fs, fs_path = fsspec.core.url_to_fs(str(path))
    if not fs.exists(fs_path):
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        with fs.open(fs_path, "rb") as f:
            checkpoint = torch.load(f, map_location=map_location, weights_only=weights_only)
    except pickle.UnpicklingError as err:
        if weights_only and "Unsupported global" in str(err):
            raise ValueError(
                f"{path} holds Python objects that only arbitrary unpickling can rebuild, which "
                "could run any code, so it was refused. If you trust the file, load it with "
                f"weights_only=False. torch said: {str(err).split('Unsupported global')[1][:200]}"
            ) from err
        raise ValueError(f"{path} is not a valid checkpoint (truncated or corrupted): {err}") \
            from err
    except Exception as err:
        raise ValueError(f"{path} is not a valid checkpoint (truncated or corrupted): {err}") \
            from err
    if not isinstance(checkpoint, dict):
        raise ValueError(f"{path} is not a valid checkpoint: it holds a {type(checkpoint).__name__}")
    if checkpoint and "state_dict" not in checkpoint and all(
            isinstance(v, torch.Tensor) for v in checkpoint.values()):
        checkpoint = {"state_dict": checkpoint}  # a bare state dict: weights only
    return checkpoint


def is_training_checkpoint(checkpoint: dict[str, Any]) -> bool:
    """True for a file a run can resume from; False for weights only (``{"state_dict": ...}``)."""
    meta = checkpoint.get("meta")
    return isinstance(meta, dict) and "epoch" in meta and "iter" in meta


def load_model_state(model: nn.Module, state_dict: dict[str, torch.Tensor], strict: bool,
                     source: str) -> None:
    """Load ``state_dict`` into ``model``, listing every missing, unexpected or reshaped key."""
    own = model.state_dict()
    problems = weight_problems(
        {k: tuple(v.shape) for k, v in own.items()},
        {k: tuple(v.shape) if hasattr(v, "shape") else None for k, v in state_dict.items()})
    if problems and strict:
        raise ValueError(
            f"the weights in {source} do not fit {type(model).__name__} — "
            + "; ".join(problems)
            + ". Pass strict=False to load only the weights that match.")
    if problems:
        warnings.warn(f"loaded only matching weights from {source}; " + "; ".join(problems),
                      stacklevel=3)
        state_dict = {k: v for k, v in state_dict.items()
                      if k in own and getattr(v, "shape", own[k].shape) == own[k].shape}
    model.load_state_dict(state_dict, strict=False)


def weight_problems(own: dict[str, tuple[int, ...]],
                    saved: dict[str, tuple[int, ...] | None]) -> list[str]:
    """Missing, unexpected and reshaped keys between a model's and a checkpoint's shapes
    (``None``: a saved value without a shape, never called reshaped)."""
    missing = [k for k in own if k not in saved]
    unexpected = [k for k in saved if k not in own]
    reshaped = [f"{k}: checkpoint {saved[k]} vs model {own[k]}" for k in own
                if saved.get(k) is not None and saved[k] != own[k]]
    return [f"{label}: {', '.join(keys)}" for label, keys in (
        ("missing keys", missing), ("unexpected keys", unexpected),
        ("shape mismatches", reshaped)) if keys]


def write_last_checkpoint(work_dir: str, path: str, name: str = LAST_CHECKPOINT) -> None:
    """Point ``work_dir/last_checkpoint`` (or ``name``) at ``path``, atomically."""
    fs, pointer = fsspec.core.url_to_fs(join(work_dir, name))
    fs.makedirs(posixpath.dirname(pointer), exist_ok=True)
    tmp = f"{pointer}.tmp-{uuid.uuid4().hex[:8]}"
    fs.pipe_file(tmp, str(path).encode())
    fs.mv(tmp, pointer)


def read_last_checkpoint(work_dir: str, name: str = LAST_CHECKPOINT) -> str | None:
    """The path ``work_dir/last_checkpoint`` (or ``name``) points at, ``None`` when none."""
    fs, pointer = fsspec.core.url_to_fs(join(work_dir, name))
    if not fs.exists(pointer):
        return None
    return fs.cat_file(pointer).decode().strip() or None

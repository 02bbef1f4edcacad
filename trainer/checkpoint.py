"""Checkpoint files through fsspec: atomic saves, ``weights_only`` loads, the latest-file pointer."""

from __future__ import annotations

import io
import posixpath
import uuid
from typing import Any

import fsspec
import torch

LAST_CHECKPOINT = "last_checkpoint"


def join(base: str, *parts: str) -> str:
    """Join path parts of a local path or any fsspec URL."""
    return posixpath.join(str(base), *parts)


def save_checkpoint(checkpoint: dict[str, Any], path: str) -> None:
    """Write ``checkpoint`` to ``path`` so that no half-written file ever carries the real name.

    The bytes go to ``<path>.tmp-<random>`` in the same directory and are then renamed; an
    interrupted save leaves the previous files untouched.
    """
    fs, fs_path = fsspec.core.url_to_fs(str(path))
    fs.makedirs(posixpath.dirname(fs_path) or ".", exist_ok=True)
    tmp_path = f"{fs_path}.tmp-{uuid.uuid4().hex[:8]}"
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    try:
        with fs.open(tmp_path, "wb") as f:
            f.write(buffer.getbuffer())
        fs.mv(tmp_path, fs_path)
    finally:
        if fs.exists(tmp_path):
            fs.rm(tmp_path)


def load_checkpoint(path: str, map_location: Any = "cpu") -> dict[str, Any]:
    """Read a checkpoint with ``torch.load(weights_only=True)``; clear errors for bad files."""
    fs, fs_path = fsspec.core.url_to_fs(str(path))
    if not fs.exists(fs_path):
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    with fs.open(fs_path, "rb") as f:
        data = f.read()
    try:
        checkpoint = torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)
    except Exception as err:
        raise ValueError(f"{path} is not a valid checkpoint: {err}") from err
    if not isinstance(checkpoint, dict):
        raise ValueError(f"{path} is not a valid checkpoint: it holds a {type(checkpoint).__name__}")
    return checkpoint


def write_last_checkpoint(work_dir: str, path: str) -> None:
    """Point ``work_dir/last_checkpoint`` at ``path`` (written atomically like a checkpoint)."""
    fs, pointer = fsspec.core.url_to_fs(join(work_dir, LAST_CHECKPOINT))
    fs.makedirs(posixpath.dirname(pointer), exist_ok=True)
    tmp = f"{pointer}.tmp-{uuid.uuid4().hex[:8]}"
    fs.pipe_file(tmp, str(path).encode())
    fs.mv(tmp, pointer)


def read_last_checkpoint(work_dir: str) -> str | None:
    """The path ``work_dir/last_checkpoint`` points at, ``None`` when there is none."""
    fs, pointer = fsspec.core.url_to_fs(join(work_dir, LAST_CHECKPOINT))
    if not fs.exists(pointer):
        return None
    return fs.cat_file(pointer).decode().strip() or None

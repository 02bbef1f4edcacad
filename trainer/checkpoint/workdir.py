"""A ``work_dir`` that several runs share: an earlier run's files move aside, leftovers go.

Each run logs into its own timestamped folder ``work_dir/<YYYYmmdd_HHMMSS>/``; only the
checkpoints and pointers sit at the top level. When a new run (anything but a resume of the run
whose files are there) starts, those top-level files move into the earlier run's own folder,
pointers rewritten, before the new run writes anything, so nothing of it is lost or overwritten
and checkpoint rotation only ever sees files of the current run.
"""

from __future__ import annotations

import posixpath
import re
import time
from collections.abc import Iterable

import fsspec

from trainer.checkpoint.io import BEST_CHECKPOINT, LAST_CHECKPOINT, TMP_MARK, join

POINTERS = (LAST_CHECKPOINT, BEST_CHECKPOINT)
RUN_FOLDER = re.compile(r"^\d{8}_\d{6}(_\d+)?$")


def check_work_dir(work_dir: str) -> None:
    """Refuse a ``work_dir`` that exists as a file, when the Trainer is built."""
    fs, path = fsspec.core.url_to_fs(work_dir)
    if fs.isfile(path):
        raise NotADirectoryError(
            f"work_dir {work_dir} is a file, not a directory: checkpoints and logs go into "
            "work_dir, so pass the path of a directory (it is created when missing)")


def holds_files(directory: str) -> bool:
    fs, path = fsspec.core.url_to_fs(directory)
    return bool(_names(fs, path))


def make_dir(path: str) -> None:
    fs, fs_path = fsspec.core.url_to_fs(path)
    fs.makedirs(fs_path, exist_ok=True)


def _names(fs: fsspec.AbstractFileSystem, path: str) -> list[str]:
    if not fs.isdir(path):
        return []
    return sorted(posixpath.basename(p.rstrip("/")) for p in fs.ls(path, detail=False))


def remove_leftovers(directory: str) -> list[str]:
    """Delete the temporary files of saves that were killed (``*.tmp-*``); their names."""
    fs, path = fsspec.core.url_to_fs(directory)
    leftovers = [name for name in _names(fs, path) if TMP_MARK in name]
    for name in leftovers:
        fs.rm(posixpath.join(path, name), recursive=True)
    return leftovers


def run_files(directory: str) -> list[str]:
    """The names of a run's top-level files in ``directory``: checkpoints and pointers."""
    fs, path = fsspec.core.url_to_fs(directory)
    return [n for n in _names(fs, path) if n.endswith(".pth") or n in POINTERS]


def unique_timestamp(work_dir: str) -> str:
    """A run-folder name from the clock that no folder of ``work_dir`` has yet.

    It sorts after every earlier run folder (a suffix ``_n`` within the same second).
    """
    fs, path = fsspec.core.url_to_fs(work_dir)
    used = set(_names(fs, path))
    stamp = time.strftime("%Y%m%d_%H%M%S")
    name, n = stamp, 0
    while name in used:
        n += 1
        name = f"{stamp}_{n}"
    return name


def earlier_run_folder(work_dir: str) -> str:
    """The newest run folder of ``work_dir``, where the earlier run logged (a new one if none)."""
    fs, path = fsspec.core.url_to_fs(work_dir)
    folders = [n for n in _names(fs, path) if RUN_FOLDER.match(n)]
    return join(work_dir, max(folders) if folders else unique_timestamp(work_dir))


def move_earlier_run(work_dir: str, directories: Iterable[str]) -> str | None:
    """Move the run files of ``directories`` into the earlier run's folder; that folder or None.

    Pointers that named a moved file are rewritten to its new place, so every file of the
    earlier run stays readable and ``resume=True, load_from=<folder>/...`` can continue it.
    """
    moves = [(d, name) for d in dict.fromkeys(directories) for name in run_files(d)]
    if not moves:
        return None
    target = earlier_run_folder(work_dir)
    fs, target_path = fsspec.core.url_to_fs(target)
    fs.makedirs(target_path, exist_ok=True)
    renamed = {}
    for directory, name in moves:
        _, source = fsspec.core.url_to_fs(join(directory, name))
        fs.mv(source, posixpath.join(target_path, name), recursive=fs.isdir(source))
        renamed[join(directory, name)] = join(target, name)
    for pointer in POINTERS:
        path = posixpath.join(target_path, pointer)
        if fs.exists(path):
            old = fs.cat_file(path).decode().strip()
            if old in renamed:
                fs.pipe_file(path, renamed[old].encode())
    return target

"""Where log lines and logged scalars go: the console (tqdm-safe) and files in the run's log dir."""

from __future__ import annotations

import json
import math
import sys
from typing import IO, Any

import fsspec
from tqdm import tqdm

from trainer import dist
from trainer.checkpoint.io import join


def write_line(message: str) -> None:
    """``message`` on stdout, on a line of its own even while a progress bar is drawn."""
    if getattr(tqdm, "_instances", True):  # a bar is open: tqdm clears and redraws it
        tqdm.write(message)
    else:  # what tqdm.write would do, without its lock and context manager (40 us cold)
        sys.stdout.write(message + "\n")


def print_log(message: str) -> None:
    """Print ``message`` on rank zero without tearing an active progress bar."""
    if dist.is_main_process():
        write_line(message)


class RunLog:
    """Rank zero's text log ``<log_dir>/<name>.log`` and scalars file ``<log_dir>/scalars.jsonl``.

    Files open lazily on the first write and stay open (flushed per write), so a remote
    ``work_dir`` gets one upload per file rather than one per line.
    """

    def __init__(self, log_dir: str, name: str) -> None:
        self.log_dir = log_dir
        self.log_path = join(log_dir, f"{name}.log")
        self.scalars_path = join(log_dir, "scalars.jsonl")
        self._files: dict[str, IO[str]] = {}

    def _write(self, path: str, text: str) -> None:
        f = self._files.get(path)
        if f is None:
            fs, fs_path = fsspec.core.url_to_fs(path)
            fs.makedirs(fs.sep.join(fs_path.split(fs.sep)[:-1]) or ".", exist_ok=True)
            f = self._files[path] = fs.open(fs_path, "a")
        f.write(text)
        f.flush()

    def info(self, message: str) -> None:
        if dist.is_main_process():
            write_line(message)
            self._write(self.log_path, message + "\n")

    def scalars(self, values: dict[str, Any]) -> None:
        if dist.is_main_process():
            clean = {k: (v if not isinstance(v, float) or math.isfinite(v) else str(v))
                     for k, v in values.items()}
            self._write(self.scalars_path, json.dumps(clean) + "\n")

    def close(self) -> None:
        for f in self._files.values():
            f.close()
        self._files.clear()

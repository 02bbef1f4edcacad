"""A run's curves from its ``scalars.jsonl`` files, as one PNG (matplotlib, imported when used).

``python -m trainer plot <work_dir>`` and :func:`plot_run` draw training losses, learning
rates and validation metrics against the iteration, joining a run's resumed parts.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Iterable
from typing import Any

import fsspec

from trainer.checkpoint.io import join

FIGSIZE, DPI = (15.0, 4.5), 100  # inches and dots per inch: a 1500 x 450 PNG


def _read(fs: Any, path: str) -> list[dict[str, Any]]:
    with fs.open(path, "r") as f:
        return [json.loads(line) for line in f if line.strip()]


def _first_train_iter(records: list[dict[str, Any]]) -> int | None:
    return next((r["iter"] for r in records if r.get("mode") == "train"), None)


def _segments(records: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """One file's records split where training starts over (two runs in one log folder)."""
    segments: list[list[dict[str, Any]]] = [[]]
    last = None
    for record in records:
        if record.get("mode") == "train":
            if last is not None and record["iter"] <= last:
                segments.append([])
            last = record["iter"]
        segments[-1].append(record)
    return [s for s in segments if _first_train_iter(s) is not None]


def load_run(work_dir: str) -> tuple[list[dict[str, Any]], list[int]]:
    """The records of the latest run in ``work_dir`` and of the runs it resumed, in order, with
    the iterations where each resumed part starts.

    Parts are read newest first; an older one belongs to the run while the newer part started
    later than it did (a resume), and keeps only its records before that start.
    """
    fs, root = fsspec.core.url_to_fs(work_dir)
    files = sorted(fs.glob(posixpath.join(root, "*", "scalars.jsonl")))
    if not files:
        raise FileNotFoundError(
            f"no scalars.jsonl under {work_dir}/<timestamp>/: is it a trainer work_dir, and did "
            "the run log with loggers=['jsonl', ...] (the default)?")
    segments = [segment for path in files for segment in _segments(_read(fs, path))]
    if not segments:
        raise ValueError(f"the scalars.jsonl files under {work_dir} hold no training records")
    parts, starts = [segments[-1]], []
    for records in reversed(segments[:-1]):
        start = _first_train_iter(parts[0])
        if _first_train_iter(records) >= start:  # a fresh run: the rest is another run's
            break
        parts.insert(0, [r for r in records if r.get("iter", 0) < start])
        starts.insert(0, start)
    return [r for part in parts for r in part], starts


def _series(records: Iterable[dict[str, Any]], mode: str,
            keep: Any) -> dict[str, tuple[list[int], list[float]]]:
    """``{name: (iterations, values)}`` of ``mode``'s numeric scalars whose name ``keep`` accepts."""
    series: dict[str, tuple[list[int], list[float]]] = {}
    for record in records:
        if record.get("mode") != mode:
            continue
        for key, value in record.items():
            if key in ("mode", "epoch", "iter") or not keep(key):
                continue
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                xs, ys = series.setdefault(key, ([], []))
                xs.append(record["iter"])
                ys.append(float(value))
    return series


def _is_lr(key: str) -> bool:
    return key == "lr" or key.startswith("lr/") or key.endswith(".lr")


def plot_run(work_dir: str, path: str | None = None) -> str:
    """Draw ``work_dir``'s training loss, learning rate and validation metrics into a PNG.

    Args:
        work_dir: the run's work_dir (a path or fsspec URL).
        path: the PNG to write (default ``<work_dir>/curves.png``).

    Returns:
        The path written.

    Example:
        >>> plot_run("work_dirs/net")  # doctest: +SKIP
        'work_dirs/net/curves.png'
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as err:
        raise ImportError("plotting needs matplotlib: pip install matplotlib") from err

    records, starts = load_run(work_dir)
    figure = Figure(figsize=FIGSIZE, dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    panels = (("training loss", _series(records, "train", lambda k: "loss" in k)),
              ("learning rate", _series(records, "train", _is_lr)),
              ("validation", _series(records, "val", lambda k: True)))
    for axes, (title, series) in zip(figure.subplots(1, 3), panels):
        for name, (xs, ys) in series.items():
            axes.plot(xs, ys, marker="o" if len(xs) < 30 else None, markersize=3, label=name)
        for start in starts:
            axes.axvline(start, color="grey", linestyle=":", linewidth=1)
        axes.set_title(title)
        axes.set_xlabel("iteration")
        axes.grid(alpha=0.3)
        if series:
            axes.legend(fontsize="small")
        else:
            axes.text(0.5, 0.5, "nothing logged", ha="center", va="center",
                      transform=axes.transAxes, color="grey")
    figure.suptitle(f"{work_dir}" + (f"  (resumed at {', '.join(map(str, starts))})"
                                     if starts else ""))
    path = path or join(work_dir, "curves.png")
    with fsspec.open(path, "wb") as f:
        figure.savefig(f, format="png")
    return path

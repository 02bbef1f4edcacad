"""``scalars.csv``: the logged scalars as a table that ``pandas.read_csv`` reads."""

from __future__ import annotations

import csv
import io
from typing import IO, Any

import fsspec

from trainer.checkpoint.io import join
from trainer.loggers.base import ScalarSink, flatten


class CSVLogger(ScalarSink):
    """Write each logged record as a row of ``<log_dir>/scalars.csv``: ``mode``, ``step``, then
    one column per scalar name (empty where a record lacks it).

    When a record brings a new name (validation metrics, throughput after warm-up) the file is
    rewritten with the wider header, so it is always one rectangular table. The run
    configuration goes to ``<log_dir>/hparams.csv`` (``name``, ``value``).
    Named ``"csv"`` in ``Trainer(loggers=[...])``.

    Args:
        filename: the file's name inside the run's log folder.

    Example:
        >>> CSVLogger()  # then pandas.read_csv(f"{trainer.log_dir}/scalars.csv")
        CSVLogger(priority='VERY_LOW')
    """

    def __init__(self, filename: str = "scalars.csv", priority: int | str | None = None) -> None:
        super().__init__(priority)
        if not isinstance(filename, str) or not filename or "/" in filename:
            raise ValueError(f"CSVLogger filename must be a file name, got {filename!r}")
        self.filename = filename
        self.path: str | None = None
        self._columns: list[str] = ["mode", "step"]
        self._rows: list[dict[str, Any]] = []
        self._file: IO[str] | None = None

    def open(self, trainer: Any, config: dict[str, Any]) -> None:
        self.path = join(trainer.log_dir, self.filename)
        self._columns, self._rows = ["mode", "step"], []
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(["name", "value"])
        writer.writerows(flatten(config).items())
        with fsspec.open(join(trainer.log_dir, "hparams.csv"), "w", auto_mkdir=True) as f:
            f.write(text.getvalue())

    def write(self, mode: str, scalars: dict[str, float], step: int) -> None:
        row = {"mode": mode, "step": step, **scalars}
        self._rows.append(row)
        new = [k for k in scalars if k not in self._columns]
        if new or self._file is None:
            self._columns += new
            self._rewrite()
        else:
            self._file.write(self._format([row]))
            self._file.flush()

    def _format(self, rows: list[dict[str, Any]], header: bool = False) -> str:
        text = io.StringIO()
        writer = csv.DictWriter(text, self._columns, lineterminator="\n")
        if header:
            writer.writeheader()
        writer.writerows(rows)
        return text.getvalue()

    def _rewrite(self) -> None:
        if self._file is not None:
            self._file.close()
        fs, path = fsspec.core.url_to_fs(self.path)
        fs.makedirs(fs._parent(path), exist_ok=True)
        self._file = fs.open(path, "w")
        self._file.write(self._format(self._rows, header=True))
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

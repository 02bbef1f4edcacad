"""TensorBoard event files of every logged scalar; tensorboard is imported only when used."""

from __future__ import annotations

import itertools
import os
import posixpath
import socket
import time
from typing import IO, Any

import fsspec

from trainer.loggers.base import ScalarSink, flatten

_file_numbers = itertools.count()


class EventFileWriter:
    """One TensorBoard event file written through fsspec, so ``log_dir`` may be any URL.

    Local files are flushed after every record; remote ones are uploaded when closed.
    """

    def __init__(self, log_dir: str) -> None:
        from tensorboard.compat.proto.event_pb2 import Event  # the lazy, slow import
        from tensorboard.compat.proto.summary_pb2 import Summary
        from tensorboard.summary.writer.record_writer import RecordWriter

        self._event, self._summary = Event, Summary
        fs, root = fsspec.core.url_to_fs(log_dir)
        fs.makedirs(root, exist_ok=True)
        name = (f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}."
                f"{os.getpid()}.{next(_file_numbers)}")
        self.path = posixpath.join(log_dir, name)
        self._file: IO[bytes] = fs.open(posixpath.join(root, name), "wb")
        self._records = RecordWriter(self._file)
        self._add(Event(wall_time=time.time(), file_version="brain.Event:2"))

    def _add(self, event: Any) -> None:
        self._records.write(event.SerializeToString())
        self._records.flush()

    def add_scalars(self, scalars: dict[str, float], step: int) -> None:
        values = [self._summary.Value(tag=tag, simple_value=float(value))
                  for tag, value in scalars.items()]
        self._add(self._event(wall_time=time.time(), step=int(step),
                              summary=self._summary(value=values)))

    def add_text(self, tag: str, text: str, step: int = 0) -> None:
        """A text summary (TensorBoard's Text tab renders it as Markdown)."""
        from tensorboard.compat.proto.summary_pb2 import SummaryMetadata
        from tensorboard.compat.proto.tensor_pb2 import TensorProto
        from tensorboard.compat.proto.tensor_shape_pb2 import TensorShapeProto
        from tensorboard.compat.proto.types_pb2 import DT_STRING

        tensor = TensorProto(dtype=DT_STRING, string_val=[text.encode()],
                             tensor_shape=TensorShapeProto(dim=[TensorShapeProto.Dim(size=1)]))
        metadata = SummaryMetadata(plugin_data=SummaryMetadata.PluginData(plugin_name="text"))
        value = self._summary.Value(tag=tag, metadata=metadata, tensor=tensor)
        self._add(self._event(wall_time=time.time(), step=int(step),
                              summary=self._summary(value=[value])))

    def close(self) -> None:
        if not self._records.closed:
            self._records.close()


class TensorBoardCallback(ScalarSink):
    """Write every scalar the logger logs to ``<work_dir>/<timestamp>/tensorboard/``.

    That is each training record (losses, ``lr``, ``data_time``/``time``, throughput, ``memory``,
    and what ``LRMonitorCallback`` adds, such as momentum), tagged ``train/<name>`` at step
    ``iter``, and every validation and test metric as ``val/<name>``/``test/<name>`` at step
    ``epoch`` or ``iter`` (``LoggerCallback(log_metric_by_epoch=...)``). The values are the
    logger's, with its interval and smoothing, so they match the console and ``scalars.jsonl``;
    the logger callback must therefore be on. Only rank zero writes. Not a default callback: add
    it with ``loggers=["jsonl", "tensorboard"]``, ``callbacks=[TensorBoardCallback()]`` or
    ``dict(type="TensorBoardCallback")`` (the same sink), then run
    ``tensorboard --logdir <work_dir>``. The run configuration is a table under the
    ``config`` tag of the Text tab.

    Args:
        log_dir: where to write instead (a path or fsspec URL).

    Example:
        >>> TensorBoardCallback()  # the event files land next to the run's text log
        TensorBoardCallback(priority='VERY_LOW')
    """

    def __init__(self, log_dir: str | None = None, priority: int | str | None = None) -> None:
        super().__init__(priority)
        if log_dir is not None and not isinstance(log_dir, (str, os.PathLike)):
            raise TypeError(f"log_dir must be a path or URL string, got {log_dir!r}")
        self.log_dir = None if log_dir is None else os.fspath(log_dir)
        self.writer: EventFileWriter | None = None

    def open(self, trainer: Any, config: dict[str, Any]) -> None:
        self.writer = EventFileWriter(self.log_dir or posixpath.join(trainer.log_dir,
                                                                     "tensorboard"))
        rows = "\n".join(f"| {k} | {v} |" for k, v in flatten(config).items())
        self.writer.add_text("config", f"| name | value |\n| --- | --- |\n{rows}")

    def write(self, mode: str, scalars: dict[str, float], step: int) -> None:
        """Scalars of ``mode`` at ``step``, tagged ``<mode>/<name>``."""
        self.writer.add_scalars({f"{mode}/{k}": v for k, v in scalars.items()}, step)

    def close(self) -> None:
        self.writer.close()
        self.writer = None

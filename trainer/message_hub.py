"""Latest scalars of a run and their history, shared by loops and callbacks.

Values may be tensors: they are kept as they are and turned into floats in one batch only when
somebody reads them, so logging a loss every iteration costs a list append, not a device sync.

The hub also carries what the logger decided to log: ``publish(mode, scalars, step)`` hands one
record to every subscriber (the TensorBoard writer, a user's own sink), so every backend sees the
same numbers as the log line and ``scalars.jsonl``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from itertools import islice
from operator import itemgetter
from typing import Any

import torch

_FLUSH_EVERY = 1000  # pending tensors are folded into floats at least this often
STATISTICS = ("mean", "current", "max", "min")

Sink = Callable[[str, dict[str, float], int], None]


class HistoryBuffer:
    """A scalar's recent values (up to ``window`` of them) and its global mean."""

    def __init__(self, window: int = 1000) -> None:
        self._recent: deque[float] = deque(maxlen=window)
        self._pending: list[Any] = []
        self._total = 0.0
        self._count = 0

    def update(self, value: Any) -> None:
        self._pending.append(value)
        if len(self._pending) >= _FLUSH_EVERY:
            self._flush()

    def extend(self, values: Iterable[Any]) -> None:
        self._pending.extend(values)
        if len(self._pending) >= _FLUSH_EVERY:
            self._flush()

    def _flush(self) -> None:
        pending = self._pending
        if not pending:
            return
        values = None
        if isinstance(pending[0], torch.Tensor):  # a step's outputs: one device sync for the lot
            try:
                values = torch.stack(pending).float().reshape(-1).tolist()
            except (RuntimeError, TypeError):
                values = None  # mixed shapes or types: fall back to one by one
            if values is not None and len(values) != len(pending):
                values = None
        if values is None:
            values = list(map(float, pending))
        self._recent.extend(values)
        self._total += sum(values)
        self._count += len(values)
        pending.clear()

    def values(self, window: int | None = None) -> list[float]:
        """The last ``window`` kept values, newest last (all kept values when ``None``)."""
        self._flush()
        recent = self._recent
        if window is None or window >= len(recent):
            return list(recent)
        if window <= 0:
            return []
        newest = list(islice(reversed(recent), window))  # O(window), not O(kept values)
        newest.reverse()
        return newest

    def current(self) -> float:
        self._flush()
        return self._recent[-1]

    def mean(self, window: int | None = None) -> float:
        """Mean of the last ``window`` values (all kept values when ``None``)."""
        values = self.values(window)
        return sum(values) / len(values)

    def max(self, window: int | None = None) -> float:
        return max(self.values(window))

    def min(self, window: int | None = None) -> float:
        return min(self.values(window))

    def global_mean(self) -> float:
        self._flush()
        return self._total / self._count

    def statistics(self, method: str = "mean", window: int | str | None = None) -> float:
        """MMEngine's ``HistoryBuffer.statistics``: ``method`` over the last ``window`` values.

        ``window="global"`` with ``"mean"`` is the mean of every value ever logged (not only the
        kept ones).
        """
        if method not in STATISTICS:
            raise ValueError(f"statistics method must be one of {STATISTICS}, got {method!r}")
        if method == "current":
            return self.current()
        if window == "global":
            if method == "mean":
                return self.global_mean()
            window = None
        return getattr(self, method)(window)

    def __len__(self) -> int:
        return self._count + len(self._pending)

    def state_dict(self) -> dict[str, Any]:
        self._flush()
        # One float64 tensor, not a list of floats: a checkpoint pickles it as one object.
        recent = torch.tensor(list(self._recent), dtype=torch.float64)
        return {"recent": recent, "total": self._total, "count": self._count,
                "window": self._recent.maxlen}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        recent = state["recent"]  # a tensor; checkpoints of earlier versions hold a list
        values = recent.tolist() if isinstance(recent, torch.Tensor) else list(recent)
        self._recent = deque(values, maxlen=state["window"])
        self._pending = []
        self._total, self._count = state["total"], state["count"]


class MessageHub:
    """Scalars by name (``"train/loss"``, ``"val/accuracy"``) with history, plus runtime info.

    MMEngine's ``MessageHub`` API for hooks: ``update_scalar``, ``update_scalars``,
    ``get_scalar`` (a ``HistoryBuffer`` with ``current()``, ``mean(window)``, ...),
    ``log_scalars``, ``update_info``, ``update_info_dict``, ``get_info`` and ``runtime_info``.
    Infos updated with ``resumed=False`` are left out of checkpoints, as in MMEngine.
    """

    def __init__(self) -> None:
        self._scalars: dict[str, HistoryBuffer] = {}
        # Recorded, not yet in the buffers: (prefix, dict) from record, (names, tuple) rows.
        self._rows: list[tuple[Any, Any]] = []
        self.runtime_info: dict[str, Any] = {}
        self._sinks: list[Sink] = []
        self._not_resumed: set[str] = set()

    @property
    def scalars(self) -> dict[str, HistoryBuffer]:
        """Every logged scalar's ``HistoryBuffer`` by key, rows from :meth:`record` included."""
        if self._rows:
            self._fold_rows()
        return self._scalars

    def record(self, values: dict[str, Any], prefix: str = "") -> None:
        """``update_scalars(values, prefix=prefix)``, deferred until a scalar is read or
        updated: one list append, for what the callbacks store every iteration."""
        self._rows.append((prefix, values))

    def record_row(self, names: tuple[str, ...], values: tuple[Any, ...]) -> None:
        """``record`` of a row whose full names are always ``names`` (one tuple, kept by the
        caller): the values as a tuple, without a dict each iteration."""
        self._rows.append((names, values))

    def _fold_rows(self) -> None:
        """Move the recorded rows into the buffers, a column at a time: rows of the same shape
        (every iteration's, from one callback) are grouped with one dict lookup each, and each
        column is handed over in C."""
        rows, self._rows = self._rows, []
        tuples: dict[tuple[str, ...], list[tuple[Any, ...]]] = {}  # record_row, by names
        dicts: dict[tuple[str, ...], list[dict[str, Any]]] = {}  # record, by (prefix, *keys)
        for head, values in rows:
            if type(head) is str:
                dicts.setdefault((head, *values), []).append(values)
            else:
                tuples.setdefault(head, []).append(values)
        shapes = [(names, zip(*group)) for names, group in tuples.items()]
        shapes += [([prefix + key for key in keys], [list(map(itemgetter(key), group))
                                                    for key in keys])
                   for (prefix, *keys), group in dicts.items()]
        names = [name for shape_names, _ in shapes for name in shape_names]
        if len(names) != len(set(names)):  # a name in rows of two shapes: keep their order
            for head, values in rows:
                if type(head) is str:
                    head, values = [head + key for key in values], values.values()
                for name, value in zip(head, values):
                    self._buffer(name).update(value)
            return
        for shape_names, columns in shapes:
            for name, column in zip(shape_names, columns):
                self._buffer(name).extend(column)

    def _buffer(self, key: str) -> HistoryBuffer:
        buffer = self._scalars.get(key)
        if buffer is None:
            buffer = self._scalars[key] = HistoryBuffer()
        return buffer

    @property
    def log_scalars(self) -> dict[str, HistoryBuffer]:
        """MMEngine's name for ``scalars``: every logged scalar's ``HistoryBuffer`` by key."""
        return self.scalars

    def update_scalar(self, key: str, value: Any, count: int = 1, resumed: bool = True) -> None:
        """Append ``value`` to the history of ``key``; a tensor stays one until it is read.

        ``count`` is MMEngine's weight of a value that sums ``count`` samples; only 1 is
        supported (log the per-sample mean instead). ``resumed`` is accepted for MMEngine's
        signature: every scalar history is saved in checkpoints.
        """
        if count != 1:
            raise ValueError(f"update_scalar({key!r}, ..., count={count!r}): only count=1 is "
                             "supported; log the mean over the samples instead of their sum")
        if self._rows:  # rows recorded before this value go first
            self._fold_rows()
        self._buffer(key).update(value)

    def update_scalars(self, values: dict[str, Any], resumed: bool = True, *,
                       prefix: str = "") -> None:
        """``update_scalar`` for every item of ``values``, each key prefixed by ``prefix``."""
        if not isinstance(values, dict):
            raise TypeError(f"update_scalars expects a dict of scalars, got "
                            f"{type(values).__name__}")
        for key, value in values.items():
            self.update_scalar(prefix + key, value, resumed=resumed)

    def get_scalar(self, key: str) -> HistoryBuffer:
        if key not in self.scalars:
            raise KeyError(f"no scalar {key!r} was logged; logged: {sorted(self.scalars)}")
        return self.scalars[key]

    def latest(self, prefix: str = "") -> dict[str, float]:
        """The latest value of every scalar whose name starts with ``prefix``."""
        return {k: b.current() for k, b in self.scalars.items() if k.startswith(prefix) and len(b)}

    def update_info(self, key: str, value: Any, resumed: bool = True) -> None:
        """Set runtime info ``key``; ``resumed=False`` keeps it out of checkpoints."""
        self.runtime_info[key] = value
        if resumed:
            self._not_resumed.discard(key)
        else:
            self._not_resumed.add(key)

    def update_info_dict(self, info: dict[str, Any], resumed: bool = True) -> None:
        for key, value in info.items():
            self.update_info(key, value, resumed=resumed)

    def get_info(self, key: str, default: Any = None) -> Any:
        return self.runtime_info.get(key, default)

    # What was logged, for writers other than the logger's own files.
    def subscribe(self, sink: Sink) -> None:
        """Call ``sink(mode, scalars, step)`` for every record the logger publishes."""
        if not callable(sink):
            raise TypeError(f"a sink must be callable as sink(mode, scalars, step), got {sink!r}")
        if sink not in self._sinks:
            self._sinks.append(sink)

    def unsubscribe(self, sink: Sink) -> None:
        if sink in self._sinks:
            self._sinks.remove(sink)

    def publish(self, mode: str, scalars: dict[str, float], step: int) -> None:
        """Hand one logged record (``mode`` is ``"train"``, ``"val"`` or ``"test"``) to the sinks."""
        for sink in self._sinks:
            sink(mode, scalars, step)

    def state_dict(self) -> dict[str, Any]:
        return {"scalars": {k: b.state_dict() for k, b in self.scalars.items()},
                "runtime_info": {k: v for k, v in self.runtime_info.items()
                                 if isinstance(v, (int, float, str, bool))
                                 and k not in self._not_resumed}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._scalars, self._rows = {}, []
        for key, buffer_state in state.get("scalars", {}).items():
            self._scalars[key] = HistoryBuffer()
            self._scalars[key].load_state_dict(buffer_state)
        self.runtime_info.update(state.get("runtime_info", {}))

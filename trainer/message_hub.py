"""Latest scalars of a run and their history, shared by loops and callbacks.

Values may be tensors: they are kept as they are and turned into floats in one batch only when
somebody reads them, so logging a loss every iteration costs a list append, not a device sync.
"""

from __future__ import annotations

from collections import deque
from itertools import islice
from typing import Any

import torch

_FLUSH_EVERY = 1000  # pending tensors are folded into floats at least this often


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

    def _flush(self) -> None:
        if not self._pending:
            return
        pending = self._pending
        if all(isinstance(v, torch.Tensor) and v.ndim == 0 for v in pending):
            values = torch.stack(pending).float().tolist()  # one device sync for the lot
        else:
            values = [float(v) for v in pending]
        self._recent.extend(values)
        self._total += sum(values)
        self._count += len(values)
        self._pending.clear()

    def current(self) -> float:
        self._flush()
        return self._recent[-1]

    def mean(self, window: int | None = None) -> float:
        """Mean of the last ``window`` values (all kept values when ``None``)."""
        self._flush()
        if window is None or window >= len(self._recent):
            return sum(self._recent) / len(self._recent)
        return sum(islice(reversed(self._recent), window)) / window

    def global_mean(self) -> float:
        self._flush()
        return self._total / self._count

    def __len__(self) -> int:
        return self._count + len(self._pending)

    def state_dict(self) -> dict[str, Any]:
        self._flush()
        return {"recent": list(self._recent), "total": self._total, "count": self._count,
                "window": self._recent.maxlen}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._recent = deque(state["recent"], maxlen=state["window"])
        self._pending = []
        self._total, self._count = state["total"], state["count"]


class MessageHub:
    """Scalars by name (``"train/loss"``, ``"val/accuracy"``) with history, plus runtime info."""

    def __init__(self) -> None:
        self.scalars: dict[str, HistoryBuffer] = {}
        self.runtime_info: dict[str, Any] = {}

    def update_scalar(self, key: str, value: Any) -> None:
        buffer = self.scalars.get(key)
        if buffer is None:
            buffer = self.scalars[key] = HistoryBuffer()
        buffer.update(value)

    def update_scalars(self, values: dict[str, Any], prefix: str = "") -> None:
        for key, value in values.items():
            self.update_scalar(prefix + key, value)

    def get_scalar(self, key: str) -> HistoryBuffer:
        if key not in self.scalars:
            raise KeyError(f"no scalar {key!r} was logged; logged: {sorted(self.scalars)}")
        return self.scalars[key]

    def latest(self, prefix: str = "") -> dict[str, float]:
        """The latest value of every scalar whose name starts with ``prefix``."""
        return {k: b.current() for k, b in self.scalars.items() if k.startswith(prefix) and len(b)}

    def update_info(self, key: str, value: Any) -> None:
        self.runtime_info[key] = value

    def state_dict(self) -> dict[str, Any]:
        return {"scalars": {k: b.state_dict() for k, b in self.scalars.items()},
                "runtime_info": {k: v for k, v in self.runtime_info.items()
                                 if isinstance(v, (int, float, str, bool))}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.scalars = {}
        for key, buffer_state in state.get("scalars", {}).items():
            self.scalars[key] = HistoryBuffer()
            self.scalars[key].load_state_dict(buffer_state)
        self.runtime_info.update(state.get("runtime_info", {}))

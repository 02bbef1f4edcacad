"""Weights & Biases runs (online or offline): the logged scalars, the config, resumable."""

from __future__ import annotations

from typing import Any

from trainer.callbacks.logger import experiment_name
from trainer.loggers.base import ScalarSink
from trainer.loggers.trackers import import_extra

MODES = ("online", "offline", "disabled")


class WandbLogger(ScalarSink):
    """Log to Weights & Biases; named ``"wandb"`` in ``Trainer(loggers=[...])``.

    Each mode's scalars (``train/loss``, ``val/accuracy``) are plotted against their own step
    (``train/step``, ``val/step``: the logger's), as in TensorBoard; the run configuration is the
    run's config. The run's id is kept in checkpoints, so a resumed run continues the same W&B run
    (``resume="allow"``). ``mode="offline"`` writes ``<save_dir>/wandb/offline-run-*`` for
    ``wandb sync`` later. The run is finished when the Trainer's run ends. Needs
    ``pip install 'trainer[wandb]'``.

    Args:
        project: the W&B project.
        mode: ``"online"``, ``"offline"`` or ``"disabled"``.
        save_dir: where W&B keeps its files (default: the work_dir, when it is a local path).
        name: the run's name (default: the work_dir's last folder and the timestamp).
        init_kwargs: more arguments for ``wandb.init`` (``entity``, ``tags``, ``group``, ...).

    Example:
        >>> WandbLogger(project="digits", mode="offline")
        WandbLogger(priority='VERY_LOW')
    """

    def __init__(self, project: str | None = None, mode: str = "online",
                 save_dir: str | None = None, name: str | None = None,
                 init_kwargs: dict[str, Any] | None = None,
                 priority: int | str | None = None) -> None:
        super().__init__(priority)
        if mode not in MODES:
            raise ValueError(f"WandbLogger mode must be one of {MODES}, got {mode!r}")
        if init_kwargs is not None and not isinstance(init_kwargs, dict):
            raise TypeError(f"WandbLogger init_kwargs must be a dict, got {init_kwargs!r}")
        import_extra("wandb", "wandb", "WandbLogger")  # fail when built, not mid-run
        self.project, self.mode, self.save_dir, self.name = project, mode, save_dir, name
        self.init_kwargs = dict(init_kwargs or {})
        self.run_id: str | None = None
        self.run: Any = None

    def open(self, trainer: Any, config: dict[str, Any]) -> None:
        wandb = import_extra("wandb", "wandb", "WandbLogger")
        save_dir = self.save_dir or (trainer.work_dir if "://" not in trainer.work_dir else None)
        kwargs = {"project": self.project, "mode": self.mode, "dir": save_dir,
                  "name": self.name or experiment_name(trainer),
                  "config": _plain(config), "id": self.run_id, "resume": "allow",
                  "reinit": "create_new", **self.init_kwargs}
        self.run = wandb.init(**kwargs)
        self.run_id = self.run.id
        for mode in ("train", "val", "test"):
            self.run.define_metric(f"{mode}/step")
            self.run.define_metric(f"{mode}/*", step_metric=f"{mode}/step")

    def write(self, mode: str, scalars: dict[str, float], step: int) -> None:
        self.run.log({**{f"{mode}/{k}": v for k, v in scalars.items()}, f"{mode}/step": step})

    def close(self) -> None:
        self.run.finish()
        self.run, self.run_id = None, None  # a later fit is a new run unless it resumes

    def state_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.run_id = state.get("run_id")


def _plain(value: Any) -> Any:
    """The config as JSON-like values (W&B refuses classes and functions)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)

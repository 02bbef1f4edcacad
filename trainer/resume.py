"""The Trainer's checkpoint side: what a checkpoint holds, saving it, and resuming from it."""

from __future__ import annotations

import time
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import torch

from trainer import checkpoint, dist
from trainer.randomness import get_rng_state, set_rng_state
from trainer.state import TrainState


def library_version() -> str:
    try:
        return version("trainer")
    except PackageNotFoundError:
        return "unknown"


def callback_keys(callbacks: Any) -> list[str]:
    """Stable names for the callbacks' states: class name, with ``#n`` for repeats."""
    seen: dict[str, int] = {}
    keys = []
    for callback in callbacks:
        name = type(callback).__name__
        keys.append(name if name not in seen else f"{name}#{seen[name]}")
        seen[name] = seen.get(name, 0) + 1
    return keys


class CheckpointMixin:
    """Saving, loading and resuming for ``Trainer``; kept apart so the facade stays short."""

    state: TrainState

    def progress(self) -> dict[str, int]:
        """Completed epochs, iterations and batches of the current epoch, as of now.

        Inside ``after_train_iter`` the current iteration is complete although ``iter`` is only
        incremented after the hook (MMEngine's counter convention); likewise ``epoch`` inside
        the epoch-based ``after_train_epoch``.
        """
        state = self.state
        if self._hook == "after_train_epoch" and self.by_epoch:
            return {"epoch": state.epoch + 1, "iter": state.iter, "batch_idx": 0}
        return {"epoch": state.epoch, "iter": state.iter + (self._hook == "after_train_iter"),
                "batch_idx": state.batch_idx}

    def checkpoint_dict(self, save_optimizer: bool = True,
                        save_param_scheduler: bool = True) -> dict[str, Any]:
        """Everything a resume needs, as plain containers of tensors, numbers and strings."""
        ckpt: dict[str, Any] = {
            "meta": {**self.progress(), "seed": self.seed, "trainer_version": library_version(),
                     "torch_version": str(torch.__version__),
                     "time": time.strftime("%Y-%m-%d %H:%M:%S")},
            "state_dict": self.model.state_dict(),
            "message_hub": self.message_hub.state_dict(),
            "callbacks": {key: cb.state_dict() for key, cb in
                          zip(callback_keys(self.callbacks), self.callbacks)},
            "rng": get_rng_state(),
        }
        if save_optimizer and self.optim_wrapper is not None:
            ckpt["optimizer"] = self.optim_wrapper.state_dict()
        if save_param_scheduler and self.param_schedulers:
            ckpt["param_schedulers"] = [s.state_dict() for s in self.param_schedulers]
        self.call_hook("before_save_checkpoint", checkpoint=ckpt)
        return ckpt

    def save_checkpoint(self, path: str, save_optimizer: bool = True,
                        save_param_scheduler: bool = True) -> None:
        """Write a full checkpoint to ``path`` (rank zero only; every rank must call it)."""
        if self.model is None:
            raise ValueError("save_checkpoint() needs a model: call fit() first")
        ckpt = self.checkpoint_dict(save_optimizer, save_param_scheduler)
        if dist.is_main_process():
            checkpoint.save_checkpoint(ckpt, path)
        dist.barrier()

    def load_checkpoint(self, path: str, strict: bool = True) -> dict[str, Any]:
        """Load only the model weights of ``path``; returns the whole checkpoint."""
        ckpt = checkpoint.load_checkpoint(path, map_location="cpu")
        if "state_dict" not in ckpt:
            raise ValueError(f"{path} is not a valid checkpoint: it has no 'state_dict'")
        self.model.load_state_dict(ckpt["state_dict"], strict=strict)
        return ckpt

    def resolve_ckpt_path(self, ckpt_path: str) -> str:
        """``"last"`` → the ``last_checkpoint`` pointer; ``"best"`` → the best checkpoint."""
        if ckpt_path == "last":
            last = checkpoint.read_last_checkpoint(self.work_dir)
            if last is None:
                raise ValueError(f"ckpt_path='last' but {self.work_dir} has no last_checkpoint")
            return last
        if ckpt_path == "best":
            from callbacks.checkpoint import CheckpointCallback

            best = [p for cb in self.callbacks.get(CheckpointCallback)
                    for p in cb.best_ckpt_paths.values()]
            if not best:
                raise ValueError(
                    "ckpt_path='best' but no best checkpoint exists: set "
                    "default_callbacks={'checkpoint': {'save_best': 'auto'}} and validate")
            return best[0]
        return ckpt_path

    def resume(self, path: str) -> None:
        """Restore model, optimizer, schedulers, callbacks, counters and RNG from ``path``."""
        ckpt = self.load_checkpoint(path)
        if "optimizer" in ckpt:
            self.optim_wrapper.load_state_dict(ckpt["optimizer"])
        for scheduler, state in zip(self.param_schedulers, ckpt.get("param_schedulers", [])):
            scheduler.load_state_dict(state)
        for key, cb in zip(callback_keys(self.callbacks), self.callbacks):
            if key in ckpt.get("callbacks", {}):
                cb.load_state_dict(ckpt["callbacks"][key])
        self.message_hub.load_state_dict(ckpt.get("message_hub", {}))
        meta = ckpt["meta"]
        self.state.epoch, self.state.iter = meta["epoch"], meta["iter"]
        self.state.batch_idx = meta.get("batch_idx", 0)
        if "rng" in ckpt:
            set_rng_state(ckpt["rng"])
        self.call_hook("after_load_checkpoint", checkpoint=ckpt)

    def _load_or_resume(self, ckpt_path: str | None) -> None:
        """MMEngine's four ``resume``/``load_from`` cases, plus ``fit(ckpt_path=...)``."""
        if ckpt_path is not None:
            self.resume(self.resolve_ckpt_path(ckpt_path))
        elif self._resume:
            path = self._load_from or checkpoint.read_last_checkpoint(self.work_dir)
            if path is not None:
                self.resume(path)
        elif self._load_from is not None:
            self.load_checkpoint(self._load_from)

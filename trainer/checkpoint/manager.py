"""The Trainer's checkpoint side: what a checkpoint holds, saving it, and resuming from it."""

from __future__ import annotations

import time
import warnings
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

    def checkpoint_dict(self, save_optimizer: bool = True, save_param_scheduler: bool = True,
                        progress: dict[str, int] | None = None) -> dict[str, Any]:
        """Everything a resume needs, as plain containers of tensors, numbers and strings.

        ``progress`` is the counters to record (default ``state.progress()``, the counters as
        they stand); a save from ``after_train_iter`` passes ``state.progress(iter_done=True)``.
        """
        ckpt: dict[str, Any] = {
            "meta": {**(progress or self.state.progress()), "seed": self.seed,
                     "trainer_version": library_version(), "torch_version": str(torch.__version__),
                     "time": time.strftime("%Y-%m-%d %H:%M:%S")},
            "state_dict": self.model.state_dict(),
            "message_hub": self.message_hub.state_dict(),
            "callbacks": {key: cb.state_dict() for key, cb in
                          zip(callback_keys(self.callbacks), self.callbacks)},
            "rng": dist.all_gather_object(get_rng_state()),  # one entry per rank
        }
        if self.train_loop is not None:
            meta = ckpt["meta"]
            meta.update(max_epochs=self.state.max_epochs, max_iters=self.state.max_iters)
            position = self.train_loop.data_state() if meta["batch_idx"] else {}
            ckpt["data"] = dist.all_gather_object(position)
        if save_optimizer and self.optim_wrapper is not None:
            ckpt["optimizer"] = self.optim_wrapper.state_dict()
        if save_param_scheduler and self.param_schedulers:
            ckpt["param_schedulers"] = [s.state_dict() for s in self.param_schedulers]
        self.call_hook("before_save_checkpoint", checkpoint=ckpt)
        return ckpt

    def save_checkpoint(self, path: str, save_optimizer: bool = True,
                        save_param_scheduler: bool = True,
                        progress: dict[str, int] | None = None) -> None:
        """Write a full checkpoint to ``path`` (rank zero only; every rank must call it).

        ``progress``: the counters to record, see ``checkpoint_dict``.
        """
        if self.model is None:
            raise ValueError("save_checkpoint() needs a model: call fit() first")
        ckpt = self.checkpoint_dict(save_optimizer, save_param_scheduler, progress)
        if dist.is_main_process():
            checkpoint.save_checkpoint(ckpt, path)
        dist.barrier()

    def load_checkpoint(self, path: str, strict: bool = True,
                        weights_only: bool = True) -> dict[str, Any]:
        """Load only the model weights of ``path``; returns the whole checkpoint.

        Args:
            path: a local path or fsspec URL.
            strict: refuse missing, unexpected or differently shaped weights; with ``False``
                the matching ones load and the rest are listed in a warning.
            weights_only: keep ``torch.load``'s safe unpickler; ``False`` only for a file you
                trust that holds arbitrary Python objects.
        """
        ckpt = self._load_weights(path, strict, weights_only)
        self.call_hook("after_load_checkpoint", checkpoint=ckpt)
        return ckpt

    def _load_weights(self, path: str, strict: bool = True,
                      weights_only: bool = True) -> dict[str, Any]:
        if self.model is None:
            raise ValueError("load_checkpoint() needs a model: pass one to fit/validate/test first")
        ckpt = checkpoint.load_checkpoint(path, map_location="cpu", weights_only=weights_only)
        if "state_dict" not in ckpt:
            raise ValueError(f"{path} is not a valid checkpoint: it has no 'state_dict'")
        checkpoint.load_model_state(self.model, ckpt["state_dict"], strict=strict, source=path)
        return ckpt

    def resolve_ckpt_path(self, ckpt_path: str) -> str:
        """``"last"`` → the ``last_checkpoint`` pointer; ``"best"`` → the best checkpoint."""
        if ckpt_path == "last":
            last = checkpoint.read_last_checkpoint(self.work_dir)
            if last is None:
                raise ValueError(f"ckpt_path='last' but {self.work_dir} has no last_checkpoint")
            return last
        if ckpt_path == "best":
            from trainer.callbacks.checkpoint import CheckpointCallback

            best = [p for cb in self.callbacks.get(CheckpointCallback)
                    for p in cb.best_ckpt_paths.values()]
            if not best:
                raise ValueError(
                    "ckpt_path='best' but no best checkpoint exists: set "
                    "default_callbacks={'checkpoint': {'save_best': 'auto'}} and validate")
            return best[0]
        return ckpt_path

    def resume(self, path: str) -> None:
        """Restore model, optimizer, schedulers, callbacks, counters, data position and RNG."""
        ckpt = self._load_weights(path)
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
        rank = dist.get_rank()
        if ckpt.get("data") and self.state.batch_idx:
            self.train_loop.load_data_state(per_rank(ckpt["data"], rank, "data position"))
        if "rng" in ckpt:
            set_rng_state(per_rank(ckpt["rng"], rank, "RNG state"))
        self.call_hook("after_load_checkpoint", checkpoint=ckpt)

    def check_work_dir_is_free(self, ckpt_path: str | None) -> None:
        """Refuse to start a new run over the checkpoints of another one."""
        if ckpt_path is not None or self._resume:
            return
        existing = checkpoint.read_last_checkpoint(self.work_dir)
        if existing is not None:
            raise FileExistsError(
                f"work_dir {self.work_dir} already holds a run (its last checkpoint is "
                f"{existing}); pass resume=True to continue it, or choose a new work_dir so "
                "that nothing it holds is overwritten")

    def _load_or_resume(self, ckpt_path: str | None) -> None:
        """MMEngine's four ``resume``/``load_from`` cases, plus ``fit(ckpt_path=...)``."""
        if ckpt_path is not None:
            self.resume(self.resolve_ckpt_path(ckpt_path))
            return
        if self._resume:
            path = self._load_from or checkpoint.read_last_checkpoint(self.work_dir)
            if path is not None:
                self.resume(path)
            return
        if self._load_from is not None:
            self.load_checkpoint(self._load_from)


def per_rank(entries: Any, rank: int, what: str) -> Any:
    """This rank's entry of a per-rank list; a single entry is shared (older checkpoints)."""
    if isinstance(entries, dict):
        return entries
    if rank < len(entries):
        return entries[rank]
    warnings.warn(f"the checkpoint has no {what} for rank {rank} (it was saved by "
                  f"{len(entries)} ranks); rank {rank} uses rank 0's", stacklevel=3)
    return entries[0]

"""The Trainer's checkpoint side: what a checkpoint holds, saving it, and resuming from it."""

from __future__ import annotations

import functools
import posixpath
import re
import time
import warnings
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import fsspec
import torch

from trainer import checkpoint, dist
from trainer.checkpoint import sharded, workdir
from trainer.checkpoint.io import BEST_CHECKPOINT
from trainer.logger import print_log
from trainer.randomness import get_rng_state, set_rng_state
from trainer.state import TrainState

INTERRUPTED = "interrupted_iter_{}.pth"


@functools.cache  # reading the installed metadata costs a millisecond; it cannot change
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
                     "interrupted": self.interrupts.saving,
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
        self.call_hook("before_save_checkpoint", ckpt)
        return ckpt

    def save_checkpoint(self, path: str, save_optimizer: bool = True,
                        save_param_scheduler: bool = True,
                        progress: dict[str, int] | None = None,
                        async_save: bool = False) -> sharded.PendingSave | None:
        """Write a full checkpoint to ``path`` (every rank must call it).

        One file written by rank zero; under FSDP a DCP directory written by every rank, in
        the background with ``async_save`` (wait on the returned ``PendingSave``).
        ``progress``: the counters to record, see ``checkpoint_dict``.
        """
        if self.model is None:
            raise ValueError("save_checkpoint() needs a model: call fit() first")
        self.nonfinite.check()  # a non-finite loss never reaches a checkpoint
        ckpt = self.checkpoint_dict(save_optimizer, save_param_scheduler, progress)
        if self.strategy.sharded:
            return sharded.save(ckpt, path, self.model, self.optim_wrapper, async_save)
        if dist.is_main_process():
            checkpoint.save_checkpoint(ckpt, path)
        dist.barrier()
        return None

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
        self.call_hook("after_load_checkpoint", ckpt)
        return ckpt

    def _load_weights(self, path: str, strict: bool = True, weights_only: bool = True,
                      resuming: bool = False, optim_wrapper: Any = None) -> dict[str, Any]:
        """Check the whole file first, then load its weights (a bare state dict loads too).

        A sharded (FSDP) checkpoint loads with ``optim_wrapper``'s state alongside the shards.
        """
        if self.model is None:
            raise ValueError("load_checkpoint() needs a model: pass one to fit/validate/test first")
        if sharded.is_sharded_checkpoint(path):  # the optimizer is loaded with the model's shards
            return sharded.load(path, self.model, optim_wrapper, strict=strict)
        ckpt = checkpoint.load_checkpoint(path, map_location="cpu", weights_only=weights_only)
        if "state_dict" not in ckpt:
            raise ValueError(f"{path} is not a valid checkpoint: it has no 'state_dict'")
        if resuming and not checkpoint.is_training_checkpoint(ckpt):
            raise ValueError(
                f"{path} holds weights only (no epoch, iteration or optimizer state), so "
                f"resume=True cannot continue from it; resume=False with load_from={path!r} "
                "loads its weights and trains from iteration 0")
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
            return self._best_checkpoint()
        return ckpt_path

    def _best_checkpoint(self) -> str:
        """This run's best checkpoint, else the ``best_checkpoint`` pointer, else the newest
        ``best_*.pth`` file in ``work_dir`` (so a new process finds a finished run's best)."""
        from trainer.callbacks.checkpoint import CheckpointCallback

        best = [p for cb in self.callbacks.get(CheckpointCallback)
                for p in cb.best_ckpt_paths.values()]
        if best:
            return best[0]
        pointed = checkpoint.read_last_checkpoint(self.work_dir, BEST_CHECKPOINT)
        if pointed is not None:
            return pointed
        fs, root = fsspec.core.url_to_fs(self.work_dir)
        files = fs.glob(f"{root}/best_*.pth")
        if not files:
            raise ValueError(
                f"ckpt_path='best' but {self.work_dir} holds no best checkpoint (no "
                "best_checkpoint pointer, no best_*.pth): they are written during fit by "
                "default_callbacks={'checkpoint': {'save_best': '<metric>'}} with a "
                "val_dataloader; ckpt_path='last' or a path also work")
        newest = max(files, key=lambda f: int(re.sub(r"\D", "", f.rsplit("_", 1)[-1]) or 0))
        return checkpoint.join(self.work_dir, posixpath.basename(newest))

    def resume(self, path: str) -> None:
        """Restore model, optimizer, schedulers, callbacks, counters, data position and RNG."""
        ckpt = self._load_weights(path, resuming=True, optim_wrapper=self.optim_wrapper)
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
        self.call_hook("after_load_checkpoint", ckpt)
        print_log(f"resumed from {path} at epoch {self.state.epoch}, iteration {self.state.iter}")

    def checkpoint_dirs(self) -> list[str]:
        """``work_dir`` and every other directory a ``CheckpointCallback`` saves into."""
        from trainer.callbacks.checkpoint import CheckpointCallback

        return list(dict.fromkeys([self.work_dir] + [
            cb.out_dir or self.work_dir for cb in self.callbacks.get(CheckpointCallback)]))

    def prepare_run(self, ckpt_path: str | None) -> str | None:
        """Before ``fit`` writes anything: the checkpoint it resumes from (``None``: fresh).

        Removes what killed saves left behind, gives the run a log folder of its own and, unless
        the run continues the one whose files are in ``work_dir``, moves those files into that
        run's log folder (see docs/checkpoints.md, "Running again").
        """
        from trainer.callbacks.checkpoint import CheckpointCallback

        if ckpt_path is not None:
            source = self.resolve_ckpt_path(ckpt_path)
        else:
            source = (self._load_from or checkpoint.read_last_checkpoint(self.work_dir)
                      if self._resume else None)
        dirs = self.checkpoint_dirs()
        if dist.is_main_process():
            for directory in dirs:
                workdir.remove_leftovers(directory)
            moved = None
            if source is None or posixpath.dirname(source) not in dirs:
                moved = workdir.move_earlier_run(self.work_dir, dirs)
            if moved:
                print_log(f"{self.work_dir} held an earlier run: its checkpoints and pointers "
                          f"moved to {moved} (resume=True would have continued it instead)")
            if workdir.holds_files(self.log_dir) or (
                    moved and posixpath.basename(moved) >= self.timestamp):
                self.timestamp = workdir.unique_timestamp(self.work_dir)  # a log folder of its own
            workdir.make_dir(checkpoint.join(self.work_dir, self.timestamp))  # a re-run finds it
        self.timestamp = dist.broadcast_object(self.timestamp)
        self.log_dir = checkpoint.join(self.work_dir, self.timestamp)
        dist.barrier()
        if source is None:  # a new run: forget the counters and checkpoints of an earlier fit
            state = self.state
            state.epoch = state.iter = state.batch_idx = 0
            state.stop_training = False
            self.message_hub.load_state_dict({})
            for cb in self.callbacks.get(CheckpointCallback):
                cb.load_state_dict({})
        return source

    def _load_or_resume(self, source: str | None) -> None:
        """MMEngine's four ``resume``/``load_from`` cases, plus ``fit(ckpt_path=...)``."""
        if source is not None:
            self.resume(source)
        elif self._resume:
            warnings.warn(f"no checkpoint in {self.work_dir}: starting from scratch",
                          stacklevel=3)
        elif self._load_from is not None:
            self.load_checkpoint(self._load_from)

    def save_interrupted(self) -> str:
        """Save ``interrupted_iter_{n}.pth``, rotated like a regular checkpoint and pointed to
        by ``last_checkpoint``; every rank calls it."""
        from trainer.callbacks.checkpoint import CheckpointCallback

        savers = self.callbacks.get(CheckpointCallback)
        if savers:
            path = savers[0].save_interrupted(self, INTERRUPTED.format(self.state.iter))
        else:
            path = checkpoint.join(self.work_dir, INTERRUPTED.format(self.state.iter))
            self.save_checkpoint(path)
            if dist.is_main_process():
                checkpoint.write_last_checkpoint(self.work_dir, path)
        dist.barrier()  # no rank ends before the pointer is written
        return path


def per_rank(entries: Any, rank: int, what: str) -> Any:
    """This rank's entry of a per-rank list; a single entry is shared (older checkpoints)."""
    if isinstance(entries, dict):
        return entries
    if rank < len(entries):
        return entries[rank]
    warnings.warn(f"the checkpoint has no {what} for rank {rank} (it was saved by "
                  f"{len(entries)} ranks); rank {rank} uses rank 0's", stacklevel=3)
    return entries[0]

"""Saves checkpoints on a schedule, keeps the best ones and points ``last_checkpoint`` at the latest."""

from __future__ import annotations

import math
import posixpath
import sys
from typing import Any

import fsspec
from trainer.callbacks.base import Callback, next_multiple

from trainer import checkpoint, dist
from trainer.arguments import is_int
from trainer.checkpoint.io import BEST_CHECKPOINT

_GREATER_KEYS = ("acc", "top", "ap", "auc", "precision", "recall", "f1", "iou", "psnr", "ssim")
_LESS_KEYS = ("loss", "error", "err", "mse", "mae", "rmse")


def infer_rule(metric: str) -> str:
    """MMEngine's guess: accuracy-like names are maximised, loss-like names minimised."""
    name = metric.lower().rsplit("/", 1)[-1]
    if any(key in name for key in _LESS_KEYS):
        return "less"
    if any(key in name for key in _GREATER_KEYS):
        return "greater"
    raise ValueError(f"cannot infer whether {metric!r} should grow or shrink: pass rule=")


class CheckpointCallback(Callback):
    """MMEngine's ``CheckpointHook``.

    Args:
        interval: save every ``interval`` epochs or iterations; ``-1`` saves only the last.
        by_epoch: count ``interval`` in epochs (else iterations).
        max_keep_ckpts: keep only this many regular checkpoints (``-1`` keeps all).
        save_last: save at the end of training even off the interval.
        save_best: a metric name, a list of names, or ``"auto"`` for the first metric.
        rule: ``"greater"`` or ``"less"`` (one per ``save_best`` name); inferred when ``None``.
        save_optimizer, save_param_scheduler: include those states.
        out_dir: directory (any fsspec URL) instead of ``work_dir``.
        save_begin: first epoch/iteration that may be saved.
        filename_tmpl: e.g. ``"epoch_{}.pth"``; defaults to MMEngine's names.
        async_save: under FSDP, write sharded checkpoints in the background
            (``torch.distributed.checkpoint.async_save``); the next save and the end of training
            wait for it, and ``last_checkpoint`` moves only once it is complete.
    """

    priority = "VERY_LOW"

    def __init__(self, interval: int = -1, by_epoch: bool = True, max_keep_ckpts: int = -1,
                 save_last: bool = True, save_best: str | list[str] | None = None,
                 rule: str | list[str] | None = None, save_optimizer: bool = True,
                 save_param_scheduler: bool = True, out_dir: str | None = None,
                 save_begin: int = 0, filename_tmpl: str | None = None,
                 async_save: bool = False, priority: int | str | None = None) -> None:
        super().__init__(priority)
        if not is_int(interval) or interval == 0 or interval < -1:
            raise ValueError(f"interval must be a positive int or -1, got {interval!r}")
        if not is_int(max_keep_ckpts) or max_keep_ckpts == 0 or max_keep_ckpts < -1:
            raise ValueError(f"max_keep_ckpts must be a positive int or -1, got {max_keep_ckpts!r}")
        self.interval, self.by_epoch, self.max_keep_ckpts = interval, by_epoch, max_keep_ckpts
        self.save_last, self.save_begin = save_last, save_begin
        self.save_optimizer, self.save_param_scheduler = save_optimizer, save_param_scheduler
        self.out_dir = out_dir
        self.filename_tmpl = filename_tmpl or ("epoch_{}.pth" if by_epoch else "iter_{}.pth")
        self.save_best = [save_best] if isinstance(save_best, str) else list(save_best or [])
        rules = rule if isinstance(rule, list) else [rule] * max(len(self.save_best), 1)
        for r in rules:
            if r not in (None, "greater", "less"):
                raise ValueError(f"rule must be 'greater', 'less' or None, got {r!r}")
        self.rules = rules
        self.best_scores: dict[str, float] = {}
        self.best_ckpt_paths: dict[str, str] = {}
        self.kept: list[str] = []
        self.last_saved: int | None = None
        if not isinstance(async_save, bool):
            raise TypeError(f"async_save must be True or False, got {async_save!r}")
        self.async_save = async_save
        self._pending: tuple[Any, str, list[str]] | None = None  # a save, its path, what expires

    @property
    def monitored_metrics(self) -> list[str]:
        """The ``save_best`` names, checked against the evaluator's before training."""
        return [name for name in self.save_best if name != "auto"]

    def before_train(self, trainer: Any) -> None:
        self.out_dir = self.out_dir or trainer.work_dir

    def after_train_epoch(self, trainer: Any) -> None:
        if self.by_epoch and self._due(trainer.epoch + 1, trainer.max_epochs):
            self._save_regular(trainer, trainer.epoch + 1, trainer.state.progress(epoch_done=True))

    def after_train_iter(self, trainer: Any, batch_idx: int, data_batch: Any = None,
                         outputs: dict | None = None) -> None:
        if self.by_epoch:
            return
        state = trainer.state
        if self._due(state.iter + 1, state.max_iters):
            self._save_regular(trainer, state.iter + 1, state.progress(iter_done=True))

    def after_train(self, trainer: Any) -> None:
        # Training stopped early (stop_training): the run still ends with a checkpoint.
        done = trainer.epoch if self.by_epoch else trainer.iter
        if self.save_last and done and self.last_saved != done:
            self._save_regular(trainer, done)
        self._finish_pending(trainer)

    def skippable_train_iters(self, trainer: Any, batch_idx: int) -> int:
        """Iterations after this one before the next iteration-based save is due."""
        if self.by_epoch:
            return sys.maxsize
        done, total = trainer.state.iter + 1, trainer.state.max_iters
        due = [total] if self.save_last and total is not None and total > done else []
        if self.interval > 0:
            due.append(next_multiple(self.interval, max(done + 1, self.save_begin)))
        return min(due) - done - 1 if due else sys.maxsize

    def _due(self, done: int, total: int | None) -> bool:
        if done < self.save_begin:
            return False
        return (self.interval > 0 and done % self.interval == 0) or (
            self.save_last and done == total)

    def save_interrupted(self, trainer: Any, name: str) -> str:
        """Save the interruption checkpoint ``name``; it rotates like a regular one."""
        path = checkpoint.join(self.out_dir or trainer.work_dir, name)
        self._save_rotating(trainer, path)  # synchronously: the process ends right after
        return path

    def _save_regular(self, trainer: Any, done: int,
                      progress: dict[str, int] | None = None) -> None:
        self.last_saved = done  # first: the checkpoint must record itself as saved
        self._save_rotating(trainer, checkpoint.join(self.out_dir, self.filename_tmpl.format(done)),
                            progress, self.async_save)

    def _save_rotating(self, trainer: Any, path: str, progress: dict[str, int] | None = None,
                       async_save: bool = False) -> None:
        # Update the state first: the checkpoint must record itself as kept.
        self.kept.append(path)
        expired = self.kept[:-self.max_keep_ckpts] if self.max_keep_ckpts > 0 else []
        self.kept = self.kept[len(expired):]
        self._pending = (self._save(trainer, path, progress, async_save), path, expired)
        if not async_save:
            self._finish_pending(trainer)

    def _finish_pending(self, trainer: Any) -> None:
        """Once a save is complete: point ``last_checkpoint`` at it and rotate old ones out."""
        if self._pending is None:
            return
        pending, path, expired = self._pending
        self._pending = None
        if pending is not None:
            pending.wait()
        if dist.is_main_process():
            checkpoint.write_last_checkpoint(trainer.work_dir, path)
        for old in expired:
            self._remove(old)

    def _save(self, trainer: Any, path: str, progress: dict[str, int] | None = None,
              async_save: bool = False) -> Any:
        self._finish_pending(trainer)
        return trainer.save_checkpoint(path, save_optimizer=self.save_optimizer,
                                       save_param_scheduler=self.save_param_scheduler,
                                       progress=progress, async_save=async_save)

    def after_val_epoch(self, trainer: Any, metrics: dict[str, Any] | None = None) -> None:
        if not self.save_best or not metrics or trainer.train_loop is None:
            return
        names = list(metrics)[:1] if self.save_best == ["auto"] else self.save_best
        for name, rule in zip(names, self.rules):
            if name not in metrics:
                raise KeyError(f"save_best metric {name!r} is not among {list(metrics)}")
            rule = rule or infer_rule(name)
            score = float(metrics[name])
            best = self.best_scores.get(name, -math.inf if rule == "greater" else math.inf)
            if not (score > best if rule == "greater" else score < best):
                continue
            self.best_scores[name] = score
            unit, done = ("epoch", trainer.epoch) if self.by_epoch else ("iter", trainer.iter)
            prefix = checkpoint.join(self.out_dir or trainer.work_dir,
                                     f"best_{name.replace('/', '_')}_{unit}_")
            path = f"{prefix}{done}.pth"
            self.best_ckpt_paths[name] = path
            self._save(trainer, path)
            if name == names[0] and dist.is_main_process():  # for ckpt_path="best" later
                checkpoint.write_last_checkpoint(trainer.work_dir, path, BEST_CHECKPOINT)
            self._remove_older_best(prefix, path)

    @staticmethod
    def _remove_older_best(prefix: str, keep: str) -> None:
        """Delete earlier best files of a metric, including one a resume did not know about.

        Only this run's files are in ``out_dir``: a new run moved the earlier one's aside.
        """
        if dist.is_main_process():
            fs, fs_prefix = fsspec.core.url_to_fs(prefix)
            _, keep_path = fsspec.core.url_to_fs(keep)
            for old in fs.glob(f"{fs_prefix}*.pth"):
                if old != keep_path:
                    fs.rm(old, recursive=True)  # a sharded checkpoint is a directory

    def _remove(self, path: str) -> None:
        """Delete a rotated-out checkpoint of this run (never one outside ``out_dir``)."""
        if dist.is_main_process() and posixpath.dirname(path) == self.out_dir:
            fs, fs_path = fsspec.core.url_to_fs(path)
            if fs.exists(fs_path):
                fs.rm(fs_path, recursive=True)

    def state_dict(self) -> dict[str, Any]:
        return {"best_scores": dict(self.best_scores),
                "best_ckpt_paths": dict(self.best_ckpt_paths),
                "kept": list(self.kept), "last_saved": self.last_saved}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.best_scores = dict(state_dict.get("best_scores", {}))
        self.best_ckpt_paths = dict(state_dict.get("best_ckpt_paths", {}))
        self.kept = list(state_dict.get("kept", []))
        self.last_saved = state_dict.get("last_saved")

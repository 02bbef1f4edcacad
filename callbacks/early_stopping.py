"""Ends training when a validation metric stops improving."""

from __future__ import annotations

import math
import warnings
from typing import Any

from trainer.callbacks.base import Callback

from trainer.arguments import check_non_negative_int, is_number
from trainer.logger import print_log

# MMEngine's lists: a monitor named like these is maximised / minimised.
GREATER_KEYS = ("acc", "top", "AR@", "auc", "precision", "mAP", "mDice", "mIoU", "mAcc", "aAcc")
LESS_KEYS = ("loss",)


def infer_rule(monitor: str) -> str:
    """MMEngine's rule inference: exact names first, then names that contain a known key."""
    name = monitor.lower()
    greater, less = {k.lower() for k in GREATER_KEYS}, {k.lower() for k in LESS_KEYS}
    if name in greater:
        return "greater"
    if name in less:
        return "less"
    if any(key in name for key in greater):
        return "greater"
    if any(key in name for key in less):
        return "less"
    raise ValueError(f"cannot infer whether {monitor!r} should grow or shrink: pass "
                     "rule='greater' or rule='less'")


class EarlyStoppingCallback(Callback):
    """MMEngine's ``EarlyStoppingHook``: stop when ``monitor`` has not improved for a while.

    After each validation during ``fit``: a value at least ``min_delta`` better than the best so
    far (``>= best + min_delta`` for ``rule="greater"``, ``<= best - min_delta`` for ``"less"``)
    resets the count; any other value adds one, and when the count reaches ``patience`` training
    stops. Training also stops at once when the value is not finite (``check_finite``) or is
    strictly better than ``stopping_threshold``. It stops at the end of the validation that
    decides it: ``trainer.stop_training`` is set there, so the loop ends without training
    further, and the last checkpoint is written as usual. The count and the best value are saved
    in checkpoints, so a resumed run continues counting. The message says the best value really
    reached and where (``best_value``, ``best_at``); the reference for counting, ``best_score``,
    only moves on gains of at least ``min_delta``.

    Args:
        monitor: the metric's name as the evaluator returns it (``"accuracy"``); a ``"val/"``
            prefix is accepted.
        rule: ``"greater"`` or ``"less"``; inferred from the name when ``None`` (accuracy-like
            names are maximised, loss-like names minimised).
        min_delta: the smallest change that counts as an improvement. MMEngine's default 0.1 is
            kept; for accuracies in [0, 1] you likely want something like 0.001.
        strict: raise when ``monitor`` is missing from the metrics (else warn and skip).
        check_finite: stop when the value becomes NaN or infinite; without it a NaN counts as
            no improvement (MMEngine would make it the best value).
        patience: validations without improvement before stopping (0 acts as 1).
        stopping_threshold: stop as soon as the value is better than this.

    Example:
        >>> stopper = EarlyStoppingCallback(monitor="val/loss", patience=2)
        >>> stopper.rule  # inferred from the name
        'less'
        >>> [stopper.check(loss) != "" for loss in (0.5, 0.4, 0.45, 0.41)]  # stop after 2 worse
        [False, False, False, True]
    """

    priority = "LOWEST"

    def __init__(self, monitor: str, rule: str | None = None, min_delta: float = 0.1,
                 strict: bool = False, check_finite: bool = True, patience: int = 5,
                 stopping_threshold: float | None = None,
                 priority: int | str | None = None) -> None:
        super().__init__(priority)
        if not isinstance(monitor, str) or not monitor:
            raise TypeError(f"EarlyStoppingCallback monitor must be a metric name, got "
                            f"{monitor!r}")
        if rule not in (None, "greater", "less"):
            raise ValueError(f"rule must be 'greater', 'less' or None, got {rule!r}")
        if not is_number(min_delta) or min_delta < 0:
            raise ValueError(f"min_delta must be a number >= 0, got {min_delta!r}")
        check_non_negative_int("patience", patience)
        if stopping_threshold is not None and not is_number(stopping_threshold):
            raise TypeError(f"stopping_threshold must be a number or None, got "
                            f"{stopping_threshold!r}")
        self.monitor = monitor[4:] if monitor.startswith("val/") else monitor
        self.rule = rule or infer_rule(self.monitor)
        self.min_delta = float(min_delta)
        self.strict, self.check_finite = strict, check_finite
        self.patience = patience
        self.stopping_threshold = stopping_threshold
        self.wait_count = 0
        self.best_score = -math.inf if self.rule == "greater" else math.inf  # the reference
        self.best_value = self.best_score  # the best value seen, at best_at (epoch, iter)
        self.best_at: dict[str, int] | None = None
        self.stopped_at: dict[str, int] | None = None
        self.reason = ""
        self._training = False

    @property
    def monitored_metrics(self) -> list[str]:
        """The ``monitor`` name, checked against the evaluator's before training."""
        return [self.monitor]

    def _better(self, a: float, b: float) -> bool:
        return a > b if self.rule == "greater" else a < b

    def check(self, score: float) -> str:
        """Count ``score`` in; the reason to stop, or ``""`` to go on."""
        if self.check_finite and not math.isfinite(score):
            return f"monitored metric {self.monitor} = {score} is not finite"
        if self.stopping_threshold is not None and self._better(score, self.stopping_threshold):
            self.best_score = score
            return (f"stopping threshold reached: {self.monitor} = {score:.4f} is "
                    f"{self.rule} than {self.stopping_threshold}")
        step = self.min_delta if self.rule == "greater" else -self.min_delta
        if math.isnan(score) or self._better(self.best_score + step, score):
            self.wait_count += 1
            if self.wait_count >= self.patience:
                return (f"{self.monitor} did not improve by {self.min_delta} in the last "
                        f"{self.wait_count} validations")
            return ""
        self.best_score, self.wait_count = score, 0
        return ""

    def before_train(self, trainer: Any) -> None:
        self._training = True

    def after_train(self, trainer: Any) -> None:
        self._training = False

    def after_val_epoch(self, trainer: Any, metrics: dict[str, Any] | None = None) -> None:
        if not self._training:
            return  # a standalone validate() decides nothing
        metrics = metrics or {}
        if self.monitor not in metrics:
            message = (f"early stopping monitors {self.monitor!r}, which is not among the "
                       f"validation metrics {sorted(metrics)}")
            if self.strict:
                raise ValueError(message + " (strict=True)")
            warnings.warn(message + "; skipped", stacklevel=2)
            return
        score = float(metrics[self.monitor])
        if math.isfinite(score) and (self.best_at is None or self._better(score, self.best_value)):
            self.best_value, self.best_at = score, {"epoch": trainer.epoch, "iter": trainer.iter}
        self.reason = self.check(score)
        if self.reason:
            trainer.stop_training = True
            self.stopped_at = {"epoch": trainer.epoch, "iter": trainer.iter}
            print_log(f"Early stopping: {self.reason}; {self.best_text()}.")

    def best_text(self) -> str:
        """``"the best accuracy was 0.9740, at epoch 5 (iteration 200)"``: the real best, which
        may exceed the reference ``best_score`` when gains were smaller than ``min_delta``."""
        if self.best_at is None:
            return f"{self.monitor} had no finite value"
        return (f"the best {self.monitor} was {self.best_value:.4f}, at epoch "
                f"{self.best_at['epoch']} (iteration {self.best_at['iter']})")

    def state_dict(self) -> dict[str, Any]:
        return {"wait_count": self.wait_count, "best_score": self.best_score,
                "best_value": self.best_value, "best_at": self.best_at}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.wait_count = int(state_dict.get("wait_count", 0))
        self.best_score = float(state_dict.get("best_score", self.best_score))
        self.best_value = float(state_dict.get("best_value", self.best_value))
        self.best_at = state_dict.get("best_at")

"""MMCV's ``lr_config`` (an ``LrUpdaterHook``) as a list of MMEngine parameter schedulers.

The schedules are chosen so that the learning rate of every iteration equals MMCV's:

* MMCV's decay counts from 0 to ``max_progress`` (epochs or iterations) and never reaches its
  end value, while MMEngine's ``PolyLR``/``LinearLR`` reach theirs at ``end - 1``; so those get
  ``end = max_progress + 1``. ``CosineAnnealingLR`` takes ``T_max = max_progress`` directly.
* MMCV's linear warm-up reaches the regular rate at iteration ``warmup_iters``; MMEngine's
  ``LinearLR`` one step before its ``end``, so the warm-up gets ``end = warmup_iters + 1``.
* A warm-up multiplies the decayed rate in MMCV; chained schedulers multiply too, so a warm-up
  in front of a multiplicative decay (step, exp, and cosine, poly or linear annealing to 0)
  composes exactly. A decay to a non-zero floor is affine, not multiplicative, and the
  composition then differs during the warm-up (a note says by how much to expect).

Where an exact form needs the number of iterations per epoch (an iteration-based decay in an
epoch-based run), pass ``epoch_length``; without it the epoch-based form converted to
iterations is used and a note says what differs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["POLICIES", "migrate_lr_config"]

INF = int(1e9)  # MMEngine's "no end"
POLICIES = ("fixed", "step", "exp", "poly", "inv", "CosineAnnealing", "FlatCosineAnnealing",
            "CosineRestart", "Cyclic", "OneCycle", "LinearAnnealing")
_ALIASES = {p.lower(): p for p in POLICIES} | {"cosine": "CosineAnnealing",
                                               "flatcosine": "FlatCosineAnnealing"}
_WARMUP_KEYS = ("warmup", "warmup_iters", "warmup_ratio", "warmup_by_epoch")


class _Run:
    """The run the schedule belongs to, and the unit (epochs or iterations) of the decay."""

    def __init__(self, by_epoch_runner: bool, max_epochs: int | None, max_iters: int | None,
                 epoch_length: int | None, by_epoch: bool) -> None:
        self.by_epoch_runner, self.by_epoch = by_epoch_runner, by_epoch
        self.floor = False  # the decay ends at a non-zero minimum (not multiplicative)
        self.max_epochs, self.max_iters, self.epoch_length = max_epochs, max_iters, epoch_length
        if by_epoch:
            self.total = max_epochs
        elif not by_epoch_runner:
            self.total = max_iters
        else:
            self.total = max_epochs * epoch_length if epoch_length and max_epochs else None

    @property
    def iters(self) -> int | None:
        """Iterations of the run, when known."""
        if not self.by_epoch_runner:
            return self.max_iters
        return self.max_epochs * self.epoch_length if self.epoch_length else None


def migrate_lr_config(lr_config: Mapping[str, Any], *, by_epoch_runner: bool,
                      max_epochs: int | None = None, max_iters: int | None = None,
                      epoch_length: int | None = None, base_lr: float | None = None
                      ) -> tuple[list[dict[str, Any]], list[str]]:
    """``(param_scheduler list, notes)`` for an MMCV ``lr_config``.

    Args:
        lr_config: e.g. ``dict(policy="step", warmup="linear", warmup_iters=500,
            warmup_ratio=0.001, step=[8, 11])``.
        by_epoch_runner: ``EpochBasedRunner`` (``True``) or ``IterBasedRunner``.
        max_epochs, max_iters: the run's length (the one its runner counts).
        epoch_length: iterations per epoch, when known (see the module docstring).
        base_lr: the optimizer's lr, needed only for an absolute ``min_lr`` where the new
            scheduler takes a factor.

    Example:
        >>> schedulers, notes = migrate_lr_config(
        ...     dict(policy="step", warmup="linear", warmup_iters=500, warmup_ratio=0.001,
        ...          step=[8, 11]), by_epoch_runner=True, max_epochs=12)
        >>> schedulers[0]
        {'type': 'LinearLR', 'start_factor': 0.001, 'by_epoch': False, 'begin': 0, 'end': 501}
        >>> schedulers[1]
        {'type': 'MultiStepLR', 'milestones': [8, 11], 'gamma': 0.1, 'by_epoch': True}
    """
    cfg = dict(lr_config)
    raw_policy = cfg.pop("policy", None)
    if not isinstance(raw_policy, str) or raw_policy.lower() not in _ALIASES:
        raise ValueError(f"lr_config policy {raw_policy!r} is not an MMCV policy; known: "
                         f"{list(POLICIES)}")
    policy = _ALIASES[raw_policy.lower()]
    default_by_epoch = by_epoch_runner and policy not in ("OneCycle", "Cyclic")
    by_epoch = cfg.pop("by_epoch", default_by_epoch)
    warmup = {k: cfg.pop(k) for k in _WARMUP_KEYS if k in cfg}
    notes: list[str] = []
    if by_epoch and not by_epoch_runner:
        return [], [f"lr_config policy={raw_policy!r} with by_epoch=True in an IterBasedRunner "
                    "is not mapped: give the schedule in iterations (by_epoch=False)"]
    run = _Run(by_epoch_runner, max_epochs, max_iters, epoch_length, by_epoch)
    main = _MAIN[policy](cfg, run, base_lr, notes)
    if main is None:
        return [], notes
    warm = _warmup(warmup, run, notes)
    if warm and run.floor:
        notes.append(f"the {policy} decay ends at a non-zero minimum and a warm-up precedes it: "
                     "MMCV scaled the whole decayed lr by the warm-up factor, chained schedulers "
                     "scale it before the minimum is added, so during the warm-up (and fading "
                     "after it) the lr differs slightly from MMCV's")
    for key in sorted(cfg):
        notes.append(f"lr_config {key}={cfg[key]!r} is not mapped")
    return warm + main, notes


def _unit(run: _Run) -> dict[str, Any]:
    return {"by_epoch": run.by_epoch}


def _fixed(cfg: dict, run: _Run, base_lr: Any, notes: list[str]) -> list[dict]:
    return []


def _step(cfg: dict, run: _Run, base_lr: Any, notes: list[str]) -> list[dict] | None:
    step, gamma, min_lr = cfg.pop("step"), cfg.pop("gamma", 0.1), cfg.pop("min_lr", None)
    milestones = None if isinstance(step, int) else list(step)
    cut = None  # number of the decay at which min_lr clips, if it does within 1000 decays
    if min_lr is not None:
        if base_lr is None:
            notes.append(f"lr_config min_lr={min_lr} is not mapped: the optimizer's lr is "
                         "unknown (several optimizers?), so the clipping point is unknown")
        else:
            cut = next((j for j in range(1, 1001) if base_lr * gamma**j < min_lr), None)
    if cut is None:
        if milestones is None:
            return [{"type": "StepLR", "step_size": step, "gamma": gamma, **_unit(run)}]
        return [{"type": "MultiStepLR", "milestones": milestones, "gamma": gamma, **_unit(run)}]
    notes.append(f"lr_config min_lr={min_lr} is an absolute floor; it is mapped for the "
                 f"optimizer's lr {base_lr} (param groups with another lr are clipped at the "
                 "same fraction of theirs)")
    last = min_lr / (base_lr * gamma ** (cut - 1))  # the clipped decay, as a factor
    if milestones is None:
        at = cut * step
        schedulers = [{"type": "StepLR", "step_size": step, "gamma": gamma, **_unit(run),
                       "begin": 0, "end": at}]
    else:
        if cut > len(milestones):
            return [{"type": "MultiStepLR", "milestones": milestones, "gamma": gamma,
                     **_unit(run)}]
        at = milestones[cut - 1]
        schedulers = ([{"type": "MultiStepLR", "milestones": milestones[:cut - 1],
                        "gamma": gamma, **_unit(run)}] if cut > 1 else [])
    if last < 1:
        schedulers.append({"type": "MultiStepLR", "milestones": [at], "gamma": last,
                           **_unit(run)})
    return schedulers


def _exp(cfg: dict, run: _Run, base_lr: Any, notes: list[str]) -> list[dict]:
    return [{"type": "ExponentialLR", "gamma": cfg.pop("gamma"), **_unit(run)}]


def _poly(cfg: dict, run: _Run, base_lr: Any, notes: list[str]) -> list[dict]:
    power, min_lr = cfg.pop("power", 1.0), cfg.pop("min_lr", 0.0)
    run.floor = min_lr != 0
    return [_decay_to_end({"type": "PolyLR", "eta_min": min_lr, "power": power}, run, notes)]


def _linear_annealing(cfg: dict, run: _Run, base_lr: Any, notes: list[str]) -> list[dict] | None:
    end_factor = _min_ratio(cfg, run, base_lr, "LinearAnnealing", notes)
    if end_factor is None:
        return None
    return [_decay_to_end({"type": "LinearLR", "start_factor": 1.0, "end_factor": end_factor},
                          run, notes)]


def _decay_to_end(scheduler: dict, run: _Run, notes: list[str]) -> dict:
    """A decay that MMCV evaluates at ``progress / max_progress``: ``end = max_progress + 1``."""
    if run.total is not None:
        return {**scheduler, **_unit(run), "begin": 0, "end": run.total + 1}
    notes.append(f"{scheduler['type']}: an iteration-based decay in an epoch-based run is "
                 "written as the epoch-based one converted to iterations, which reaches its end "
                 "value one iteration earlier than MMCV's; rerun the migration with "
                 "--epoch-length N for the exact curve")
    return {**scheduler, "by_epoch": True, "convert_to_iter_based": True}


def _minimum(cfg: dict, policy: str, run: _Run) -> dict[str, Any]:
    min_lr, ratio = cfg.pop("min_lr", None), cfg.pop("min_lr_ratio", None)
    if (min_lr is None) == (ratio is None):
        raise ValueError(f"lr_config policy={policy!r} needs exactly one of min_lr and "
                         f"min_lr_ratio, got min_lr={min_lr!r}, min_lr_ratio={ratio!r}")
    run.floor = (min_lr or ratio or 0) != 0
    return {"eta_min": min_lr} if ratio is None else {"eta_min_ratio": ratio}


def _min_ratio(cfg: dict, run: _Run, base_lr: Any, policy: str,
               notes: list[str]) -> float | None:
    minimum = _minimum(cfg, policy, run)
    run.floor = False  # LinearLR scales by a factor: multiplicative, exact with a warm-up
    if "eta_min_ratio" in minimum:
        return minimum["eta_min_ratio"]
    if base_lr is None:
        notes.append(f"lr_config policy={policy!r} with an absolute min_lr is not mapped: the "
                     "optimizer's lr is unknown")
        return None
    return minimum["eta_min"] / base_lr


def _cosine(cfg: dict, run: _Run, base_lr: Any, notes: list[str]) -> list[dict]:
    minimum = _minimum(cfg, "CosineAnnealing", run)
    if run.total is not None:
        return [{"type": "CosineAnnealingLR", "T_max": run.total, **minimum, **_unit(run),
                 "begin": 0, "end": run.total}]
    return [{"type": "CosineAnnealingLR", "T_max": run.max_epochs, **minimum, "by_epoch": True,
             "begin": 0, "end": run.max_epochs, "convert_to_iter_based": True}]


def _flat_cosine(cfg: dict, run: _Run, base_lr: Any, notes: list[str]) -> list[dict] | None:
    start_percent = cfg.pop("start_percent", 0.75)
    minimum = _minimum(cfg, "FlatCosineAnnealing", run)
    if run.total is None:
        notes.append("lr_config policy='FlatCosineAnnealing' with by_epoch=False in an "
                     "epoch-based run is not mapped: rerun the migration with --epoch-length N")
        return None
    start = round(run.total * start_percent)
    return [{"type": "CosineAnnealingLR", "T_max": run.total - start, **minimum, **_unit(run),
             "begin": start, "end": run.total}]


def _restart(cfg: dict, run: _Run, base_lr: Any, notes: list[str]) -> list[dict]:
    periods, weights = cfg.pop("periods"), cfg.pop("restart_weights", [1])
    minimum = _minimum(cfg, "CosineRestart", run)
    if run.floor and any(w != 1 for w in weights):
        notes.append("CosineRestart with restart_weights != 1 and a non-zero minimum: MMCV "
                     "weights (base - min), MMEngine restarts from base * weight, so the curves "
                     "differ after the first restart")
    return [{"type": "CosineRestartLR", "periods": list(periods),
             "restart_weights": list(weights), **minimum, **_unit(run)}]


def _one_cycle(cfg: dict, run: _Run, base_lr: Any, notes: list[str]) -> list[dict] | None:
    max_lr = cfg.pop("max_lr")
    if isinstance(max_lr, Mapping):
        notes.append("lr_config policy='OneCycle' with max_lr per optimizer is not mapped")
        return None
    scheduler = {"type": "OneCycleLR", "eta_max": max_lr}
    for old, new in (("total_steps", "total_steps"), ("pct_start", "pct_start"),
                     ("anneal_strategy", "anneal_strategy"), ("div_factor", "div_factor"),
                     ("final_div_factor", "final_div_factor"), ("three_phase", "three_phase")):
        if old in cfg:
            scheduler[new] = cfg.pop(old)
    return [{**scheduler, "by_epoch": False}]


def _not_mapped(policy: str, why: str) -> Any:
    def mapper(cfg: dict, run: _Run, base_lr: Any, notes: list[str]) -> None:
        cfg.clear()
        notes.append(f"lr_config policy={policy!r} is not mapped: {why}")
    return mapper


_MAIN = {
    "fixed": _fixed, "step": _step, "exp": _exp, "poly": _poly, "CosineAnnealing": _cosine,
    "FlatCosineAnnealing": _flat_cosine, "CosineRestart": _restart, "OneCycle": _one_cycle,
    "LinearAnnealing": _linear_annealing,
    "inv": _not_mapped("inv", "MMEngine has no inverse-decay scheduler; write "
                              "lr = base * (1 + gamma * t) ** -power yourself as a scheduler"),
    "Cyclic": _not_mapped("Cyclic", "MMEngine has no cyclic lr scheduler; OneCycleLR or "
                                    "CosineRestartLR come closest"),
}


def _warmup(cfg: dict[str, Any], run: _Run, notes: list[str]) -> list[dict]:
    kind = cfg.get("warmup")
    if kind is None:
        return []
    if kind not in ("linear", "constant", "exp"):
        raise ValueError(f"lr_config warmup {kind!r} is not one of 'linear', 'constant', 'exp'")
    length, ratio = cfg.get("warmup_iters", 0), cfg.get("warmup_ratio", 0.1)
    if not (isinstance(length, int) and length > 0 and 0 < ratio <= 1):
        raise ValueError(f"lr_config warmup needs warmup_iters > 0 and 0 < warmup_ratio <= 1, "
                         f"got warmup_iters={length!r}, warmup_ratio={ratio!r}")
    if cfg.get("warmup_by_epoch", False):
        if run.epoch_length:
            length *= run.epoch_length
        elif kind == "constant":  # the warm-up ends at an epoch boundary: epochs are exact
            return [{"type": "ConstantLR", "factor": ratio, "by_epoch": True, "begin": 0,
                     "end": length + 1}]
        elif kind == "linear":
            notes.append(f"the linear warm-up of {length} epochs is converted to iterations "
                         "and reaches 1 one iteration earlier than MMCV's; rerun the migration "
                         "with --epoch-length N for the exact curve")
            return [{"type": "LinearLR", "start_factor": ratio, "by_epoch": True, "begin": 0,
                     "end": length, "convert_to_iter_based": True}]
        else:
            notes.append(f"the exp warm-up of {length} epochs is not mapped: its per-iteration "
                         "factor needs the epoch length; rerun the migration with "
                         "--epoch-length N")
            return []
    iters = {"by_epoch": False, "begin": 0, "end": length + 1}
    if kind == "linear":
        return [{"type": "LinearLR", "start_factor": ratio, **iters}]
    if kind == "constant":
        return [{"type": "ConstantLR", "factor": ratio, **iters}]
    # exp: ratio ** (1 - t / W) = ratio * (ratio ** (-1 / W)) ** t, back to 1 at t = W
    return [{"type": "ConstantLR", "factor": ratio, "by_epoch": False, "begin": 0, "end": INF},
            {"type": "ExponentialLR", "gamma": ratio ** (-1 / length), **iters}]

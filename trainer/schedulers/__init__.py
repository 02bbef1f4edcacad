"""Parameter schedulers with MMEngine's class names, arguments and values.

``from mmengine.optim import MultiStepLR`` ports as ``from trainer.schedulers import
MultiStepLR``. Every class named in ``SCHEDULERS`` (one table, in ``variants``) is exported
here. The Trainer builds its ``param_scheduler`` argument with ``build_param_schedulers``; its
scheduler callback steps iteration-based schedulers after every training iteration,
epoch-based ones after every training epoch, and ``ReduceOnPlateau*`` after every validation.
"""

from trainer.schedulers.base import (
    INF,
    ParamGroupKeyError,
    ParamScheduler,
    SchedulerArgumentError,
    _ParamScheduler,
)
from trainer.schedulers.builder import build_param_schedulers
from trainer.schedulers.variants import SCHEDULERS, LRSchedulerMixin, MomentumSchedulerMixin

globals().update(SCHEDULERS)

__all__ = [
    "INF",
    "SCHEDULERS",
    "LRSchedulerMixin",
    "MomentumSchedulerMixin",
    "ParamGroupKeyError",
    "ParamScheduler",
    "SchedulerArgumentError",
    "_ParamScheduler",
    "build_param_schedulers",
    *SCHEDULERS,
]

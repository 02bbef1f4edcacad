"""Parameter schedulers with MMEngine's class names, arguments and values.

``from mmengine.optim import MultiStepLR`` ports as ``from trainer.schedulers import
MultiStepLR``. The Trainer builds its ``param_scheduler`` argument with
``build_param_schedulers`` and steps iteration-based schedulers after every training
iteration and epoch-based ones after every training epoch.
"""

from trainer.schedulers.base import INF, ParamScheduler, _ParamScheduler
from trainer.schedulers.builder import SCHEDULERS, build_param_schedulers
from trainer.schedulers.cyclic import (
    CosineAnnealingParamScheduler,
    CosineRestartParamScheduler,
    OneCycleParamScheduler,
)
from trainer.schedulers.decay import (
    ConstantParamScheduler,
    ExponentialParamScheduler,
    LinearParamScheduler,
    MultiStepParamScheduler,
    PolyParamScheduler,
    StepParamScheduler,
)
from trainer.schedulers.variants import (
    ConstantLR,
    ConstantMomentum,
    CosineAnnealingLR,
    CosineAnnealingMomentum,
    CosineRestartLR,
    CosineRestartMomentum,
    ExponentialLR,
    ExponentialMomentum,
    LinearLR,
    LinearMomentum,
    LRSchedulerMixin,
    MomentumSchedulerMixin,
    MultiStepLR,
    MultiStepMomentum,
    OneCycleLR,
    PolyLR,
    PolyMomentum,
    StepLR,
    StepMomentum,
)

__all__ = [
    "INF",
    "SCHEDULERS",
    "ConstantLR",
    "ConstantMomentum",
    "ConstantParamScheduler",
    "CosineAnnealingLR",
    "CosineAnnealingMomentum",
    "CosineAnnealingParamScheduler",
    "CosineRestartLR",
    "CosineRestartMomentum",
    "CosineRestartParamScheduler",
    "ExponentialLR",
    "ExponentialMomentum",
    "ExponentialParamScheduler",
    "LRSchedulerMixin",
    "LinearLR",
    "LinearMomentum",
    "LinearParamScheduler",
    "MomentumSchedulerMixin",
    "MultiStepLR",
    "MultiStepMomentum",
    "MultiStepParamScheduler",
    "OneCycleLR",
    "OneCycleParamScheduler",
    "ParamScheduler",
    "PolyLR",
    "PolyMomentum",
    "PolyParamScheduler",
    "StepLR",
    "StepMomentum",
    "StepParamScheduler",
    "_ParamScheduler",
    "build_param_schedulers",
]

"""trainer: a Lightning-style ``Trainer`` over MMEngine's runner semantics."""

from trainer.evaluation.evaluator import BaseMetric, Evaluator
from trainer.loops import EpochBasedTrainLoop, IterBasedTrainLoop, TestLoop, ValLoop
from trainer.model import BaseDataPreprocessor, BaseModel
from trainer.optim import AmpOptimWrapper, OptimWrapper, OptimWrapperDict
from trainer.state import TrainState
from trainer.trainer import Trainer

__all__ = [
    "AmpOptimWrapper", "BaseDataPreprocessor", "BaseMetric", "BaseModel", "EpochBasedTrainLoop",
    "Evaluator", "IterBasedTrainLoop", "OptimWrapper", "OptimWrapperDict", "TestLoop",
    "TrainState", "Trainer", "ValLoop",
]

"""Optimizer wrappers with MMEngine's API: accumulation, clipping, mixed precision, several
optimizers, and the builder that accepts every form the Trainer's ``optim_wrapper`` takes."""

from trainer.optim.amp import AmpOptimWrapper
from trainer.optim.builder import (
    OPTIM_WRAPPERS,
    OPTIMIZERS,
    build_optim_wrapper,
    build_optim_wrapper_for,
)
from trainer.optim.scale import scale_lr
from trainer.optim.wrapper import OptimWrapper
from trainer.optim.wrapper_dict import OptimWrapperDict

__all__ = [
    "OPTIMIZERS",
    "OPTIM_WRAPPERS",
    "AmpOptimWrapper",
    "OptimWrapper",
    "OptimWrapperDict",
    "build_optim_wrapper",
    "build_optim_wrapper_for",
    "scale_lr",
]

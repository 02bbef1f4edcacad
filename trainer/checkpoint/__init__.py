"""Checkpoints: file I/O through fsspec (``io``) and the Trainer's save/resume logic (``manager``)."""

from trainer.checkpoint.io import (
    is_training_checkpoint,
    join,
    load_checkpoint,
    load_model_state,
    read_last_checkpoint,
    save_checkpoint,
    write_last_checkpoint,
)

__all__ = [
    "is_training_checkpoint", "join", "load_checkpoint", "load_model_state",
    "read_last_checkpoint", "save_checkpoint", "write_last_checkpoint",
]

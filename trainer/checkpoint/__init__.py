"""Checkpoints: file I/O through fsspec (``io``), the Trainer's save/resume logic (``manager``),
interruptions that save (``interrupt``) and a ``work_dir`` shared by several runs (``workdir``)."""

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

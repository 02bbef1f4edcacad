"""A run in which one process raises at iteration 3 while the others would train 100,000.

``python failing_run.py WORK_DIR DEVICES``: rank 1 raises, unless ``FAIL_HERE`` is set in the
environment, in which case the processes where it is ``"1"`` raise (one node of several).
"""

import os
import sys

from trainer.callbacks import Callback

from tests.conftest import ToyNet, toy_loader
from trainer import Trainer


class FailAt(Callback):
    def after_train_iter(self, trainer, batch_idx, data_batch=None, outputs=None):
        chosen = os.environ.get("FAIL_HERE")
        fails = chosen == "1" if chosen is not None else trainer.rank == 1
        if fails and trainer.iter == 3:
            raise RuntimeError(f"rank {trainer.rank} gave up at iteration 3")


trainer = Trainer(max_iters=100_000, work_dir=sys.argv[1], devices=int(sys.argv[2]), seed=0,
                  strategy=dict(type="ddp", timeout_s=30), callbacks=[FailAt()],
                  default_callbacks={"progress": None, "logger": None})
trainer.fit(ToyNet(), toy_loader())

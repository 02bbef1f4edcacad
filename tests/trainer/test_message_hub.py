"""MessageHub: MMEngine's runtime-info API, as ported hooks read it."""

from __future__ import annotations

from trainer.callbacks import Callback

from tests.conftest import ToyNet, toy_loader
from trainer import Trainer


def test_get_info_gives_ported_hooks_the_runs_counters(work_dir):
    seen = []

    class PortedHook(Callback):  # MMEngine hooks read runner.message_hub.get_info(...)
        def after_train_iter(self, trainer, batch_idx, data_batch=None, outputs=None):
            hub = trainer.message_hub
            seen.append((hub.get_info("iter"), hub.get_info("max_iters"),
                         hub.get_info("no_such_key", "fallback")))

    Trainer(max_iters=3, work_dir=work_dir, callbacks=[PortedHook()],
            default_callbacks={"progress": None, "logger": None}).fit(ToyNet(), toy_loader())
    assert seen == [(0, 3, "fallback"), (1, 3, "fallback"), (2, 3, "fallback")]

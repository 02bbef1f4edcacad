"""MessageHub: MMEngine's API, as ported hooks call it."""

from __future__ import annotations

import pytest
import torch
from trainer.callbacks import Callback

from tests.conftest import ToyNet, toy_loader
from trainer import Trainer
from trainer.message_hub import MessageHub


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


def test_scalars_and_infos_with_mmengine_signatures():
    hub = MessageHub()
    hub.update_scalar("train/loss", torch.tensor(2.0))
    hub.update_scalars({"train/loss": 1.0, "train/acc": 0.5}, False)  # resumed, positionally
    hub.update_scalars({"acc": 0.7}, prefix="val/")
    assert hub.log_scalars is hub.scalars
    assert hub.get_scalar("train/loss").current() == 1.0
    assert hub.get_scalar("train/loss").mean() == 1.5
    assert hub.get_scalar("val/acc").current() == 0.7
    hub.update_info("epoch", 3)
    hub.update_info_dict({"lr": 0.1, "note": "x"})
    hub.update_info("scratch", 7, resumed=False)
    assert hub.get_info("epoch") == 3 and hub.get_info("missing", "d") == "d"
    assert hub.runtime_info["scratch"] == 7
    state = hub.state_dict()
    assert state["runtime_info"] == {"epoch": 3, "lr": 0.1, "note": "x"}
    other = MessageHub()
    other.load_state_dict(state)
    assert other.get_scalar("train/loss").mean() == 1.5 and other.get_info("scratch") is None


def test_bad_calls_say_what_is_supported():
    hub = MessageHub()
    with pytest.raises(ValueError, match="only count=1 is supported"):
        hub.update_scalar("train/loss", 4.0, count=4)
    with pytest.raises(TypeError, match="update_scalars expects a dict of scalars, got list"):
        hub.update_scalars([1.0])
    with pytest.raises(KeyError, match=r"no scalar 'train/x' was logged; logged: \[\]"):
        hub.get_scalar("train/x")


def test_recorded_rows_are_in_the_histories_when_read_and_keep_their_order():
    hub = MessageHub()
    hub.record({"loss": torch.tensor(3.0), "lr": 0.1}, prefix="train/")
    hub.update_scalar("train/loss", 2.0)  # after the recorded row, not before it
    hub.record({"loss": torch.tensor(1.0)}, prefix="train/")
    assert hub.get_scalar("train/loss").values() == [3.0, 2.0, 1.0]
    assert hub.latest("train/") == {"train/loss": 1.0, "train/lr": 0.1}
    hub.record({"loss": 0.5}, prefix="train/")
    state = hub.state_dict()  # a checkpoint holds rows not read yet
    assert state["scalars"]["train/loss"]["recent"].tolist() == [3.0, 2.0, 1.0, 0.5]
    hub.record({"loss": 9.0}, prefix="train/")
    hub.load_state_dict(state)  # a resume drops what the interrupted run had not read
    assert hub.get_scalar("train/loss").values() == [3.0, 2.0, 1.0, 0.5]


def test_rows_of_several_shapes_reach_each_history_in_the_order_recorded():
    hub = MessageHub()
    for i in range(5):  # three callbacks, each recording its own keys every iteration
        hub.record({"loss": torch.tensor(float(i)), "lr": 0.1 * i}, prefix="train/")
        hub.record({"data_time": 0.5 * i, "time": 1.0 + i}, prefix="train/")
        hub.record({"accuracy": i}, prefix="val/")
    assert hub.get_scalar("train/loss").values() == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert hub.get_scalar("train/lr").values() == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])
    assert hub.get_scalar("train/time").values() == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert hub.get_scalar("val/accuracy").values() == [0.0, 1.0, 2.0, 3.0, 4.0]
    hub.record({"loss": 7.0}, prefix="train/")  # one key in rows of two shapes
    hub.record({"loss": 8.0, "grad_norm": 1.0}, prefix="train/")
    hub.record({"loss": 9.0}, prefix="train/")
    assert hub.get_scalar("train/loss").values()[-3:] == [7.0, 8.0, 9.0]
    assert hub.get_scalar("train/grad_norm").values() == [1.0]


def test_tuple_rows_mix_with_dict_rows_in_the_order_recorded():
    hub, names = MessageHub(), ("train/data_time", "train/time")
    for i in range(3):
        hub.record({"loss": torch.tensor(float(i))}, prefix="train/")
        hub.record_row(names, (0.5 * i, 1.0 + i))
    assert hub.get_scalar("train/time").values() == [1.0, 2.0, 3.0]
    assert hub.get_scalar("train/data_time").values() == [0.0, 0.5, 1.0]
    assert hub.get_scalar("train/loss").values() == [0.0, 1.0, 2.0]
    hub.record_row(names, (7.0, 8.0))  # one name in a tuple row and in a dict row
    hub.record({"time": 9.0}, prefix="train/")
    hub.record_row(names, (7.5, 10.0))
    assert hub.get_scalar("train/time").values()[-3:] == [8.0, 9.0, 10.0]
    assert hub.get_scalar("train/data_time").values()[-2:] == [7.0, 7.5]


def test_a_hook_reads_the_current_iterations_loss_and_lr_from_the_hub(work_dir):
    seen = []

    class Reader(Callback):
        def after_train_iter(self, trainer, batch_idx, data_batch=None, outputs=None):
            hub = trainer.message_hub
            seen.append((hub.get_scalar("train/loss").current() == outputs["loss"].item(),
                         hub.get_scalar("train/lr").current(), len(hub.get_scalar("train/time"))))

    Trainer(max_iters=3, work_dir=work_dir, callbacks=[Reader()],
            optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1)),
            param_scheduler=dict(type="LinearLR", start_factor=0.5, by_epoch=False, end=3),
            default_callbacks={"progress": None, "logger": None}).fit(ToyNet(), toy_loader())
    assert seen == [(True, 0.05, 1), (True, pytest.approx(0.075), 2), (True, 0.1, 3)]

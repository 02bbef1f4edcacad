"""The MessageHub's MMEngine API, as hooks call it."""

from __future__ import annotations

import pytest
import torch

from trainer.message_hub import MessageHub


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

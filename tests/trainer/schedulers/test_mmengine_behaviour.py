"""Where the schedulers behave as MMEngine's do: warnings, error types, edge arguments."""

from __future__ import annotations

import copy
import pickle
import warnings

import pytest
import torch
from torch import nn

from trainer.optim import OptimWrapper
from trainer.schedulers import (
    CosineRestartLR,
    ExponentialLR,
    LinearLR,
    ParamGroupKeyError,
    SchedulerArgumentError,
    StepLR,
)


def sgd():
    return torch.optim.SGD(nn.Linear(2, 1).parameters(), lr=1.0)


@pytest.mark.parametrize("wrap", [False, True])
def test_stepping_the_scheduler_before_the_optimizer_warns_once(wrap):
    optimizer = OptimWrapper(sgd()) if wrap else sgd()
    scheduler = StepLR(optimizer, step_size=1)
    with pytest.warns(UserWarning, match="before optimizer.step"):
        scheduler.step()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scheduler.step()  # only the first step is checked
        optimizer.step()
        StepLR(optimizer, step_size=1)  # a new scheduler, after the optimizer stepped...
    assert optimizer._global_step == -1  # ...counts again from its own creation, as MMEngine


def test_optimizer_first_gives_no_warning_and_a_replaced_step_does():
    optimizer = sgd()
    scheduler = ExponentialLR(optimizer, gamma=0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        optimizer.step()
        scheduler.step()
    assert optimizer._global_step == 0
    optimizer = sgd()
    scheduler = ExponentialLR(optimizer, gamma=0.5)
    optimizer.step = lambda: None
    with pytest.warns(UserWarning, match="overridden after the parameter scheduler"):
        scheduler.step()


def test_the_counted_step_pickles_and_deep_copies_with_its_optimizer():
    wrapper = OptimWrapper(sgd())
    StepLR(wrapper, step_size=1)
    twin = copy.deepcopy(wrapper)
    twin.step()
    assert (wrapper._global_step, twin._global_step) == (-1, 0)
    loaded = pickle.loads(pickle.dumps(wrapper))
    loaded.step()
    assert (wrapper._global_step, loaded._global_step) == (-1, 0)


def test_errors_are_also_the_types_mmengine_raises():
    with pytest.raises(AssertionError):  # MMEngine asserts...
        StepLR(sgd(), step_size=1, last_step=-2)
    with pytest.raises(ValueError, match="last_step must be an int >= -1"):  # ...we explain
        StepLR(sgd(), step_size=1, last_step=-2)
    assert issubclass(SchedulerArgumentError, ValueError)
    with pytest.raises(SchedulerArgumentError, match="not both"):
        CosineRestartLR(sgd(), periods=[2], eta_min=0, eta_min_ratio=0.1)
    with pytest.raises(KeyError, match="'initial_lr' is not specified in param_groups"):
        StepLR(sgd(), step_size=1, last_step=3)
    with pytest.raises(ParamGroupKeyError) as info:
        StepLR(sgd(), step_size=1, last_step=3)
    assert not str(info.value).startswith("'")  # no KeyError quoting


def test_linear_from_zero_starts_at_zero_and_recovers_from_the_initial_value():
    optimizer = sgd()
    scheduler = LinearLR(optimizer, start_factor=0, end=5)
    values = [optimizer.param_groups[0]["lr"]]
    for _ in range(5):
        optimizer.step()
        scheduler.step()
        values.append(optimizer.param_groups[0]["lr"])
    assert values == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0, 1.0])

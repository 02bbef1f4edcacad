"""Schedulers: values against MMEngine's formulas written out here, composition, state, builder."""

from __future__ import annotations

import inspect
import io
import math

import pytest
import torch
from torch import nn

from trainer.schedulers import (
    INF,
    ConstantLR,
    ConstantParamScheduler,
    CosineAnnealingLR,
    CosineAnnealingMomentum,
    CosineRestartLR,
    ExponentialLR,
    LinearLR,
    LinearMomentum,
    MultiStepLR,
    OneCycleLR,
    OneCycleParamScheduler,
    ParamScheduler,
    PolyLR,
    StepLR,
    StepMomentum,
    build_param_schedulers,
)

BASES = (0.1, 0.02)  # two param groups with different learning rates


def make_sgd(momentum: float = 0.9) -> torch.optim.SGD:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.Linear(8, 2))
    return torch.optim.SGD([{"params": net[0].parameters(), "lr": BASES[0]},
                            {"params": net[1].parameters(), "lr": BASES[1]}],
                           lr=BASES[0], momentum=momentum)


def make_adam() -> torch.optim.Adam:
    torch.manual_seed(0)
    return torch.optim.Adam(nn.Linear(4, 2).parameters(), lr=0.01, betas=(0.9, 0.999))


def trace(opt, schedulers, iters, key="lr", epoch_length=None):
    """Value of ``key`` in each param group used by each iteration, stepping like the Trainer."""
    seen = []
    for it in range(iters):
        seen.append([group[key] for group in opt.param_groups])
        for s in schedulers:
            if not s.by_epoch:
                s.step()
        if epoch_length and (it + 1) % epoch_length == 0:
            for s in schedulers:
                if s.by_epoch:
                    s.step()
    return seen


def one_cycle(t, base_max, total, pct, div, final_div, three_phase, cos):
    """The 1cycle value at step t, written from the paper's phase description."""
    lo, hi = base_max / div, base_max
    floor = lo / final_div
    up = pct * total - 1
    if three_phase:
        phases = [(up, lo, hi), (2 * pct * total - 2, hi, lo), (total - 1, lo, floor)]
    else:
        phases = [(up, lo, hi), (total - 1, hi, floor)]
    start = 0
    for i, (stop, a, b) in enumerate(phases):
        if t <= stop or i == len(phases) - 1:
            frac = (t - start) / (stop - start)
            if cos:
                return b + (a - b) * (1 + math.cos(math.pi * frac)) / 2
            return a + (b - a) * frac
        start = stop
    raise AssertionError


def restart(t, b, periods, weights, eta_min):
    for period, weight in zip(periods, weights, strict=True):
        if t < period:
            return eta_min + (b * weight - eta_min) * (1 + math.cos(math.pi * t / period)) / 2
        t -= period
    return None


# (scheduler factory, expected value at global step g for a group whose initial value is b)
CASES = {
    "constant": (lambda o: ConstantLR(o, factor=0.5, begin=2, end=8, by_epoch=False),
                 lambda g, b: b * 0.5 if 2 <= g < 7 else b),
    "linear": (lambda o: LinearLR(o, start_factor=0.2, end_factor=0.9, end=11, by_epoch=False),
               lambda g, b: b * (0.2 + 0.7 * min(g, 10) / 10)),
    "step": (lambda o: StepLR(o, step_size=3, gamma=0.5, begin=2, end=15, by_epoch=False),
             lambda g, b: b if g < 2 else b * 0.5 ** ((min(g, 14) - 2) // 3)),
    "multistep": (lambda o: MultiStepLR(o, milestones=[3, 7, 7], gamma=0.1, by_epoch=False),
                  lambda g, b: b * 0.1 ** sum(m <= g for m in (3, 7, 7))),
    "exponential": (lambda o: ExponentialLR(o, gamma=0.8, end=10, by_epoch=False),
                    lambda g, b: b * 0.8 ** min(g, 9)),
    "cosine": (lambda o: CosineAnnealingLR(o, eta_min=0.001, end=20, by_epoch=False),
               lambda g, b: 0.001 + (b - 0.001) * (1 + math.cos(math.pi * min(g, 19) / 20)) / 2),
    # T_max shorter than the run: the cosine goes back up after T_max, as in MMEngine.
    "cosine_ratio": (lambda o: CosineAnnealingLR(o, T_max=5, eta_min_ratio=0.1, by_epoch=False),
                     lambda g, b: 0.1 * b + 0.9 * b * (1 + math.cos(math.pi * g / 5)) / 2),
    "poly": (lambda o: PolyLR(o, eta_min=0.001, power=2.0, begin=3, end=24, by_epoch=False),
             lambda g, b: b if g < 3 else 0.001 + (b - 0.001) * (1 - (min(g, 23) - 3) / 20) ** 2),
    "onecycle": (lambda o: OneCycleLR(o, eta_max=[0.5, 0.2], total_steps=30, end=31,
                                        by_epoch=False),
                 lambda g, b: one_cycle(min(g, 30), 0.5 if b == BASES[0] else 0.2, 30, 0.3, 25.0,
                                        1e4, False, True)),
    "onecycle_3phase": (
        lambda o: OneCycleLR(o, eta_max=0.4, end=40, pct_start=0.25, anneal_strategy="linear",
                             three_phase=True, div_factor=10.0, final_div_factor=100.0,
                             by_epoch=False),
        lambda g, b: one_cycle(min(g, 39), 0.4, 40, 0.25, 10.0, 100.0, True, False)),
    "cosine_restart": (
        lambda o: CosineRestartLR(o, periods=[5, 10], restart_weights=[1, 0.5], eta_min=0.001,
                                  by_epoch=False),
        lambda g, b: restart(min(g, 14), b, [5, 10], [1, 0.5], 0.001)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_values_match_mmengine_formulas_at_every_step(name):
    factory, expected = CASES[name]
    opt = make_sgd()
    scheduler = factory(opt)
    got = trace(opt, [scheduler], 45)
    for g, values in enumerate(got):
        for value, b in zip(values, BASES, strict=True):
            assert value == pytest.approx(expected(g, b), rel=1e-12, abs=1e-15), (name, g)
    assert scheduler.get_last_value() == [group["lr"] for group in opt.param_groups]


def test_warmup_then_epoch_multistep_converted_to_iterations():
    opt = make_sgd()
    schedulers = build_param_schedulers(
        [dict(type="LinearLR", start_factor=0.001, by_epoch=False, begin=0, end=500),
         dict(type="MultiStepLR", milestones=[1, 2], gamma=0.1, by_epoch=True,
              convert_to_iter_based=True)],
        opt, epoch_length=400, max_epochs=3, max_iters=None)
    decay = schedulers[1]
    assert (decay.by_epoch, decay.begin, decay.end, sorted(decay.milestones)) == (
        False, 0, 1200, [400, 800])
    lr = [values[0] for values in trace(opt, schedulers, 3 * 400, epoch_length=400)]

    def warm(i):
        return 0.001 + 0.999 * i / 499

    # The decay at 400 multiplies the warm-up's value; the warm-up keeps climbing under it.
    expected = {0: 0.1 * 0.001, 250: 0.1 * warm(250), 399: 0.1 * warm(399),
                400: 0.01 * warm(400), 450: 0.01 * warm(450), 499: 0.01, 500: 0.01,
                799: 0.01, 800: 0.001, 1199: 0.001}
    for i, value in expected.items():
        assert lr[i] == pytest.approx(value, rel=1e-12), i


def test_sgd_momentum_follows_cosine():
    opt = make_sgd(momentum=0.9)
    scheduler = CosineAnnealingMomentum(opt, eta_min=0.5, end=10, by_epoch=False)
    for g, values in enumerate(trace(opt, [scheduler], 10, key="momentum")):
        assert values == pytest.approx(
            [0.5 + 0.4 * (1 + math.cos(math.pi * g / 10)) / 2] * 2, rel=1e-12)


def test_adam_betas_scheduled_with_lr_while_training():
    opt = make_adam()
    model_params = opt.param_groups[0]["params"]
    lr = LinearLR(opt, start_factor=0.5, end=5, by_epoch=False)
    mom = StepMomentum(opt, step_size=2, gamma=0.5, by_epoch=False)
    assert opt.param_groups[0]["initial_momentum"] == 0.9
    betas = []
    for g in range(6):
        betas.append(opt.param_groups[0]["betas"])
        loss = sum((p**2).sum() for p in model_params)
        opt.zero_grad()
        loss.backward()
        opt.step()  # Adam really runs with the scheduled betas
        lr.step()
        mom.step()
        assert opt.param_groups[0]["momentum"] == betas[0][0] * 0.5 ** ((g + 1) // 2)
    assert betas == [(0.9 * 0.5 ** (g // 2), 0.999) for g in range(6)]
    assert opt.param_groups[0]["lr"] == pytest.approx(0.01)
    # A second momentum scheduler chains on the current betas[0], keeping the first's base.
    assert LinearMomentum(opt, start_factor=0.5, end=3).get_last_value() == [0.9 * 0.5**3 * 0.5]
    assert opt.param_groups[0]["initial_momentum"] == 0.9


SCHEDULE_LISTS = {
    "warmup_cosine_momentum": lambda o: [
        LinearLR(o, start_factor=0.1, end=8, by_epoch=False),
        CosineAnnealingLR(o, eta_min_ratio=0.05, begin=4, end=30, by_epoch=False),
        StepMomentum(o, step_size=5, gamma=0.9, by_epoch=False)],
    "multistep_onecycle": lambda o: [
        MultiStepLR(o, milestones=[6, 6, 20], by_epoch=False),
        OneCycleLR(o, eta_max=0.3, begin=2, end=30, three_phase=True, by_epoch=False)],
    "restart_poly": lambda o: [
        CosineRestartLR(o, periods=[7, 9], restart_weights=[1, 0.3], eta_min_ratio=0.1,
                        by_epoch=False),
        PolyLR(o, power=1.5, begin=16, end=30, by_epoch=False)],
}


@pytest.mark.parametrize("name", sorted(SCHEDULE_LISTS))
def test_resume_mid_schedule_from_state_dict_gives_the_uninterrupted_values(name):
    build = SCHEDULE_LISTS[name]
    opt = make_sgd()
    straight = trace(opt, build(opt), 30) + trace(opt, [], 1, key="momentum")

    opt = make_sgd()
    schedulers = build(opt)
    first = trace(opt, schedulers, 13)
    buffer = io.BytesIO()
    torch.save({"optimizer": opt.state_dict(),
                "param_schedulers": [s.state_dict() for s in schedulers]}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)  # the state is plain containers only

    opt = make_sgd()
    schedulers = build(opt)  # construction writes step-0 values; loading puts them back
    opt.load_state_dict(saved["optimizer"])
    for s, state in zip(schedulers, saved["param_schedulers"], strict=True):
        s.load_state_dict(state)
    resumed = first + trace(opt, schedulers, 17) + trace(opt, [], 1, key="momentum")
    assert resumed == straight


class WrapperLike:
    """An optimizer wrapper exposes ``param_groups`` and ``optimizer``, as trainer.optim does."""

    def __init__(self, optimizer):
        self.optimizer = optimizer

    @property
    def param_groups(self):
        return self.optimizer.param_groups


def test_optimizer_wrapper_is_accepted_for_lr_and_momentum():
    sgd = make_sgd()
    wrapper = WrapperLike(sgd)
    StepLR(wrapper, step_size=1, gamma=0.5).step()
    StepMomentum(wrapper, step_size=1, gamma=0.5).step()
    assert [g["lr"] for g in sgd.param_groups] == [0.05, 0.01]
    assert sgd.param_groups[0]["momentum"] == 0.45


def test_constructor_arguments_are_mmengines():
    names = {
        StepLR: ["optimizer", "step_size", "gamma", "begin", "end", "last_step", "by_epoch",
                 "verbose"],
        MultiStepLR: ["optimizer", "milestones", "gamma", "last_step", "begin", "end",
                      "by_epoch", "verbose"],
        CosineAnnealingLR: ["optimizer", "T_max", "eta_min", "begin", "end", "last_step",
                            "by_epoch", "verbose", "eta_min_ratio"],
        OneCycleLR: ["optimizer", "eta_max", "total_steps", "pct_start", "anneal_strategy",
                     "div_factor", "final_div_factor", "three_phase", "begin", "end",
                     "last_step", "by_epoch", "verbose"],
        ConstantParamScheduler: ["self", "optimizer", "param_name", "factor", "begin", "end",
                                 "last_step", "by_epoch", "verbose"],
    }
    for cls, expected in names.items():
        target = cls.__init__ if "param_name" in expected else cls
        assert list(inspect.signature(target).parameters) == expected, cls
    opt = make_sgd()
    s = ConstantLR(opt, 0.5, 0, 4)  # positional order as MMEngine's
    assert (s.factor, s.begin, s.end, s.last_step, s.by_epoch) == (0.5, 0, 4, 0, True)


def test_window_freezes_values_and_verbose_prints(capsys):
    opt = make_sgd()
    s = ExponentialLR(opt, gamma=0.5, begin=1, end=3, verbose=True)
    for _ in range(5):
        s.step()
    # Steps 1 and 2 are inside [begin, end): last_step 0 keeps the value, 1 decays it once.
    assert s.get_last_value() == [0.1 * 0.5, 0.02 * 0.5]
    assert (s.last_step, s._global_step) == (1, 5)
    assert "ExponentialLR: lr of param group 1 set to 1.0000e-02" in capsys.readouterr().out


def build(cfg, **run):
    return build_param_schedulers(cfg, make_sgd(), **{"epoch_length": None, "max_epochs": None,
                                                      "max_iters": None, **run})


def test_default_end_is_the_end_of_the_run():
    epochs = dict(epoch_length=100, max_epochs=12)
    iters = dict(epoch_length=300, max_iters=1000)
    cases = [
        (dict(type="StepLR", step_size=2), epochs, (True, 12)),
        (dict(type="StepLR", step_size=2, by_epoch=False), epochs, (False, 1200)),
        (dict(type="StepLR", step_size=2, convert_to_iter_based=True), epochs, (False, 1200)),
        (dict(type="StepLR", step_size=2), iters, (True, 4)),  # ceil(1000 / 300) passes
        (dict(type="StepLR", step_size=2, by_epoch=False), iters, (False, 1000)),
        # MMEngine would end this one after a single epoch (300 iterations).
        (dict(type="StepLR", step_size=2, convert_to_iter_based=True), iters, (False, 1000)),
        (dict(type="StepLR", step_size=2, end=3, convert_to_iter_based=True), iters, (False, 900)),
        (dict(type="StepLR", step_size=2, end=None, by_epoch=False), iters, (False, 1000)),
        (dict(type="StepLR", step_size=2, by_epoch=False), dict(max_iters=50), (False, 50)),
        (dict(type="StepLR", step_size=2), {}, (True, INF)),
    ]
    for cfg, run, expected in cases:
        (s,) = build(cfg, **run)
        assert (s.by_epoch, s.end) == expected, cfg
    (cos, cycle) = build([dict(type="CosineAnnealingLR", begin=1, convert_to_iter_based=True),
                          dict(type="OneCycleLR", eta_max=1.0, begin=100, by_epoch=False)],
                         **iters)
    assert (cos.begin, cos.T_max, cycle.total_steps) == (300, 700, 900)


def test_builder_passes_objects_through_and_accepts_none():
    opt = make_sgd()
    given = StepLR(opt, step_size=3)
    out = build_param_schedulers([given, dict(type=ExponentialLR, gamma=0.5)], opt,
                                 epoch_length=None, max_epochs=2, max_iters=None)
    assert out[0] is given and isinstance(out[1], ExponentialLR) and out[1].end == 2
    assert build(None) == []
    assert isinstance(build(dict(type="trainer.schedulers.PolyLR"), max_epochs=3)[0], PolyLR)


def test_build_iter_from_epoch_scales_every_step_count():
    opt = make_sgd()
    step = StepLR.build_iter_from_epoch(opt, step_size=2, begin=0.5, end=5, epoch_length=10)
    assert (step.by_epoch, step.step_size, step.begin, step.end) == (False, 20, 5, 50)
    multi = MultiStepLR.build_iter_from_epoch(opt, milestones=[1, 2.5], epoch_length=10)
    assert (sorted(multi.milestones), multi.end) == ([10, 25], INF)
    cos = CosineAnnealingLR.build_iter_from_epoch(opt, T_max=3, end=6, epoch_length=10)
    cos_default = CosineAnnealingLR.build_iter_from_epoch(opt, begin=1, end=6, epoch_length=10)
    assert (cos.T_max, cos_default.T_max) == (30, 50)
    cycle = OneCycleLR.build_iter_from_epoch(opt, eta_max=1.0, total_steps=4, epoch_length=10)
    restarts = CosineRestartLR.build_iter_from_epoch(opt, periods=[1, 2], restart_weights=[1, 1],
                                                     eta_min=0, epoch_length=10)
    assert (cycle.total_steps, restarts.periods) == (40, [10, 20])


def step_past_total_steps():
    scheduler = OneCycleLR(make_sgd(), 1.0, total_steps=10)
    for _ in range(11):
        scheduler.step()


def bad_cases():
    sgd = make_sgd
    yield lambda: ConstantLR("sgd"), TypeError, "optimizer should be an Optimizer"
    yield lambda: StepLR(sgd(), 2, begin=5, end=5), ValueError, "end should be larger than begin"
    yield lambda: StepLR(sgd(), 2, begin=-1), ValueError, "begin must be a whole number >= 0"
    yield lambda: StepLR(sgd(), 2, end="10"), ValueError, "end must be a whole number >= 1"
    yield lambda: StepLR(sgd(), 2, last_step=-2), ValueError, "last_step must be an int >= -1"
    yield lambda: StepLR(sgd(), 2, last_step=3), ValueError, "'initial_lr' is not specified in param_groups"
    yield lambda: StepLR(sgd(), 2, by_epoch="yes"), TypeError, "by_epoch must be True or False"
    yield lambda: StepLR(sgd(), 2, verbose=1), TypeError, "verbose must be True or False"
    yield (lambda: ConstantParamScheduler(sgd(), "lrr"), ValueError,
           r"param_groups\[0\] has no 'lrr' to schedule")
    yield lambda: ConstantLR(sgd(), factor=0), ValueError, "factor must be a number > 0 and <= 1"
    yield lambda: ConstantLR(sgd(), factor=1.5), ValueError, "factor must be a number > 0"
    yield lambda: LinearLR(sgd(), start_factor=-0.1), ValueError, "start_factor must be a number >= 0"
    yield lambda: LinearLR(sgd(), end_factor=1.2), ValueError, "end_factor must be a number >= 0"
    yield lambda: StepLR(sgd(), step_size=0), ValueError, "step_size must be a whole number >= 1"
    yield lambda: StepLR(sgd(), 1.5), ValueError, "step_size must be a whole number"
    yield lambda: StepLR(sgd(), 2, gamma=-0.1), ValueError, "StepLR: gamma must be a number > 0"
    yield lambda: ExponentialLR(sgd(), gamma=0), ValueError, "gamma must be a number > 0"
    yield lambda: MultiStepLR(sgd(), milestones=5), TypeError, "milestones must be a list"
    yield lambda: MultiStepLR(sgd(), [2, -1]), ValueError, "each milestone must be a whole number"
    yield lambda: MultiStepLR(sgd(), [2.5]), ValueError, "each milestone must be a whole number"
    yield lambda: CosineAnnealingLR(sgd(), T_max=0), ValueError, "T_max must be a whole number"
    yield (lambda: CosineAnnealingLR(sgd(), eta_min=0.1, eta_min_ratio=0.1), ValueError,
           "give either eta_min or eta_min_ratio, not both")
    yield lambda: PolyLR(sgd(), power=0), ValueError, "power must be a number > 0"
    yield (lambda: OneCycleParamScheduler(sgd(), "momentum", eta_max=1.0), ValueError,
           "learning rate only")
    yield lambda: OneCycleLR(sgd()), ValueError, r"eta_max \(the peak learning rate\) must be"
    yield lambda: OneCycleLR(sgd(), 1.0, total_steps=0), ValueError, "total_steps must be a whole"
    yield lambda: OneCycleLR(sgd(), 1.0, pct_start=1.5), ValueError, "pct_start must be a number"
    yield (lambda: OneCycleLR(sgd(), 1.0, anneal_strategy="cosine"), ValueError,
           "anneal_strategy must be 'cos' or 'linear', got 'cosine'")
    yield lambda: OneCycleLR(sgd(), 1.0, div_factor=0), ValueError, "div_factor must be a number"
    yield (lambda: OneCycleLR(sgd(), 1.0, final_div_factor=-1), ValueError,
           "final_div_factor must be a number > 0")
    yield (lambda: OneCycleLR(sgd(), [1.0]), ValueError,
           "eta_max has 1 values but the optimizer has 2 param groups")
    yield lambda: OneCycleLR(sgd(), 1.0, three_phase="no"), TypeError, "three_phase must be True"
    yield step_past_total_steps, ValueError, "stepped 12 times, past its total_steps=10"
    yield (lambda: CosineRestartLR(sgd(), periods=[], eta_min=0), TypeError,
           "periods must be a non-empty list")
    yield (lambda: CosineRestartLR(sgd(), [2, 3], [1], eta_min=0), ValueError,
           "periods and restart_weights must have the same length")
    yield lambda: CosineRestartLR(sgd(), [2]), ValueError, "give exactly one of eta_min"
    yield (lambda: CosineRestartLR(sgd(), [2], eta_min=0, eta_min_ratio=0.1), ValueError,
           "not both")
    yield lambda: CosineRestartLR(sgd(), [0], eta_min=0), ValueError, "each period must be"
    yield (lambda: StepMomentum(torch.optim.Adagrad(nn.Linear(2, 1).parameters()), 2),
           ValueError, "neither 'momentum' nor 'betas'")
    yield (lambda: StepLR.build_iter_from_epoch(sgd(), step_size=1, by_epoch=False,
                                                epoch_length=10), ValueError, "needs by_epoch=True")
    yield (lambda: StepLR.build_iter_from_epoch(sgd(), step_size=1), ValueError,
           "epoch_length must be a positive int")
    yield (lambda: StepLR.build_iter_from_epoch(sgd(), step_size=1, begin="1", epoch_length=5),
           TypeError, "begin must be a number of epochs")
    yield lambda: StepLR(sgd(), 2).load_state_dict([1]), TypeError, "expects the dict returned"
    yield lambda: StepLR(sgd(), 2).load_state_dict({"bogus": 1}), ValueError, "unknown keys"
    yield lambda: build(42), TypeError, "must be a scheduler from trainer.schedulers"
    yield (lambda: build(torch.optim.lr_scheduler.StepLR(make_sgd(), 2)), TypeError,
           "torch.optim.lr_scheduler objects have no by_epoch")
    yield lambda: build(dict(step_size=2), max_epochs=2), ValueError, "has no 'type' key"
    yield lambda: build(dict(type="MultiStepLRR")), ValueError, "Did you mean 'MultiStepLR'"
    yield (lambda: build(dict(type="StepLR", step_size=1, by_epoch=False,
                              convert_to_iter_based=True), epoch_length=5), ValueError,
           "needs by_epoch=True, got by_epoch=False")
    yield (lambda: build(dict(type="StepLR", step_size=1, convert_to_iter_based=True),
                         max_epochs=2), ValueError, "training dataloader has no len()")
    yield (lambda: build(dict(type="StepLR", step_size=1, convert_to_iter_based="yes")),
           TypeError, "convert_to_iter_based must be True or False")
    yield (lambda: build(dict(type="StepLR", step_size=1), max_iters=10), ValueError,
           "cannot default the end of an epoch-based schedule")
    yield lambda: build([], max_epochs=0), ValueError, "max_epochs must be a positive int"


@pytest.mark.parametrize("make, error, match", list(bad_cases()))
def test_bad_arguments_raise_clear_errors(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_every_scheduler_is_a_param_scheduler():
    from trainer.schedulers import SCHEDULERS

    assert len(SCHEDULERS) == 29
    assert all(issubclass(cls, ParamScheduler) for cls in SCHEDULERS.values())

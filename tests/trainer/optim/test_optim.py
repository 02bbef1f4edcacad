"""OptimWrapper, AmpOptimWrapper, OptimWrapperDict and build_optim_wrapper on real small models."""

from __future__ import annotations

import contextlib
import copy
import io
import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from trainer.optim import (
    OPTIMIZERS,
    AmpOptimWrapper,
    OptimWrapper,
    OptimWrapperDict,
    build_optim_wrapper,
)
from trainer.optim import amp as amp_module


def make_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 3))


def make_batches(n: int, size: int = 8, seed: int = 1) -> list[tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(seed)
    return [(torch.randn(size, 8, generator=gen), torch.randint(0, 3, (size,), generator=gen))
            for _ in range(n)]


def loss_of(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    x, y = batch
    return F.cross_entropy(model(x), y)


def concat(batches: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.cat([b[0] for b in batches]), torch.cat([b[1] for b in batches])


def sgd(model: nn.Module, **kwargs) -> torch.optim.SGD:
    return torch.optim.SGD(model.parameters(), **{"lr": 0.1, "momentum": 0.9, **kwargs})


def assert_params_close(a: nn.Module, b: nn.Module, atol: float = 1e-6) -> None:
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(pa, pb, atol=atol, rtol=0)


def roundtrip(state: dict) -> dict:
    """What a checkpoint does to a state dict: save, then load with weights_only=True."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def train(model: nn.Module, wrapper: OptimWrapper, batches) -> None:
    for batch in batches:
        with wrapper.optim_context(model):
            loss = loss_of(model, batch)
        wrapper.update_params(loss)


# -- accumulation ----------------------------------------------------------------------------


def test_four_micro_batches_equal_one_large_batch():
    model, reference = make_model(), make_model()
    wrapper = OptimWrapper(sgd(model), accumulative_counts=4)
    ref_opt = sgd(reference)
    batches = make_batches(8)
    before = [p.detach().clone() for p in model.parameters()]

    train(model, wrapper, batches[:3])
    for p, p0 in zip(model.parameters(), before, strict=True):
        assert torch.equal(p, p0), "no step before the window closes"
        assert p.grad is not None
    train(model, wrapper, batches[3:])
    for window in (batches[:4], batches[4:]):
        loss_of(reference, concat(window)).backward()
        ref_opt.step()
        ref_opt.zero_grad()

    assert wrapper.inner_count == 8
    assert_params_close(model, reference)
    assert all(p.grad is None for p in model.parameters()), "zero_grad sets grads to None"


def test_accumulated_gradient_equals_large_batch_gradient():
    model, reference = make_model(), make_model()
    wrapper = OptimWrapper(sgd(model), accumulative_counts=4)
    batches = make_batches(4)
    for batch in batches[:3]:
        wrapper.update_params(loss_of(model, batch))
    wrapper.backward(wrapper.scale_loss(loss_of(model, batches[3])))
    assert wrapper.should_update()
    loss_of(reference, concat(batches)).backward()
    for p, r in zip(model.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(p.grad, r.grad, atol=1e-6, rtol=0)


def test_last_shorter_window_is_divided_by_its_length():
    model, reference = make_model(), make_model()
    wrapper = OptimWrapper(sgd(model), accumulative_counts=4)
    ref_opt = sgd(reference)
    batches = make_batches(10)

    wrapper.initialize_count_status(model, 0, 10)
    updates = []
    for batch in batches:
        wrapper.update_params(loss_of(model, batch))
        updates.append(wrapper.should_update())
    assert updates == [False, False, False, True] * 2 + [False, True]
    one = torch.tensor(1.0)
    wrapper.inner_count = 8
    assert wrapper.scale_loss(one).item() == 0.5
    wrapper.inner_count = 7
    assert wrapper.scale_loss(one).item() == 0.25

    for window in (batches[:4], batches[4:8], batches[8:]):
        loss_of(reference, concat(window)).backward()
        ref_opt.step()
        ref_opt.zero_grad()
    assert_params_close(model, reference)


def test_epoch_domains_each_end_with_their_own_short_window():
    model, reference = make_model(), make_model()
    wrapper = OptimWrapper(sgd(model), accumulative_counts=4)
    ref_opt = sgd(reference)
    batches = make_batches(6)
    for _ in range(2):  # two epochs of 6 batches: windows of 4 and 2 in each
        wrapper.initialize_count_status(model, 0, len(batches))
        train(model, wrapper, batches)
        for window in (batches[:4], batches[4:]):
            loss_of(reference, concat(window)).backward()
            ref_opt.step()
            ref_opt.zero_grad()
    assert_params_close(model, reference)


def test_unknown_max_counts_keeps_full_windows():
    wrapper = OptimWrapper(sgd(make_model()), accumulative_counts=4)
    wrapper.initialize_count_status(None, 9, -1)
    assert wrapper.max_counts is None
    assert wrapper.scale_loss(torch.tensor(1.0)).item() == 0.25
    wrapper.initialize_count_status(None, 9, None)
    assert not wrapper.should_update()


class RecordsNoSync(nn.Module):
    """A model exposing ``no_sync`` as DDP does; records when the context is entered."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(8, 3)
        self.entered: list[bool] = []

    @contextlib.contextmanager
    def no_sync(self):
        self.entered.append(True)
        yield

    def forward(self, x):
        return self.body(x)


def test_optim_context_skips_gradient_sync_while_accumulating():
    model = RecordsNoSync()
    wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1), accumulative_counts=4)
    wrapper.initialize_count_status(model, 0, 10)
    syncs = []
    for batch in make_batches(10):
        syncs.append(wrapper.should_sync())
        before = len(model.entered)
        with wrapper.optim_context(model):
            loss = loss_of(model, batch)
        assert (len(model.entered) == before) == syncs[-1]
        wrapper.update_params(loss)
    assert syncs == [False, False, False, True] * 2 + [False, True]
    assert len(model.entered) == 7

    single = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
    with single.optim_context(model):
        pass
    assert len(model.entered) == 7, "no accumulation: always sync"


def test_batch_norm_with_accumulation_warns_once():
    model = nn.Sequential(nn.Linear(8, 4), nn.BatchNorm1d(4))
    wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1), accumulative_counts=2)
    with pytest.warns(UserWarning, match="BatchNorm"):
        wrapper.initialize_count_status(model, 0, 10)


def test_update_params_passes_step_and_zero_kwargs():
    model = make_model()
    wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
    wrapper.update_params(loss_of(model, make_batches(1)[0]),
                          zero_kwargs={"set_to_none": False})
    assert all(p.grad is not None and not p.grad.any() for p in model.parameters())


def plain_loop(model: nn.Module, batches) -> None:
    """What ``update_params`` does without accumulation or clipping, written out."""
    optimizer = sgd(model)
    for batch in batches:
        loss_of(model, batch).backward()
        optimizer.step()
        optimizer.zero_grad()


STEPS = ("backward", "should_update", "step", "zero_grad")


@pytest.mark.parametrize("where", ["subclass", "instance"])
@pytest.mark.parametrize("name", STEPS)
def test_update_params_calls_an_overridden_step_and_updates_as_written_out(name, where):
    calls = []

    def counted(self, *args, **kwargs):
        calls.append(name)
        return getattr(OptimWrapper, name)(self, *args, **kwargs)

    model, expected = make_model(), make_model()
    batches = make_batches(3)
    if where == "subclass":
        wrapper = type("Custom", (OptimWrapper,), {name: counted})(sgd(model))
    else:  # as MMEngine's tests replace a method with a mock
        wrapper = OptimWrapper(sgd(model))
        setattr(wrapper, name, counted.__get__(wrapper))
    train(model, wrapper, batches)
    plain_loop(expected, batches)
    assert calls == [name] * 3
    assert wrapper.inner_count == 3
    for got, want in zip(model.parameters(), expected.parameters(), strict=True):
        assert torch.equal(got, want)


def test_plain_update_params_updates_as_written_out():
    model, expected = make_model(), make_model()
    batches = make_batches(3)
    wrapper = OptimWrapper(sgd(model))
    train(model, wrapper, batches)
    plain_loop(expected, batches)
    assert wrapper.inner_count == 3 and all(p.grad is None for p in model.parameters())
    for got, want in zip(model.parameters(), expected.parameters(), strict=True):
        assert torch.equal(got, want)


# -- clipping --------------------------------------------------------------------------------


def grads_of(model: nn.Module) -> list[torch.Tensor]:
    return [p.grad.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize("norm_type", [2, 1, "inf"])
def test_norm_clipping_bounds_total_norm_and_records_pre_clip_norm(norm_type):
    model = make_model()
    wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.0),
                           clip_grad=dict(max_norm=0.05, norm_type=norm_type))
    wrapper.backward(100 * loss_of(model, make_batches(1)[0]))
    p = math.inf if norm_type == "inf" else float(norm_type)
    pre = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g, p)
                                                for g in grads_of(model)]), p)
    assert pre > 0.05
    assert wrapper.grad_norm is None
    wrapper.step()
    post = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g, p)
                                                 for g in grads_of(model)]), p)
    assert post <= 0.05 * (1 + 1e-5)
    assert isinstance(wrapper.grad_norm, torch.Tensor)
    torch.testing.assert_close(wrapper.grad_norm, pre)


def test_value_clipping_bounds_every_element():
    model = make_model()
    wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.0),
                           clip_grad=dict(type="value", clip_value=0.01))
    wrapper.backward(100 * loss_of(model, make_batches(1)[0]))
    before = grads_of(model)
    assert max(g.abs().max() for g in before) > 0.01
    wrapper.step()
    for g, g0 in zip(grads_of(model), before, strict=True):
        assert g.abs().max() <= 0.01
        torch.testing.assert_close(g, g0.clamp(-0.01, 0.01))


def test_clipping_in_update_params_changes_the_step():
    clipped, free = make_model(), make_model()
    batch = make_batches(1)[0]
    w_clip = OptimWrapper(torch.optim.SGD(clipped.parameters(), lr=1.0),
                          clip_grad=dict(max_norm=1e-3))
    w_free = OptimWrapper(torch.optim.SGD(free.parameters(), lr=1.0))
    start = [p.detach().clone() for p in clipped.parameters()]
    w_clip.update_params(loss_of(clipped, batch))
    w_free.update_params(loss_of(free, batch))
    moved = torch.linalg.vector_norm(torch.cat(
        [(p - s).flatten() for p, s in zip(clipped.parameters(), start, strict=True)]))
    torch.testing.assert_close(moved, torch.tensor(1e-3), rtol=1e-4, atol=0)
    assert w_clip.grad_norm > 1e-3
    assert w_free.grad_norm is None


def test_clipping_skips_params_without_grads():
    model = make_model()
    frozen = nn.Linear(2, 2)
    optimizer = torch.optim.SGD([{"params": model.parameters()},
                                 {"params": frozen.parameters()}], lr=0.1)
    wrapper = OptimWrapper(optimizer, clip_grad=dict(max_norm=1.0))
    wrapper.update_params(loss_of(model, make_batches(1)[0]))
    assert torch.isfinite(wrapper.grad_norm)


@pytest.mark.parametrize(("clip_grad", "match"), [
    (1.0, r"clip_grad must be None or a dict .* got float 1.0"),
    (dict(type="norn", max_norm=1), r"clip_grad type must be 'norm' or 'value', got 'norn'"),
    (dict(norm_type=2), r"clip_grad of type 'norm' needs \['max_norm'\]"),
    (dict(type="value"), r"clip_grad of type 'value' needs \['clip_value'\]"),
    (dict(max_norm=1, clip_value=2), r"does not accept \['clip_value'\]"),
    (dict(max_norm=-1), r"clip_grad max_norm must be a positive number, got -1"),
    (dict(max_norm="1"), r"clip_grad max_norm must be a positive number, got '1'"),
    (dict(type="value", clip_value=0), r"clip_value must be a positive number, got 0"),
    (dict(max_norm=1, norm_type="l2"), r"norm_type must be a positive number or 'inf'"),
])
def test_bad_clip_grad(clip_grad, match):
    with pytest.raises(ValueError, match=match):
        OptimWrapper(sgd(make_model()), clip_grad=clip_grad)


# -- constructor and counter arguments -------------------------------------------------------


def test_bad_constructor_arguments():
    model = make_model()
    with pytest.raises(TypeError, match=r"must be a torch.optim.Optimizer, got Sequential"):
        OptimWrapper(model)
    with pytest.raises(ValueError, match="accumulative_counts must be a positive int, got 0"):
        OptimWrapper(sgd(model), accumulative_counts=0)
    with pytest.raises(ValueError, match=r"accumulative_counts must be a positive int, got 2.0"):
        OptimWrapper(sgd(model), accumulative_counts=2.0)
    with pytest.raises(ValueError, match="accumulative_counts must be a positive int, got True"):
        OptimWrapper(sgd(model), accumulative_counts=True)


def test_bad_count_status():
    wrapper = OptimWrapper(sgd(make_model()), accumulative_counts=2)
    with pytest.raises(ValueError, match="init_counts must be a non-negative int, got -1"):
        wrapper.initialize_count_status(None, -1, 10)
    with pytest.raises(ValueError, match="max_counts must be a positive int, None or -1"):
        wrapper.initialize_count_status(None, 0, 0)
    with pytest.raises(ValueError, match=r"init_counts \(11\) must not exceed max_counts \(10\)"):
        wrapper.initialize_count_status(None, 11, 10)


# -- reading the optimizer -------------------------------------------------------------------


def test_get_lr_and_momentum_for_sgd_adam_and_adagrad():
    model = make_model()
    first, last = model[0], model[2]
    opt = torch.optim.SGD([{"params": first.parameters(), "lr": 0.5, "momentum": 0.8},
                           {"params": last.parameters()}], lr=0.1, momentum=0.9)
    wrapper = OptimWrapper(opt)
    assert wrapper.get_lr() == {"lr": [0.5, 0.1]}
    assert wrapper.get_momentum() == {"momentum": [0.8, 0.9]}
    assert wrapper.param_groups is opt.param_groups
    assert wrapper.defaults["lr"] == 0.1
    wrapper.param_groups[1]["lr"] = 0.01
    assert wrapper.get_lr() == {"lr": [0.5, 0.01]}

    adam = OptimWrapper(torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.7, 0.99)))
    assert adam.get_lr() == {"lr": [1e-3]}
    assert adam.get_momentum() == {"momentum": [0.7]}
    assert OptimWrapper(torch.optim.Adagrad(model.parameters())).get_momentum() == {
        "momentum": [0]}


def test_repr_names_settings():
    text = repr(OptimWrapper(sgd(make_model()), accumulative_counts=3,
                             clip_grad=dict(max_norm=2.0)))
    assert "accumulative_counts=3" in text and "max_norm" in text and "SGD" in text


# -- state -----------------------------------------------------------------------------------


@pytest.mark.parametrize("make_opt", [sgd, lambda m: torch.optim.Adam(m.parameters(), lr=1e-2)])
def test_resume_inside_accumulation_window_continues_identically(make_opt):
    batches = make_batches(10)
    straight = make_model()
    w_straight = OptimWrapper(make_opt(straight), accumulative_counts=4)
    w_straight.initialize_count_status(straight, 0, 10)
    train(straight, w_straight, batches)

    first = make_model()
    w_first = OptimWrapper(make_opt(first), accumulative_counts=4)
    w_first.initialize_count_status(first, 0, 10)
    train(first, w_first, batches[:6])  # stops two micro-batches into the second window
    model_state = roundtrip(first.state_dict())
    optim_state = roundtrip(w_first.state_dict())
    assert optim_state["inner_count"] == 6
    assert len(optim_state["accumulated_grads"]) == 4

    resumed = make_model(seed=123)
    resumed.load_state_dict(model_state)
    w_resumed = OptimWrapper(make_opt(resumed), accumulative_counts=4)
    w_resumed.load_state_dict(optim_state)
    assert w_resumed.inner_count == 6
    w_resumed.initialize_count_status(resumed, 6, 10)
    train(resumed, w_resumed, batches[6:])
    for a, b in zip(straight.parameters(), resumed.parameters(), strict=True):
        assert torch.equal(a, b)


def test_state_at_window_boundary_has_no_grads_and_clears_stale_ones():
    model = make_model()
    wrapper = OptimWrapper(sgd(model), accumulative_counts=2)
    train(model, wrapper, make_batches(2))
    state = wrapper.state_dict()
    assert state["inner_count"] == 2 and "accumulated_grads" not in state

    other = make_model()
    w_other = OptimWrapper(sgd(other), accumulative_counts=2)
    w_other.backward(loss_of(other, make_batches(1)[0]))  # a stale half window
    w_other.load_state_dict(state)
    assert w_other.inner_count == 2
    assert all(p.grad is None for p in other.parameters())
    assert state["inner_count"] == 2, "the caller's dict is not modified"


def test_plain_optimizer_state_dict_loads_and_keeps_counter():
    model = make_model()
    source = sgd(model)
    train(model, OptimWrapper(source), make_batches(2))
    wrapper = OptimWrapper(sgd(model))
    wrapper.inner_count = 5
    wrapper.load_state_dict(source.state_dict())
    assert wrapper.inner_count == 5
    assert wrapper.state_dict()["state"].keys() == source.state_dict()["state"].keys()


def test_state_dict_with_other_parameter_count_is_refused():
    model = make_model()
    wrapper = OptimWrapper(sgd(model), accumulative_counts=4)
    train(model, wrapper, make_batches(1))
    state = wrapper.state_dict()
    state["accumulated_grads"] = state["accumulated_grads"][:2]
    with pytest.raises(ValueError, match="accumulated_grads holds 2 gradients but the optimizer "
                                         "has 4 parameters"):
        OptimWrapper(sgd(make_model()), accumulative_counts=4).load_state_dict(state)


# -- mixed precision -------------------------------------------------------------------------


def test_bf16_on_cpu_autocasts_and_trains():
    model = make_model()
    wrapper = AmpOptimWrapper(torch.optim.SGD(model.parameters(), lr=0.5), dtype="bfloat16")
    assert wrapper.device_type == "cpu" and wrapper.cast_dtype == torch.bfloat16
    assert not wrapper.loss_scaler.is_enabled()
    batch = concat(make_batches(4))
    losses = []
    for _ in range(30):
        with wrapper.optim_context(model):
            assert torch.is_autocast_enabled("cpu")
            assert torch.get_autocast_dtype("cpu") == torch.bfloat16
            logits = model(batch[0])
            assert logits.dtype == torch.bfloat16
            loss = F.cross_entropy(logits.float(), batch[1])
        wrapper.update_params(loss)
        losses.append(loss.item())
    assert not torch.is_autocast_enabled("cpu")
    assert losses[-1] < 0.8 * losses[0]
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert roundtrip(wrapper.state_dict())["loss_scaler"] == {}


def test_amp_dtype_defaults_to_bfloat16_on_cpu_and_accepts_torch_dtypes():
    model = make_model()
    assert AmpOptimWrapper(sgd(model)).cast_dtype == torch.bfloat16
    assert AmpOptimWrapper(sgd(model), dtype=torch.bfloat16).cast_dtype == torch.bfloat16
    assert AmpOptimWrapper(sgd(model), dtype="bf16", device_type="cpu").device_type == "cpu"


def test_amp_accumulation_matches_plain_bf16_large_batch_closely():
    model, reference = make_model(), make_model()
    wrapper = AmpOptimWrapper(sgd(model), dtype="bfloat16", accumulative_counts=2,
                              clip_grad=dict(max_norm=10.0))
    train(model, wrapper, make_batches(2))
    loss_of(reference, concat(make_batches(2))).backward()
    ref_opt = sgd(reference)
    ref_opt.step()
    assert wrapper.grad_norm is not None
    assert_params_close(model, reference, atol=2e-2)  # bf16 forward: close, not equal


def test_float16_fallback_warning_names_bfloat16(monkeypatch):
    monkeypatch.setattr(amp_module, "float16_supported", lambda device_type: False)
    with pytest.warns(UserWarning, match="float16 .* not supported on 'cpu'.*falling back to "
                                         "bfloat16"):
        wrapper = AmpOptimWrapper(sgd(make_model()), dtype="float16")
    assert wrapper.cast_dtype == torch.bfloat16


needs_cpu_fp16 = pytest.mark.skipif(not amp_module.float16_supported("cpu"),
                                    reason="this torch cannot autocast to float16 on CPU")


@needs_cpu_fp16
def test_float16_scaler_skips_non_finite_steps_and_halves_dynamic_scale():
    model = make_model()
    wrapper = AmpOptimWrapper(sgd(model), dtype="float16")
    assert wrapper.loss_scaler.is_enabled() and wrapper.loss_scaler.get_scale() == 65536.0
    start = [p.detach().clone() for p in model.parameters()]
    wrapper.update_params(loss_of(model, make_batches(1)[0]) * math.inf)
    assert all(torch.equal(p, s) for p, s in zip(model.parameters(), start, strict=True))
    assert wrapper.loss_scaler.get_scale() == 32768.0
    with wrapper.optim_context(model):
        assert torch.get_autocast_dtype("cpu") == torch.float16
        loss = loss_of(model, make_batches(1)[0])
    wrapper.update_params(loss)
    assert not all(torch.equal(p, s) for p, s in zip(model.parameters(), start, strict=True))

    restored = AmpOptimWrapper(sgd(make_model()), dtype="float16")
    restored.load_state_dict(roundtrip(wrapper.state_dict()))
    assert restored.loss_scaler.get_scale() == 32768.0


@needs_cpu_fp16
def test_float16_static_scale_stays_and_clipping_sees_unscaled_grads():
    model, reference = make_model(), make_model()
    wrapper = AmpOptimWrapper(torch.optim.SGD(model.parameters(), lr=0.0), loss_scale=8.0,
                              dtype="float16", clip_grad=dict(max_norm=1e6))
    batch = make_batches(1)[0]
    wrapper.update_params(loss_of(model, batch))
    loss_of(reference, batch).backward()
    expected = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in
                                                     reference.parameters()]))
    torch.testing.assert_close(wrapper.grad_norm, expected, rtol=1e-5, atol=0)
    wrapper.update_params(loss_of(model, batch) * math.inf)
    assert wrapper.loss_scaler.get_scale() == 8.0


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_float16_on_cuda_trains_with_dynamic_scale():
    model = make_model().cuda()
    wrapper = AmpOptimWrapper(torch.optim.SGD(model.parameters(), lr=0.5))
    assert wrapper.device_type == "cuda" and wrapper.cast_dtype == torch.float16
    x, y = (t.cuda() for t in concat(make_batches(4)))
    losses = []
    for _ in range(30):
        with wrapper.optim_context(model):
            logits = model(x)
            assert logits.dtype == torch.float16
            loss = F.cross_entropy(logits.float(), y)
        wrapper.update_params(loss)
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0]
    assert roundtrip(wrapper.state_dict())["loss_scaler"]["scale"] > 0


def test_bad_amp_arguments():
    model = make_model()
    with pytest.raises(ValueError, match=r"dtype must be None, 'float16', 'bfloat16'.*'float32'"):
        AmpOptimWrapper(sgd(model), dtype="float32")
    with pytest.raises(ValueError, match=r"dtype must be .* got torch.float64"):
        AmpOptimWrapper(sgd(model), dtype=torch.float64)
    with pytest.raises(ValueError, match=r"loss_scale must be 'dynamic'.* got 'static'"):
        AmpOptimWrapper(sgd(model), loss_scale="static")
    with pytest.raises(TypeError, match=r"loss_scale must be 'dynamic'.* got \[512\]"):
        AmpOptimWrapper(sgd(model), loss_scale=[512])
    with pytest.raises(ValueError, match=r"loss_scale must be positive, got -1.0"):
        AmpOptimWrapper(sgd(model), loss_scale=-1.0)
    with pytest.raises(ValueError, match=r"loss_scale dict does not accept \['scale'\]"):
        AmpOptimWrapper(sgd(model), loss_scale=dict(scale=2.0))
    with pytest.raises(ValueError, match="device_type 'gpu' does not support autocast"):
        AmpOptimWrapper(sgd(model), device_type="gpu")
    with pytest.raises(TypeError, match=r"device_type must be a string .* got 0"):
        AmpOptimWrapper(sgd(model), device_type=0)
    with pytest.warns(UserWarning, match=r"loss_scale=512.0 is ignored with dtype=torch.bfloat16"):
        AmpOptimWrapper(sgd(model), loss_scale=512.0, dtype="bfloat16")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA message")
def test_cuda_device_type_without_cuda_is_refused():
    with pytest.raises(ValueError, match="device_type='cuda' but CUDA is not available"):
        AmpOptimWrapper(sgd(make_model()), device_type="cuda")


# -- several optimizers ----------------------------------------------------------------------


class TwoPart(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.generator = nn.Linear(4, 8)
        self.discriminator = nn.Linear(8, 1)


def two_wrappers(model: TwoPart) -> OptimWrapperDict:
    return OptimWrapperDict(
        generator=OptimWrapper(torch.optim.Adam(model.generator.parameters(), lr=2e-4,
                                                betas=(0.5, 0.999))),
        discriminator=OptimWrapper(torch.optim.SGD(model.discriminator.parameters(), lr=0.1,
                                                   momentum=0.9), accumulative_counts=2),
    )


def test_optim_wrapper_dict_updates_each_part_with_its_own_wrapper():
    model = TwoPart()
    wrappers = two_wrappers(model)
    z = torch.randn(5, 4)
    gen_before = [p.detach().clone() for p in model.generator.parameters()]
    disc_before = [p.detach().clone() for p in model.discriminator.parameters()]

    wrappers["generator"].update_params(-model.discriminator(model.generator(z)).mean())
    assert not torch.equal(model.generator.weight, gen_before[0])
    assert torch.equal(model.discriminator.weight, disc_before[0])
    assert model.discriminator.weight.grad is not None  # the generator's loss reached it
    wrappers.zero_grad()
    assert model.discriminator.weight.grad is None

    assert wrappers.get_lr() == {"generator.lr": [2e-4], "discriminator.lr": [0.1]}
    assert wrappers.get_momentum() == {"generator.momentum": [0.5],
                                       "discriminator.momentum": [0.9]}
    assert "generator" in wrappers and "encoder" not in wrappers
    assert list(wrappers.keys()) == ["generator", "discriminator"] == list(wrappers)
    assert len(wrappers) == 2
    assert [w for _, w in wrappers.items()] == list(wrappers.values())
    wrappers.initialize_count_status(model, 3, 10)
    assert [w.inner_count for w in wrappers.values()] == [3, 3]
    assert "name: discriminator\n  OptimWrapper(accumulative_counts=2" in repr(wrappers)


def test_optim_wrapper_dict_state_round_trip():
    model = TwoPart()
    wrappers = two_wrappers(model)
    z = torch.randn(5, 4)
    wrappers["generator"].update_params(-model.discriminator(model.generator(z)).mean())
    wrappers["discriminator"].update_params(model.discriminator(model.generator(z).detach())
                                            .mean())
    state = roundtrip(wrappers.state_dict())
    assert set(state) == {"generator", "discriminator"}
    assert state["discriminator"]["inner_count"] == 1
    assert "accumulated_grads" in state["discriminator"]

    other = TwoPart()
    other.load_state_dict(model.state_dict())
    restored = two_wrappers(other)
    restored.load_state_dict(state)
    assert restored["discriminator"].inner_count == 1
    torch.testing.assert_close(other.discriminator.weight.grad, model.discriminator.weight.grad)
    adam_state = restored["generator"].optimizer.state_dict()["state"]
    torch.testing.assert_close(adam_state[0]["exp_avg"], state["generator"]["state"][0]["exp_avg"])

    with pytest.raises(ValueError, match=r"unknown: \['encoder'\], missing: \['generator'\]"):
        restored.load_state_dict({"encoder": {}, "discriminator": state["discriminator"]})
    with pytest.raises(TypeError, match="state_dict must be a dict keyed by wrapper name"):
        restored.load_state_dict([state])


def test_optim_wrapper_dict_refuses_ambiguous_calls():
    model = TwoPart()
    wrappers = two_wrappers(model)
    loss = model.discriminator(model.generator(torch.randn(2, 4))).mean()
    for call in (lambda: wrappers.update_params(loss), lambda: wrappers.backward(loss),
                 wrappers.step, lambda: wrappers.optim_context(model)):
        with pytest.raises(NotImplementedError,
                           match=r"call it on one of the named wrappers instead, e.g. "
                                 r"optim_wrapper\['generator'\]"):
            call()
    with pytest.raises(KeyError, match=r"no optimizer wrapper named 'encoder'; names are "
                                       r"\['generator', 'discriminator'\]"):
        wrappers["encoder"]
    with pytest.raises(ValueError, match="needs at least one named OptimWrapper"):
        OptimWrapperDict()
    with pytest.raises(TypeError, match=r"only accepts OptimWrapper instances, but "
                                        r"OptimWrapperDict\['generator'\] is a SGD"):
        OptimWrapperDict(generator=torch.optim.SGD(model.generator.parameters(), lr=0.1))


# -- building from configs -------------------------------------------------------------------


def test_build_returns_wrappers_as_is_and_wraps_optimizers():
    model = TwoPart()
    wrapper = OptimWrapper(sgd(model))
    assert build_optim_wrapper(wrapper, model) is wrapper
    wrappers = two_wrappers(model)
    assert build_optim_wrapper(wrappers, model) is wrappers
    optimizer = sgd(model)
    built = build_optim_wrapper(optimizer, None)
    assert type(built) is OptimWrapper and built.optimizer is optimizer


def test_build_from_mmengine_style_dict():
    model = make_model()
    built = build_optim_wrapper(dict(type="OptimWrapper",
                                     optimizer=dict(type="SGD", lr=0.1, momentum=0.9),
                                     accumulative_counts=2, clip_grad=dict(max_norm=1.0)), model)
    assert type(built) is OptimWrapper
    assert isinstance(built.optimizer, torch.optim.SGD)
    assert built.get_lr() == {"lr": [0.1]} and built.get_momentum() == {"momentum": [0.9]}
    assert built.accumulative_counts == 2 and built.clip_grad == {"max_norm": 1.0}
    assert [id(p) for p in built.param_groups[0]["params"]] == [id(p) for p in model.parameters()]

    default = build_optim_wrapper(dict(optimizer=dict(type="Adam", lr=1e-3)), model)
    assert type(default) is OptimWrapper and isinstance(default.optimizer, torch.optim.Adam)
    dotted = build_optim_wrapper(dict(optimizer=dict(type="torch.optim.AdamW", lr=1e-3)), model)
    assert isinstance(dotted.optimizer, torch.optim.AdamW)
    by_class = build_optim_wrapper(dict(type=AmpOptimWrapper, dtype="bfloat16",
                                        optimizer=dict(type=torch.optim.RMSprop, lr=1e-3)), model)
    assert type(by_class) is AmpOptimWrapper and isinstance(by_class.optimizer,
                                                            torch.optim.RMSprop)
    amp = build_optim_wrapper(dict(type="AmpOptimWrapper", loss_scale="dynamic",
                                   optimizer=dict(type="SGD", lr=0.1)), model)
    assert amp.cast_dtype == torch.bfloat16
    given = sgd(model)
    assert build_optim_wrapper(dict(optimizer=given, constructor="DefaultOptimWrapperConstructor"),
                               model).optimizer is given
    assert build_optim_wrapper(dict(optimizer=given, paramwise_cfg=None), model).optimizer is given


def test_every_torch_optimizer_is_named():
    expected = {name for name, cls in vars(torch.optim).items()
                if isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer)}
    assert set(OPTIMIZERS) == expected - {"Optimizer"}
    model = make_model()
    for name in ("SGD", "Adam", "AdamW", "Adagrad", "Adadelta", "Adamax", "ASGD", "NAdam",
                 "RAdam", "RMSprop", "Rprop", "LBFGS"):
        built = build_optim_wrapper(dict(optimizer=dict(type=name, lr=0.01)), model)
        assert type(built.optimizer).__name__ == name


def test_build_several_optimizers_over_submodules():
    model = TwoPart()
    cfg = dict(generator=dict(type="OptimWrapper", optimizer=dict(type="Adam", lr=2e-4)),
               discriminator=dict(optimizer=dict(type="SGD", lr=0.1), accumulative_counts=2))
    built = build_optim_wrapper(cfg, model)
    assert isinstance(built, OptimWrapperDict)
    assert built.get_lr() == {"generator.lr": [2e-4], "discriminator.lr": [0.1]}
    assert built["discriminator"].accumulative_counts == 2
    for name in ("generator", "discriminator"):
        params = built[name].param_groups[0]["params"]
        assert [id(p) for p in params] == [id(p) for p in getattr(model, name).parameters()]

    wrapped = build_optim_wrapper(dict(constructor="MultiOptimWrapperConstructor", **cfg),
                                  nn.DataParallel(model))
    assert wrapped["generator"].param_groups[0]["params"][0] is model.generator.weight
    mixed = build_optim_wrapper(dict(generator=sgd(model.generator),
                                     discriminator=OptimWrapper(sgd(model.discriminator))), model)
    assert set(mixed) == {"generator", "discriminator"}


@pytest.mark.parametrize(("cfg", "error", "match"), [
    (42, TypeError, r"optim_wrapper must be an OptimWrapper, .* got int 42"),
    (dict(type="OptimWrapper"), ValueError,
     r"optim_wrapper config \{'type': 'OptimWrapper'\} has no 'optimizer' key"),
    (dict(lr=0.1), ValueError, r"optim_wrapper config \{'lr': 0.1\} has no 'optimizer' key"),
    (dict(optimizer=dict(lr=0.1)), ValueError,
     r"optim_wrapper optimizer config \{'lr': 0.1\} has no 'type' key"),
    (dict(optimizer="SGD"), TypeError,
     r"optim_wrapper optimizer must be a torch.optim.Optimizer or a dict .* got str 'SGD'"),
    (dict(optimizer=dict(type="SDG", lr=0.1)), ValueError,
     r"unknown optim_wrapper optimizer type 'SDG'. Did you mean 'SGD'"),
    (dict(optimizer=dict(type="torch.nn.Linear")), TypeError,
     r"optimizer type 'torch.nn.Linear' is not a torch.optim.Optimizer subclass"),
    (dict(optimizer=dict(type="SGD", lr=0.1, momentm=0.9)), TypeError,
     r"SGD does not take 'momentm'. Did you mean 'momentum'"),
    (dict(optimizer=dict(type="SGD", lr=0.1, params=[])), ValueError,
     r"must not set 'params'; they are taken from the model"),
    (dict(type="OptimWrapperr", optimizer=dict(type="SGD", lr=0.1)), ValueError,
     r"unknown optim_wrapper type 'OptimWrapperr'. Did you mean 'OptimWrapper'"),
    (dict(type="SGD", optimizer=dict(type="SGD", lr=0.1)), TypeError,
     r"optim_wrapper type 'SGD' is not an OptimWrapper class.*put it under optimizer="),
    (dict(optimizer=dict(type="SGD", lr=0.1), accumulate=2), TypeError,
     r"optim_wrapper: OptimWrapper does not take 'accumulate'"),
    (dict(optimizer=dict(type="SGD", lr=0.1), accumulative_counts=0), ValueError,
     r"accumulative_counts must be a positive int, got 0"),
    (dict(optimizer=dict(type="SGD", lr=0.1), clip_grad=dict(max_norm=None)), ValueError,
     r"clip_grad max_norm must be a positive number, got None"),
    (dict(optimizer=dict(type="SGD", lr=0.1), paramwise_cfg=dict(norm_decay_mult=0)),
     ValueError, r"paramwise_cfg sets \['norm_decay_mult'\], which multiply the optimizer's weight_decay"),
    (dict(optimizer=dict(type="SGD", lr=0.1), constructor="MyConstructor"), ValueError,
     r"constructor 'MyConstructor' is not supported"),
    (dict(encoder=dict(optimizer=dict(type="SGD", lr=0.1))), ValueError,
     r"optim_wrapper\['encoder'\]: the model \(TwoPart\) has no submodule 'encoder'.*"
     r"\['generator', 'discriminator'\]"),
    (dict(generator=dict(optimizer=dict(type="SGD", lr=0.1)), discriminator=dict(lr=0.1)),
     ValueError, r"optim_wrapper\['discriminator'\] config \{'lr': 0.1\} has no 'optimizer'"),
    (dict(generator=dict(optimizer=dict(type="SGD", lr=0.1)), discriminator=[1]), ValueError,
     r"optim_wrapper config .* has no 'optimizer' key"),
    (dict(constructor="MultiOptimWrapperConstructor"), ValueError,
     r"multi-optimizer form needs at least one"),
])
def test_bad_optim_wrapper_configs(cfg, error, match):
    with pytest.raises(error, match=match):
        build_optim_wrapper(cfg, TwoPart())


def test_build_needs_a_model_with_parameters_for_configs():
    cfg = dict(optimizer=dict(type="SGD", lr=0.1))
    with pytest.raises(TypeError, match=r"needs model to be an nn.Module, got NoneType"):
        build_optim_wrapper(cfg, None)
    with pytest.raises(ValueError, match=r"model \(ReLU\) has no parameters to optimize"):
        build_optim_wrapper(cfg, nn.ReLU())
    with pytest.raises(TypeError, match="optim_wrapper keys must be submodule names, got 1"):
        build_optim_wrapper({1: cfg}, TwoPart())


def test_config_dicts_are_not_modified():
    cfg = dict(type="OptimWrapper", optimizer=dict(type="SGD", lr=0.1),
               clip_grad=dict(max_norm=1.0))
    snapshot = copy.deepcopy(cfg)
    build_optim_wrapper(cfg, make_model())
    assert cfg == snapshot


# -- Trainer(precision=...) ------------------------------------------------------------------


def test_with_precision_wraps_the_same_optimizer_with_counts_and_clipping():
    model = make_model()
    wrapper = OptimWrapper(sgd(model), accumulative_counts=4, clip_grad=dict(max_norm=1.0))
    assert wrapper.with_precision("32") is wrapper
    wrapper.initialize_count_status(model, 2, 10)
    amp = wrapper.with_precision("bf16-mixed", "cpu")
    assert type(amp) is AmpOptimWrapper and amp.optimizer is wrapper.optimizer
    assert amp.cast_dtype == torch.bfloat16 and amp.device_type == "cpu"
    assert (amp.accumulative_counts, amp.clip_grad, amp.inner_count, amp.max_counts) == (
        4, {"max_norm": 1.0}, 2, 10)
    assert amp.with_precision("bf16-mixed") is amp
    with pytest.raises(ValueError, match=r"precision='16-mixed' conflicts with the "
                                         r"AmpOptimWrapper's dtype torch.bfloat16"):
        amp.with_precision("16-mixed")
    with pytest.raises(ValueError, match=r"precision must be one of \['32', 'bf16-mixed', "
                                         r"'16-mixed'\], got 'bf16'"):
        wrapper.with_precision("bf16")

    class Custom(OptimWrapper):
        pass

    with pytest.raises(ValueError, match="cannot be added to a Custom"):
        Custom(sgd(model)).with_precision("bf16-mixed")
    converted = two_wrappers(TwoPart()).with_precision("bf16-mixed")
    assert all(type(w) is AmpOptimWrapper for w in converted.values())
    assert list(converted) == ["generator", "discriminator"]

"""ProfilerCallback: traces that json.load, with the ProfilerStep spans of the active iterations."""

from __future__ import annotations

import json
import re

import fsspec
import pytest
from trainer.callbacks import ProfilerCallback

from tests.conftest import ToyNet, toy_loader
from trainer import Trainer

QUIET = {"progress": None, "checkpoint": None}


def profiler_steps(path: str) -> list[int]:
    """The step numbers of the ``ProfilerStep#n`` spans in a Chrome trace file."""
    with fsspec.open(path, "r") as f:
        trace = json.load(f)
    steps = {int(m.group(1)) for e in trace["traceEvents"]
             if (m := re.fullmatch(r"ProfilerStep#(\d+)", e.get("name", "")))}
    return sorted(steps)


def test_iteration_schedule_traces_exactly_the_active_iterations(work_dir):
    profiler = ProfilerCallback(wait=1, warmup=1, active=3, repeat=2, record_shapes=True)
    trainer = Trainer(max_iters=14, work_dir=work_dir, log_interval=5, callbacks=[profiler],
                      default_callbacks=QUIET)
    trainer.fit(ToyNet(), toy_loader())
    # Steps 0-1 wait and warm up, 2-4 are recorded; the second cycle records 7-9; then it stops.
    assert [profiler_steps(p) for p in profiler.traces] == [[2, 3, 4], [7, 8, 9]]
    for path in profiler.traces:
        assert path.startswith(f"{trainer.log_dir}/profiler/") and path.endswith(".pt.trace.json")
    with open(profiler.traces[0]) as f:
        events = json.load(f)["traceEvents"]
    assert any(e.get("name") == "aten::addmm" and "Input Dims" in e.get("args", {})
               for e in events)  # record_shapes: operator inputs carry their shapes


def test_epoch_schedule_profiles_whole_epochs_into_one_json_file(work_dir, tmp_path):
    path = str(tmp_path / "trace.json")
    profiler = ProfilerCallback(wait=1, warmup=0, active=1, by_epoch=True, json_trace_path=path,
                                summary_rows=5)
    trainer = Trainer(max_epochs=3, work_dir=work_dir, callbacks=[profiler],
                      default_callbacks=QUIET)
    trainer.fit(ToyNet(), toy_loader(n=48))  # 6 iterations per epoch
    assert profiler.traces == [path]
    assert profiler_steps(path) == [6, 7, 8, 9, 10, 11]  # the second epoch


def test_remote_work_dir_and_cpu_only_memory_snapshot_warning():
    profiler = ProfilerCallback(wait=0, warmup=1, active=1, memory_snapshot_iter=1)
    trainer = Trainer(max_iters=4, work_dir="memory://profiler_test", callbacks=[profiler],
                      default_callbacks=QUIET)
    with pytest.warns(UserWarning, match="needs a CUDA run"):
        trainer.fit(ToyNet(), toy_loader())
    assert [profiler_steps(p) for p in profiler.traces] == [[1]]


def test_cuda_only_activities_on_cpu_profile_nothing(work_dir):
    profiler = ProfilerCallback(activities=["cuda"])
    trainer = Trainer(max_iters=3, work_dir=work_dir, callbacks=[profiler],
                      default_callbacks=QUIET, accelerator="cpu")
    with pytest.warns(UserWarning, match="nothing is profiled; add 'cpu'"):
        trainer.fit(ToyNet(), toy_loader())
    assert profiler.traces == []


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"active": 0}, "active must be a positive int"),
    ({"wait": -1}, "wait must be a non-negative int"),
    ({"repeat": 1.5}, "repeat must be a non-negative int"),
    ({"activities": "cpu"}, "activities must be a non-empty list drawn from"),
    ({"activities": ["cpu", "tpu"]}, "activities must be a non-empty list drawn from"),
    ({"memory_snapshot_iter": -2}, "memory_snapshot_iter must be a non-negative int"),
])
def test_bad_arguments_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ProfilerCallback(**kwargs)


@pytest.mark.gpu
def test_cuda_trace_and_memory_snapshot(work_dir):
    import pickle

    profiler = ProfilerCallback(wait=0, warmup=1, active=2, profile_memory=True,
                                memory_snapshot_iter=2)
    trainer = Trainer(max_iters=5, work_dir=work_dir, callbacks=[profiler],
                      default_callbacks=QUIET, accelerator="cuda")
    trainer.fit(ToyNet(), toy_loader())
    trace, snapshot = sorted(profiler.traces, key=lambda p: p.endswith(".pickle"))
    assert profiler_steps(trace) == [1, 2]
    with open(trace) as f:
        events = json.load(f)["traceEvents"]
    assert any(e.get("cat") == "kernel" for e in events)  # CUDA kernels were recorded
    with open(snapshot, "rb") as f:
        state = pickle.load(f)
    assert state["segments"] and any(t for t in state["device_traces"])

"""Trainer(loggers=[...]): every sink holds the scalars of scalars.jsonl; trackers resume."""

from __future__ import annotations

import glob
import json
import os
import re
import struct
import sys

import pandas as pd
import pytest

from tests.conftest import ToyNet, accuracy, toy_loader
from trainer import Trainer
from trainer.loggers import build_loggers
from trainer.loggers.csv_logger import CSVLogger
from trainer.loggers.trackers import import_extra

QUIET = {"progress": None}


def jsonl(trainer: Trainer) -> list[dict]:
    with open(f"{trainer.log_dir}/scalars.jsonl") as f:
        return [json.loads(line) for line in f]


def train_series(records: list[dict], key: str) -> list[tuple[int, float]]:
    return [(r["iter"], r[key]) for r in records if r["mode"] == "train" and key in r]


def assert_series(actual, expected) -> None:
    """Two lists of (step, value): the same steps, the same values to float precision."""
    assert [step for step, _ in actual] == [step for step, _ in expected]
    assert [value for _, value in actual] == pytest.approx([value for _, value in expected])


def run(work_dir, loggers, max_iters=12, **kwargs) -> Trainer:
    trainer = Trainer(max_iters=max_iters, val_interval=6, log_interval=3, work_dir=work_dir,
                      seed=0, val_evaluator={"acc": accuracy()}, loggers=loggers,
                      default_callbacks=QUIET, **kwargs)
    trainer.fit(ToyNet(), toy_loader(shuffle=True), toy_loader(n=24))
    return trainer


def test_csv_reads_with_pandas_and_matches_scalars_jsonl(work_dir):
    trainer = run(work_dir, ["jsonl", "csv"])
    records = jsonl(trainer)
    table = pd.read_csv(f"{trainer.log_dir}/scalars.csv")
    train = table[table["mode"] == "train"]
    assert_series(list(zip(train["step"], train["loss"])), train_series(records, "loss"))
    # The throughput columns appeared after the first rows: the file was widened, not torn.
    assert train["iters_per_s"].isna().tolist() == [True, False, False, False]
    val = table[table["mode"] == "val"]
    assert list(val["step"]) == [6, 12]
    hparams = pd.read_csv(f"{trainer.log_dir}/hparams.csv").set_index("name")["value"]
    assert hparams["max_iters"] == "12" and hparams["log_interval"] == "3"
    assert list(val["acc"]) == pytest.approx([r["val/acc"] for r in records if r["mode"] == "val"])


def test_without_jsonl_there_is_no_scalars_jsonl(work_dir):
    import os

    trainer = run(work_dir, ["csv"])
    assert os.path.exists(f"{trainer.log_dir}/scalars.csv")
    assert not os.path.exists(f"{trainer.log_dir}/scalars.jsonl")
    assert os.path.exists(f"{trainer.log_dir}/{trainer.timestamp}.log")  # the text log stays


@pytest.mark.parametrize(("loggers", "error", "match"), [
    ("csv", TypeError, "loggers must be a list of names or dicts"),
    (["jsonl", "neptune"], ValueError, r"unknown logger 'neptune': loggers are \['jsonl', 'csv'"),
    ([dict(type="jsonl", path="x")], ValueError, "logger 'jsonl' takes no options"),
    ([dict(type="csv", file="x.csv")], TypeError, "does not take 'file'"),
    ([dict(kind="csv")], ValueError, "unknown logger"),
    ([CSVLogger(), 3], ValueError, "unknown logger 3"),
])
def test_bad_loggers_fail_when_the_trainer_is_built(loggers, error, match):
    with pytest.raises(error, match=match):
        Trainer(max_iters=2, loggers=loggers)


def test_sinks_need_the_logger_callback(work_dir):
    trainer = Trainer(max_iters=2, work_dir=work_dir, loggers=["csv"],
                      default_callbacks={"logger": None, "progress": None})
    with pytest.raises(ValueError, match="CSVLogger writes what LoggerCallback logs"):
        trainer.fit(ToyNet(), toy_loader())


def test_a_missing_extra_is_named(monkeypatch):
    with pytest.raises(ImportError, match=r"pip install 'trainer\[mlflow\]'"):
        import_extra("no_such_module_for_trainer", "mlflow", "MLflowLogger")
    monkeypatch.setitem(sys.modules, "wandb", None)  # as if W&B were not installed
    with pytest.raises(ImportError, match=r"WandbLogger needs the 'wandb' package.*"
                                          r"pip install 'trainer\[wandb\]'"):
        Trainer(max_iters=2, loggers=["jsonl", dict(type="wandb", mode="offline")])


def test_loggers_default_and_objects():
    assert build_loggers(None) == (True, [])
    sink = CSVLogger(filename="table.csv")
    assert build_loggers([sink]) == (False, [sink])


# ----------------------------------------------------------------------------- MLflow
def mlflow_runs(uri: str, experiment: str):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    return client, client.search_runs([found.experiment_id])


@pytest.mark.slow
def test_mlflow_holds_the_scalars_and_a_resume_continues_the_run(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    work_dir = str(tmp_path / "work")
    mlflow = dict(type="mlflow", tracking_uri=uri, experiment="toy")
    first = run(work_dir, ["jsonl", mlflow])
    client, runs = mlflow_runs(uri, "toy")
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    run_id = runs[0].info.run_id
    assert runs[0].data.params["max_iters"] == "12" and runs[0].data.params["seed"] == "0"

    resumed = run(work_dir, ["jsonl", mlflow], max_iters=18, resume=True)
    client, runs = mlflow_runs(uri, "toy")
    assert [r.info.run_id for r in runs] == [run_id]  # the same MLflow run, continued
    records = jsonl(first) + [r for r in jsonl(resumed) if r["iter"] > 12]
    history = client.get_metric_history(run_id, "train/loss")
    assert_series([(m.step, m.value) for m in history], train_series(records, "loss"))
    assert [m.step for m in client.get_metric_history(run_id, "val/acc")] == [6, 12, 18]
    assert len(client.get_metric_history(run_id, "train/samples_per_s")) == 4  # 3 + 1 intervals
    assert runs[0].info.status == "FINISHED"


@pytest.mark.slow
def test_two_processes_write_once(tmp_path):
    """Rank zero alone writes: one CSV, one MLflow run; samples/s counts both processes, and
    the short last batch of each one's epoch (45 samples a rank: eleven batches of 4 and one of 1)."""
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    trainer = Trainer(max_iters=12, log_interval=3, work_dir=str(tmp_path / "work"),
                      devices=2, strategy="ddp", seed=0, default_callbacks=QUIET,
                      loggers=["jsonl", "csv", dict(type="mlflow", tracking_uri=uri,
                                                    experiment="ddp")])
    trainer.fit(ToyNet(), toy_loader(n=90, batch_size=4))
    assert len(glob.glob(str(tmp_path / "work" / "*" / "scalars.csv"))) == 1
    table = pd.read_csv(glob.glob(str(tmp_path / "work" / "*" / "scalars.csv"))[0])
    rates = table.dropna(subset=["iters_per_s"])
    assert len(rates) == 3
    per_iteration = rates["samples_per_s"] / rates["iters_per_s"]
    assert list(per_iteration) == pytest.approx([2 * 4, 2 * 4, 2 * (4 + 4 + 1) / 3])
    client, runs = mlflow_runs(uri, "ddp")
    assert len(runs) == 1
    history = client.get_metric_history(runs[0].info.run_id, "train/loss")
    assert [m.value for m in history] == pytest.approx(list(table["loss"]))


# ----------------------------------------------------------------------------- W&B
def wandb_records(run_dir: str) -> list:
    """The records of an offline run's ``.wandb`` file (LevelDB-style log of protobufs)."""
    from wandb.proto import wandb_internal_pb2

    (path,) = glob.glob(f"{run_dir}/*.wandb")
    with open(path, "rb") as f:
        data = f.read()
    assert data[:4] == b":W&B"
    block, pos, pending, records = 32768, 7, b"", []
    while pos + 7 <= len(data):
        room = block - pos % block
        if room < 7:  # a block's tail too short for a header is padding
            pos += room
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if kind == 0:
            pos += room
            continue
        pending += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # a full record, or the last piece of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


def finished_records(run_dir: str) -> list:
    """The records once W&B's service process has written the run's ``exit`` record: it writes
    the file asynchronously and may still be at it when ``run.finish()`` returns."""
    import time

    deadline = time.monotonic() + 60
    while True:
        records = wandb_records(run_dir)
        if (records and records[-1].WhichOneof("record_type") == "exit") or \
                time.monotonic() > deadline:
            return records
        time.sleep(0.1)


def wandb_history(run_dir: str) -> list[dict]:
    return [{item.key or "/".join(item.nested_key): json.loads(item.value_json)
             for item in r.history.item}
            for r in finished_records(run_dir) if r.WhichOneof("record_type") == "history"]


def wandb_run_id(run_dir: str) -> str:
    """The id in ``offline-run-<date>_<time>-<id>``; wandb adds ``-1`` to the folder of a
    resume that starts within the same second as the first run."""
    return re.fullmatch(r"offline-run-\d{8}_\d{6}-([a-z0-9]+)(-\d+)?",
                        os.path.basename(run_dir)).group(1)


@pytest.mark.slow
def test_wandb_offline_run_holds_the_scalars_and_a_resume_continues_it(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_SILENT", "true")
    work_dir = str(tmp_path / "work")
    wandb = dict(type="wandb", project="toy", mode="offline")
    first = run(work_dir, ["jsonl", wandb])
    (run_dir,) = glob.glob(f"{work_dir}/wandb/offline-run-*")
    history = wandb_history(run_dir)
    records = jsonl(first)
    assert_series([(h["train/step"], h["train/loss"]) for h in history if "train/loss" in h],
                  train_series(records, "loss"))
    assert_series([(h["val/step"], h["val/acc"]) for h in history if "val/acc" in h],
                  [(r["iter"], r["val/acc"]) for r in records if r["mode"] == "val"])
    (config,) = [r.run.config for r in finished_records(run_dir)
                 if r.WhichOneof("record_type") == "run"]
    values = {item.key: json.loads(item.value_json) for item in config.update}
    assert values["max_iters"] == 12
    first_id = wandb_run_id(run_dir)

    run(work_dir, ["jsonl", wandb], max_iters=18, resume=True)
    dirs = sorted(glob.glob(f"{work_dir}/wandb/offline-run-*"))
    assert len(dirs) == 2 and all(wandb_run_id(d) == first_id for d in dirs)  # the same run id
    steps = [h["train/step"] for h in wandb_history(dirs[-1] if dirs[-1] != run_dir else dirs[0])
             if "train/step" in h]
    assert steps == [15, 18]

"""Evaluator: torchmetrics, MMEngine-style metrics and the plain weighted average."""

from __future__ import annotations

import dataclasses
import os
import re

import pytest
import torch
import torch.distributed as torch_dist
import torch.multiprocessing as mp
from torchmetrics import MeanSquaredError, Metric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy

from trainer.evaluation.evaluator import BaseMetric, Evaluator, batch_size_of, collect_results, describe

SIZES = (5, 3, 7)  # unequal batch sizes on purpose


def classification_batches(num_classes: int = 4) -> list[tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(0)
    return [(torch.randint(num_classes, (n,), generator=gen),
             torch.randint(num_classes, (n,), generator=gen)) for n in SIZES]


def hand_accuracy(batches: list[tuple[torch.Tensor, torch.Tensor]]) -> float:
    correct = sum(int((preds == target).sum()) for preds, target in batches)
    return correct / sum(len(target) for _, target in batches)


class MAE(BaseMetric):
    """Mean absolute error, one result per sample as MMEngine metrics keep them."""

    def process(self, data_batch, data_samples):
        preds, target = data_samples
        self.results.extend((preds - target).abs().tolist())

    def compute_metrics(self, results):
        return {"mae": sum(results) / len(results)}


class PlainMAE:
    """Duck-typed MMEngine metric: no base class, no evaluate(), just a results list."""

    def __init__(self):
        self.results = []

    def process(self, data_batch, data_samples):
        preds, target = data_samples
        self.results.extend((preds - target).abs().tolist())

    def compute_metrics(self, results):
        return {"plain_mae": sum(results) / len(results)}


class MinMax(Metric):
    """A torchmetrics metric whose compute() returns a dict."""

    def __init__(self):
        super().__init__()
        self.add_state("low", torch.tensor(float("inf")), dist_reduce_fx="min")
        self.add_state("high", torch.tensor(float("-inf")), dist_reduce_fx="max")

    def update(self, value: torch.Tensor) -> None:
        self.low = torch.minimum(self.low, value.min())
        self.high = torch.maximum(self.high, value.max())

    def compute(self):
        return {"low": self.low, "high": self.high}


def regression_batches() -> list[tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(1)
    return [(torch.randn(n, generator=gen), torch.randn(n, generator=gen)) for n in SIZES]


# -- torchmetrics ----------------------------------------------------------------------------------


def test_accuracy_from_tuple_outputs_matches_hand_value():
    batches = classification_batches()
    evaluator = Evaluator.build(MulticlassAccuracy(num_classes=4, average="micro"))
    for preds, target in batches:
        evaluator.process({"x": torch.zeros(len(preds), 2)}, (preds, target))
    metrics = evaluator.evaluate(size=sum(SIZES))
    assert list(metrics) == ["MulticlassAccuracy"]
    assert isinstance(metrics["MulticlassAccuracy"], float)
    assert metrics["MulticlassAccuracy"] == pytest.approx(hand_accuracy(batches))


def test_accuracy_from_dict_outputs_matches_hand_value():
    batches = classification_batches()
    evaluator = Evaluator(MulticlassAccuracy(num_classes=4, average="micro"))
    for preds, target in batches:
        evaluator.process(None, {"preds": preds, "target": target})
    assert evaluator.evaluate()["MulticlassAccuracy"] == pytest.approx(hand_accuracy(batches))


def test_collection_and_dict_use_their_keys_and_per_class_values_become_lists():
    batches = classification_batches()
    collection = MetricCollection({"acc": MulticlassAccuracy(num_classes=4, average="micro")})
    per_class = MulticlassAccuracy(num_classes=4, average=None)
    evaluator = Evaluator([collection, {"recall_per_class": per_class}])
    for preds, target in batches:
        evaluator.process(None, (preds, target))
    metrics = evaluator.evaluate()
    assert list(metrics) == ["acc", "recall_per_class"]
    assert metrics["acc"] == pytest.approx(hand_accuracy(batches))
    preds = torch.cat([p for p, _ in batches])
    target = torch.cat([t for _, t in batches])
    expected = [float((preds[target == c] == c).float().mean()) for c in range(4)]
    assert metrics["recall_per_class"] == pytest.approx(expected)
    assert all(isinstance(v, float) for v in metrics["recall_per_class"])


def test_unkeyed_collection_uses_class_names_and_dict_results_are_flattened():
    values = [torch.tensor([3.0, -1.0]), torch.tensor([7.0]), torch.tensor([0.5, 2.0, 4.0])]
    collection = Evaluator(MetricCollection([MeanSquaredError()]))
    minmax = Evaluator({"range": MinMax()})
    for value in values:
        collection.process(None, (value, torch.zeros_like(value)))
        minmax.process(None, value)  # neither tuple nor dict: update(outputs)
    flat = torch.cat(values)
    assert collection.evaluate() == {"MeanSquaredError": pytest.approx(float((flat**2).mean()))}
    assert minmax.evaluate() == {"low": -1.0, "high": 7.0}


def test_config_dicts_build_torchmetrics_by_name_or_dotted_path():
    evaluator = Evaluator([
        {"type": "MeanSquaredError"},
        {"type": "torchmetrics.classification.MulticlassAccuracy", "num_classes": 3},
    ])
    assert [type(m).__name__ for m in evaluator.metrics] == ["MeanSquaredError",
                                                             "MulticlassAccuracy"]
    assert evaluator.metrics[1].num_classes == 3


def test_build_passes_an_evaluator_through_and_to_returns_it():
    evaluator = Evaluator(MeanSquaredError())
    assert Evaluator.build(evaluator) is evaluator
    assert evaluator.to("cpu") is evaluator
    assert evaluator.metrics[0].sum_squared_error.device.type == "cpu"


# -- MMEngine-style metrics ------------------------------------------------------------------------


def test_base_metric_over_several_batches_with_prefix_and_cleared_results():
    batches = regression_batches()
    metric = MAE(prefix="val")
    evaluator = Evaluator(metric)
    for preds, target in batches:
        evaluator.process({"inputs": preds}, (preds, target))
    expected = float(torch.cat([(p - t).abs() for p, t in batches]).mean())
    assert evaluator.evaluate(size=sum(SIZES)) == {"val/mae": pytest.approx(expected)}
    assert metric.results == []


def test_evaluate_size_drops_padded_duplicates():
    preds, target = torch.tensor([1.0, 2.0, 3.0, 4.0]), torch.tensor([1.0, 2.5, 2.0, 4.0])
    metric = MAE()
    metric.process(None, (preds, target))
    # a sampler pads with the first samples again; make them huge so counting them would show
    metric.process(None, (torch.tensor([100.0, 100.0]), torch.tensor([0.0, 0.0])))
    assert metric.evaluate(size=4) == {"mae": pytest.approx(1.5 / 4)}
    assert metric.results == []


def test_duck_typed_metric_is_gathered_and_truncated_by_the_evaluator():
    metric = PlainMAE()
    evaluator = Evaluator([metric, MAE(prefix="base")])
    evaluator.process(None, (torch.tensor([1.0, 3.0, 50.0]), torch.tensor([0.0, 0.0, 0.0])))
    assert evaluator.evaluate(size=2) == {"plain_mae": 2.0, "base/mae": 2.0}
    assert metric.results == []


def test_collect_results_interleaves_ranks_in_sampler_order():
    # single process: one rank, so order is kept and the tail is cut
    assert collect_results([0, 1, 2, 3], size=3) == [0, 1, 2]
    assert collect_results([0, 1], size=None) == [0, 1]


def test_dataset_meta_reaches_mmengine_metrics():
    metric = MAE()
    evaluator = Evaluator([metric, MeanSquaredError()])
    evaluator.dataset_meta = {"classes": ("a", "b")}
    assert metric.dataset_meta == {"classes": ("a", "b")}


# -- no metric: weighted average -------------------------------------------------------------------


def test_no_metric_average_is_weighted_by_batch_size():
    evaluator = Evaluator(None)
    losses = [0.5, 2.0, 1.0]
    for n, loss in zip(SIZES, losses, strict=True):
        batch = {"x": torch.zeros(n, 3), "y": torch.zeros(n)}
        evaluator.process(batch, {"loss": torch.tensor(loss), "acc": n / 10})
    metrics = evaluator.evaluate()
    assert metrics["loss"] == pytest.approx((5 * 0.5 + 3 * 2.0 + 7 * 1.0) / 15)  # not 3.5 / 3
    assert metrics["acc"] == pytest.approx((5 * 0.5 + 3 * 0.3 + 7 * 0.7) / 15)
    assert all(isinstance(v, float) for v in metrics.values())


def test_reset_between_runs():
    evaluator = Evaluator(MulticlassAccuracy(num_classes=2, average="micro"))
    evaluator.process(None, (torch.tensor([0, 0]), torch.tensor([0, 0])))
    assert evaluator.evaluate() == {"MulticlassAccuracy": 1.0}
    evaluator.process(None, (torch.tensor([0, 0]), torch.tensor([1, 0])))
    assert evaluator.evaluate() == {"MulticlassAccuracy": 0.5}  # evaluate() reset the first run
    average = Evaluator()
    average.process(torch.zeros(4, 1), {"loss": 9.0})
    average.reset()
    average.process(torch.zeros(2, 1), {"loss": 1.0})
    assert average.evaluate() == {"loss": 1.0}
    assert average.evaluate() == {}


@dataclasses.dataclass
class Sample:
    meta: str
    image: torch.Tensor


@pytest.mark.parametrize(("batch", "expected"), [
    ({"meta": [{"id": 1}], "x": (torch.tensor(1.0), [torch.zeros(6, 2)])}, 6),
    ((torch.zeros(3), torch.zeros(9)), 3),
    (Sample("a", torch.zeros(5, 5)), 5),
    ({"names": ["a", "b"]}, 1),
    (None, 1),
])
def test_batch_size_is_dim0_of_the_first_tensor(batch, expected):
    assert batch_size_of(batch) == expected


def test_describe_shows_structure():
    assert describe((torch.zeros(32), torch.zeros(32, dtype=torch.int64))) == (
        "(Tensor[32] float32, Tensor[32] int64)")
    assert describe({"preds": torch.zeros(2, 3), "n": 1.0}) == (
        "{preds: Tensor[2, 3] float32, n: float}")
    assert describe([None]) == "[None]"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_metrics_and_average_on_cuda():
    evaluator = Evaluator(MulticlassAccuracy(num_classes=2, average="micro")).to("cuda")
    preds, target = torch.tensor([0, 1], device="cuda"), torch.tensor([0, 0], device="cuda")
    evaluator.process(None, (preds, target))
    assert evaluator.evaluate() == {"MulticlassAccuracy": 0.5}
    average = Evaluator().to("cuda")
    average.process(torch.zeros(3, 1), {"loss": torch.tensor(2.0, device="cuda")})
    average.process(torch.zeros(1, 1), {"loss": 6.0})
    assert average.evaluate() == {"loss": pytest.approx(3.0)}


# -- bad input -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("metrics", "error", "match"), [
    ("accuracy", TypeError, "val_evaluator must be None, a torchmetrics Metric .* got str"),
    (MulticlassAccuracy, TypeError, "got the class MulticlassAccuracy, not an instance"),
    ({"acc": MAE()}, TypeError, r"val_evaluator\['acc'\] must be a torchmetrics Metric, got MAE"),
    ({1: MeanSquaredError()}, TypeError, "dict keys must be non-empty strings, got 1"),
    ([MeanSquaredError(), MeanSquaredError()], ValueError,
     "two metrics named 'MeanSquaredError'"),
    ({"type": "NoSuchMetric"}, ValueError, "unknown val_evaluator metric type 'NoSuchMetric'"),
])
def test_bad_metrics_are_refused(metrics, error, match):
    with pytest.raises(error, match=match):
        Evaluator.build(metrics, name="val_evaluator")


def test_duck_metric_without_results_or_evaluate_is_refused():
    class NoResults:
        def process(self, data_batch, data_samples):
            pass

        def compute_metrics(self, results):
            return {}

    with pytest.raises(TypeError, match="neither evaluate\\(size\\) nor a results list"):
        Evaluator(NoResults())


def test_update_rejection_names_metric_and_outputs():
    evaluator = Evaluator(MulticlassAccuracy(num_classes=3))
    outputs = (torch.zeros(4, dtype=torch.int64), torch.zeros(3, dtype=torch.int64))
    expected = re.escape("MulticlassAccuracy.update(*outputs) failed for outputs "
                         "(Tensor[4] int64, Tensor[3] int64): ")
    with pytest.raises(ValueError, match=expected):
        evaluator.process(None, outputs)
    expected = re.escape("MulticlassAccuracy.update(**outputs) failed for outputs "
                         "{prediction: Tensor[2] int64}: ")
    with pytest.raises(TypeError, match=expected + ".*unexpected keyword argument 'prediction'"):
        evaluator.process(None, {"prediction": torch.zeros(2, dtype=torch.int64)})


def test_process_rejection_names_mmengine_metric():
    with pytest.raises(ValueError, match=re.escape(
            "MAE.process(data_batch, outputs) failed for outputs (Tensor[2] float32,)")):
        Evaluator(MAE()).process(None, (torch.zeros(2),))


@pytest.mark.parametrize(("outputs", "error", "match"), [
    ((torch.zeros(2), torch.zeros(2)), TypeError,
     r"returned \(Tensor\[2\] float32, Tensor\[2\] float32\) and val_evaluator has no metric.*"
     r"pass one as Trainer\(val_evaluator=\.\.\.\)"),
    ({"loss": torch.zeros(3)}, ValueError, r"returned 'loss': Tensor\[3\] float32, but without a"),
    ({"name": "x"}, ValueError, "returned 'name': str"),
    ({0: 1.0}, TypeError, "output keys must be strings, got 0"),
])
def test_no_metric_outputs_must_be_a_dict_of_scalars(outputs, error, match):
    evaluator = Evaluator(name="val_evaluator")
    with pytest.raises(error, match=match):
        evaluator.process(torch.zeros(2, 1), outputs)


def test_no_metric_hint_mentions_both_arguments_when_name_unknown():
    with pytest.raises(TypeError, match=r"Trainer\(val_evaluator=\.\.\.\) / Trainer\(test_eval"):
        Evaluator().process(None, [torch.zeros(1)])


def test_colliding_result_names_are_refused_at_evaluate():
    evaluator = Evaluator([MAE(), MAE()])
    evaluator.process(None, (torch.zeros(1), torch.ones(1)))
    with pytest.raises(ValueError, match="both produce the result 'mae'"):
        evaluator.evaluate()


def test_bad_sizes_and_results():
    with pytest.raises(ValueError, match="size must be a non-negative int or None, got -1"):
        Evaluator().evaluate(size=-1)
    with pytest.raises(ValueError, match=r"MAE.evaluate\(\) found no results"):
        MAE().evaluate(size=3)

    class ListMetric(MAE):
        def compute_metrics(self, results):
            return [1.0]

    metric = ListMetric()
    metric.process(None, (torch.zeros(1), torch.ones(1)))
    with pytest.raises(TypeError, match=r"ListMetric.compute_metrics\(\) must return a dict"):
        metric.evaluate()

    class TextMetric(MAE):
        def compute_metrics(self, results):
            return {"summary": "fine"}

    evaluator = Evaluator(TextMetric())
    evaluator.process(None, (torch.zeros(1), torch.ones(1)))
    with pytest.raises(TypeError, match="TextMetric result 'summary' is a str"):
        evaluator.evaluate()


def test_base_metric_arguments_are_checked():
    with pytest.raises(ValueError, match="collect_device must be 'cpu' or 'gpu', got 'tpu'"):
        MAE(collect_device="tpu")
    with pytest.raises(TypeError, match="prefix must be a string or None, got int"):
        MAE(prefix=3)


# -- two processes ---------------------------------------------------------------------------------


def _distributed_worker(rank: int, world_size: int, init_file: str, out_dir: str) -> None:
    torch_dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank,
                                  world_size=world_size)
    try:
        # 5 samples, DistributedSampler(shuffle=False) pads to 6: rank 0 [0, 2, 4], rank 1 [1, 3, 0]
        values = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0])
        indices = [0, 1, 2, 3, 4, 0]
        mine = torch.tensor(indices[rank::world_size])
        mae, average = Evaluator(MAE()), Evaluator()
        for idx in mine.split(2):  # batches of 2 then 1
            mae.process(None, (values[idx], torch.zeros(len(idx))))
            average.process(values[idx], {"v": values[idx].mean(), "rank": float(rank)})
        result = {**mae.evaluate(size=5), **average.evaluate()}
        torch.save(result, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        torch_dist.destroy_process_group()


@pytest.mark.slow
def test_two_ranks_gather_in_sampler_order_and_sum_the_average(tmp_path):
    mp.spawn(_distributed_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2)
    for rank in range(2):
        result = torch.load(tmp_path / f"rank{rank}.pt")
        assert result["mae"] == pytest.approx(3.0)  # padding (sample 0 again) dropped
        assert result["v"] == pytest.approx((15.0 + 1.0) / 6)  # the average counts the padding
        assert result["rank"] == pytest.approx(0.5)

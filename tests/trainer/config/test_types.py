"""Objects named by configs: type resolution, argument checks, data sets, samplers, loaders."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import ConcatDataset, DataLoader, RandomSampler, SequentialSampler

from tests.conftest import ToyNet, toy_dataset
from trainer.config.data import (
    DefaultSampler,
    RepeatDataset,
    build_dataloader,
    build_dataset,
    pseudo_collate,
)
from trainer.config.types import build_object, import_custom_modules, resolve_type

DATA = {"type": "tests.conftest.toy_dataset", "n": 20}


def test_types_resolve_by_object_table_path_and_custom_module():
    assert resolve_type(ToyNet, {}, "model") is ToyNet
    assert resolve_type("Net", {"Net": ToyNet}, "model") is ToyNet
    assert resolve_type("torch.optim.lr_scheduler.StepLR", {}, "x") is \
        torch.optim.lr_scheduler.StepLR
    assert resolve_type("torch.nn.Module.train", {}, "x") is torch.nn.Module.train
    modules = import_custom_modules(dict(imports="tests.conftest"))
    assert resolve_type("toy_dataset", {}, "dataset", modules) is toy_dataset


@pytest.mark.parametrize(("type_", "error", "message"), [
    ("Convnet", ValueError, r"unknown model type 'Convnet'. Did you mean 'ConvNet'"),
    ("no_such_pkg.models.Net", ValueError, "no module 'no_such_pkg' can be imported"),
    ("torch.nn.Linearr", ValueError, r"torch.nn has no 'Linearr'; closest: 'Linear'"),
    (3, TypeError, "model type must be a class, a function or a name, got 3"),
])
def test_unknown_types_name_the_closest_known_ones(type_, error, message):
    with pytest.raises(error, match=message):
        resolve_type(type_, {"ConvNet": ToyNet, "MLP": ToyNet}, "model")


def test_build_object_checks_arguments():
    net = build_object({"type": "tests.conftest.ToyNet", "dropout": 0.2}, {}, "model")
    assert net.body[2].p == 0.2
    with pytest.raises(TypeError, match=r"model: ToyNet does not take 'dropuot'. Did you mean "
                                        r"'dropout'\? It takes \['dropout', 'lr'\]"):
        build_object({"type": ToyNet, "dropuot": 0.2}, {}, "model")
    with pytest.raises(ValueError, match=r"model \{'dropout': 0\.2\} has no 'type' key"):
        build_object({"dropout": 0.2}, {}, "model")


def test_import_custom_modules_may_allow_failures():
    with pytest.warns(UserWarning, match="'no_such_mod' failed to import and is skipped"):
        modules = import_custom_modules(dict(imports=["no_such_mod", "tests.conftest"],
                                             allow_failed_imports=True))
    assert [m.__name__ for m in modules] == ["tests.conftest"]
    with pytest.raises(TypeError, match="custom_imports must be dict"):
        import_custom_modules(["tests.conftest"])


def test_dataset_wrappers():
    concat = build_dataset({"type": "ConcatDataset", "datasets": [DATA, dict(DATA, n=10)]},
                           "dataset")
    assert isinstance(concat, ConcatDataset) and len(concat) == 30
    repeat = build_dataset({"type": "RepeatDataset", "times": 3, "dataset": DATA}, "dataset")
    assert isinstance(repeat, RepeatDataset) and len(repeat) == 60
    assert torch.equal(repeat[45][0], repeat.dataset[5][0])
    with pytest.raises(ValueError, match="RepeatDataset times must be a positive int"):
        RepeatDataset([1], times=0)
    with pytest.raises(TypeError, match=r"dataset: 'builtins.abs' returned a function|"
                                        "abs does not take"):
        build_dataset({"type": "builtins.abs", "x": 1}, "dataset")
    with pytest.raises(TypeError, match="dataset must be a data set or dict"):
        build_dataset(3, "dataset")


def order(loader, epoch=0):
    for holder in (loader.sampler, loader.batch_sampler):
        if hasattr(holder, "set_epoch"):
            holder.set_epoch(epoch)
    return torch.cat([y for _, y in loader]).tolist(), torch.cat([x[:, 0] for x, _ in loader])


def test_dataloader_from_an_mmengine_dict():
    loader = build_dataloader({"dataset": DATA, "batch_size": 4, "num_workers": 0,
                               "persistent_workers": True, "drop_last": True,
                               "sampler": {"type": "DefaultSampler", "shuffle": True},
                               "collate_fn": {"type": "default_collate"}}, "train_dataloader")
    assert isinstance(loader, DataLoader) and isinstance(loader.sampler, RandomSampler)
    assert loader.batch_size == 4 and len(loader) == 5 and loader.drop_last
    sequential = build_dataloader({"dataset": DATA, "batch_size": 4,
                                   "sampler": {"type": "DefaultSampler", "shuffle": False}},
                                  "val_dataloader")
    assert isinstance(sequential.sampler, SequentialSampler)
    plain = build_dataloader({"dataset": DATA}, "train_dataloader", shuffle_default=True)
    assert isinstance(plain.sampler, RandomSampler)
    assert isinstance(build_dataloader({"dataset": DATA, "shuffle": False}, "x").sampler,
                      SequentialSampler)
    existing = DataLoader(toy_dataset(8))
    assert build_dataloader(existing, "train_dataloader") is existing


def test_a_seeded_default_sampler_orders_by_seed_and_epoch():
    cfg = {"dataset": DATA, "batch_size": 5,
           "sampler": {"type": "DefaultSampler", "shuffle": True, "seed": 3}}
    first, second = build_dataloader(cfg, "x"), build_dataloader(cfg, "x")
    assert isinstance(first.sampler, DefaultSampler)
    torch.manual_seed(0)
    a0 = order(first, 0)[1]
    torch.manual_seed(123)  # the global RNG does not matter
    assert torch.equal(order(second, 0)[1], a0)
    assert not torch.equal(order(first, 1)[1], a0)
    assert sorted(order(first, 1)[1].tolist()) == sorted(a0.tolist())


def test_collate_functions_and_batch_samplers():
    dicts = [{"x": torch.tensor([i]), "name": f"s{i}"} for i in range(6)]
    loader = build_dataloader({"dataset": dicts, "batch_size": 3,
                               "collate_fn": {"type": "pseudo_collate"}}, "x")
    batch = next(iter(loader))
    assert batch["name"] == ["s0", "s1", "s2"] and len(batch["x"]) == 3
    assert pseudo_collate([(1, "a"), (2, "b")]) == [[1, 2], ["a", "b"]]
    with pytest.raises(ValueError, match="same length"):
        pseudo_collate([(1, 2), (1,)])
    batched = build_dataloader({"dataset": DATA, "batch_size": 6, "drop_last": True,
                                "batch_sampler": {"type": "torch.utils.data.BatchSampler",
                                                  "drop_last": False}}, "x")
    assert [len(b[1]) for b in batched] == [6, 6, 6, 2]


@pytest.mark.parametrize(("cfg", "error", "message"), [
    ({"batch_size": 4}, ValueError, "train_dataloader has no 'dataset'"),
    ({"dataset": DATA, "shuffle": True, "sampler": {"type": "DefaultSampler"}}, ValueError,
     "give shuffle inside sampler"),
    ({"dataset": DATA, "batch_sise": 4}, TypeError,
     "does not take 'batch_sise'. Did you mean 'batch_size'"),
    ({"dataset": DATA, "sampler": {"type": "DefaultSampler", "shufle": True}}, TypeError,
     r"DefaultSampler does not take \['shufle'\]"),
    ({"dataset": DATA, "sampler": {"type": "DefaultSampler", "shuffle": "yes"}}, TypeError,
     "shuffle must be True or False"),
    ({"dataset": DATA, "sampler": {"type": "RandomSampler"}}, ValueError,
     "unknown train_dataloader.sampler type 'RandomSampler'"),
    ("data", TypeError, "must be a dict"),
])
def test_dataloader_mistakes(cfg, error, message):
    with pytest.raises(error, match=message):
        build_dataloader(cfg, "train_dataloader")


def test_sampler_classes_by_path():
    loader = build_dataloader({"dataset": DATA, "batch_size": 20, "sampler": {
        "type": "torch.utils.data.RandomSampler", "replacement": True, "num_samples": 40}}, "x")
    assert len(loader) == 2

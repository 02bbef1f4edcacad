"""Config files: Python, JSON, YAML, `_base_`, substitutions, overrides, references, dump."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import fsspec
import pytest
from torch import nn

from tests.conftest import ToyNet
from trainer.config.load import (
    apply_overrides,
    dump_config,
    format_config,
    load_config,
    merge_config,
    parse_cfg_options,
    parse_value,
    resolve_references,
)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# ----------------------------------------------------------------------------- Python files
def test_python_config_keeps_top_level_fields_and_drops_helpers(tmp_path):
    path = write(tmp_path / "cfg.py", (
        "import math\n"
        "from collections import OrderedDict\n"
        "def helper(x):\n    return 2 * x\n"
        "class Local:\n    pass\n"
        "__secret__ = 1\n"
        "lr = helper(0.05)\n"
        "steps = [int(math.sqrt(16)), 8]\n"
        "model = dict(type='tests.conftest.ToyNet', dropout=0.1)\n"
        "shape = (1, 2)\n"
        "_private = 'kept, as in MMEngine'\n"))
    assert load_config(path) == {"lr": 0.1, "steps": [4, 8],
                                 "model": {"type": "tests.conftest.ToyNet", "dropout": 0.1},
                                 "shape": (1, 2), "_private": "kept, as in MMEngine"}


def test_loading_runs_only_the_file_and_imports_nothing_it_names(tmp_path):
    assert "json.tool" not in sys.modules
    path = write(tmp_path / "cfg.py", "model = dict(type='json.tool.main')\n"
                                      "other = dict(type='no_such_package.Net')\n")
    assert load_config(path)["model"] == {"type": "json.tool.main"}
    assert "json.tool" not in sys.modules


def test_python_config_errors_point_at_the_file(tmp_path):
    path = write(tmp_path / "bad.py", "a = 1\nb = dict(\n")
    with pytest.raises(SyntaxError) as err:
        load_config(path)
    assert err.value.filename == str(path)
    with pytest.raises(FileNotFoundError, match=r"missing\.py does not exist"):
        load_config(tmp_path / "missing.py")
    with pytest.raises(ValueError, match=r"unknown file type '\.toml'"):
        load_config(write(tmp_path / "cfg.toml", "a = 1\n"))
    with pytest.raises(TypeError, match="a config must be a file path or a dict, got int"):
        load_config(3)


def test_predefined_variables_are_substituted(tmp_path):
    path = write(tmp_path / "sub" / "exp_one.py", (
        "work_dir = './work_dirs/{{ fileBasenameNoExtension }}'\n"
        "here = '{{fileDirname}}'\n"
        "name = '{{ fileBasename }}'\n"
        "ext = '{{fileExtname}}'\n"))
    assert load_config(path) == {"work_dir": "./work_dirs/exp_one",
                                 "here": str(tmp_path / "sub"), "name": "exp_one.py",
                                 "ext": ".py"}


def test_environment_variables_with_defaults(tmp_path, monkeypatch):
    path = write(tmp_path / "cfg.py", "root = '{{$DATA_ROOT:/data}}'\nn = {{ $N_GPUS:1 }}\n")
    monkeypatch.delenv("DATA_ROOT", raising=False)
    monkeypatch.delenv("N_GPUS", raising=False)
    assert load_config(path) == {"root": "/data", "n": 1}
    monkeypatch.setenv("DATA_ROOT", "/mnt/x")
    monkeypatch.setenv("N_GPUS", "8")
    assert load_config(path) == {"root": "/mnt/x", "n": 8}
    strict = write(tmp_path / "strict.py", "root = '{{$MY_UNSET_ROOT}}'\n")
    monkeypatch.delenv("MY_UNSET_ROOT", raising=False)
    with pytest.raises(ValueError, match="environment variable MY_UNSET_ROOT is not set"):
        load_config(strict)


# ----------------------------------------------------------------------------- inheritance
@pytest.fixture
def bases(tmp_path) -> Path:
    write(tmp_path / "_base_" / "model.py",
          "model = dict(type='Net', backbone=dict(depth=50, frozen=1), head=dict(n=10))\n")
    write(tmp_path / "_base_" / "schedule.py",
          "optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9))\n"
          "train_cfg = dict(by_epoch=True, max_epochs=12)\n"
          "milestones = [8, 11]\n")
    return tmp_path


def test_base_files_merge_recursively(bases):
    path = write(bases / "configs" / "exp.py", (
        "_base_ = ['../_base_/model.py', '../_base_/schedule.py']\n"
        "model = dict(backbone=dict(depth=101))\n"
        "optim_wrapper = dict(optimizer=dict(lr=0.02))\n"
        "milestones = [16, 22]\n"))
    cfg = load_config(path)
    assert cfg["model"] == {"type": "Net", "backbone": {"depth": 101, "frozen": 1},
                            "head": {"n": 10}}
    assert cfg["optim_wrapper"] == {"optimizer": {"type": "SGD", "lr": 0.02, "momentum": 0.9}}
    assert cfg["milestones"] == [16, 22]  # a list is replaced, never merged
    assert cfg["train_cfg"] == {"by_epoch": True, "max_epochs": 12}


def test_delete_replaces_the_base_dict(bases):
    path = write(bases / "exp.py", (
        "_base_ = '_base_/schedule.py'\n"
        "optim_wrapper = dict(optimizer=dict(_delete_=True, type='AdamW', lr=1e-3))\n"))
    assert load_config(path)["optim_wrapper"] == {"optimizer": {"type": "AdamW", "lr": 1e-3}}


def test_child_reads_base_values(bases):
    path = write(bases / "exp.py", (
        "_base_ = ['_base_/model.py', '_base_/schedule.py']\n"
        "depth = _base_.model.backbone.depth\n"
        "first = {{_base_.milestones.0}}\n"
        "head = {{ _base_.model.head }}\n"
        "head['n'] = 5\n"
        "model = _base_.model\n"
        "model.backbone.depth = 18\n"))
    cfg = load_config(path)
    assert cfg["depth"] == 50 and cfg["first"] == 8 and cfg["head"] == {"n": 5}
    assert cfg["model"]["backbone"] == {"depth": 18, "frozen": 1}
    assert type(cfg["model"]) is dict and type(cfg["model"]["backbone"]) is dict
    with pytest.raises(ValueError, match=r"has no 'milestone'; did you mean milestones"):
        load_config(write(bases / "bad.py", "_base_ = '_base_/schedule.py'\n"
                                            "x = {{_base_.milestone}}\n"))
    with pytest.raises(AttributeError, match="the base config has no key 'modle'"):
        load_config(write(bases / "bad2.py", "_base_ = '_base_/model.py'\nx = _base_.modle\n"))


def test_inheritance_mistakes_are_explained(bases):
    dup = write(bases / "dup.py", "_base_ = ['_base_/model.py', 'other.py']\n")
    write(bases / "other.py", "model = dict(type='Other')\n")
    with pytest.raises(ValueError, match=r"both set \['model'\]; a key may come from one base"):
        load_config(dup)
    write(bases / "a.py", "_base_ = 'b.py'\n")
    write(bases / "b.py", "_base_ = 'a.py'\n")
    with pytest.raises(ValueError, match="inherits from itself through _base_"):
        load_config(bases / "a.py")
    clash = write(bases / "clash.py", "_base_ = '_base_/schedule.py'\n"
                                      "milestones = dict(a=1)\n")
    with pytest.raises(TypeError, match="milestones is a dict here but a list"):
        load_config(clash)
    with pytest.raises(ValueError, match="_base_ must be a path or a list of paths written out"):
        load_config(write(bases / "dyn.py", "_base_ = ['x' + '.py']\n"))
    with pytest.raises(FileNotFoundError, match=r"nope\.py does not exist"):
        load_config(write(bases / "nobase.py", "_base_ = 'nope.py'\n"))
    with pytest.raises(ValueError, match="package::path"):
        load_config(write(bases / "pkg.py", "_base_ = 'mmdet::_base_/x.py'\n"))


def test_json_and_dict_configs_inherit_too(bases, monkeypatch):
    path = write(bases / "exp.json", json.dumps({
        "_base_": ["_base_/schedule.py"], "optim_wrapper": {"optimizer": {"lr": 0.5}},
        "first": "{{_base_.milestones.1}}", "name": "{{ fileBasenameNoExtension }}"}))
    cfg = load_config(path)
    assert cfg["optim_wrapper"]["optimizer"] == {"type": "SGD", "lr": 0.5, "momentum": 0.9}
    assert cfg["first"] == 11 and cfg["name"] == "exp"
    monkeypatch.chdir(bases)
    cfg = load_config({"_base_": "_base_/model.py", "model": {"head": {"n": 3}}})
    assert cfg["model"]["head"] == {"n": 3} and cfg["model"]["type"] == "Net"
    with pytest.raises(ValueError, match="is not valid JSON"):
        load_config(write(bases / "bad.json", "{'a': 1}"))
    with pytest.raises(ValueError, match="must hold a mapping of fields"):
        load_config(write(bases / "list.json", "[1, 2]"))


def test_yaml_configs(tmp_path, monkeypatch):
    path = write(tmp_path / "cfg.yaml", "train_cfg:\n  max_epochs: 3\nlr: 0.1\n")
    monkeypatch.setitem(sys.modules, "yaml", None)  # as if PyYAML were not installed
    with pytest.raises(ImportError, match="is YAML, which needs PyYAML: pip install pyyaml"):
        load_config(path)
    monkeypatch.delitem(sys.modules, "yaml")
    pytest.importorskip("yaml")
    assert load_config(path) == {"train_cfg": {"max_epochs": 3}, "lr": 0.1}


def test_a_dict_config_is_not_modified_and_objects_stay_shared():
    net = ToyNet()
    source = {"model": net, "train_cfg": {"max_epochs": 1}}
    cfg = load_config(source, {"train_cfg.max_epochs": 5})
    assert cfg["model"] is net
    assert source["train_cfg"] == {"max_epochs": 1}
    assert merge_config({"a": {"b": 1}}, {"a": {"c": 2}}) == {"a": {"b": 1, "c": 2}}


# ----------------------------------------------------------------------------- overrides
def test_dotted_overrides_walk_dicts_and_lists():
    cfg = {"optim_wrapper": {"optimizer": {"type": "SGD", "lr": 0.1}},
           "param_scheduler": [{"type": "LinearLR", "end": 10}, {"type": "MultiStepLR"}],
           "train_cfg": {"max_iters": 10}}
    out = apply_overrides(cfg, {"optim_wrapper.optimizer.lr": 0.01,
                                "train_cfg.max_iters": 100,
                                "param_scheduler.0.end": 50,
                                "default_hooks.checkpoint.interval": 5,
                                "optim_wrapper.clip_grad": {"max_norm": 1.0},
                                "param_scheduler.1": {"milestones": [3]}})
    assert out["optim_wrapper"] == {"optimizer": {"type": "SGD", "lr": 0.01},
                                    "clip_grad": {"max_norm": 1.0}}
    assert out["param_scheduler"] == [{"type": "LinearLR", "end": 50},
                                      {"type": "MultiStepLR", "milestones": [3]}]
    assert out["default_hooks"] == {"checkpoint": {"interval": 5}}
    assert cfg["train_cfg"] == {"max_iters": 10}  # the input is left alone
    replaced = apply_overrides(cfg, {"optim_wrapper.optimizer": {"_delete_": True,
                                                                 "type": "Adam"}})
    assert load_config(replaced)["optim_wrapper"]["optimizer"] == {"type": "Adam"}


@pytest.mark.parametrize(("options", "message"), [
    ({"param_scheduler.2.end": 1}, r"index 2 is past the end of a list of 2"),
    ({"param_scheduler.first.end": 1}, r"'first' indexes a list"),
    ({"train_cfg.max_iters.x": 1}, r"train_cfg.max_iters is 10 \(a int\), not a dict"),
    ({"a..b": 1}, "must be a dotted path"),
])
def test_bad_overrides_are_explained(options, message):
    cfg = {"param_scheduler": [{}, {}], "train_cfg": {"max_iters": 10}}
    with pytest.raises(ValueError, match=message):
        apply_overrides(cfg, options)
    with pytest.raises(TypeError, match="cfg_options must be a dict"):
        apply_overrides(cfg, ["a=1"])


@pytest.mark.parametrize(("text", "value"), [
    ("0.01", 0.01), ("100", 100), ("1e-4", 1e-4), ("-3", -3), ("True", True), ("false", False),
    ("None", None), ("none", None), ("[6, 8]", [6, 8]), ("[6,8]", [6, 8]), ("(1, 2)", (1, 2)),
    ("6,8", [6, 8]), ("a,b", ["a", "b"]), ("[a, b]", ["a", "b"]), ("SGD", "SGD"),
    ("'quoted, with a comma'", "quoted, with a comma"), ("work_dirs/exp 1", "work_dirs/exp 1"),
    ("{'a': 1}", {"a": 1}), ("dict(type='Adam', lr=1e-3, betas=(0.9, 0.99))",
                             {"type": "Adam", "lr": 1e-3, "betas": (0.9, 0.99)}),
    ("[dict(type='A'), dict(type='B', x=[1, 2])]", [{"type": "A"}, {"type": "B", "x": [1, 2]}]),
    ("print(1)", "print(1)"),
])
def test_command_line_values(text, value):
    assert parse_value(text) == value
    assert type(parse_value(text)) is type(value)


def test_cfg_options_pairs():
    assert parse_cfg_options(["a.b=1", "c=[6,8]", "d=x=y"]) == {"a.b": 1, "c": [6, 8],
                                                               "d": "x=y"}
    with pytest.raises(ValueError, match=r"takes KEY=VALUE pairs.*got 'lr'"):
        parse_cfg_options(["lr"])


# ----------------------------------------------------------------------------- references
def test_references_resolve_after_overrides(tmp_path):
    path = write(tmp_path / "cfg.py", (
        "data_root = '/data/coco'\n"
        "batch = 8\n"
        "train_dataloader = dict(batch_size='${batch}', dataset=dict(root='${data_root}/train'))\n"
        "val_dataloader = dict(batch_size='${train_dataloader.batch_size}')\n"
        "first = '${milestones.0}'\n"
        "milestones = [8, 11]\n"
        "literal = 'costs $${price}'\n"))
    cfg = load_config(path, {"data_root": "/mnt/coco", "batch": 16})
    assert cfg["train_dataloader"] == {"batch_size": 16, "dataset": {"root": "/mnt/coco/train"}}
    assert cfg["val_dataloader"]["batch_size"] == 16
    assert cfg["first"] == 8
    assert cfg["literal"] == "costs ${price}"


def test_bad_references_are_explained():
    with pytest.raises(ValueError, match=r"optim.lr: \$\{lrr\} refers to 'lrr', but the "
                                         r"top level has no 'lrr'; did you mean lr\?"):
        resolve_references({"lr": 0.1, "optim": {"lr": "${lrr}"}})
    with pytest.raises(ValueError, match=r"refers to 'optim.momentum', but optim has no "
                                         r"'momentum'; keys there: \['lr'\]"):
        resolve_references({"optim": {"lr": 0.1}, "m": "${optim.momentum}"})
    with pytest.raises(ValueError, match=r"cycle: \$\{a\} -> \$\{b\} -> \$\{a\}"):
        resolve_references({"a": "${b}", "b": "${a}"})
    with pytest.raises(ValueError, match="cycle"):
        resolve_references({"x": {"y": "${x}"}})


# ----------------------------------------------------------------------------- dump
def test_dump_round_trips_a_resolved_config(tmp_path):
    cfg = {
        "model": {"type": ToyNet, "dropout": 0.1},
        "train_cfg": {"by_epoch": False, "max_iters": 100, "dynamic_intervals": [(10, 2)]},
        "optim_wrapper": {"optimizer": {"type": "SGD", "lr": 0.01, "betas": (0.9,)}},
        "param_scheduler": [{"type": "LinearLR", "start_factor": 1e-3, "end": 500},
                            {"type": "CosineAnnealingLR", "eta_min": 0.0, "T_max": 1000}],
        "limits": {"low": -math.inf, "high": math.inf},
        "mapping": {1: "one", "two-words": 2},
        "collate": nn.functional.relu,
        "empty": {}, "nothing": [], "unit": (),
        "text": "quote ' and \" and \\ backslash",
    }
    path = tmp_path / "dumped.py"
    dump_config(cfg, str(path))
    text = path.read_text()
    assert "type='tests.conftest.ToyNet'" in text
    assert max(len(line) for line in text.splitlines()) <= 100
    loaded = load_config(path)
    assert loaded["model"] == {"type": "tests.conftest.ToyNet", "dropout": 0.1}
    assert loaded["collate"] == "torch.nn.functional.relu"
    expected = {k: v for k, v in cfg.items() if k not in ("model", "collate")}
    assert {k: v for k, v in loaded.items() if k not in ("model", "collate")} == expected


def test_dump_writes_through_fsspec_and_notes_unrepresentable_values():
    url = "memory://runs/exp/20240101/config.py"
    dump_config({"model": ToyNet(), "lr": 0.1}, url, header="Resolved config of the run")
    with fsspec.open(url, "r") as f:
        text = f.read()
    assert text.startswith("# Resolved config of the run\n")
    assert "# NOTE: model holds a ToyNet object, which a config file cannot hold" in text
    assert "lr = 0.1" in text
    local = type("Local", (), {})
    assert "holds a type object" in format_config({"x": {"type": local}})

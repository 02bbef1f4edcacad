"""The package as a newcomer's project sees it: every module imports on its own, in any order, and
a project's own ``callbacks.py`` or ``trainer_utils.py`` shadows nothing."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import pytest
import trainer.callbacks

import trainer


def _modules(package) -> set[str]:
    return {package.__name__} | {m.name for m in pkgutil.walk_packages(
        package.__path__, package.__name__ + ".")}


# trainer.callbacks comes from the repository's callbacks/ folder, so it is walked on its own.
MODULES = sorted((_modules(trainer) | _modules(trainer.callbacks)) - {"trainer.__main__"})


def test_the_package_has_its_subpackages():
    assert {"trainer.callbacks", "trainer.config", "trainer.checkpoint", "trainer.dist",
            "trainer.data", "trainer.optim", "trainer.schedulers"} <= set(MODULES)


def test_every_module_imports_first_in_a_fresh_interpreter():
    # One interpreter per module would cost a minute; a fresh one that imports each module after
    # clearing every trainer module from sys.modules checks the same thing: no module relies on
    # another having been imported before it.
    script = (
        "import sys, importlib\n"
        f"for name in {MODULES!r}:\n"
        "    for loaded in [m for m in sys.modules if m == 'trainer' or m.startswith('trainer.')]:\n"
        "        del sys.modules[loaded]\n"
        "    importlib.import_module(name)\n"
        "print('ok', len(" + repr(MODULES) + "))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["ok", str(len(MODULES))]


@pytest.mark.parametrize("first", ["trainer.callbacks", "trainer.checkpoint", "trainer.config.runner"])
def test_import_order_does_not_matter(first):
    done = subprocess.run([sys.executable, "-c", f"import {first}; import trainer; trainer.Trainer"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_a_project_with_its_own_callbacks_module_imports_trainer(tmp_path):
    (tmp_path / "callbacks.py").write_text("raise RuntimeError('the project module was imported')\n")
    (tmp_path / "trainer_utils.py").write_text("raise RuntimeError('trainer_utils was imported')\n")
    script = ("import trainer\n"
              "from trainer.callbacks import Callback, EMACallback\n"
              "print(Callback.__module__, EMACallback.__module__)\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["trainer.callbacks.base", "trainer.callbacks.ema"]


def test_no_top_level_callbacks_module_is_installed(tmp_path):
    done = subprocess.run([sys.executable, "-c", "import callbacks"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert "No module named 'callbacks'" in done.stderr

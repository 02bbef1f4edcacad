"""Run MMEngine's own scheduler and optimizer-wrapper tests against this library.

The README promises that code written against MMEngine ports by changing its imports. This
script checks that claim the way a user would: it copies four test files from an MMEngine
checkout into a temporary folder, rewrites only their ``import`` lines (``IMPORTS`` below) and
runs them with pytest, printing ``N/M MMEngine tests pass`` and every failure. Nothing of
MMEngine is kept in this repository; the failures that are deliberate differences are listed in
docs/migration.md.

Usage::

    git clone https://github.com/open-mmlab/mmengine /tmp/mmengine
    python benchmarks/mmengine_tests.py /tmp/mmengine [--min-ratio 0.95] [-k EXPR]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

TEST_FILES = (
    "tests/test_optim/test_scheduler/test_lr_scheduler.py",
    "tests/test_optim/test_scheduler/test_momentum_scheduler.py",
    "tests/test_optim/test_scheduler/test_param_scheduler.py",
    "tests/test_optim/test_optimizer/test_optimizer_wrapper_dict.py",
)

# MMEngine import -> this library's, applied to ``from X import`` lines only.
IMPORTS = {
    "mmengine.optim.scheduler": "trainer.schedulers",
    "mmengine.optim": "trainer.optim",
    "mmengine.testing": "_mmengine_testing",
    "mmengine.utils": "_mmengine_testing",
}

# Test helpers MMEngine's tests import from mmengine.testing / mmengine.utils. They are test
# tooling, not library API, so they live beside the copied tests.
HELPERS = '''\
"""Stand-ins for mmengine.testing.assert_allclose and mmengine.utils.digit_version."""
import torch
from packaging.version import Version


def assert_allclose(actual, expected, rtol=None, atol=None, equal_nan=True, msg=""):
    """torch.testing.assert_allclose (removed from torch): numbers and lists become tensors."""
    actual, expected = torch.as_tensor(actual), torch.as_tensor(expected)
    torch.testing.assert_close(actual, expected.to(actual.dtype), rtol=rtol, atol=atol,
                               equal_nan=equal_nan, msg=msg or None)


def digit_version(version):
    return Version(version.split("+")[0])
'''


def rewrite_imports(source: str) -> str:
    """``source`` with every ``from mmengine.X import`` line pointed at this library."""
    def replace(match: re.Match) -> str:
        module = match.group(2)
        for old in sorted(IMPORTS, key=len, reverse=True):
            if module == old or module.startswith(old + "."):
                return f"{match.group(1)}from {IMPORTS[old]}{module[len(old):]} import"
        raise ValueError(f"no rewrite for 'from {module} import' in IMPORTS")

    rewritten = re.sub(r"^(\s*)from (mmengine[\w.]*) import", replace, source, flags=re.M)
    if re.search(r"^\s*import mmengine", rewritten, flags=re.M):
        raise ValueError("a test uses 'import mmengine...'; add a rewrite for it")
    return rewritten


@dataclass
class Outcome:
    passed: int = 0
    total: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)


def run(checkout: Path, pytest_args: list[str]) -> Outcome:
    """Copy, rewrite and run the tests; the counts come from pytest's JUnit report."""
    missing = [f for f in TEST_FILES if not (checkout / f).is_file()]
    if missing:
        raise SystemExit(f"{checkout} is not an MMEngine checkout: missing {missing}")
    with tempfile.TemporaryDirectory(prefix="mmengine_tests_") as tmp:
        folder = Path(tmp)
        (folder / "_mmengine_testing.py").write_text(HELPERS)
        for name in TEST_FILES:
            (folder / Path(name).name).write_text(rewrite_imports((checkout / name).read_text()))
        report = folder / "report.xml"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            p for p in (str(folder), os.environ.get("PYTHONPATH", "")) if p)}
        subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o",
             "addopts=", "--rootdir", str(folder), f"--junitxml={report}",
             *[Path(n).name for n in TEST_FILES], *pytest_args],
            cwd=folder, env=env, check=False, stdout=sys.stderr)
        return parse_report(report)


def parse_report(report: Path) -> Outcome:
    outcome = Outcome()
    for case in ET.parse(report).getroot().iter("testcase"):
        if case.find("skipped") is not None:
            continue
        outcome.total += 1
        problem = case.find("failure")
        problem = problem if problem is not None else case.find("error")
        if problem is None:
            outcome.passed += 1
        else:
            name = f"{case.get('classname', '').rsplit('.', 1)[-1]}.{case.get('name')}"
            outcome.failures.append((name, (problem.get("message") or "").splitlines()[0][:200]))
    return outcome


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkout", type=Path, help="path to an MMEngine git checkout")
    parser.add_argument("--min-ratio", type=float, default=0.0,
                        help="exit with status 1 when fewer tests pass than this fraction")
    args, pytest_args = parser.parse_known_args(argv)
    outcome = run(args.checkout, pytest_args)
    for name, message in outcome.failures:
        print(f"FAILED {name}: {message}")
    print(f"{outcome.passed}/{outcome.total} MMEngine tests pass")
    return 0 if outcome.total and outcome.passed >= args.min_ratio * outcome.total else 1


if __name__ == "__main__":
    sys.exit(main())

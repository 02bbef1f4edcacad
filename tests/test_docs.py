"""The documentation runs: every notebook executes, every ```python test block in the docs passes.

A fenced block whose info string is ``python test`` in ``README.md`` or ``docs/*.md`` is
executed on its own, in a fresh namespace, inside a temporary working directory, so examples
must be self-contained and quick (use ``trainer.datasets.digits_splits()``). Plain ``python``
blocks are not run.

Every notebook in ``notebooks/`` runs top to bottom in a Jupyter kernel started from this
interpreter (``sys.executable``, not whatever ``python3`` kernel spec the machine has), with the
repository root as its working directory; the last ``accuracy: <value>`` it prints (e.g. a final
``print(f"test accuracy: {acc:.4f}")``) must be above 0.9.
"""

from __future__ import annotations

import json
import os
import re
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
DOC_FILES = [p for p in (REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))) if p.exists()]
CELL_TIMEOUT_S = 120
MIN_ACCURACY = 0.9

# An opening fence "```python test" (indented or not), the body, and the closing fence at the
# same indentation.
_FENCE = re.compile(
    r"^(?P<indent>[ \t]*)```python[ \t]+test[ \t]*\n(?P<body>.*?)^(?P=indent)```[ \t]*$",
    re.MULTILINE | re.DOTALL,
)
_ACCURACY = re.compile(r"accuracy\W{0,3}[:=]\s*([0-9]*\.?[0-9]+)", re.IGNORECASE)


def runnable_blocks(path: Path) -> list[tuple[int, str]]:
    """``(first line of the code, code)`` for every ```python test block of a Markdown file."""
    text = path.read_text(encoding="utf-8")
    blocks = []
    for match in _FENCE.finditer(text):
        first_line = text.count("\n", 0, match.start("body")) + 1
        blocks.append((first_line, textwrap.dedent(match.group("body"))))
    return blocks


DOC_BLOCKS = [
    pytest.param(path, line, code, id=f"{path.relative_to(REPO)}:{line}")
    for path in DOC_FILES
    for line, code in runnable_blocks(path)
]


def test_fence_parser_finds_blocks_and_their_lines(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "# t\n\n```python test\nx = 1\n```\n\n```python\nnot run\n```\n\n"
        "- item\n\n  ```python test\n  y = 2\n  ```\n",
        encoding="utf-8",
    )
    assert runnable_blocks(page) == [(4, "x = 1\n"), (14, "y = 2\n")]


@pytest.fixture
def one_torch_thread():
    """One intra-op thread: on a shared two-core machine two threads can run 100x slower."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize(("path", "line", "code"), DOC_BLOCKS)
@pytest.mark.usefixtures("one_torch_thread")
def test_doc_example_runs(path: Path, line: int, code: str, tmp_path: Path,
                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    # Pad with blank lines so a traceback points at the line of the Markdown file.
    source = "\n" * (line - 1) + code
    exec(compile(source, str(path), "exec"), {"__name__": "__main__"})


@pytest.fixture(scope="session")
def kernel_manager_factory(tmp_path_factory: pytest.TempPathFactory):
    """Kernels that run on this interpreter, whatever kernel specs the machine has installed."""
    pytest.importorskip("ipykernel")
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    kernels = tmp_path_factory.mktemp("kernels")
    spec_dir = kernels / "trainer-docs"
    spec_dir.mkdir()
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "trainer docs",
        "language": "python",
        "env": {"OMP_NUM_THREADS": "1"},  # as one_torch_thread, for the kernel's torch
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec), encoding="utf-8")

    def make() -> KernelManager:
        specs = KernelSpecManager(kernel_dirs=[str(kernels)], ensure_native_kernel=False)
        return KernelManager(kernel_name="trainer-docs", kernel_spec_manager=specs)

    return make


def printed_text(notebook) -> str:
    """Everything the cells printed or displayed as text."""
    parts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                parts.append(output.get("text", ""))
            elif "data" in output:
                parts.append(output["data"].get("text/plain", ""))
    return "\n".join(parts)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs_and_learns(path: Path, kernel_manager_factory, tmp_path: Path) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")

    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        km=kernel_manager_factory(),
        timeout=CELL_TIMEOUT_S,
        resources={"metadata": {"path": str(REPO)}},
    )
    # The kernel's TMPDIR is the test's, so the notebook's tempfile.mkdtemp() work_dir is cleaned.
    # execute() raises CellExecutionError, with the cell and its traceback, if any cell fails.
    client.execute(env={**os.environ, "TMPDIR": str(tmp_path)})

    accuracies = [float(v) for v in _ACCURACY.findall(printed_text(notebook))]
    assert accuracies, f"{path.name} printed no 'accuracy: <value>' line"
    assert accuracies[-1] > MIN_ACCURACY, f"{path.name} reached accuracy {accuracies[-1]}"

"""Run notebooks as papermill does (overrides after the ``parameters`` cell), under testbook."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import nbformat
from nbclient.exceptions import CellExecutionError
from testbook import testbook
from testbook.client import TestbookNotebookClient

from tests.conftest import NOTEBOOKS
from tests.notebooks.solutions import SOLUTIONS

# Lines a learner cannot act on; none may reach a notebook's outputs or a job's terminal.
NOISE = (
    "Using incubator modules",
    "Setting default log level",
    "To adjust logging level use sc.setLogLevel",
    "For SparkR, use setLogLevel",
    "Kernel is running over TCP without encryption",
    "TqdmWarning",
    "IProgress not found",
)


@contextmanager
def executed_notebook(
    name: str,
    parameters: dict[str, Any] | None = None,
    timeout: int = 600,
    *,
    fails: bool = False,
) -> Iterator[TestbookNotebookClient]:
    """Execute ``notebooks/<name>`` in a real kernel with ``parameters`` injected.

    The kernel starts in notebooks/ (as in JupyterLab) and inherits this process's
    environment, so tests steer DATA_DIR, MODEL_DIR, ... with monkeypatch.setenv.
    With ``fails=True`` a cell must fail; the notebook is yielded as executed up to it.
    Otherwise every exercise gets its reference solution (tests/notebooks/solutions.py)
    right after its cell, and every check cell must then say "Correct".
    """
    overrides = "\n".join(f"{key} = {value!r}" for key, value in (parameters or {}).items())
    with testbook(
        NOTEBOOKS / name,
        execute=False,
        timeout=timeout,
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    ) as tb:
        if overrides:
            tb.inject(overrides, after="parameters", run=False)
        if not fails:
            inject_solutions(tb, name)
        try:
            tb.execute()
        except CellExecutionError:
            if not fails:
                raise
        else:
            assert not fails, f"{name} ran to the end; a cell was expected to fail"
            assert_checks_say_correct(tb)
        yield tb


def tagged(tb: TestbookNotebookClient, tag: str) -> list[int]:
    """Indices of the cells tagged ``tag``, in order."""
    return [i for i, cell in enumerate(tb.cells) if tag in cell.metadata.get("tags", [])]


def inject_solutions(tb: TestbookNotebookClient, name: str) -> None:
    """Each reference solution right after its exercise cell (last first: indices hold)."""
    exercises = tagged(tb, "exercise")
    solutions = SOLUTIONS[name]
    assert len(exercises) == len(solutions), (name, exercises, len(solutions))
    for index, code in reversed(list(zip(exercises, solutions, strict=True))):
        tb.inject(code, after=index, run=False)


def assert_checks_say_correct(tb: TestbookNotebookClient) -> None:
    """Every check cell ran and says "Correct" (its one line, as the learner sees it)."""
    checks = tagged(tb, "check")
    assert checks, "no check cell"
    for index in checks:
        text = tb.cell_output_text(index)
        assert text.startswith("Correct"), (index, text)
        assert len(text.splitlines()) == 1, text


def outputs(tb: TestbookNotebookClient, output_type: str | None = None) -> list[dict[str, Any]]:
    """Every output of every code cell (of one type, if given)."""
    return [
        output
        for cell in tb.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if output_type is None or output.output_type == output_type
    ]


def output_text(tb: TestbookNotebookClient) -> str:
    """All that the notebook shows as text: streams, plain/HTML results, tracebacks."""
    parts: list[str] = []
    for output in outputs(tb):
        parts.append(output.get("text", ""))
        parts.extend(str(v) for k, v in output.get("data", {}).items() if k.startswith("text/"))
        parts.extend(output.get("traceback", []))
    return "\n".join(parts)


def assert_no_noise(text: str) -> None:
    found = [line for line in text.splitlines() if any(noise in line for noise in NOISE)]
    assert not found, found


def assert_quiet_notebook(executed: Path) -> None:
    """No noise and no stderr output anywhere in an executed notebook."""
    nb = nbformat.read(executed, as_version=4)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    shown = "\n".join(
        o.get("text", "") + "".join(map(str, o.get("data", {}).values())) for o in outputs
    )
    assert_no_noise(shown)
    assert not [o for o in outputs if o.get("name") == "stderr"]

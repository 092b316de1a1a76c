"""Run notebooks as papermill does (overrides after the ``parameters`` cell), under testbook."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from testbook import testbook
from testbook.client import TestbookNotebookClient

from tests.conftest import NOTEBOOKS


@contextmanager
def executed_notebook(
    name: str, parameters: dict[str, Any] | None = None, timeout: int = 600
) -> Iterator[TestbookNotebookClient]:
    """Execute ``notebooks/<name>`` in a real kernel with ``parameters`` injected.

    The kernel starts in notebooks/ (as in JupyterLab) and inherits this process's
    environment, so tests steer DATA_DIR, MODEL_DIR, ... with monkeypatch.setenv.
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
        tb.execute()
        yield tb

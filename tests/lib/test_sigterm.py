"""When the job's SIGTERM handler may raise, and what it leaves alone.

The end-to-end signal tests (tests/e2e) cannot aim a signal at one instruction; these pin
down the two places where raising would do harm: a py4j call and an import (CI once sent
the signal while pyspark was being imported, and the half-imported package then broke
the job's own clean-up with a circular-import error).
"""

from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path
from types import FrameType

import pytest

from lib import predict

ROOT = Path(__file__).resolve().parents[2]


def test_raising_is_safe_in_plain_code() -> None:
    assert predict._raising_is_unsafe(sys._getframe()) is False


def test_raising_is_unsafe_while_a_module_is_being_imported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[FrameType] = []
    monkeypatch.setattr(sys, "seen_by_sigterm_test", seen, raising=False)
    (tmp_path / "module_under_import.py").write_text(
        "import sys\nsys.seen_by_sigterm_test.append(sys._getframe())\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "module_under_import", raising=False)

    __import__("module_under_import")

    assert predict._raising_is_unsafe(seen[0]) is True


def test_raising_is_unsafe_inside_a_py4j_call() -> None:
    # the same code as a lambda, run with py4j's module globals: a frame inside py4j
    in_py4j = types.FunctionType(
        (lambda: sys._getframe()).__code__, {"__name__": "py4j.java_gateway", "sys": sys}
    )

    assert predict._raising_is_unsafe(in_py4j()) is True


def test_clean_up_and_cancel_never_import_pyspark() -> None:
    """The clean-up runs after a stop that may have interrupted pyspark's own import."""
    code = (
        "import sys\n"
        "from lib import predict\n"
        "predict._stop_spark()\n"
        "import threading\n"
        "t = threading.Thread(target=predict._cancel_spark_jobs, daemon=True)\n"
        "t.start(); t.join(1.0)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'pyspark'))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"

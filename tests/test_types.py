"""The type checker is part of the suite: the code `make lint` checks stays clean."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from lib.settings import PROJECT_ROOT


def test_mypy_finds_no_errors_in_lib_api_scripts_and_bench() -> None:
    mypy = Path(sys.executable).parent / "mypy"
    out = subprocess.run([str(mypy)], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-5000:] + out.stderr[-2000:]
    assert out.stdout.startswith("Success: no issues found")

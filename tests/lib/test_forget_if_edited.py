"""lib.forget_if_edited: a long-lived Python worker picks up an edit of lib's sources."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

from lib.settings import PROJECT_ROOT

SCRIPT = textwrap.dedent(
    """
    import os, sys, time
    import lib, lib.text
    before = lib.text
    print(lib.forget_if_edited())  # nothing saved since the import
    print(lib.text is sys.modules["lib.text"] is before)
    time.sleep(0.05)
    path = os.path.join(os.path.dirname(lib.__file__), "text.py")
    with open(path, "a") as handle:
        handle.write("\\nEDITED = True\\n")
    print(lib.forget_if_edited())  # saved after the import: forgotten
    print("lib.text" in sys.modules, "lib" in sys.modules)
    import lib.text
    print(lib.text.EDITED)
    print(lib.forget_if_edited())  # the new import is newer than the edit
    """
)


def test_a_worker_forgets_lib_when_a_source_is_saved_after_its_import(tmp_path: Path) -> None:
    shutil.copytree(PROJECT_ROOT / "lib", tmp_path / "lib")  # a copy: the checkout stays as is
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=tmp_path,
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert out.stdout.split() == ["False", "True", "True", "False", "False", "True", "False"]


def test_a_worker_keeps_at_most_a_few_models() -> None:
    from lib import scoring

    scoring._WORKER_MODELS.clear()
    built: list[str] = []

    def bytes_of(name: str):
        def data() -> bytes:
            built.append(name)
            return b"model " + name.encode()

        return data

    import lib.registry

    original = lib.registry.model_from_bytes
    lib.registry.model_from_bytes = lambda data, fmt: data.decode()  # type: ignore[assignment]
    try:
        for name in ["a", "b", "a", "c", "d", "e", "a", "b"]:
            assert scoring.worker_model(name, "catboost", bytes_of(name)) == f"model {name}"
    finally:
        lib.registry.model_from_bytes = original
        scoring._WORKER_MODELS.clear()
    # "a" stays while used; "b" is the oldest when "e" arrives, so it is built again.
    assert built == ["a", "b", "c", "d", "e", "b"]

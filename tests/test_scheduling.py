"""How `make test` shares the two cores: the tests that use the suite's JVMs run on one
pytest-xdist worker, so each JVM starts once (tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import OneWorkerForTheJvms


def test_listed_jvm_tests_are_one_unit_and_the_others_go_by_module(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    listing = tmp_path / "jvm-tests.txt"
    listing.write_text("tests/a.py::test_spark\ntests/b.py::test_connect[x]")
    monkeypatch.setattr(request.config.option, "tx", ["2*popen"])  # as `-n 2` sets it
    scheduler = OneWorkerForTheJvms(request.config, listing=listing)

    scopes = {
        nodeid: scheduler._split_scope(nodeid)
        for nodeid in [
            "tests/a.py::test_spark",
            "tests/a.py::test_plain",
            "tests/b.py::test_connect[x]",
            "tests/b.py::test_connect[y]",
            "tests/c.py::TestClass::test_method",
        ]
    }

    assert scopes == {
        "tests/a.py::test_spark": "JVM tests",
        "tests/a.py::test_plain": "tests/a.py",
        "tests/b.py::test_connect[x]": "JVM tests",
        "tests/b.py::test_connect[y]": "tests/b.py",
        "tests/c.py::TestClass::test_method": "tests/c.py",
    }
    assert not listing.exists()  # read once, then removed

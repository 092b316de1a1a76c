"""A local server is reused by the same checkout, venv and pyspark, however their paths are
spelled, and a foreign one is reported with both sides shown (issue: the same interpreter
through another path was "a server from another checkout", and only the server's side
was shown)."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

from lib.connect_server import ServerIdentity
from lib.files import same_file
from lib.settings import PROJECT_ROOT


def test_the_same_checkout_and_venv_through_symlinks_are_the_same(tmp_path: Path) -> None:
    here = ServerIdentity.current()
    checkout = tmp_path / "checkout-link"
    checkout.symlink_to(PROJECT_ROOT)
    bin_dir = tmp_path / "bin-link"
    bin_dir.symlink_to(Path(sys.executable).parent)
    spelled = replace(
        here, project_root=str(checkout) + "/", python=str(bin_dir / Path(sys.executable).name)
    )
    assert here.differences(spelled) == []


def test_python_and_python3_of_one_venv_are_one_interpreter() -> None:
    here = ServerIdentity.current()
    other_name = str(Path(sys.executable).with_name("python3"))
    assert here.differences(replace(here, python=other_name)) == []


def test_another_checkout_is_shown_with_both_sides(tmp_path: Path) -> None:
    here = ServerIdentity.current()
    (found,) = here.differences(replace(here, project_root=str(tmp_path)))
    assert found == f"checkout {here.project_root} here, {tmp_path} there"


def test_another_venv_and_pyspark_are_each_shown(tmp_path: Path) -> None:
    here = ServerIdentity.current()
    (tmp_path / "bin").mkdir()
    theirs = replace(here, python=str(tmp_path / "bin" / "python"), pyspark="3.5.0")
    assert here.differences(theirs) == [
        f"python {here.python} here, {tmp_path / 'bin' / 'python'} there",
        f"pyspark {here.pyspark} here, 3.5.0 there",
    ]


def test_a_checkout_that_no_longer_exists_is_not_the_same(tmp_path: Path) -> None:
    assert not same_file(tmp_path / "gone", tmp_path / "gone")
    here = ServerIdentity.current()
    assert here.differences(replace(here, project_root=str(tmp_path / "gone")))

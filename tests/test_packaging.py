"""The project's own files: dependency lists agree, lint is clean, notebooks are stripped."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

from lib.settings import PROJECT_ROOT

BIN = Path(sys.executable).parent


def _pyproject() -> dict:
    return tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())


def test_environment_yml_names_the_same_packages_as_pyproject() -> None:
    project = _pyproject()["project"]
    expected = set(project["dependencies"]) | set(project["optional-dependencies"]["dev"])
    env = yaml.safe_load((PROJECT_ROOT / "environment.yml").read_text())
    pip_entries = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    listed = {entry for entry in pip_entries if not entry.startswith("-e")}
    assert listed == expected
    assert "-e .[dev]" in pip_entries
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    assert "python=3.11" in conda and "openjdk=17" in conda


def test_every_dependency_has_a_bounded_range() -> None:
    project = _pyproject()["project"]
    for requirement in [*project["dependencies"], *project["optional-dependencies"]["dev"]]:
        assert re.search(r">=[\d.]+,<[\d.]+$", requirement), requirement


def test_known_incompatibilities_are_pinned_away() -> None:
    deps = _pyproject()["project"]["dependencies"]
    assert "pandas>=2.3.3,<3" in deps  # pyspark 4.3 warns on pandas 3
    assert "sqlglot>=30.17,<30.18" in deps  # ibis 12 breaks with sqlglot >= 30.18
    assert not any("ibis-framework[pyspark" in d for d in deps)  # would downgrade Spark


def test_ruff_check_is_clean() -> None:
    out = subprocess.run(
        [BIN / "ruff", "check", "."], cwd=PROJECT_ROOT, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_committed_notebooks_have_no_outputs_and_a_parameters_cell() -> None:
    notebooks = sorted((PROJECT_ROOT / "notebooks").glob("*.ipynb"))
    assert [nb.name[:2] for nb in notebooks] == [f"{i:02d}" for i in range(1, len(notebooks) + 1)]
    for path in notebooks:
        nb = json.loads(path.read_text())
        code = [c for c in nb["cells"] if c["cell_type"] == "code"]
        assert all(not c["outputs"] and c["execution_count"] is None for c in code), path.name
        tagged = [c for c in code if "parameters" in c["metadata"].get("tags", [])]
        assert len(tagged) == 1, path.name
        assert nb["metadata"]["kernelspec"]["name"] == "python3"


def test_gitignore_keeps_generated_folders_out() -> None:
    ignored = (PROJECT_ROOT / ".gitignore").read_text().split()
    for folder in ("data/", "models/", "output/", ".venv/"):
        assert folder in ignored


def test_ci_script_runs_make_test_with_postgres_enabled() -> None:
    script = (PROJECT_ROOT / ".ci" / "run").read_text()
    assert "make test" in script
    assert "TEST_DATABASE_URL" in script and "CI=true" in script


def test_papermill_sees_every_parameter_of_every_notebook() -> None:
    import ast

    import papermill as pm

    for path in sorted((PROJECT_ROOT / "notebooks").glob("*.ipynb")):
        nb = json.loads(path.read_text())
        cell = next(c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", []))
        tree = ast.parse("".join(cell["source"]))
        declared = [n.target.id for n in tree.body if isinstance(n, ast.AnnAssign)]
        assert len(declared) == len(tree.body), f"{path.name}: every parameter is typed"
        inferred = list(pm.inspect_notebook(str(path)))
        assert inferred == declared, path.name

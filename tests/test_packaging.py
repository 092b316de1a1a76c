"""The project's own files: dependency lists agree, lint is clean, notebooks are stripped."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from importlib import metadata
from itertools import chain
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from lib.settings import PROJECT_ROOT

BIN = Path(sys.executable).parent
PROJECT = "spark-ml-pipeline"
ROLES = ("api", "job", "notebooks", "dev")


def _pyproject() -> dict[str, Any]:
    return tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())


def _requirements() -> list[Requirement]:
    """Every third-party requirement pyproject declares (base and extras, no self-references)."""
    project = _pyproject()["project"]
    declared = [*project["dependencies"], *chain(*project["optional-dependencies"].values())]
    return [r for r in map(Requirement, declared) if canonicalize_name(r.name) != PROJECT]


def _declared(extras: frozenset[str]) -> list[Requirement]:
    """The project's requirements for ``extras``, read from pyproject (not the installed copy,
    which is as old as the last `make setup`), with markers as pip writes them."""
    project = _pyproject()["project"]
    lines = list(project["dependencies"])
    for extra, requirements in project["optional-dependencies"].items():
        lines += [f'{r}; extra == "{extra}"' for r in requirements]
    return list(map(Requirement, lines))


def _requires(name: str) -> list[str]:
    return metadata.requires(name) or []


def _closure(extras: set[str]) -> set[str]:
    """The installed distributions ``pip install .[extras]`` pulls in (canonical names)."""
    seen: set[tuple[str, frozenset[str]]] = set()
    todo = [(PROJECT, frozenset(extras))]
    while todo:
        name, wanted = todo.pop()
        if (canonicalize_name(name), wanted) in seen:
            continue
        seen.add((canonicalize_name(name), wanted))
        for req in _declared(wanted) if name == PROJECT else map(Requirement, _requires(name)):
            envs = [{"extra": extra} for extra in wanted] or [{"extra": ""}]
            if req.marker is None or any(req.marker.evaluate(env) for env in envs):
                todo.append((req.name, frozenset(req.extras)))
    return {name for name, _ in seen}


def _uv(*args: str, cwd: Path = PROJECT_ROOT) -> subprocess.CompletedProcess[str]:
    """The venv's own uv (locked in the dev extra), offline: the checks read files only."""
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never", "UV_OFFLINE": "1"}
    command = [str(BIN / "uv"), *args, "--python", sys.executable]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def _pins(text: str) -> list[str]:
    """The requirement lines of a requirements file (pins with markers; no comments, hashes)."""
    lines = [line.split("#", 1)[0].strip() for line in text.splitlines()]
    return [line.removesuffix("\\").strip() for line in lines if line and not line.startswith("--")]


def _export(*args: str) -> str:
    """``uv export`` of the committed lock (never re-resolved: --frozen)."""
    out = _uv("export", "--frozen", "--no-emit-project", "--quiet", *args)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_lock_agrees_with_pyproject() -> None:
    """uv.lock still resolves pyproject as it stands: run `make lock` after editing it.

    `make setup` syncs with --locked and would refuse such a lock too, later and slower."""
    out = _uv("lock", "--check")
    assert out.returncode == 0, (
        f"uv.lock is out of step with pyproject.toml: run `make lock`\n{out.stderr}"
    )


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ('"tqdm>=4.70,<5",', '"tqdm>=4.70,<5",\n    "six>=1.16,<2",'),  # a new dependency
        ('"catboost>=1.2.10,<1.3"', '"catboost>=1.2.11,<1.3"'),  # the locked version excluded
    ],
)
def test_lock_check_fails_when_pyproject_moves_on(tmp_path: Path, old: str, new: str) -> None:
    """The check above is not vacuous: a copy of the project whose pyproject changed fails it."""
    pyproject = (PROJECT_ROOT / "pyproject.toml").read_text()
    assert old in pyproject
    (tmp_path / "pyproject.toml").write_text(pyproject.replace(old, new))
    for name in ("uv.lock", "README.md"):
        (tmp_path / name).write_bytes((PROJECT_ROOT / name).read_bytes())
    out = _uv("lock", "--check", cwd=tmp_path)
    assert out.returncode != 0, out.stderr
    # Offline, uv either sees the lock is stale or cannot resolve the change from its cache.
    assert "needs to be updated" in out.stderr or "No solution found" in out.stderr, out.stderr
    assert (tmp_path / "uv.lock").read_bytes() == (PROJECT_ROOT / "uv.lock").read_bytes()


def test_constraints_file_holds_the_locks_versions() -> None:
    """constraints.txt (pip's view of the lock: conda, the bootstrap's uv, the image's uv) is
    what `make lock` exports from uv.lock now."""
    committed = _pins((PROJECT_ROOT / "constraints.txt").read_text())
    assert committed == _pins(_export("--all-extras", "--no-hashes"))
    assert any(line.startswith("uv==") for line in committed)


def test_environment_yml_installs_the_locked_versions() -> None:
    """conda's pip step installs every role at the lock's versions (as the setup benchmark's
    pip run does), with Python and Java from conda."""
    env = yaml.safe_load((PROJECT_ROOT / "environment.yml").read_text())
    pip_entries = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert pip_entries == ["-c constraints.txt", "-e .[dev]"]
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    assert "python=3.11" in conda and "openjdk=17" in conda


def test_dockerfile_installs_each_roles_locked_versions_hash_checked() -> None:
    """The image exports EXTRAS' pins with hashes from uv.lock and pip installs only those."""
    dockerfile = (PROJECT_ROOT / "k8s" / "Dockerfile").read_text()
    assert re.search(r"^COPY pyproject\.toml uv\.lock constraints\.txt \./$", dockerfile, re.M)
    assert "-c constraints.txt uv" in dockerfile
    assert re.search(r"uv export --frozen --no-emit-project .*-o /requirements\.txt", dockerfile)
    # pip installs the lock's uv, the exported pins (hash-checked, nothing else), the project.
    assert [cmd.strip() for cmd in re.findall(r"pip install ([^\n&\\]+)", dockerfile)] == [
        "--no-cache-dir --disable-pip-version-check -c constraints.txt uv",
        "--require-hashes --no-deps -r /tmp/requirements.txt",
        "--no-deps -e .",
    ]
    # What the Dockerfile's shell makes of EXTRAS, and what each role's export then holds.
    expand = re.search(r"\$\((echo \",\$\{EXTRAS\}\" \| sed [^)]*)\)", dockerfile)
    assert expand
    flags = subprocess.run(
        ["sh", "-c", expand.group(1)], env={"EXTRAS": "api,job"}, capture_output=True, text=True
    )
    assert flags.stdout.split() == ["--extra", "api", "--extra", "job"]
    api = {Requirement(line).name for line in _pins(_export("--extra", "api", "--no-hashes"))}
    assert api and not NOT_IN_API & {canonicalize_name(n) for n in api}
    hashed = _export("--extra", "job")
    assert re.search(r"^pyspark==[\d.]+ \\\n\s+--hash=sha256:", hashed, re.M)


def test_every_dependency_has_a_bounded_range() -> None:
    for requirement in _requirements():
        bounds = {spec.operator for spec in requirement.specifier}
        assert bounds == {">=", "<"}, requirement


def test_installed_versions_satisfy_every_declared_range() -> None:
    """The venv `make setup` built is the one pyproject describes (pandas < 3 for pyspark 4.3,
    sqlglot < 30.18 for ibis 12, pyspark not downgraded by an ibis extra)."""
    for requirement in _requirements():
        installed = metadata.version(requirement.name)
        assert requirement.specifier.contains(installed, prereleases=True), (
            f"{requirement.name} {installed} is outside {requirement.specifier}"
        )


def test_dev_extra_installs_every_role() -> None:
    """`make setup` installs `.[dev]`: every role's packages, so a learner has everything."""
    dev = _closure({"dev"})
    for role in ("api", "job", "notebooks"):
        assert _closure({role}) <= dev, role
    makefile = (PROJECT_ROOT / "Makefile").read_text()
    assert re.search(r"^UV_SYNC := .* sync --locked --extra dev\b", makefile, re.M)


def test_setup_reruns_when_the_lock_changes() -> None:
    """make setup's stamp depends on the lock (and pyproject): a pull that moves a pin
    re-installs; the venv's uv comes from the lock's versions too."""
    makefile = (PROJECT_ROOT / "Makefile").read_text()
    assert re.search(r"^LOCK\s+:= uv\.lock$", makefile, re.M)
    assert re.search(r"^\$\(STAMP\): \$\(LOCK\) pyproject\.toml\b", makefile, re.M)
    assert re.search(r"pip install .*-c \$\(CONSTRAINTS\) uv$", makefile, re.M)


# What each role runs; importing it must need nothing outside its extra (and the base).
ROLE_ENTRY_POINTS = {
    "api": ["api.main", "api.migrate"],
    "job": ["lib.predict", "lib.training", "lib.data", "lib.spark_engine", "lib.spark"],
}
# Distributions the API image must not carry (the reason for the split).
NOT_IN_API = {"pyspark", "catboost", "scikit-learn", "jupyterlab", "papermill", "matplotlib"}

IMPORT_GUARD = """
import importlib, importlib.abc, importlib.metadata as md, json, re, sys
allowed, modules = set(json.loads(sys.argv[1])), json.loads(sys.argv[2])
owners = md.packages_distributions()

class Guard(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        top = name.partition(".")[0]
        dists = {re.sub(r"[-_.]+", "-", d).lower() for d in owners.get(top, ())}
        if dists and not dists & allowed:  # as if not installed: optional imports fall back
            raise ModuleNotFoundError(f"No module named {top!r} (from {sorted(dists)})", name=top)

sys.meta_path.insert(0, Guard())
for module in modules:
    importlib.import_module(module)
"""


@pytest.mark.parametrize("role", sorted(ROLE_ENTRY_POINTS))
def test_each_role_imports_only_what_its_extra_installs(role: str) -> None:
    """A role installed alone (`pip install .[role]`) can import what it runs.

    A subprocess imports the role's entry points with every package outside the role's
    install hidden, so an import the extra does not cover fails here, naming the package.
    """
    allowed = {canonicalize_name(d) for d in _closure({role})}
    if role == "api":
        assert not NOT_IN_API & allowed
    modules = ROLE_ENTRY_POINTS[role]
    guard = [sys.executable, "-c", IMPORT_GUARD, json.dumps(sorted(allowed)), json.dumps(modules)]
    out = subprocess.run(guard, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]


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


@pytest.mark.parametrize(("make_exit", "ci_exit"), [(0, 0), (1, 1), (5, 1)])
def test_ci_script_runs_make_test_with_postgres_required(
    tmp_path: Path, make_exit: int, ci_exit: int
) -> None:
    """.ci/run calls `make test` with CI set and a PostgreSQL URL; no tests collected fails."""
    fake = tmp_path / "bin"
    fake.mkdir()
    record = tmp_path / "make.args"
    (fake / "make").write_text(
        f'#!/bin/sh\necho "$* CI=$CI URL=$TEST_DATABASE_URL" > {record}\nexit {make_exit}\n'
    )
    (fake / "make").chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "TEST_DATABASE_URL")}
    env["PATH"] = f"{fake}{os.pathsep}{env['PATH']}"
    out = subprocess.run(
        ["bash", str(PROJECT_ROOT / ".ci" / "run")], env=env, capture_output=True, text=True
    )
    assert out.returncode == ci_exit, out.stderr
    assert record.read_text().split() == [
        "test",
        "CI=true",
        "URL=postgresql+psycopg2://postgres@127.0.0.1:5432/test",
    ]
    assert ("collected no tests" in out.stderr) == (make_exit == 5)


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

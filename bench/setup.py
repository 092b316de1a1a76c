"""How long a newcomer waits for an installed project: `make setup` against plain pip.

    python -m bench.setup [--source PATH] [--keep]

One run, both sides from empty caches, each in its own fresh `git clone` of the committed
project (uncommitted changes are not measured) under a temporary folder:

(a) `make setup`: the project's bootstrap (a venv, uv from PyPI at the locked version), uv
    installing uv.lock's versions, bytecode, the notebooks' kernel and the JVM class-data
    archive, with an empty uv cache (UV_CACHE_DIR), no pip cache and an empty project cache
    (CACHE_DIR): what a first `make demo` or `make test` on a new machine starts with.
(b) `python -m venv` + `pip install --no-cache-dir` with environment.yml's pip entries
    (`-c constraints.txt -e .[dev]`): plain pip, the same locked versions (what conda runs).

The class-data archive is recorded once per machine (per pyspark and Java version, under
CACHE_DIR) and has no counterpart in (b): the target compares (a) without that step, which
runs last, against (b); both totals are printed. The stages of (a) are read from its process
tree as it runs. Both venvs must hold the same versions. Prints a table, writes
bench/results/setup.json and exits 1 when a run fails or the target is missed. It downloads
about 1 GB from PyPI twice and keeps both cores busy for a few minutes: run it on a quiet
machine. Everything it made is removed afterwards (--keep leaves it, and says where).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import yaml

from bench.common import machine, save
from lib.settings import PROJECT_ROOT

TARGET = 0.35  # (a) without the once-per-machine class-data archive, as a share of (b)
TIMEOUT = 1800  # seconds per run: a stuck download fails the run instead of hanging
ARCHIVE = "class-data archive (once per machine)"
# Stages of `make setup`, told apart by their command lines (the first match names it).
STAGES = [
    ("record-class-cache", ARCHIVE),
    ("ipykernel install", "notebooks' kernel registration"),
    ("|/site-packages/pyspark/", "bytecode: all but pyspark, beside pyspark's build"),
    ("compileall", "bytecode: pyspark"),
    ("--no-install-package pyspark", "uv sync: every locked package but pyspark"),
    ("uv sync", "uv sync: pyspark (built from its sdist), exact"),
    ("pip install", "venv + uv from PyPI (pip)"),
    ("-m venv", "venv + uv from PyPI (pip)"),
]
SHELLS = {"bash", "sh", "make"}
SEEDS = {"pip", "setuptools", "wheel", "spark-ml-pipeline"}  # not the lock's business
VERSIONS = (
    "import importlib.metadata as m, json; "
    "print(json.dumps({d.metadata['Name'].lower().replace('_', '-'): d.version "
    "for d in m.distributions()}))"
)


@dataclass
class Run:
    """One timed command: wall time, CPU time (its own and the rest of the machine's) and,
    when watched, the stages seen in its process tree."""

    seconds: float
    cpu_seconds: float  # the command and everything under it (and this process's sampling)
    other_cpu_seconds: float  # every other process on the machine meanwhile: 0 when quiet
    stages: dict[str, list[float]] = field(default_factory=dict)  # name -> [first, last] seen


def _busy() -> float:
    """CPU seconds the whole machine has spent working (all cores, not idle or waiting)."""
    times = psutil.cpu_times()
    return float(sum(times) - times.idle - getattr(times, "iowait", 0.0))


def _own() -> float:
    """CPU seconds of this process (its sampling thread) and of its finished children (and
    theirs, as they were waited for)."""
    usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    return sum(u.ru_utime + u.ru_stime for u in usage)


def _stage(cmdline: list[str]) -> str | None:
    text = " ".join(cmdline)
    return next((name for needle, name in STAGES if needle in text), None)


def _watch(pid: int, started: float, done: threading.Event, stages: dict[str, list[float]]) -> None:
    """Note when each stage's processes are first and last seen under ``pid`` (every 50 ms)."""
    try:
        root = psutil.Process(pid)
    except psutil.Error:
        return
    while not done.is_set():
        now = time.monotonic() - started
        try:
            children = root.children(recursive=True)
        except psutil.Error:
            break
        for child in children:
            try:  # shells carry whole recipe lines: only the commands themselves count
                name = None if child.name() in SHELLS else _stage(child.cmdline())
            except psutil.Error:  # exited between the listing and the look
                continue
            if name:
                stages.setdefault(name, [now, now])[1] = now
        time.sleep(0.05)


def timed(command: list[str], cwd: Path, env: dict[str, str], log: Path, watch: bool) -> Run:
    """Run ``command`` in its own process group, output to ``log``; raise if it fails."""
    stages: dict[str, list[float]] = {}
    done = threading.Event()
    busy, own = _busy(), _own()
    started = time.monotonic()
    with log.open("w") as out:
        process = subprocess.Popen(
            command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        watcher = threading.Thread(
            target=_watch, args=(process.pid, started, done, stages), daemon=True
        )
        if watch:
            watcher.start()
        try:
            code = process.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # our own group only
            process.wait()
            code = -1
        finally:
            done.set()
            if watch:
                watcher.join()
    seconds = time.monotonic() - started
    cpu = _own() - own
    other = max(0.0, _busy() - busy - cpu)
    if code != 0:
        tail = log.read_text()[-3000:]
        raise RuntimeError(f"{' '.join(command)} exited {code} after {seconds:.0f} s:\n{tail}")
    return Run(seconds, cpu, other, stages)


def _clone(source: Path, target: Path) -> str:
    subprocess.run(["git", "clone", "--quiet", str(source), str(target)], check=True)
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=target, capture_output=True, text=True
    )
    return head.stdout.strip()


def _versions(python: Path) -> dict[str, str]:
    out = subprocess.run([str(python), "-c", VERSIONS], capture_output=True, text=True, check=True)
    versions: dict[str, str] = json.loads(out.stdout)
    return {name: v for name, v in versions.items() if name not in SEEDS}


def _size_gb(folder: Path) -> float:
    total = sum((Path(d) / f).lstat().st_size for d, _, files in os.walk(folder) for f in files)
    return total / 1e9


def _env(root: Path, name: str) -> dict[str, str]:
    """The caller's environment with empty, private caches and nothing of a running make."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("UV_", "MAKE", "PYSPARK_", "VIRTUAL_ENV")) and k != "MFLAGS"
    }
    caches = root / "caches" / name
    env.update(
        UV_CACHE_DIR=str(caches / "uv"),
        PIP_CACHE_DIR=str(caches / "pip"),
        PIP_NO_CACHE_DIR="1",
        CACHE_DIR=str(caches / "project"),
    )
    return env


def measure(source: Path, root: Path) -> dict[str, Any]:
    """(a) then (b), each in a fresh clone with its own empty caches."""
    boot = shutil.which("python3") or sys.executable
    commit = _clone(source, root / "make")
    _clone(source, root / "pip")
    print(f"(a) make setup in a fresh clone of {commit} ...", flush=True)
    a = timed(["make", "setup"], root / "make", _env(root, "make"), root / "make.log", True)
    print(f"    {a.seconds:.1f} s", flush=True)
    entries = yaml.safe_load((root / "pip" / "environment.yml").read_text())["dependencies"]
    pip_args = [arg for e in entries if isinstance(e, dict) for x in e["pip"] for arg in x.split()]
    plain = f"{boot} -m venv .venv && .venv/bin/pip install --no-cache-dir {' '.join(pip_args)}"
    print(f"(b) {plain} ...", flush=True)
    b = timed(["bash", "-c", plain], root / "pip", _env(root, "pip"), root / "pip.log", False)
    print(f"    {b.seconds:.1f} s", flush=True)
    made, plain_pip = (
        _versions(root / side / ".venv" / "bin" / "python") for side in ("make", "pip")
    )
    differ = sorted(
        f"{n}: {made.get(n)} vs {plain_pip.get(n)}"
        for n in made.keys() | plain_pip.keys()
        if made.get(n) != plain_pip.get(n)
    )
    archive = a.stages.get(ARCHIVE)
    install = archive[0] if archive else a.seconds
    return {
        "commit": commit,
        "make_setup_seconds": a.seconds,
        "make_setup_without_archive_seconds": install,
        "pip_seconds": b.seconds,
        "cpu_seconds": {"make_setup": a.cpu_seconds, "pip": b.cpu_seconds},
        "other_cpu_seconds": {"make_setup": a.other_cpu_seconds, "pip": b.other_cpu_seconds},
        "stages": a.stages,
        "packages": len(made),
        "version_differences": differ,
        "uv_cache_gb": _size_gb(root / "caches" / "make" / "uv"),
        "uv": made.get("uv"),
    }


def print_table(r: dict[str, Any]) -> bool:
    """The table; whether the target is met."""
    pip = r["pip_seconds"]
    print(f"\nSetup from empty caches, the same lock; commit {r['commit']}")
    print(f"machine: {machine()}")
    print(f"{'stage of make setup (first seen -> last seen)':<62}{'from s':>8}{'seconds':>9}")
    for name, (first, last) in sorted(r["stages"].items(), key=lambda kv: kv[1][0]):
        print(f"  {name:<60}{first:>8.1f}{last - first:>9.1f}")
    print(f"{'run':<62}{'seconds':>8}{'x pip':>9}")
    rows = [
        ("(a) make setup (uv), new machine: with the class-data archive", r["make_setup_seconds"]),
        (
            "(a) make setup (uv), without the once-per-machine archive",
            r["make_setup_without_archive_seconds"],
        ),
        ("(b) python -m venv + pip install -c constraints.txt -e .[dev]", pip),
    ]
    for label, seconds in rows:
        print(f"{label:<62}{seconds:>8.1f}{seconds / pip:>9.2f}")
    ratio = r["make_setup_without_archive_seconds"] / pip
    met = ratio <= TARGET
    verdict = "met" if met else "NOT met"
    print(f"target: (a) without the archive <= {TARGET:.2f}x pip: {ratio:.2f}x, {verdict}")
    same = not r["version_differences"]
    print(f"same versions in both venvs: {same} ({r['packages']} packages, uv {r['uv']})")
    for line in r["version_differences"]:
        print(f"  {line}")
    print(f"uv cache after (a): {r['uv_cache_gb']:.1f} GB (UV_CACHE_DIR; default ~/.cache/uv)")
    own, other = r["cpu_seconds"], r["other_cpu_seconds"]
    print(
        f"CPU seconds, (a) / (b): {own['make_setup']:.0f} / {own['pip']:.0f}; other processes "
        f"meanwhile: {other['make_setup']:.0f} / {other['pip']:.0f} (a quiet machine: about 0)"
    )
    return met and same


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.setup",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--source", type=Path, default=PROJECT_ROOT, help="repository to clone")
    parser.add_argument("--keep", action="store_true", help="keep the clones, venvs and caches")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-setup-"))
    try:
        result = measure(args.source, root)
    except RuntimeError as err:
        print(f"❌ {err}", file=sys.stderr)
        return 1
    finally:
        if args.keep:
            print(f"kept: {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    ok = print_table(result)
    print(f"results: {save('setup', {'machine': machine(), 'target': TARGET, **result})}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

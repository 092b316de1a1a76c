"""Shared pieces of the benchmarks: cached inputs, a trained model, peak-memory sampling,
a throwaway local Spark Connect server."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil

from lib.settings import PROJECT_ROOT

if TYPE_CHECKING:
    from lib.connect_server import ConnectServer

CACHE = PROJECT_ROOT / "bench" / ".cache"
RESULTS = PROJECT_ROOT / "bench" / "results"


def machine() -> str:
    memory = psutil.virtual_memory().total / 2**30
    return f"{os.cpu_count()} cores, {memory:.0f} GiB, {platform.system()} {platform.machine()}"


def users_file(n_users: int, seed: int = 42) -> Path:
    """A cached Parquet file of ``n_users`` synthetic users (generated once, in chunks)."""
    from lib.data import write_users

    path = CACHE / f"users_{n_users}_{seed}.parquet"
    if not path.exists():
        print(f"generating {n_users:,} users -> {path}", flush=True)
        write_users(path, n_users, seed, progress=True)
    return path


def model_dir() -> Path:
    """The project's default model (python -m lib.training settings), trained once."""
    from lib.data import DEFAULT_TRAINING_SEED, generate_users
    from lib.errors import ModelError
    from lib.registry import resolve_artifact
    from lib.training import save_model, train_model

    directory = CACHE / "models"
    try:  # a cache without a valid training reference (lib.drift) is trained again
        usable = resolve_artifact("campaign_model_v1.cbm", directory).reference is not None
    except ModelError:
        usable = False
    if not usable:
        result = train_model(generate_users(20_000, DEFAULT_TRAINING_SEED, labelled=True))
        save_model(result, directory)
    return directory


@dataclass
class Measured:
    result: dict[str, Any]
    peak_driver_mb: float  # the measured process itself
    peak_tree_mb: float  # the process and all its children (JVM, Python workers)


def run_measured(
    args: list[str], env: dict[str, str] | None = None, also: Sequence[int] = ()
) -> Measured:
    """Run ``python args...`` and sample its memory every 50 ms; it prints one JSON line.

    ``also``: pids of processes serving it (a Spark Connect server) whose trees count in
    the peak of the whole tree.
    """
    process = subprocess.Popen(
        [sys.executable, *args],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    peaks = {"driver": 0, "tree": 0}
    done = threading.Event()

    def rss(proc: psutil.Process) -> int:
        try:
            return int(proc.memory_info().rss)
        except psutil.Error:  # a child that just exited
            return 0

    def tree(pid: int) -> int:
        try:
            proc = psutil.Process(pid)
            return rss(proc) + sum(rss(c) for c in proc.children(recursive=True))
        except psutil.Error:
            return 0

    def sample() -> None:
        proc = psutil.Process(process.pid)
        while not done.is_set():
            try:
                children = proc.children(recursive=True)
            except psutil.Error:
                break
            main = rss(proc)
            peaks["driver"] = max(peaks["driver"], main)
            total = main + sum(rss(c) for c in children) + sum(tree(pid) for pid in also)
            peaks["tree"] = max(peaks["tree"], total)
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, _ = process.communicate()
    done.set()
    sampler.join()
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed with exit {process.returncode}")
    result = json.loads(stdout.strip().splitlines()[-1])
    return Measured(result, peaks["driver"] / 2**20, peaks["tree"] / 2**20)


def save(name: str, payload: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2))
    return path


@contextmanager
def connect_server(root: Path) -> Iterator[ConnectServer]:
    """A local Spark Connect server on a free port, its state, token and log under ``root``.

    Stopped by pid on the way out (never anyone else's server); a server that outlives its
    stop raises, so a benchmark never leaves a JVM behind.
    """
    from lib.api_server import free_port
    from lib.connect_server import ConnectServer
    from lib.settings import Settings

    settings = Settings(
        cache_dir=root / "cache",
        data_dir=root / "data",
        model_dir=root / "models",
        output_dir=root / "output",
        spark_connect_port=free_port(),
    )
    server = ConnectServer(settings=settings)
    pid = server.start()
    try:
        yield server
    finally:
        server.stop()
        if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
            raise RuntimeError(f"the Spark Connect server (pid {pid}) is still running")

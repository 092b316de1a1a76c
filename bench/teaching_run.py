"""The learner's run of notebook 04 for 1,000 users, in both regimes, broken down by stage.

    python -m bench.teaching_run [--repeats 3] [--regimes floor services cold] [--no-idle]

Sets up a throwaway project (1,000 users, the default model, the config API on SQLite on a
free port), then times `python -m lib.runner --campaign-id 1` as a whole fresh process, from
the outside, ``--repeats`` times per regime:

services  `make up` done: the config API and a local Spark Connect server already run (on
          free ports, state under the temporary project). The runner finds the server the
          way `make score` does (CACHE_DIR + SPARK_CONNECT_PORT) and the kernel connects to
          the warm JVM. The server first gets `make up`'s warm-up job (lib.warm_up, timed
          apart), then one untimed run (the first run after `make up`, reported apart);
          last, one run after the server idled past Spark's one-minute idle-worker limit.
cold      no Spark running: the kernel starts its own classic local JVM (with the class-data
          archive when `make setup` recorded one). The config API runs: the job needs it.
floor     the same runner, papermill kernel, job checks, run record and report for the same
          users, with the scoring done in the kernel (`--engine local`: pyarrow + CatBoost,
          no Spark): what the run costs without Spark. Targets are ratios to it, measured in
          the same run: services ≤ 1.5x the floor, the first run after `make up` ≤ 2x.

Each run's stages come from the executed notebook: process + papermill import + kernel
start, imports + Spark session, the job (fetch, model load, read/count, score, write), the
report cells, and HTML rendering + exit. Whether a run started a JVM of its own is checked.
Prints a table (median and best of N per regime) and writes bench/results/teaching_run.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench.common import connect_server, machine, model_dir, save
from lib.api_server import api_process, free_port
from lib.contract import seed_campaign
from lib.data import write_users
from lib.settings import PROJECT_ROOT, directory_env

REGIMES = {
    "floor": "floor: the same run scored in the kernel, no Spark (--engine local)",
    "services": "services up (API + Spark Connect), notebook 04 via papermill",
    "cold": "fully cold (no Spark running), classic local Spark",
}
# x the floor's median, measured in the same run: (median target, first-run target).
RATIO_TARGETS = {"services": (1.5, 2.0)}
TOTAL = "total"
IDLE_SECONDS = 65  # longer than Spark keeps an idle Python worker (one minute)


def _ts(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def _started_jvm(pid: int, done: threading.Event, seen: list[bool]) -> None:
    """Watch ``pid``'s process tree until ``done``: did a JVM start under it?"""
    try:
        proc = psutil.Process(pid)
    except psutil.Error:
        return
    while not done.is_set() and not seen:
        try:
            if any(c.name() == "java" for c in proc.children(recursive=True)):
                seen.append(True)
        except psutil.Error:
            pass
        time.sleep(0.1)


def _text(output: dict[str, Any]) -> str:
    plain = output.get("data", {}).get("text/plain", "")
    return "".join(plain) if isinstance(plain, list) else str(plain)


def one_run(env: dict[str, str], root: Path, engine: str = "spark") -> dict[str, float]:
    """One `python -m lib.runner --campaign-id 1` in a fresh process; seconds per stage."""
    child_env = {**os.environ, **env}
    for key in ("SPARK_REMOTE", "SPARK_CONNECT_AUTHENTICATE_TOKEN", "SPARK_MASTER"):
        if key not in env:
            child_env.pop(key, None)  # the regime decides, not the caller's shell
    done, jvm = threading.Event(), list[bool]()
    started = time.time()
    process = subprocess.Popen(
        [sys.executable, "-m", "lib.runner", "--campaign-id", "1", "--engine", engine],
        cwd=PROJECT_ROOT,
        env=child_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    watcher = threading.Thread(target=_started_jvm, args=(process.pid, done, jvm), daemon=True)
    watcher.start()
    out, _ = process.communicate()
    total = time.time() - started
    done.set()
    watcher.join()
    if process.returncode != 0:
        raise RuntimeError(f"lib.runner exited {process.returncode}:\n{out.decode()[-3000:]}")
    executed = max((root / "output" / "runs").glob("*.ipynb"), key=lambda p: p.stat().st_mtime)
    nb = json.loads(executed.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    first_start = _ts(code[0]["metadata"]["papermill"]["start_time"])
    last_end = _ts(code[-1]["metadata"]["papermill"]["end_time"])
    durations = [c["metadata"]["papermill"]["duration"] or 0.0 for c in code]
    job_cell = next(i for i, c in enumerate(code) if "run_job(" in "".join(c["source"]))
    spark_cell = next(i for i, c in enumerate(code) if "build_spark(" in "".join(c["source"]))
    if engine == "local":
        spark_out = "".join(
            _text(o) + "".join(o.get("text", "")) for o in code[spark_cell].get("outputs", [])
        )
        if "no Spark" not in spark_out:
            raise RuntimeError(f"the floor run used Spark: {spark_out[:300]}")
    # The job's own stage timings: the last cell shows them as a two-column table.
    table = "".join(_text(o) for o in code[-1].get("outputs", []) if "seconds" in _text(o))
    timings = {
        f"  job: {m[1]}": float(m[2]) for m in re.finditer(r"^([a-z +]+?)\s+([\d.]+)$", table, re.M)
    }
    stages = {
        "process + papermill + kernel start": first_start - started,
        "imports + Spark session": durations[spark_cell],
        "job (fetch, model, read, score, write)": durations[job_cell],
        "report cells (Spark summaries, plots)": sum(durations)
        - durations[spark_cell]
        - durations[job_cell],
        "HTML rendering + exit": started + total - last_end,
        TOTAL: total,
        "started a JVM (1 = yes)": 1.0 if jvm else 0.0,
    }
    return {**stages, **timings}


def run_regime(
    regime: str, env: dict[str, str], root: Path, repeats: int, warm_up: bool
) -> dict[str, Any]:
    """``repeats`` timed runs (after one untimed run when ``warm_up``); their summary."""
    engine = "local" if regime == "floor" else "spark"
    first = one_run(env, root, engine) if warm_up else None
    runs = []
    for i in range(repeats):
        runs.append(one_run(env, root, engine))
        print(f"  {regime} run {i + 1}/{repeats}: {runs[-1][TOTAL]:.2f} s", flush=True)
    jvm = {r["started a JVM (1 = yes)"] for r in runs}
    expected = 1.0 if regime == "cold" else 0.0
    if jvm != {expected}:
        raise RuntimeError(f"{regime}: runs that started a JVM of their own: {sorted(jvm)}")
    keys = [k for k in runs[0] if all(k in r for r in runs)]
    return {
        "regime": regime,
        "description": REGIMES[regime],
        "median": {k: statistics.median(r[k] for r in runs) for k in keys},
        "best": {k: min(r[k] for r in runs) for k in keys},
        "first_run_after_start": first,
        "runs": runs,
    }


def measure_regime(
    regime: str, env: dict[str, str], root: Path, repeats: int, idle: bool = True
) -> dict[str, Any]:
    """Set the regime up (and tear it down again), then measure it."""
    if regime == "services":
        with connect_server(root) as server:
            # What `make up` leaves behind: the runner finds the server by its state file
            # (CACHE_DIR) and port, as `make score` would, and hands the kernel SPARK_REMOTE.
            services_env = {
                **env,
                "CACHE_DIR": str(server.settings.cache_dir),
                "SPARK_CONNECT_PORT": str(server.port),
            }
            started = time.perf_counter()
            failed = server.warm_up()  # as `make up` does once the server answers
            if failed is not None:
                raise RuntimeError(f"the server's warm-up failed: {failed}")
            warm_up_seconds = time.perf_counter() - started
            print(f"  make up's warm-up job: {warm_up_seconds:.2f} s", flush=True)
            result = run_regime(regime, services_env, root, repeats, warm_up=True)
            result["warm_up_seconds"] = warm_up_seconds
            if idle:
                # Spark stops Python workers idle for a minute; the next run forks new ones.
                print(f"  idle {IDLE_SECONDS} s, then one more run ...", flush=True)
                time.sleep(IDLE_SECONDS)
                result["run_after_idle"] = one_run(services_env, root, "spark")
            return result
    # Nothing listens on this port: the runner finds no server and the kernel starts a JVM
    # (cold), or none at all (floor). The floor warms the page cache and imports first.
    cold_env = {**env, "SPARK_CONNECT_PORT": str(free_port())}
    return run_regime(regime, cold_env, root, repeats, warm_up=regime == "floor")


def print_table(results: list[dict[str, Any]], repeats: int, class_cache: bool) -> None:
    print(f"\nNotebook 04 for 1,000 users, whole process (median and best of {repeats})")
    print(f"machine: {machine()}")
    header = f"{'stage (seconds)':<42}"
    for r in results:
        header += f"{r['regime'] + ' median':>17}{r['regime'] + ' best':>15}"
    print(header)
    for key in results[0]["median"]:
        if key == "started a JVM (1 = yes)":
            continue
        line = f"{key:<42}"
        for r in results:
            med, best = r["median"].get(key), r["best"].get(key)
            line += f"{med:>17.2f}{best:>15.2f}" if med is not None else f"{'-':>17}{'-':>15}"
        print(line)
    by = {r["regime"]: r for r in results}
    floor = by["floor"]["median"][TOTAL] if "floor" in by else None
    for r in results:
        med = r["median"][TOTAL]
        print(f"{r['description']}: median {med:.2f} s, best {r['best'][TOTAL]:.2f} s")
        first = r["first_run_after_start"]
        if first and r["regime"] != "floor":
            print(f"  first run after the server started (untimed): {first[TOTAL]:.2f} s")
        if "warm_up_seconds" in r:
            print(f"  make up's warm-up job (before that first run): {r['warm_up_seconds']:.2f} s")
        if r.get("run_after_idle"):
            idle_total = r["run_after_idle"][TOTAL]
            ratio = f" ({idle_total / floor:.2f}x the floor)" if floor else ""
            idle = f"a run after {IDLE_SECONDS} s idle (new Python workers)"
            print(f"  {idle}: {idle_total:.2f} s{ratio}")
        if r["regime"] in RATIO_TARGETS and floor:
            target, first_target = RATIO_TARGETS[r["regime"]]
            for what, seconds, goal in [("median", med, target)] + (
                [("first run", first[TOTAL], first_target)] if first else []
            ):
                ratio = seconds / floor
                verdict = "met" if ratio <= goal else "NOT met"
                print(f"  {what} / floor median: {ratio:.2f}x (target <= {goal}x: {verdict})")
    print(f"classic class-data archive present: {class_cache}")


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.teaching_run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--regimes", nargs="+", choices=list(REGIMES), default=list(REGIMES))
    parser.add_argument(
        "--no-idle", dest="idle", action="store_false", help="skip the run after a minute idle"
    )
    args = parser.parse_args()
    from lib.settings import get_settings
    from lib.spark import class_cache_archive

    class_cache = get_settings().spark_class_cache and class_cache_archive(get_settings()).is_file()
    root = Path(tempfile.mkdtemp(prefix="bench-teaching-"))
    write_users(root / "data" / "sample_users.parquet", 1_000)
    shutil.copytree(model_dir(), root / "models")
    env = directory_env(root)
    results: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    try:
        with api_process(root / "api.log", env=env) as url:
            httpx.post(f"{url}/campaigns/", json=seed_campaign()).raise_for_status()
            env["CONFIG_API_URL"] = url
            for regime in args.regimes:
                print(f"regime: {REGIMES[regime]} ...", flush=True)
                try:
                    results.append(measure_regime(regime, env, root, args.repeats, args.idle))
                except RuntimeError as err:  # report it, and still measure the other regime
                    print(f"  {regime} FAILED: {err}", flush=True)
                    failed.append({"regime": regime, "error": str(err)})
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if results:
        print_table(results, args.repeats, bool(class_cache))
    for f in failed:
        print(f"{REGIMES[f['regime']]}: FAILED (see above)")
    payload = {
        "machine": machine(),
        "users": 1_000,
        "repeats": args.repeats,
        "class_cache": bool(class_cache),
        "ratio_targets": {k: {"median": t, "first_run": f} for k, (t, f) in RATIO_TARGETS.items()},
        "regimes": results,
        "failed": failed,
    }
    print(f"results: {save('teaching_run', payload)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

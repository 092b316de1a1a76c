"""The learner's cold run: `make score` for 1,000 users, broken down by stage.

    python -m bench.teaching_run [--repeats 3]

Sets up a throwaway project (1,000 users, the default model, the API on SQLite), then times
`python -m lib.runner --campaign-id 1` in a fresh process: process start + papermill
import + kernel start, SparkSession start, the job's stages (fetch, model load, read/count,
score, write), the notebook's report cells, and HTML rendering.
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
import time
from datetime import datetime
from pathlib import Path

import httpx

from bench.common import machine, model_dir, save
from lib.api_server import api_process
from lib.contract import seed_campaign
from lib.data import write_users
from lib.settings import PROJECT_ROOT, directory_env


def _ts(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def one_run(env: dict[str, str], root: Path) -> dict[str, float]:
    started = time.time()
    subprocess.run(
        [sys.executable, "-m", "lib.runner", "--campaign-id", "1"],
        cwd=PROJECT_ROOT,
        env={**os.environ, **env},
        check=True,
        capture_output=True,
    )
    total = time.time() - started
    executed = max((root / "output" / "runs").glob("*.ipynb"), key=lambda p: p.stat().st_mtime)
    nb = json.loads(executed.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    first_start = _ts(code[0]["metadata"]["papermill"]["start_time"])
    last_end = _ts(code[-1]["metadata"]["papermill"]["end_time"])
    durations = [c["metadata"]["papermill"]["duration"] or 0.0 for c in code]
    job_cell = next(i for i, c in enumerate(code) if "run_job(" in "".join(c["source"]))
    spark_cell = next(i for i, c in enumerate(code) if "build_spark(" in "".join(c["source"]))

    # The job's own stage timings: the last cell shows them as a two-column table.
    def text(output: dict) -> str:
        plain = output.get("data", {}).get("text/plain", "")
        return "".join(plain) if isinstance(plain, list) else plain

    table = "".join(text(o) for o in code[-1].get("outputs", []) if "seconds" in text(o))
    timings = {
        f"  job: {m[1]}": float(m[2]) for m in re.finditer(r"^([a-z +]+?)\s+([\d.]+)$", table, re.M)
    }
    stages = {
        "process + papermill + kernel start": first_start - started,
        "imports + SparkSession start": durations[spark_cell],
        "job (fetch, model, read, score, write)": durations[job_cell],
        "report cells (Spark summaries, plots)": sum(durations)
        - durations[spark_cell]
        - durations[job_cell],
        "HTML rendering + exit": started + total - last_end,
        "total": total,
    }
    return {**stages, **timings}


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.teaching_run", description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-teaching-"))
    write_users(root / "data" / "sample_users.parquet", 1_000)
    shutil.copytree(model_dir(), root / "models")
    env = directory_env(root)
    try:
        with api_process(root / "api.log", env=env) as url:
            httpx.post(f"{url}/campaigns/", json=seed_campaign())
            runs = [one_run({**env, "CONFIG_API_URL": url}, root) for _ in range(args.repeats)]
    finally:
        shutil.rmtree(root, ignore_errors=True)
    median = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    print(f"\nCold `make score` for 1,000 users (median of {args.repeats}); {machine()}")
    for stage, seconds in median.items():
        print(f"  {stage:<42}{seconds:>7.2f} s")
    print("target: total <= 10 s")
    print(
        f"results: {save('teaching_run', {'machine': machine(), 'median': median, 'runs': runs})}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Scoring throughput: the project's Spark paths against the single-process limit and a peer.

    python -m bench.scoring [--n-users 2000000] [--repeats 3] [--udf-rows 100000] [--variants]

(a) the limit: one Python process, pyarrow read -> CatBoost predict_proba on all cores ->
    the job's holdout group and drift counts (lib.scoring.add_run_columns) -> pyarrow write
    of user_id, score and group;
(b) the job's scoring path through classic Spark local[*], warm (session up, median of
    --repeats after a warm-up run) and cold (session start included): Python reads the users
    (lib.parquet_source: pyarrow in each task, only the scores cross to the JVM), Spark
    schedules the tasks and writes (groups and drift counts included, as in the job);
(b0) the old path, where Spark reads and Python scores over Arrow (lib.scoring.score_spark),
    warm: what the JVM<->Python hop of every feature column costs;
(d) the same through Spark Connect: a local server (started for this run on a free port,
    stopped after), one client session, warm as in (b) (the client's first run warms up);
(e) the peer a user would reach for, MLflow-style batch inference: a scalar pandas_udf
    (Series -> Series over the feature columns), the model loaded once per worker (bench.peer),
    classic Spark, warm as in (b);
floor: the old path's floor: scan + a no-op mapInArrow round trip, no model, no write;
(c) a naive row-at-a-time Python UDF on --udf-rows users.
Each runs in its own process (the Connect server's memory counts in (d)'s tree). Same model,
input and output columns; every path that writes must write scores identical to (a)'s (exit
1 otherwise). Each path is reported as x the limit, x the floor and x the peer (time per
row). Prints a table; writes bench/results/scoring.json and scoring.png.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from bench.common import (
    CACHE,
    RESULTS,
    connect_server,
    machine,
    model_dir,
    run_measured,
    save,
    users_file,
)
from lib import schema
from lib.settings import PROJECT_ROOT

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa
    from catboost import CatBoostClassifier
    from pyspark.sql import DataFrame, SparkSession

    from lib.registry import ModelArtifact
    from lib.scoring import RunColumns

FEATURES = list(schema.FEATURES)


# ---- workers (each runs in its own process and prints one JSON line) -------------------
def _load_model(models: str) -> CatBoostClassifier:
    from lib.registry import load_model

    return load_model("campaign_model_v1.cbm", models)


def _run_columns(models: str) -> RunColumns:
    """What the job adds to every score (lib.scoring.RunColumns): the holdout group (10%)
    and the drift counts against the model's training reference. Every path that stands
    for the job does this work, the limit included."""
    from lib.registry import load_verified
    from lib.scoring import RunColumns

    run = RunColumns.for_model(1, 0.1, load_verified("campaign_model_v1.cbm", models))
    assert run.reference is not None, "the bench model has no training reference"
    return run


def worker_single(input_path: str, models: str, output: str, repeats: int) -> dict:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from lib.scoring import add_run_columns

    model = _load_model(models)
    run = _run_columns(models)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        table = pq.read_table(input_path, columns=[schema.USER_ID, *FEATURES])
        matrix = np.empty((table.num_rows, len(FEATURES)), dtype=np.float32)
        for i, name in enumerate(FEATURES):
            matrix[:, i] = table.column(name).to_numpy()
        proba = model.predict_proba(matrix, thread_count=-1)[:, 1]
        scores = pa.RecordBatch.from_arrays(
            [table.column(schema.USER_ID).combine_chunks(), pa.array(proba)],
            names=[schema.USER_ID, schema.SCORE],
        )
        # The job's extra work on every row: the holdout group and the drift counts.
        done = add_run_columns(scores, table, run, run.counter())
        pq.write_table(pa.Table.from_batches([done]), output)
        times.append(time.perf_counter() - started)
    return {"rows": table.num_rows, "seconds": statistics.median(times), "all": times}


def _score_with_pandas(spark: SparkSession, users: DataFrame, artifact: ModelArtifact) -> DataFrame:
    """The first version of the Spark wrapper (kept to measure what mapInArrow bought)."""
    from lib.registry import model_from_bytes
    from lib.scoring import score_pandas

    broadcast = spark.sparkContext.broadcast(artifact.path.read_bytes())

    def score_partition(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        model = model_from_bytes(broadcast.value, artifact.format)
        for batch in batches:
            yield score_pandas(batch, model, artifact.features)

    return users.select(schema.USER_ID, *artifact.features).mapInPandas(
        score_partition, f"{schema.USER_ID} long, {schema.SCORE} double"
    )


def _noop_scores(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """Cross the JVM/Python boundary and back without scoring: the fixed cost of the path."""
    import pyarrow as pa

    for batch in batches:
        yield pa.RecordBatch.from_arrays(
            [batch.column(schema.USER_ID), pa.nulls(batch.num_rows, pa.float64())],
            names=[schema.USER_ID, schema.SCORE],
        )


def _spark_pipeline(
    spark: SparkSession,
    input_path: str,
    models: str,
    output: str,
    impl: str = "python",
    threads: int = 0,
) -> None:
    from lib.registry import load_verified, resolve_artifact
    from lib.scoring import score_spark
    from lib.sinks import parquet_writer

    artifact = resolve_artifact("campaign_model_v1.cbm", models)
    users = spark.read.parquet(input_path)
    if impl == "scan":
        users.select(schema.USER_ID, *artifact.features).write.format("noop").mode(
            "overwrite"
        ).save()
        return
    if impl == "noop":
        users.select(schema.USER_ID, *artifact.features).mapInArrow(
            _noop_scores, f"{schema.USER_ID} long, {schema.SCORE} double"
        ).write.format("noop").mode("overwrite").save()
        return
    if impl == "pandas":
        scored = _score_with_pandas(spark, users, artifact)
    elif impl == "python":  # the job's path: pyarrow reads in the tasks, Spark writes
        from lib.parquet_source import scored_users

        scored = _job_rows(
            scored_users(
                spark,
                input_path,
                None,
                load_verified("campaign_model_v1.cbm", models),
                run=_run_columns(models),
            )
        )
    elif impl == "source":  # the same tasks started by a Spark Python data source
        from bench.python_source import data_source_scores

        verified = load_verified("campaign_model_v1.cbm", models)
        scored = data_source_scores(spark, input_path, None, verified)
    elif impl == "peer":
        from bench.peer import peer_scores

        scored = peer_scores(users, load_verified("campaign_model_v1.cbm", models), threads or 1)
    else:  # the old path, doing the job's work too
        verified = load_verified("campaign_model_v1.cbm", models)
        scored = _job_rows(score_spark(users, verified, threads or None, _run_columns(models)))
    # The job's paths write as the job does (lib.sinks.parquet_writer); the others as is.
    job_path = impl in ("python", "arrow")
    (parquet_writer(scored) if job_path else scored.write).mode("overwrite").parquet(output)


def _job_rows(scored: DataFrame) -> DataFrame:
    """The users' rows the job writes: without the tasks' summary rows of drift counts."""
    from lib.scoring import is_user_row
    from lib.spark import functions_for

    return scored.filter(is_user_row(functions_for(scored.sparkSession)))


def worker_spark(
    input_path: str,
    models: str,
    output: str,
    repeats: int,
    cold: bool,
    conf: dict[str, str] | None = None,
    impl: str = "python",
    threads: int = 0,
) -> dict:
    started = time.perf_counter()
    from lib.spark import build_spark

    spark = build_spark("bench-scoring", extra_conf=conf)
    session_seconds = time.perf_counter() - started
    written = input_path if impl in ("noop", "scan") else output  # the floors write nothing
    if cold:
        _spark_pipeline(spark, input_path, models, output, impl, threads)
        rows = spark.read.parquet(written).count()
        return {
            "rows": rows,
            "seconds": time.perf_counter() - started,
            "session_seconds": session_seconds,
        }
    _spark_pipeline(spark, input_path, models, output, impl, threads)  # warm-up: JIT, workers
    times = []
    for _ in range(repeats):
        begun = time.perf_counter()
        _spark_pipeline(spark, input_path, models, output, impl, threads)
        times.append(time.perf_counter() - begun)
    rows = spark.read.parquet(written).count()
    return {"rows": rows, "seconds": statistics.median(times), "all": times}


def worker_connect(input_path: str, models: str, output: str, repeats: int, remote: str) -> dict:
    """(d): one Spark Connect client session; the first run warms up, then median of repeats."""
    started = time.perf_counter()
    from lib.spark import connect_spark

    spark = connect_spark(remote)
    connect_seconds = time.perf_counter() - started
    begun = time.perf_counter()
    _spark_pipeline(spark, input_path, models, output)  # warm-up: the session's workers
    first_seconds = time.perf_counter() - begun
    times = []
    for _ in range(repeats):
        begun = time.perf_counter()
        _spark_pipeline(spark, input_path, models, output)
        times.append(time.perf_counter() - begun)
    rows = spark.read.parquet(output).count()
    spark.stop()
    return {
        "rows": rows,
        "seconds": statistics.median(times),
        "all": times,
        "connect_seconds": connect_seconds,
        "first_seconds": first_seconds,
    }


def worker_udf(input_path: str, models: str, rows: int) -> dict:
    from pyspark.sql import functions as F
    from pyspark.sql.types import DoubleType

    from lib.spark import build_spark

    spark = build_spark("bench-udf")
    model = _load_model(models)

    @F.udf(DoubleType())
    def score_one(*values: float) -> float:  # what not to do: one CatBoost call per row
        return float(model.predict_proba([list(values)])[0][1])

    users = spark.read.parquet(input_path).limit(rows).cache()
    users.count()
    spark.range(10).select(score_one(*[F.lit(1.0)] * len(FEATURES))).collect()  # warm-up
    started = time.perf_counter()
    count = users.select(score_one(*FEATURES).alias("s")).agg(F.sum("s")).collect()
    seconds = time.perf_counter() - started
    assert count
    return {"rows": rows, "seconds": seconds}


# ---- orchestration --------------------------------------------------------------------
LIMIT = "(a) single process (limit)"
WARM = "(b) Spark warm (classic)"
OLD = "(b0) old path: Spark reads, warm"
COLD = "(b) Spark cold (classic)"
CONNECT = "(d) Spark Connect warm"
PEER = "(e) peer: pandas_udf warm"
FLOOR = "floor: no-op Arrow round trip"
UDF = "(c) row-at-a-time UDF"

# What each change bought: warm runs of the Spark paths, one setting changed at a time.
VARIANTS: dict[str, list[str]] = {
    # The old path (Spark reads the Parquet in the JVM, Python scores over Arrow) as it grew.
    "mapInPandas, batch 10k (naive start)": [
        "--impl",
        "pandas",
        "--conf",
        "spark.sql.execution.arrow.maxRecordsPerBatch=10000",
    ],
    "mapInPandas, batch 100k": ["--impl", "pandas"],
    "mapInArrow, batch 100k (old path)": ["--impl", "arrow"],
    "+ batch 1M": [
        "--impl",
        "arrow",
        "--conf",
        "spark.sql.execution.arrow.maxRecordsPerBatch=1000000",
    ],
    "+ 2 CatBoost threads per task": ["--impl", "arrow", "--threads", "2"],
    "+ 4 input splits (16 MB)": [
        "--impl",
        "arrow",
        "--conf",
        "spark.sql.files.maxPartitionBytes=16m",
    ],
    # Python reads its own data: pyarrow in each task, only the scores cross to the JVM.
    "Python reads: data source (candidate)": ["--impl", "source"],
    "Python reads: mapInArrow over shares (project)": [],
    "+ uncompressed output": ["--conf", "spark.sql.parquet.compression.codec=uncompressed"],
    "+ lz4 output": ["--conf", "spark.sql.parquet.compression.codec=lz4_raw"],
    # The floor of any Python scoring through Spark on this machine: no CatBoost, no write.
    "floor: scan + no-op Arrow round trip": ["--impl", "noop"],
    "floor: scan only (noop sink)": ["--impl", "scan"],
}
# Variants that are the same measurement as a row of the main table (not measured twice).
SAME_AS = {
    "mapInArrow, batch 100k (old path)": OLD,
    "Python reads: mapInArrow over shares (project)": WARM,
    "floor: scan + no-op Arrow round trip": FLOOR,
}


def _ratios(us: float, refs: dict[str, float]) -> dict[str, float]:
    return {f"x_{name}": us / ref for name, ref in refs.items()}


def run_variants(
    source: Path, models: Path, repeats: int, refs: dict[str, float], known: dict[str, dict]
) -> list[dict]:
    """Warm runs of the classic path, one setting changed at a time; x limit, floor, peer."""
    rows = []
    for name, extra in VARIANTS.items():
        if name in SAME_AS and SAME_AS[name] in known:
            seconds, us = known[SAME_AS[name]]["seconds"], known[SAME_AS[name]]["us_per_row"]
        else:
            print(f"variant: {name} ...", flush=True)
            measured = run_measured(
                [
                    "-m",
                    "bench.scoring",
                    "--worker",
                    "spark",
                    "--input",
                    str(source),
                    "--models",
                    str(models),
                    "--repeats",
                    str(repeats),
                    "--output",
                    str(CACHE / "out" / "variant.parquet"),
                    *extra,
                ],
                env=WORKER_ENV,
            )
            r = measured.result
            seconds, us = r["seconds"], 1e6 * r["seconds"] / r["rows"]
        rows.append({"variant": name, "seconds": seconds, "us_per_row": us, **_ratios(us, refs)})
    print(
        f"\n{'Spark warm variant (classic)':<48}{'seconds':>9}{'µs/row':>8}"
        f"{'x limit':>9}{'x floor':>9}{'x peer':>8}"
    )
    for r in rows:
        print(
            f"{r['variant']:<48}{r['seconds']:>9.2f}{r['us_per_row']:>8.2f}"
            f"{r['x_limit']:>9.2f}{r['x_floor']:>9.2f}{r['x_peer']:>8.2f}"
        )
    return rows


def compare_outputs(single: Path, spark_out: Path) -> float:
    import pandas as pd

    a = pd.read_parquet(single).sort_values(schema.USER_ID).reset_index(drop=True)
    b = pd.read_parquet(spark_out).sort_values(schema.USER_ID).reset_index(drop=True)
    assert a[schema.USER_ID].equals(b[schema.USER_ID]), "different users scored"
    return float(np.max(np.abs(a[schema.SCORE].to_numpy() - b[schema.SCORE].to_numpy())))


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    names = [r["name"] for r in rows]
    ax.barh(names, [r["rows_per_s"] for r in rows], color="#4C72B0")
    ax.set_xscale("log")
    ax.set_xlabel("users scored per second (log scale)")
    ax.invert_yaxis()
    ax.set_title(f"Scoring throughput ({machine()})")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


# Spark's Python workers import bench.peer (the peer's per-worker model cache).
WORKER_ENV = {
    "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")]))
}


def measure(
    name: str, args: list[str], env: dict[str, str] | None = None, also: list[int] | None = None
) -> dict:
    """One path in its own process; its row of the table (ratios are added later)."""
    print(f"running {name} ...", flush=True)
    measured = run_measured(
        ["-m", "bench.scoring", *args], env={**WORKER_ENV, **(env or {})}, also=also or []
    )
    r = measured.result
    return {
        "name": name,
        "rows": r["rows"],
        "seconds": r["seconds"],
        "rows_per_s": r["rows"] / r["seconds"],
        "us_per_row": 1e6 * r["seconds"] / r["rows"],
        "peak_driver_mb": measured.peak_driver_mb,
        "peak_tree_mb": measured.peak_tree_mb,
        "detail": r,
    }


def measure_all(
    source: Path, models: Path, repeats: int, udf_rows: int, outputs: Path
) -> tuple[list[dict], dict[str, Path]]:
    """Every path of the main table; the Connect server runs only while (d) runs."""
    common = ["--input", str(source), "--models", str(models), "--repeats", str(repeats)]
    written = {
        LIMIT: outputs / "single.parquet",
        WARM: outputs / "spark.parquet",
        COLD: outputs / "spark_cold.parquet",
        CONNECT: outputs / "connect.parquet",
        OLD: outputs / "old.parquet",
        PEER: outputs / "peer.parquet",
    }
    rows = [
        measure(LIMIT, [*common, "--worker", "single", "--output", str(written[LIMIT])]),
        measure(WARM, [*common, "--worker", "spark", "--output", str(written[WARM])]),
        measure(COLD, [*common, "--worker", "spark-cold", "--output", str(written[COLD])]),
    ]
    root = Path(tempfile.mkdtemp(prefix="bench-connect-"))
    try:
        with connect_server(root) as server:
            pid = server.running_pid()
            rows.append(
                measure(
                    CONNECT,
                    [*common, "--worker", "connect", "--output", str(written[CONNECT])],
                    env={**server.client_env(), "CACHE_DIR": str(server.settings.cache_dir)},
                    also=[pid] if pid else [],
                )
            )
            rows[-1]["server_log"] = str(server.log_path)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    rows += [
        measure(
            OLD, [*common, "--worker", "spark", "--impl", "arrow", "--output", str(written[OLD])]
        ),
        measure(
            PEER, [*common, "--worker", "spark", "--impl", "peer", "--output", str(written[PEER])]
        ),
        measure(
            FLOOR,
            [*common, "--worker", "spark", "--impl", "noop", "--output", str(outputs / "noop")],
        ),
        measure(UDF, [*common, "--worker", "udf", "--udf-rows", str(udf_rows)]),
    ]
    return rows, written


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.scoring",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--n-users", type=int, default=2_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--udf-rows", type=int, default=100_000)
    parser.add_argument("--worker", choices=["single", "spark", "spark-cold", "connect", "udf"])
    parser.add_argument("--input")
    parser.add_argument("--models")
    parser.add_argument("--output")
    parser.add_argument(
        "--variants", action="store_true", help="also measure each Spark setting's effect (warm)"
    )
    parser.add_argument("--conf", action="append", default=[], help="worker: spark conf k=v")
    parser.add_argument(
        "--impl",
        choices=["python", "arrow", "pandas", "peer", "noop", "scan", "source"],
        default="python",
    )
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--remote", help="worker connect: sc:// URL (default: SPARK_REMOTE)")
    args = parser.parse_args()

    if args.worker:
        conf = dict(item.split("=", 1) for item in args.conf)
        if args.worker == "single":
            out = worker_single(args.input, args.models, args.output, args.repeats)
        elif args.worker == "udf":
            out = worker_udf(args.input, args.models, args.udf_rows)
        elif args.worker == "connect":
            remote = args.remote or os.environ["SPARK_REMOTE"]
            out = worker_connect(args.input, args.models, args.output, args.repeats, remote)
        else:
            out = worker_spark(
                args.input,
                args.models,
                args.output,
                args.repeats,
                cold=args.worker == "spark-cold",
                conf=conf,
                impl=args.impl,
                threads=args.threads,
            )
        print(json.dumps(out))
        return 0

    source, models = users_file(args.n_users), model_dir()
    outputs = CACHE / "out"
    outputs.mkdir(parents=True, exist_ok=True)
    rows, written = measure_all(source, models, args.repeats, args.udf_rows, outputs)
    by = {r["name"]: r for r in rows}
    refs = {
        "limit": by[LIMIT]["us_per_row"],
        "floor": by[FLOOR]["us_per_row"],
        "peer": by[PEER]["us_per_row"],
    }
    for r in rows:
        r.update(_ratios(r["us_per_row"], refs))
    diffs = {
        name: compare_outputs(written[LIMIT], path)
        for name, path in written.items()
        if name != LIMIT
    }
    identical = all(d == 0.0 for d in diffs.values())

    print(f"\nScoring {args.n_users:,} users; {machine()}; median of {args.repeats}")
    print(
        f"{'path':<34}{'rows':>11}{'seconds':>9}{'rows/s':>12}{'µs/row':>8}"
        f"{'x limit':>9}{'x floor':>9}{'x peer':>8}{'driver MB':>11}{'tree MB':>9}"
    )
    for r in rows:
        print(
            f"{r['name']:<34}{r['rows']:>11,}{r['seconds']:>9.2f}{r['rows_per_s']:>12,.0f}"
            f"{r['us_per_row']:>8.2f}{r['x_limit']:>9.2f}{r['x_floor']:>9.2f}{r['x_peer']:>8.2f}"
            f"{r['peak_driver_mb']:>11.0f}{r['peak_tree_mb']:>9.0f}"
        )
    warm, connect, udf, old = by[WARM], by[CONNECT], by[UDF], by[OLD]
    ratio_ba = warm["x_limit"]
    ratio_cb = warm["rows_per_s"] / udf["rows_per_s"]
    ratio_db = connect["us_per_row"] / warm["us_per_row"]
    detail = connect["detail"]
    targets = {
        "(b) classic warm / (a) limit": (warm["x_limit"], 1.5),
        "(d) Connect warm / (a) limit": (connect["x_limit"], 1.5),
        "(b) classic warm / (e) peer": (warm["x_peer"], 0.6),
        "(d) Connect warm / (e) peer": (connect["x_peer"], 0.6),
    }
    print()
    for name, (ratio, target) in targets.items():
        verdict = "met" if ratio <= target else "NOT met"
        print(f"{name:<32}{ratio:>6.2f}x   (target <= {target}x: {verdict})")
    print(
        f"{'(b0) old path / (a) limit':<32}{old['x_limit']:>6.2f}x   "
        f"(the new path takes {warm['seconds'] / old['seconds']:.0%} of its time)"
    )
    print(f"(b) warm vs (c) throughput:         {ratio_cb:,.0f}x faster   (target >= 50x)")
    print(f"(d) Connect warm / (b) classic warm: {ratio_db:.2f}x   (goal <= 1.10x)")
    print(
        f"(d) new client: connect {detail['connect_seconds']:.2f} s, first run "
        f"{detail['first_seconds']:.2f} s (server memory counted in its tree MB)"
    )
    for name, diff in diffs.items():
        print(f"max |score (a) - score {name}|: {diff:.3g}")
    print(f"scores identical across all paths: {identical}")
    payload = {
        "n_users": args.n_users,
        "machine": machine(),
        "repeats": args.repeats,
        "rows": rows,
        "ratio_b_over_a": ratio_ba,
        "ratio_b_vs_c": ratio_cb,
        "ratio_d_over_b": ratio_db,
        "targets": {name: {"ratio": r, "target": t} for name, (r, t) in targets.items()},
        "max_abs_diff": diffs,
        "identical": identical,
    }
    if args.variants:
        payload["variants"] = run_variants(source, models, args.repeats, refs, by)
    print(f"results: {save('scoring', payload)}")
    plot(rows, RESULTS / "scoring.png")
    print(f"plot: {RESULTS / 'scoring.png'}")
    if not identical:
        print("❌ scores differ between paths", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

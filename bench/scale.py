"""Scaling: Spark scoring cost per user and driver memory as the audience grows.

    python -m bench.scale [--sizes 10000000 30000000 100000000]

Each size is generated once in chunks (flat memory) and scored cold in a fresh process with
the default driver memory (the job's python-reads path -> write Parquet). Time per row
should stay flat (cost grows linearly) and so should the driver's peak memory: nothing is
collected to the driver.
"""

from __future__ import annotations

import argparse
import sys

from bench.common import CACHE, machine, model_dir, run_measured, save, users_file


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__)
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[10_000_000, 30_000_000, 100_000_000]
    )
    args = parser.parse_args()
    models = model_dir()
    rows = []
    for n in args.sizes:
        source = users_file(n)
        output = CACHE / "out" / f"scale_{n}.parquet"
        print(f"scoring {n:,} users ...", flush=True)
        measured = run_measured(
            [
                "-m",
                "bench.scoring",
                "--worker",
                "spark-cold",
                "--input",
                str(source),
                "--models",
                str(models),
                "--output",
                str(output),
                "--repeats",
                "1",
            ]
        )
        r = measured.result
        work = r["seconds"] - r["session_seconds"]
        rows.append(
            {
                "users": n,
                "rows_written": r["rows"],
                "seconds": r["seconds"],
                "scoring_seconds": work,
                "ns_per_row": 1e9 * work / n,
                "peak_driver_mb": measured.peak_driver_mb,
                "peak_tree_mb": measured.peak_tree_mb,
            }
        )
        assert r["rows"] == n, "every user must be scored"
    print(f"\nSpark scoring at scale (local[*], default driver memory); {machine()}")
    print(
        f"{'users':>13}{'total s':>9}{'scoring s':>11}{'ns/row':>8}{'driver MB':>11}{'tree MB':>9}"
    )
    for r in rows:
        print(
            f"{r['users']:>13,}{r['seconds']:>9.1f}{r['scoring_seconds']:>11.1f}"
            f"{r['ns_per_row']:>8.0f}{r['peak_driver_mb']:>11.0f}{r['peak_tree_mb']:>9.0f}"
        )
    print(f"results: {save('scale', {'machine': machine(), 'rows': rows})}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

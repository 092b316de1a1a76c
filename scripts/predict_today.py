"""The daily scoring job: lib.predict for today's snapshot (the UTC date when it starts).

    spark-submit scripts/predict_today.py --campaign-id 1 [lib.predict's other flags]
    # = spark-submit lib/predict.py --campaign-id 1 ... --as-of <today's UTC date>

k8s/scheduled-spark-application.yaml runs this file: the spark-operator passes a
ScheduledSparkApplication's arguments as written and cannot put the run's date in them, so
this wrapper adds ``--as-of`` itself. The date is read once, when the driver starts; a given
``--as-of`` is refused (a day other than today is a backfill: ``python -m lib.runner
--backfill FROM..TO``, or ``lib.predict --as-of`` once). Everything else, the exit codes
included, is lib.predict's.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path

if __package__ in (None, ""):  # run as a file (spark-submit scripts/predict_today.py)
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from lib import predict
from lib.errors import run_cli


def today_utc() -> date:
    return datetime.now(UTC).date()


def arguments(argv: Sequence[str], today: date) -> list[str]:
    """lib.predict's arguments for ``today``: ``argv`` and ``--as-of`` that date.

    ``argv`` is checked with lib.predict's own parser first (a bad flag exits 2, as there).
    """
    parser = predict.build_parser()
    parser.prog = "predict_today.py"
    if parser.parse_args(argv).as_of is not None:
        parser.error("the daily job scores today's snapshot: leave out --as-of")
    return [*argv, "--as-of", today.isoformat()]


def main(argv: Sequence[str] | None = None) -> int:
    given = sys.argv[1:] if argv is None else argv
    return predict.main(arguments(given, today_utc()))


if __name__ == "__main__":
    run_cli(main)

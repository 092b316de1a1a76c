"""Drift: is the population being scored still the one the model learned from?

At training, :func:`reference_profile` records for each feature (and for the model's scores)
ten bins cut at the training data's deciles and the share of rows in each, plus what the
input gate (:mod:`lib.gate`) checks: the kind of column, the share of nulls and the range
of values seen. The registry keeps it with the model.

Each run counts its audience into the same bins (in Spark's Python tasks, beside the
scoring, or in process: :class:`ProfileCounter`) and computes the population stability index
of every feature against the reference, and of its scores against the previous successful
run of the campaign::

    PSI = sum over bins of (actual - expected) * ln(actual / expected)

with the usual bands: below 0.1 stable, 0.1 to 0.25 watch, above 0.25 act. A plain numpy
PSI is enough here (Evidently's Spark engine does not run on Spark 4). Shares of zero are
floored at 0.0001, so an empty bin costs a finite, large PSI instead of infinity.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal

if TYPE_CHECKING:  # the registry (and so the API) reads references: no numpy, pandas, pyarrow
    import numpy as np
    import pandas as pd
    import pyarrow as pa

__all__ = [
    "ACT",
    "BINS",
    "DRIFT_BANDS",
    "SCORE",
    "WATCH",
    "Band",
    "ColumnReference",
    "DriftReport",
    "ProfileCounter",
    "Reference",
    "band",
    "drift_report",
    "merge_profiles",
    "psi",
    "range_key",
    "reference_profile",
    "shares",
]

BINS: Final = 10
WATCH: Final = 0.1
ACT: Final = 0.25
SCORE: Final = "prediction_score"  # the scores' entry in a profile (lib.schema.SCORE)
_FLOOR: Final = 1e-4

Band = Literal["stable", "watch", "act"]
DRIFT_BANDS: Final = "below 0.1 stable, 0.1 to 0.25 watch, above 0.25 act"


def band(value: float) -> Band:
    """The usual reading of a PSI: < 0.1 stable, 0.1-0.25 watch, > 0.25 act."""
    return "stable" if value < WATCH else "watch" if value <= ACT else "act"


def psi(expected: Sequence[float], actual: Sequence[float]) -> float:
    """Population stability index of ``actual`` shares against ``expected`` (same bins)."""
    import numpy as np

    if len(expected) != len(actual) or not expected:
        raise ValueError("PSI needs two share lists of the same, non-zero length")
    e = np.maximum(np.asarray(expected, dtype=np.float64), _FLOOR)
    a = np.maximum(np.asarray(actual, dtype=np.float64), _FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))


def _edges(values: np.ndarray) -> list[float]:
    """The nine inner bin edges at the deciles of ``values``."""
    import numpy as np

    if len(values) == 0:  # a column without values: ten empty bins
        return [0.0] * (BINS - 1)
    cuts = np.quantile(values, [i / BINS for i in range(1, BINS)], method="lower")
    # Tied deciles stay as repeated edges: always ten bins (a repeated edge's bin stays
    # empty on both sides and adds nothing to a PSI), so runs keep comparable shares.
    return [float(c) for c in cuts]


def shares(values: np.ndarray, edges: Sequence[float]) -> list[float]:
    """The share of ``values`` (nulls excluded) in each bin: ``value <= edge`` is left of it."""

    return _as_shares(_counts(values, edges))


def _counts(values: np.ndarray, edges: Sequence[float]) -> np.ndarray:
    import numpy as np

    # Bin k holds edge[k-1] < value <= edge[k]: the counts at or below each edge, differenced
    # (a count per edge is a fast vectorised pass; a binary search per value is 6x slower).
    at_or_below = [np.count_nonzero(values <= edge) for edge in edges]
    cumulative = np.array([0, *at_or_below, len(values)], dtype=np.int64)
    return np.diff(cumulative)


def _as_shares(counts: Sequence[int] | np.ndarray) -> list[float]:
    import numpy as np

    total = float(np.sum(counts))
    return [float(c) / total if total else 0.0 for c in counts]


def _number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{value!r} is not a finite number")
    return float(value)


@dataclass(frozen=True)
class ColumnReference:
    """What the training data looked like in one column."""

    kind: str  # "int" or "float": what the gate expects
    edges: list[float]
    shares: list[float]
    null_share: float
    min: float | None
    max: float | None

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "edges": self.edges,
            "shares": self.shares,
            "null_share": self.null_share,
            "min": self.min,
            "max": self.max,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], where: str) -> ColumnReference:
        """Read a reference as the registry stores it; ValueError unless every number is
        finite and in its range: a hand-edited reference must not switch a check off."""

        def numbers(key: str) -> list[float]:
            value = data[key]
            if not isinstance(value, list) or len(value) != (BINS - 1 if key == "edges" else BINS):
                raise ValueError(f"{key} must be a list of {BINS - 1 if key == 'edges' else BINS}")
            return [_number(x) for x in value]

        try:
            if not isinstance(data, Mapping):
                raise ValueError("not an object")
            edges, col_shares = numbers("edges"), numbers("shares")
            kind = data["kind"]
            null_share = _number(data["null_share"])
            low = None if data["min"] is None else _number(data["min"])
            high = None if data["max"] is None else _number(data["max"])
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"{where}: malformed reference ({err})") from None
        if kind not in ("int", "float"):
            raise ValueError(f"{where}: malformed reference (kind {kind!r})")
        if edges != sorted(edges):
            raise ValueError(f"{where}: malformed reference (edges out of order)")
        empty = null_share == 1 and not any(col_shares)  # a column without values
        if not all(0 <= x <= 1 for x in [*col_shares, null_share]) or not (
            empty or math.isclose(sum(col_shares), 1.0, abs_tol=1e-6)
        ):
            raise ValueError(f"{where}: malformed reference (shares must be 0..1 and add up to 1)")
        if (low is None) != (high is None) or (low is not None and high is not None and low > high):
            raise ValueError(f"{where}: malformed reference (min and max)")
        return cls(kind, edges, col_shares, null_share, low, high)


@dataclass(frozen=True)
class Reference:
    """The training data's profile: one :class:`ColumnReference` per feature, and the scores."""

    features: dict[str, ColumnReference]
    score: ColumnReference

    def to_json(self) -> dict[str, Any]:
        return {
            "features": {name: ref.to_json() for name, ref in self.features.items()},
            "score": self.score.to_json(),
        }

    @classmethod
    def from_json(cls, data: object) -> Reference:
        if not isinstance(data, Mapping) or not isinstance(data.get("features"), Mapping):
            raise ValueError("model reference: not a JSON object with features")
        features = {
            str(name): ColumnReference.from_json(ref, f"reference of {name}")
            for name, ref in data["features"].items()
        }
        return cls(features, ColumnReference.from_json(data.get("score", {}), "score reference"))


def _column_reference(values: pd.Series) -> ColumnReference:
    import numpy as np
    import pandas as pd

    kind = "int" if pd.api.types.is_integer_dtype(values) else "float"
    present = values.dropna().to_numpy(dtype=np.float64)
    edges = _edges(present)
    return ColumnReference(
        kind=kind,
        edges=edges,
        shares=shares(present, edges),
        null_share=float(values.isna().mean()) if len(values) else 0.0,
        min=float(present.min()) if len(present) else None,
        max=float(present.max()) if len(present) else None,
    )


def reference_profile(data: pd.DataFrame, features: Sequence[str], scores: np.ndarray) -> Reference:
    """The training data's profile (for drift and the input gate), kept by the registry."""
    import numpy as np
    import pandas as pd

    return Reference(
        features={name: _column_reference(data[name]) for name in features},
        score=_column_reference(pd.Series(np.asarray(scores, dtype=np.float64))),
    )


def range_key(feature: str) -> str:
    """A profile's entry for the gate's counts of ``feature`` (not a bin list)."""
    return f"{feature}|range"


class ProfileCounter:
    """Counts a run's audience into the reference's bins, batch by batch (any engine)."""

    def __init__(self, reference: Reference) -> None:
        import numpy as np

        self.reference = reference
        self.counts: dict[str, np.ndarray] = {
            name: np.zeros(len(ref.edges) + 1, dtype=np.int64)
            for name, ref in [*reference.features.items(), (SCORE, reference.score)]
        }
        # For the input gate (lib.gate): [below the training min, above its max, rows, nulls].
        for name in reference.features:
            self.counts[range_key(name)] = np.zeros(4, dtype=np.int64)

    def add(self, features: pa.Table | pa.RecordBatch, scores: np.ndarray) -> None:
        """One batch of audience rows (their feature columns) and their scores."""
        import numpy as np

        for name, ref in self.reference.features.items():
            if name in features.column_names:
                column = features.column(name)
                # Copies only where needed: nulls dropped if any, NaN only in floats
                # (integers compare with the float edges as they are).
                present = (column.drop_null() if column.null_count else column).to_numpy(
                    zero_copy_only=False
                )
                if present.dtype.kind == "f":
                    present = present[~np.isnan(present)]
                elif present.dtype.kind not in "iu":
                    present = present.astype(np.float64)  # decimals and the like
                self.counts[name] += _counts(present, ref.edges)
                low, high = ref.min, ref.max
                below = int(np.count_nonzero(present < low)) if low is not None else 0
                above = int(np.count_nonzero(present > high)) if high is not None else 0
                nulls = len(column) - len(present)
                self.counts[range_key(name)] += np.array([below, above, len(column), nulls])
        self.counts[SCORE] += _counts(
            np.asarray(scores, dtype=np.float64), self.reference.score.edges
        )

    def to_json(self) -> str:
        return json.dumps({name: counts.tolist() for name, counts in self.counts.items()})


def merge_profiles(texts: Sequence[str]) -> dict[str, list[int]]:
    """The sum of the tasks' counts (each a :meth:`ProfileCounter.to_json` text)."""
    import numpy as np

    total: dict[str, np.ndarray] = {}
    for text in texts:
        for name, counts in json.loads(text).items():
            array = np.asarray(counts, dtype=np.int64)
            total[name] = total[name] + array if name in total else array
    return {name: counts.tolist() for name, counts in total.items()}


@dataclass(frozen=True)
class DriftReport:
    """A run's PSI per feature (against training) and of its scores (against the last run)."""

    features: dict[str, float]
    score: float | None  # None: no earlier successful run with scores to compare with
    score_shares: list[float]  # this run's, kept in its run record for the next run

    @property
    def largest(self) -> float:
        values = [*self.features.values(), *([self.score] if self.score is not None else [])]
        return max(values, default=0.0)

    def crossed(self) -> list[tuple[str, float, Band]]:
        """What is outside the stable band, worst first."""
        rows = [(name, value, band(value)) for name, value in self.features.items()]
        if self.score is not None:
            rows.append(("scores (against the last run)", self.score, band(self.score)))
        return sorted([r for r in rows if r[2] != "stable"], key=lambda r: -r[1])

    def table(self) -> pd.DataFrame:
        import pandas as pd

        rows = [
            {"what": name, "compared with": "training", "psi": value, "band": band(value)}
            for name, value in self.features.items()
        ]
        if self.score is not None:
            rows.append(
                {
                    "what": "scores",
                    "compared with": "the last successful run",
                    "psi": self.score,
                    "band": band(self.score),
                }
            )
        return pd.DataFrame(rows, columns=["what", "compared with", "psi", "band"])


def drift_report(
    reference: Reference,
    counts: Mapping[str, Sequence[int]],
    previous_scores: Sequence[float] | None,
) -> DriftReport:
    """PSIs from a run's merged counts; features with no counted rows are left out."""

    features = {
        name: psi(ref.shares, _as_shares(counts[name]))
        for name, ref in reference.features.items()
        if name in counts and sum(counts[name]) > 0
    }
    score_shares = _as_shares(counts.get(SCORE, [0] * (len(reference.score.edges) + 1)))
    usable = previous_scores is not None and len(previous_scores) == len(score_shares)
    score = psi(previous_scores, score_shares) if usable and sum(score_shares) else None  # type: ignore[arg-type]
    return DriftReport(features=features, score=score, score_shares=score_shares)

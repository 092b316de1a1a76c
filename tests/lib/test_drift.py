"""lib.drift: reference bins at training, per-task counts, PSI and its bands."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from lib import schema
from lib.data import drifted, generate_users
from lib.drift import (
    SCORE,
    ProfileCounter,
    Reference,
    band,
    drift_report,
    merge_profiles,
    psi,
    range_key,
    reference_profile,
)

FEATURES = list(schema.FEATURES)


@pytest.fixture(scope="module")
def reference() -> Reference:
    users = generate_users(20_000, seed=7)
    return reference_profile(users, FEATURES, np.linspace(0, 1, len(users)))


def counted(reference: Reference, users: pd.DataFrame, scores: np.ndarray, tasks: int = 1):
    """The job's way: each task counts its rows, the driver merges the JSON texts."""
    texts = []
    for part, part_scores in zip(
        np.array_split(np.arange(len(users)), tasks), np.array_split(scores, tasks), strict=True
    ):
        counter = ProfileCounter(reference)
        counter.add(pa.Table.from_pandas(users.iloc[part], preserve_index=False), part_scores)
        texts.append(counter.to_json())
    return merge_profiles(texts)


def test_the_same_population_is_stable(reference: Reference) -> None:
    users = generate_users(20_000, seed=8)  # other users, same distribution
    report = drift_report(reference, counted(reference, users, np.linspace(0, 1, 20_000)), None)
    assert set(report.features) == set(FEATURES)
    assert report.largest < 0.1 and report.crossed() == []
    assert report.score is None  # no earlier run to compare the scores with


def test_a_drifted_population_crosses_the_act_band(reference: Reference) -> None:
    users = drifted(generate_users(20_000, seed=8), 1.0)
    report = drift_report(reference, counted(reference, users, np.linspace(0, 1, 20_000)), None)
    crossed = {name: level for name, _, level in report.crossed()}
    assert crossed.get("recency") == "act" and crossed.get("engagement_score") == "act"
    assert "frequency" not in crossed  # untouched by the drift: still stable


def test_counting_in_tasks_equals_counting_at_once(reference: Reference) -> None:
    users = generate_users(5_000, seed=9)
    scores = np.random.default_rng(1).random(5_000)
    assert counted(reference, users, scores, tasks=4) == counted(reference, users, scores)


def test_scores_are_compared_with_the_previous_run(reference: Reference) -> None:
    users = generate_users(5_000, seed=9)
    first = drift_report(reference, counted(reference, users, np.linspace(0, 1, 5_000)), None)
    same = drift_report(
        reference, counted(reference, users, np.linspace(0, 1, 5_000)), first.score_shares
    )
    assert same.score == pytest.approx(0.0)
    shifted = drift_report(
        reference, counted(reference, users, np.linspace(0.6, 1, 5_000)), first.score_shares
    )
    assert shifted.score is not None and shifted.score > 0.25


def test_values_outside_the_training_range_are_counted(reference: Reference) -> None:
    users = generate_users(1_000, seed=9)
    users.loc[:9, "frequency"] = 10_000  # ten users far above anything seen at training
    profile = counted(reference, users, np.zeros(1_000))
    below, above, rows, nulls = profile[range_key("frequency")]
    assert (below, above, rows, nulls) == (0, 10, 1_000, 0)


def test_psi_is_zero_for_equal_shares_and_grows_with_the_shift() -> None:
    base = [0.1] * 10
    assert psi(base, base) == 0
    assert 0 < psi(base, [0.12] * 5 + [0.08] * 5) < psi(base, [0.2] * 5 + [0.0] * 5)
    assert np.isfinite(psi(base, [1.0] + [0.0] * 9))  # an empty bin is floored, not infinite


@pytest.mark.parametrize(("value", "expected"), [(0.05, "stable"), (0.2, "watch"), (0.3, "act")])
def test_the_usual_bands(value: float, expected: str) -> None:
    assert band(value) == expected


def test_a_reference_survives_the_registry_json(reference: Reference) -> None:
    again = Reference.from_json(json.loads(json.dumps(reference.to_json())))
    assert again == reference
    for ref in [*reference.features.values(), reference.score]:
        assert ref.edges == sorted(ref.edges) and sum(ref.shares) == pytest.approx(1.0)
    assert reference.features["frequency"].kind == "int"
    assert reference.features["monetary"].kind == "float"


@pytest.mark.parametrize(
    "damage",
    [
        lambda r: r["features"]["recency"].update(edges=[3, 2, 1]),
        lambda r: r["features"]["recency"].update(shares=[1.0]),
        lambda r: r["features"]["recency"].update(kind="text"),
        lambda r: r["features"]["recency"].pop("min"),
        lambda r: r.update(features=[]),
        lambda r: r["features"]["recency"]["shares"].__setitem__(0, float("nan")),
        lambda r: r["features"]["recency"].update(null_share=7),
        lambda r: r["features"]["recency"].update(min=10, max=1),
        lambda r: r["features"]["recency"].update(edges="12"),
        lambda r: r["features"]["recency"].update(edges=list(range(10**4))),
        lambda r: r["score"].update(shares=[0.5] * 10),
    ],
)
def test_a_damaged_reference_is_refused(reference: Reference, damage) -> None:
    data = json.loads(json.dumps(reference.to_json()))
    damage(data)
    with pytest.raises(ValueError, match="reference"):
        Reference.from_json(data)


def test_the_score_bins_come_from_training(reference: Reference) -> None:
    assert len(reference.score.shares) == 10
    profile = counted(reference, generate_users(100, seed=1), np.full(100, 0.99))
    assert sum(profile[SCORE]) == 100

"""lib.exercises: each check says "Not yet" to the placeholder and to a plausible wrong answer,
"Correct" to the right one, in one plain line, and never raises (no kernel: plain print)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from statistics import NormalDist
from typing import Any

import ibis
import numpy as np
import pandas as pd
import pytest

from lib import exercises, gains, schema
from lib.data import generate_users, write_users
from tests.helpers import emoji_in

PLACEHOLDER = "Not yet: replace None"


@pytest.fixture
def verdict(capsys: pytest.CaptureFixture[str]) -> Callable[..., str]:
    """Run a check and return the one line it printed."""

    def run(check: Callable[..., None], *args: Any) -> str:
        assert check(*args) is None
        out = capsys.readouterr().out
        assert out.count("\n") == 1, out
        return out.strip()

    return run


@pytest.fixture(scope="module")
def training() -> pd.DataFrame:
    return generate_users(4_000, seed=7, labelled=True)


@pytest.fixture(scope="module")
def users() -> pd.DataFrame:
    return generate_users(1_000, seed=42)


@pytest.fixture(scope="module")
def users_duck(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    path = tmp_path_factory.mktemp("users") / "users.parquet"
    write_users(path, 800, seed=3)
    con = ibis.duckdb.connect()
    yield con.read_parquet(str(path))
    con.disconnect()


def test_engaged_rate(verdict: Callable[..., str], training: pd.DataFrame) -> None:
    check = exercises.check_engaged_rate
    engaged = training["engagement_score"] >= 0.6
    right = training.loc[engaged, schema.LABEL].mean()
    assert verdict(check, None, training).startswith(PLACEHOLDER)
    overall = verdict(check, training[schema.LABEL].mean(), training)
    assert overall.startswith("Not yet") and "engagement_score >= 0.6" in overall
    assert "percentage" in verdict(check, right * 100, training)
    assert verdict(check, training.loc[engaged, schema.LABEL], training).startswith("Not yet")
    assert verdict(check, right, training).startswith("Correct")
    assert verdict(check, round(float(right), 3), training).startswith("Correct")


def test_lapsed_count(verdict: Callable[..., str], users: pd.DataFrame) -> None:
    check = exercises.check_lapsed_count
    days = users["days_since_last_purchase"]
    assert verdict(check, None, users).startswith(PLACEHOLDER)
    assert "> 365" in verdict(check, int((days >= 365).sum()), users)
    assert verdict(check, float((days > 365).mean()), users).startswith("Not yet")
    right = verdict(check, int((days > 365).sum()), users)
    assert right.startswith("Correct") and "frequency 0" in right


def test_top_decile_lift(verdict: Callable[..., str]) -> None:
    check = exercises.check_top_decile_lift
    rng = np.random.default_rng(0)
    scores = rng.random(800)
    labels = (rng.random(800) < scores * 0.6).astype(int)
    best = np.argsort(-scores)[:80]
    assert verdict(check, None, scores, labels).startswith(PLACEHOLDER)
    rate = verdict(check, labels[best].mean(), scores, labels)  # forgot to divide
    assert rate.startswith("Not yet") and "divide" in rate
    worst = np.argsort(scores)[:80]
    assert verdict(check, labels[worst].mean() / labels.mean(), scores, labels).startswith(
        "Not yet"
    )
    # By quantile rather than by rank: the same users up to ties, also right.
    top = scores >= np.quantile(scores, 0.9)
    assert verdict(check, labels[top].mean() / labels.mean(), scores, labels).startswith("Correct")
    assert verdict(check, labels[best].mean() / labels.mean(), scores, labels).startswith("Correct")


def test_german_filter(verdict: Callable[..., str]) -> None:
    check = exercises.check_german_filter
    sample = generate_users(exercises.SAMPLE_USERS, exercises.SAMPLE_SEED)
    # The sample tells > from >=: it holds German users aged exactly 30.
    assert ((sample["country"] == "DE") & (sample["age"] == 30)).any()
    assert verdict(check, None).startswith(PLACEHOLDER)
    assert "aged exactly 30" in verdict(check, "country = 'DE' AND age > 30")
    assert "outside Germany" in verdict(check, "age >= 30")
    assert "under 30" in verdict(check, "country = 'DE'")
    refused = verdict(check, "country = 'DE' AND reflect('java.lang.Runtime', 'getRuntime')")
    assert refused.startswith("Not yet: the API would refuse it")
    assert verdict(check, 30).startswith("Not yet")
    assert verdict(check, "country = 'DE' AND age >= 30").startswith("Correct")
    assert verdict(check, "age >= 30 AND country IN ('DE')").startswith("Correct")


def test_young_europeans_filter(verdict: Callable[..., str], users_duck: Any) -> None:
    check = exercises.check_young_europeans_filter
    assert verdict(check, None, users_duck).startswith(PLACEHOLDER)
    off_by_one = verdict(check, "country IN ('FR', 'DE') AND age < 30", users_duck)
    assert off_by_one.startswith("Not yet") and "aged exactly 30" in off_by_one
    assert "outside FR and DE" in verdict(check, "age BETWEEN 18 AND 30", users_duck)
    assert verdict(check, "country = 'FR' AND", users_duck).startswith("Not yet: the API")
    right = verdict(check, "country IN ('FR', 'DE') AND age BETWEEN 18 AND 30", users_duck)
    assert right.startswith("Correct")
    assert verdict(
        check, "(country = 'DE' OR country = 'FR') AND age <= 30", users_duck
    ).startswith("Correct")


def test_top_deciles_expected(verdict: Callable[..., str]) -> None:
    check = exercises.check_top_deciles_expected
    deciles = gains.decile_aggregates(np.random.default_rng(2).random(500))
    top = float(deciles.loc[deciles["decile"] <= 3, "expected"].sum())
    assert verdict(check, None, deciles).startswith(PLACEHOLDER)
    assert "whole audience" in verdict(check, float(deciles["expected"].sum()), deciles)
    assert "counts users" in verdict(check, 150, deciles)
    assert verdict(check, top, deciles).startswith("Correct")
    assert verdict(check, round(top, 1), deciles).startswith("Correct")
    # An empty audience (a filter that matches nobody): still one line, never an error.
    empty = deciles.iloc[0:0]
    assert verdict(check, None, empty).startswith(PLACEHOLDER)
    assert verdict(check, 0.0, empty).startswith("Correct")


def test_lift_interval(verdict: Callable[..., str]) -> None:
    check = exercises.check_lift_interval
    rng = np.random.default_rng(3)
    group = np.where(rng.random(6_000) < 0.2, "control", "treatment")
    converted = rng.random(6_000) < np.where(group == "treatment", 0.3, 0.25)
    outcomes = pd.DataFrame({schema.GROUP: group, schema.LABEL: converted})
    t, c = converted[group == "treatment"], converted[group == "control"]
    uplift = t.mean() - c.mean()
    se = (t.mean() * (1 - t.mean()) / len(t) + c.mean() * (1 - c.mean()) / len(c)) ** 0.5
    z = NormalDist().inv_cdf(0.975)
    assert verdict(check, None, outcomes, 0.95).startswith(PLACEHOLDER)
    one_se = verdict(check, (uplift - se, uplift + se), outcomes, 0.95)
    assert one_se.startswith("Not yet") and "z = 1.96" in one_se
    assert "swapped" in verdict(check, (uplift + z * se, uplift - z * se), outcomes, 0.95)
    assert verdict(check, uplift, outcomes, 0.95).startswith("Not yet")
    right = verdict(check, (uplift - z * se, uplift + z * se), outcomes, 0.95)
    assert right.startswith("Correct")
    assert verdict(check, [uplift - 1.96 * se, uplift + 1.96 * se], outcomes, 0.95).startswith(
        "Correct"
    )


@pytest.mark.parametrize(
    "answer", ["0.3", [], {}, float("nan"), True, pd.DataFrame(), object(), (1, "a"), b"x"]
)
def test_a_check_never_raises_whatever_the_answer(
    verdict: Callable[..., str], answer: Any, users_duck: Any
) -> None:
    frame = generate_users(200, seed=1, labelled=True)
    deciles = gains.decile_aggregates(np.linspace(0, 1, 50))
    outcomes = pd.DataFrame({schema.GROUP: ["treatment", "control"] * 5, schema.LABEL: [1, 0] * 5})
    calls: list[tuple[Callable[..., None], tuple[Any, ...]]] = [
        (exercises.check_engaged_rate, (frame,)),
        (exercises.check_lapsed_count, (frame,)),
        (exercises.check_top_decile_lift, (np.linspace(0, 1, 50), np.arange(50) % 2)),
        (exercises.check_german_filter, ()),
        (exercises.check_young_europeans_filter, (users_duck,)),
        (exercises.check_top_deciles_expected, (deciles,)),
        (exercises.check_lift_interval, (outcomes, 0.95)),
    ]
    for check, data in calls:
        assert verdict(check, answer, *data).startswith("Not yet"), check.__name__


def test_the_checks_write_no_emoji() -> None:
    assert emoji_in("\u2705 done \U0001f4c4") == ["\u2705", "\U0001f4c4"]  # the test sees them
    assert emoji_in(Path(exercises.__file__).read_text(encoding="utf-8")) == []

"""lib.gains: deciles, expected conversions, cumulative gains and lift (pure pandas)."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from lib import gains


def test_deciles_by_rank_put_the_best_tenth_in_decile_1() -> None:
    scores = np.linspace(0.0, 1.0, 1_000)
    deciles = gains.assign_deciles(scores)
    assert deciles.value_counts().to_dict() == dict.fromkeys(range(1, 11), 100)
    assert deciles.iloc[-1] == 1 and deciles.iloc[0] == 10  # highest score: decile 1
    assert gains.assign_deciles([]).empty


def test_gains_table_expected_conversions_and_lift() -> None:
    aggregates = pd.DataFrame(
        {"decile": [2, 1], "users": [100, 100], "expected": [20.0, 60.0]}  # unsorted on purpose
    )
    table = gains.gains_table(aggregates)
    assert table["decile"].tolist() == [1, 2]
    assert table["expected"].sum() == pytest.approx(80.0)
    assert table["cum_gain"].tolist() == pytest.approx([0.75, 1.0])
    assert table["cum_users_share"].tolist() == pytest.approx([0.5, 1.0])
    assert table["lift"].tolist() == pytest.approx([1.5, 0.5])  # mean 0.6 and 0.2 vs 0.4
    assert table["cum_lift"].tolist() == pytest.approx([1.5, 1.0])
    assert gains.contact_advice(table, top=1) == (
        "Contact the top decile: 100 users (50.0% of the audience), "
        "75.0% of expected conversions (60.0 of 80.0)."
    )


def test_with_labels_the_actual_gains_follow_the_converters() -> None:
    rng = np.random.default_rng(1)
    scores = rng.random(2_000)
    labels = (rng.random(2_000) < scores).astype(int)  # calibrated by construction
    table = gains.gains_table(gains.decile_aggregates(scores, labels=labels))
    assert table["users"].sum() == 2_000
    assert table["converted"].sum() == labels.sum()
    assert table["cum_actual_gain"].iloc[-1] == pytest.approx(1.0)
    assert table["actual_lift"].iloc[0] > 1.5 > 0.5 > table["actual_lift"].iloc[-1]
    # Honest probabilities: expected and actual gains agree closely.
    assert np.abs(table["cum_gain"] - table["cum_actual_gain"]).max() < 0.05
    assert list(gains.display_table(table).columns)[-1] == "cumulative gain (actual)"


def test_the_jobs_own_deciles_are_kept() -> None:
    table = gains.gains_table(gains.decile_aggregates([0.9, 0.8, 0.1], deciles=[1, 1, 2]))
    assert table["users"].tolist() == [2, 1]
    assert table["min_score"].tolist() == pytest.approx([0.8, 0.1])


def test_an_empty_audience_gives_an_empty_table_and_says_so() -> None:
    table = gains.gains_table(pd.DataFrame(columns=["decile", "users", "expected"]))
    assert table.empty and "cum_gain" in table.columns
    assert "nobody to contact" in gains.contact_advice(table)


def test_display_table_formats_numbers_for_people() -> None:
    aggregates = pd.DataFrame(
        {
            "decile": [1, 2],
            "users": [12_345, 12_345],
            "expected": [4_321.25, 1_000.0],
            "min_score": [0.31234, 0.1],
            "max_score": [0.91234, 0.3],
        }
    )
    shown = gains.display_table(gains.gains_table(aggregates))
    first = shown.loc["1"]
    assert first["users"] == "12,345"
    assert first["expected conversions"] == "4,321.2"
    assert first["score range"] == "0.312 – 0.912"
    assert first["share of audience"] == "50.0%"
    assert first["cumulative gain"] == "81.2%"
    assert first["mean score"] == "0.350"


def _deciles(users: list[int], expected: list[float]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "decile": range(1, 11),
            "users": users,
            "expected": expected,
            "min_score": 0.0,
            "max_score": 1.0,
        }
    )


def test_advice_never_says_contact_nobody_when_ties_empty_the_top_deciles() -> None:
    """All-equal scores put every user in one decile (the job's deciles rank by cut points):
    the advice names the deciles that hold users, never "the top 3 deciles: 0 users"."""
    tied = gains.gains_table(_deciles([0] * 9 + [50], [0.0] * 9 + [10.0]))
    advice = gains.contact_advice(tied)
    assert not re.search(r"(?<![\d,])0 users", advice)
    assert "decile 10: 50 users (100.0% of the audience)" in advice
    small = gains.gains_table(
        _deciles([0, 0, 0, 1, 0, 0, 1, 0, 0, 1], [0, 0, 0, 0.5, 0, 0, 0.3, 0, 0, 0.1])
    )
    assert "decile 4: 1 users" in gains.contact_advice(small)


def test_advice_for_a_full_audience_is_the_top_three_deciles() -> None:
    table = gains.gains_table(_deciles([100] * 10, [10.0 - i for i in range(10)]))
    assert gains.contact_advice(table).startswith("Contact the top 3 deciles: 300 users (30.0%")


def test_uneven_but_full_top_deciles_are_still_the_top_three() -> None:
    """Cut points make deciles of slightly different sizes: still "the top 3 deciles"."""
    users = [9, 10, 10, 11, 10, 10, 10, 10, 10, 10]  # deciles 1-3 hold 29%
    table = gains.gains_table(_deciles(users, [float(10 - i) for i in range(10)]))
    assert gains.contact_advice(table).startswith("Contact the top 3 deciles: 29 users (29.0%")


def test_advice_counts_treatment_users_only_and_says_who_is_held_out() -> None:
    table = gains.gains_table(
        pd.DataFrame(
            {
                "decile": list(range(1, 11)),
                "users": [10] * 10,
                "expected": [5.0, 4, 3, 2, 1, 1, 1, 1, 1, 1],
                "control": [1, 2, 0, 1, 1, 1, 1, 1, 1, 1],
                "control_expected": [0.5, 0.8, 0.0, 0.2, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1],
            }
        )
    )
    advice = gains.contact_advice(table, 3)
    # Deciles 1-3 hold 30 users, 3 of them held out: 27 to contact; expected 12 - 1.3 of 20 - 2.1.
    assert advice.startswith("Contact the top 3 deciles: 27 users (27.0% of the audience)")
    assert "(10.7 of 17.9)" in advice  # the treatment users' expected conversions
    assert "3 more users of those deciles are held out as the control group" in advice


def test_the_table_can_say_who_it_counts() -> None:
    """Notebook 02's deciles are its test set, not a campaign's audience: it says so."""
    table = gains.gains_table(
        gains.decile_aggregates(np.linspace(0.0, 1.0, 100), labels=np.arange(100) % 2)
    )
    advice = gains.contact_advice(table, top=3, population="test set")
    assert "30.0% of the test set" in advice and "audience" not in advice
    assert "share of test set" in gains.display_table(table, population="test set").columns
    import matplotlib.pyplot as plt

    ax = gains.plot_gains(table, population="test set")
    assert ax.get_xlabel() == "share of the test set contacted (best deciles first)"
    plt.close(ax.figure)

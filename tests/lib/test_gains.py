"""lib.gains: deciles, expected conversions, cumulative gains and lift (pure pandas)."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from lib import gains
from lib.errors import InvalidInputError


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
    assert "nobody to contact" in gains.contact_advice(table, 3)


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
    advice = gains.contact_advice(tied, 3)
    assert not re.search(r"(?<![\d,])0 users", advice)
    assert "decile 10: 50 users (100.0% of the audience)" in advice
    small = gains.gains_table(
        _deciles([0, 0, 0, 1, 0, 0, 1, 0, 0, 1], [0, 0, 0, 0.5, 0, 0, 0.3, 0, 0, 0.1])
    )
    assert "decile 4: 1 users" in gains.contact_advice(small, 3)


def test_advice_for_a_full_audience_is_the_top_three_deciles() -> None:
    table = gains.gains_table(_deciles([100] * 10, [10.0 - i for i in range(10)]))
    assert gains.contact_advice(table, 3).startswith("Contact the top 3 deciles: 300 users (30.0%")


def test_uneven_but_full_top_deciles_are_still_the_top_three() -> None:
    """Cut points make deciles of slightly different sizes: still "the top 3 deciles"."""
    users = [9, 10, 10, 11, 10, 10, 10, 10, 10, 10]  # deciles 1-3 hold 29%
    table = gains.gains_table(_deciles(users, [float(10 - i) for i in range(10)]))
    assert gains.contact_advice(table, 3).startswith("Contact the top 3 deciles: 29 users (29.0%")


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


# ---- the contact budget --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("budget", "count", "share"),
    [
        ("500", 500, None),
        ("1,000", 1_000, None),
        ("1_000", 1_000, None),
        (" 7 ", 7, None),
        (500, 500, None),  # papermill's `-p contact_budget 500` is an int
        ("30%", None, 0.3),
        ("2.5 %", None, 0.025),
        ("100%", None, 1.0),
    ],
)
def test_a_budget_is_a_number_of_contacts_or_a_share(
    budget: str | int, count: int | None, share: float | None
) -> None:
    rule = gains.parse_contact_budget(budget)
    assert (rule.count, rule.share) == (count, pytest.approx(share) if share else None)
    assert gains.parse_contact_budget(rule) is rule


@pytest.mark.parametrize(
    "budget",
    [
        *["", "0", "000", "0%", "150%", "-5", "3.5", "0.3", "abc", 0, -1, 0.3, True],
        *["٣٠", "３0%", "9" * 5000, "1" * 31],  # other scripts' digits; absurd lengths
    ],
)
def test_a_bad_budget_is_refused_in_one_line(budget: object) -> None:
    with pytest.raises(InvalidInputError) as err:
        gains.parse_contact_budget(budget)
    message = str(err.value)
    assert "\n" not in message and "e.g. 500" in message and "e.g. 30%" in message
    assert err.value.exit_code == 2


def test_the_default_budget_is_the_share_of_the_top_three_deciles() -> None:
    rule = gains.parse_contact_budget(gains.DEFAULT_CONTACT_BUDGET)
    assert rule.share == pytest.approx(0.3)
    assert rule.contacts(1_000) == 300


def test_a_rule_never_contacts_more_than_there_are_and_a_share_at_least_one() -> None:
    assert gains.parse_contact_budget("500").contacts(120) == 120
    assert gains.parse_contact_budget("500").contacts(0) == 0
    assert gains.parse_contact_budget("30%").contacts(7) == 2  # 2.1 rounds to 2
    assert gains.parse_contact_budget("30%").contacts(5) == 2  # 1.5 rounds up
    assert gains.parse_contact_budget("1%").contacts(30) == 1  # 0.3: one, not nobody


def _holdout_table() -> pd.DataFrame:
    """Ten deciles of 100 users, 10 of each held out; scores fall by decile."""
    means = [0.9 - 0.08 * i for i in range(10)]
    return gains.gains_table(
        pd.DataFrame(
            {
                "decile": range(1, 11),
                "users": [100] * 10,
                "expected": [100 * m for m in means],
                "control": [10] * 10,
                "control_expected": [10 * m for m in means],
            }
        )
    )


def test_the_plan_counts_treatment_users_only_and_follows_the_budget() -> None:
    table = _holdout_table()
    plan = gains.plan_contacts(table, "135")
    assert (plan.contacts, plan.eligible, plan.held_out) == (135, 900, 100)
    # Decile 1 in full (90 users, 81.0), then half of decile 2 (45 of 90 users at 0.82).
    assert plan.expected == pytest.approx(81.0 + 45 * 0.82)
    assert plan.eligible_expected == pytest.approx(sum(90 * (0.9 - 0.08 * i) for i in range(10)))
    assert not plan.exact
    advice = plan.advice()
    assert advice.startswith("Contact the 135 best-scoring treatment users (your budget: 135 ")
    assert "the best 15.0% of the 900 treatment users (the top 1.5 deciles)" in advice
    assert "hold about" in advice and "times what contacting as many users at random" in advice
    assert "100 more users of the audience are held out as the control group" in advice
    exact = plan.with_exact_expected(118.0)
    assert exact.exact and exact.expected == 118.0 and "hold about" not in exact.advice()


def test_the_default_plan_says_it_is_the_default_and_matches_the_top_three_deciles() -> None:
    table = _holdout_table()
    plan = gains.plan_contacts(table)
    assert plan.contacts == 270  # 30% of the 900 treatment users: deciles 1-3's
    assert plan.expected == pytest.approx(90 * (0.9 + 0.82 + 0.74))
    assert "the default budget: 30% of the treatment group, the size of the top 3" in plan.advice()


def test_a_budget_larger_than_the_treatment_group_contacts_everyone_and_says_so() -> None:
    advice = gains.plan_contacts(_holdout_table(), "5,000").advice()
    assert advice.startswith("Contact all 900 treatment users (your budget: 5,000 contacts, more")


def test_a_plan_for_nobody_says_so() -> None:
    empty = gains.gains_table(pd.DataFrame(columns=["decile", "users", "expected"]))
    assert "nobody to contact" in gains.plan_contacts(empty, "500").advice()
    all_held = gains.gains_table(
        pd.DataFrame(
            {
                "decile": [1],
                "users": [3],
                "expected": [1.0],
                "control": [3],
                "control_expected": [1.0],
            }
        )
    )
    plan = gains.plan_contacts(all_held, "30%")
    assert plan.contacts == 0 and "All 3 users of the audience are held out" in plan.advice()


# ---- small audiences ---------------------------------------------------------------------------
def test_a_small_audience_gets_a_caveat_that_says_how_noisy_its_deciles_are() -> None:
    """38 users: deciles of 3 to 4, where one converter moves a lift by about 1."""
    scores = np.linspace(0.05, 0.6, 38)
    table = gains.gains_table(gains.decile_aggregates(scores))
    caveat = gains.small_audience_caveat(table)
    assert caveat is not None
    assert caveat.startswith("A small audience: 38 users, so its deciles hold only 3 to 4 users")
    assert "one converter more or fewer moves its lift by" in caveat
    assert f"lifts like {table['lift'].max():.2f}×" in caveat
    assert "anywhere from" in caveat and "(95% of the time)" in caveat


def test_the_caveat_threshold_is_a_hundred_users_per_decile() -> None:
    assert gains.SMALL_DECILE == 100
    full = gains.gains_table(gains.decile_aggregates(np.linspace(0.0, 1.0, 1_000)))
    assert gains.small_audience_caveat(full) is None  # deciles of 100
    short = gains.gains_table(gains.decile_aggregates(np.linspace(0.0, 1.0, 999)))
    assert gains.small_audience_caveat(short) is not None  # a decile of 99
    empty = gains.gains_table(pd.DataFrame(columns=["decile", "users", "expected"]))
    assert gains.small_audience_caveat(empty) is None

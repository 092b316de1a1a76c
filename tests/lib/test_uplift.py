"""lib.uplift and lib.data.simulate_outcomes: the measured effect recovers the true one."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from lib import schema
from lib.data import SEGMENTS, generate_users, simulate_outcomes, treatment_effect
from lib.holdout import is_control
from lib.uplift import (
    detectable_uplift,
    measure_lift,
    qini_curve,
    required_audience,
    uplift_by_decile,
)


def scored(n: int, share: float, campaign: int = 1) -> tuple[pd.DataFrame, pd.DataFrame]:
    users = generate_users(n, seed=5)
    control = is_control(campaign, users[schema.USER_ID].to_numpy(), share)
    predictions = pd.DataFrame(
        {
            schema.USER_ID: users[schema.USER_ID],
            schema.GROUP: np.where(control, "control", "treatment"),
        }
    )
    return predictions, users


def test_outcomes_are_reproducible_and_independent_of_row_order() -> None:
    predictions, users = scored(5_000, 0.2)
    first = simulate_outcomes(predictions, users, seed=3)
    again = simulate_outcomes(predictions.iloc[::-1], users, seed=3).iloc[::-1]
    pd.testing.assert_frame_equal(first, again.reset_index(drop=True))
    other = simulate_outcomes(predictions, users, seed=4)
    assert not first[schema.LABEL].equals(other[schema.LABEL])


def test_only_treatment_users_get_the_effect_of_contact() -> None:
    predictions, users = scored(5_000, 0.5)
    outcomes = simulate_outcomes(predictions, users)
    assert set(outcomes["segment"]) == set(SEGMENTS)
    # Everybody has a true effect; a control user's conversion ignores it: switching a
    # user's group changes their outcome only through it.
    flipped = predictions.assign(
        group=np.where(predictions[schema.GROUP] == "control", "treatment", "control")
    )
    other = simulate_outcomes(flipped, users)
    changed = outcomes[schema.LABEL] != other[schema.LABEL]
    assert (outcomes.loc[changed, "true_effect"] != 0).all()


def test_the_measured_lift_recovers_the_true_effect_within_its_interval() -> None:
    predictions, users = scored(200_000, 0.2)
    outcomes = simulate_outcomes(predictions, users)
    lift = measure_lift(outcomes)
    true = outcomes.loc[outcomes[schema.GROUP] == "treatment", "true_effect"].mean()
    assert lift.low <= true <= lift.high
    assert lift.significant and lift.uplift > 0
    assert lift.incremental_conversions == pytest.approx(lift.uplift * lift.treatment_users)


def test_the_highest_propensity_is_not_the_highest_uplift() -> None:
    users = generate_users(50_000, seed=5)
    effect, _ = treatment_effect(users)
    from lib.data import conversion_probability

    deciles = pd.qcut(-conversion_probability(users), 10, labels=range(1, 11))
    by_decile = pd.Series(effect).groupby(np.asarray(deciles)).mean()
    assert by_decile.idxmax() != 1 and by_decile[1] < by_decile.max() / 3


def test_lift_and_interval_on_known_counts() -> None:
    outcomes = pd.DataFrame(
        {
            schema.GROUP: ["treatment"] * 1000 + ["control"] * 1000,
            schema.LABEL: [True] * 300 + [False] * 700 + [True] * 200 + [False] * 800,
        }
    )
    lift = measure_lift(outcomes)
    assert (lift.treatment_rate, lift.control_rate) == (0.3, 0.2)
    margin = 1.959964 * math.sqrt(0.3 * 0.7 / 1000 + 0.2 * 0.8 / 1000)
    assert lift.uplift == pytest.approx(0.1)
    assert (lift.low, lift.high) == pytest.approx((0.1 - margin, 0.1 + margin), rel=1e-6)
    assert lift.relative_lift == pytest.approx(0.5)


def test_uplift_by_decile_and_the_qini_curve() -> None:
    outcomes = pd.DataFrame(
        {
            schema.GROUP: ["treatment", "control"] * 4,
            schema.LABEL: [True, False, True, True, False, False, True, False],
            "true_effect": [0.1] * 8,
        }
    )
    deciles = pd.Series([1, 1, 1, 1, 2, 2, 2, 2])
    table = uplift_by_decile(outcomes, deciles)
    assert table["decile"].tolist() == [1, 2]
    assert table["uplift"].tolist() == [0.5, 0.5]
    curve = qini_curve(table)
    # Top decile: 2 treatment conversions, control rate 1/2 over 2 treated -> 1 added.
    assert curve["incremental_conversions"].tolist() == [0.0, 1.0, 2.0]
    assert curve["contacted_share"].tolist() == [0.0, 0.5, 1.0]


def test_the_power_calculation_is_consistent() -> None:
    need = required_audience(0.2, 0.02, 0.1)
    assert detectable_uplift(0.2, need, 0.1) == pytest.approx(0.02, rel=0.01)
    assert required_audience(0.2, 0.02, 0.5) < need  # a balanced split needs fewer users
    assert detectable_uplift(0.2, 300, 0.1) > 0.15  # a small audience sees only large effects
    assert detectable_uplift(0.2, 0, 0.1) == math.inf

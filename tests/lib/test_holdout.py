"""lib.holdout: a user's group is a fixed, uniform function of the campaign and user ids."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest

from lib.holdout import CONTROL, TREATMENT, holdout_draw, is_control, with_groups

IDS = np.arange(1, 200_001, dtype=np.int64)


@pytest.mark.parametrize("share", [0.05, 0.1, 0.25, 0.5])
def test_the_share_held_out_is_met_within_binomial_tolerance(share: float) -> None:
    held = is_control(7, IDS, share).mean()
    assert abs(held - share) < 4 * math.sqrt(share * (1 - share) / len(IDS))


def test_a_users_group_never_changes_between_runs() -> None:
    assert np.array_equal(is_control(3, IDS, 0.1), is_control(3, IDS.copy(), 0.1))


def test_the_group_does_not_depend_on_row_order_or_batching() -> None:
    order = np.random.default_rng(0).permutation(len(IDS))
    assert np.array_equal(holdout_draw(5, IDS)[order], holdout_draw(5, IDS[order]))
    halves = np.concatenate([holdout_draw(5, IDS[:1000]), holdout_draw(5, IDS[1000:])])
    assert np.array_equal(halves, holdout_draw(5, IDS))


def test_two_campaigns_hold_out_different_users() -> None:
    first, second = is_control(1, IDS, 0.1), is_control(2, IDS, 0.1)
    both = (first & second).mean()
    assert abs(both - 0.01) < 4 * math.sqrt(0.01 * 0.99 / len(IDS))  # independent draws


def test_raising_the_share_only_moves_treatment_users_into_control() -> None:
    small, large = is_control(9, IDS, 0.1), is_control(9, IDS, 0.2)
    assert not (small & ~large).any()


def test_no_holdout_puts_everybody_in_treatment() -> None:
    assert not is_control(1, IDS, 0.0).any()


@pytest.mark.parametrize("share", [-0.1, 0.51, float("nan")])
def test_a_share_out_of_bounds_is_refused(share: float) -> None:
    with pytest.raises(ValueError, match="holdout share"):
        is_control(1, IDS, share)


def test_draws_are_uniform_over_the_unit_interval() -> None:
    draws = holdout_draw(11, IDS)
    assert draws.min() >= 0 and draws.max() < 1
    counts, _ = np.histogram(draws, bins=10, range=(0, 1))
    expected = len(IDS) / 10
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 30  # 9 degrees of freedom: p < 0.001 beyond ~27.9


def test_a_batch_gets_its_group_column() -> None:
    batch = pa.RecordBatch.from_pydict({"user_id": IDS[:1000], "prediction_score": [0.5] * 1000})
    grouped = with_groups(batch, 4, 0.3)
    groups = np.array(grouped.column("group").to_pylist())
    assert set(groups) == {TREATMENT, CONTROL}
    assert np.array_equal(groups == CONTROL, is_control(4, IDS[:1000], 0.3))

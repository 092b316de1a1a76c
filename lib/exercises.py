"""The notebooks' exercises: one check per exercise, each showing one plain line.

A check takes the learner's ``answer`` and the notebook data it needs, computes the expected
value itself from that data (never a stored result) and shows ``Correct: ...`` or
``Not yet: <a hint>``. The untouched placeholder (``answer = None``) gets ``Not yet: replace
None ...``. A check never raises for a wrong answer, whatever its type: "Run All" in
JupyterLab and papermill's headless runs (notebook 04 is the production job) pass with the
placeholders untouched. The reference solutions live in ``tests/notebooks/solutions.py``.

In a notebook the line is *displayed* (plain text) rather than printed: papermill streams
what cells print to the terminal of ``make score``, where an exercise has no place.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from statistics import NormalDist
from typing import Any

import numpy as np
import pandas as pd

from lib import gains, schema
from lib.errors import AudienceFilterError
from lib.text import escape_controls

__all__ = [
    "check_engaged_rate",
    "check_german_filter",
    "check_lapsed_count",
    "check_lift_interval",
    "check_top_decile_lift",
    "check_top_deciles_expected",
    "check_young_europeans_filter",
]

PLACEHOLDER = (
    "Not yet: replace None in the exercise cell above with your answer, "
    "then run that cell and this one."
)
ENGAGED = 0.6  # notebook 01: the engagement score from which a user counts as engaged
TOP_DECILES = 3  # notebook 04: the deciles a campaign contacts first
# Notebook 03: German users aged 30 or over; notebook 05: French and German users aged 18-30.
GERMAN_MIN_AGE = 30
YOUNG_COUNTRIES = ("FR", "DE")
YOUNG_AGES = (18, 30)
# Notebook 03 has no users of its own: a generated sample, whose seed gives it German users
# aged exactly 30 (so that `age > 30` is told apart from `age >= 30`).
SAMPLE_USERS = 2_000
SAMPLE_SEED = 3


def _show(line: str) -> None:
    """Display ``line`` in a notebook (plain text, not streamed by papermill); else print."""
    line = escape_controls(line)
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:  # the job's own environment always has IPython; be safe anyway
        print(line)
        return
    if get_ipython() is None:
        print(line)
    else:
        display({"text/plain": line}, raw=True)


def _check(verdict: Callable[..., str], answer: Any, *data: Any) -> None:
    """Show ``verdict(answer, *data)``; an answer the verdict cannot handle is "Not yet"."""
    try:
        line = verdict(answer, *data)
    except Exception as err:  # a check never fails the notebook, whatever the answer
        line = f"Not yet: the check could not use this answer ({type(err).__name__}: {err})"
    _show(line)


def _number(answer: Any) -> float | None:
    """``answer`` as a float when it is one number (a Python or numpy scalar), else None."""
    if isinstance(answer, bool | np.bool_):
        return None
    if isinstance(answer, int | float | np.integer | np.floating):
        return float(answer)
    return None


def _close(a: float, b: float, *, rel: float = 1e-6, abs_tol: float = 1e-9) -> bool:
    return math.isclose(a, b, rel_tol=rel, abs_tol=abs_tol)


def _not_a_number(answer: Any, what: str) -> str:
    shown = type(answer).__name__
    if isinstance(answer, pd.Series | pd.DataFrame | np.ndarray | list | tuple):
        return (
            f"Not yet: the answer is of type {shown}; {what} is a single number "
            "(try .mean() or .sum())"
        )
    return f"Not yet: the answer is of type {shown}; {what} is a single number"


# ---- notebook 01 ------------------------------------------------------------------------------
def _engaged_rate(answer: Any, training: pd.DataFrame) -> str:
    """01: the conversion rate of training users with ``engagement_score >= 0.6``."""
    if answer is None:
        return PLACEHOLDER
    value = _number(answer)
    if value is None:
        return _not_a_number(answer, "a conversion rate")
    engaged = training["engagement_score"] >= ENGAGED
    label = training[schema.LABEL].astype(float)
    expected = float(label[engaged].mean()) if engaged.any() else 0.0
    overall = float(label.mean()) if len(label) else 0.0
    others = float(label[~engaged].mean()) if (~engaged).any() else 0.0
    if abs(value - expected) <= 0.0005:  # rounded to a tenth of a percent is fine
        return (
            f"Correct: {expected:.1%} of the engaged users converted, against {overall:.1%} "
            "of all training users: engagement drives the label most."
        )
    if 1 < value <= 100 and abs(value / 100 - expected) <= 0.0005:
        return "Not yet: give the rate as a share between 0 and 1, not a percentage"
    if value > 1:
        return (
            f"Not yet: {value:,.0f} looks like a count; the rate is the mean of "
            f"`{schema.LABEL}` over the engaged users"
        )
    if abs(value - overall) <= 0.0005:
        return (
            "Not yet: that is the rate of all training users; keep only the rows with "
            f"engagement_score >= {ENGAGED} first"
        )
    if abs(value - others) <= 0.0005:
        return (
            f"Not yet: that is the rate of the users below {ENGAGED}; keep engagement_score "
            f">= {ENGAGED}"
        )
    return (
        f"Not yet: select the training rows with engagement_score >= {ENGAGED}, then take the "
        f"mean of `{schema.LABEL}`"
    )


def _lapsed_count(answer: Any, users: pd.DataFrame) -> str:
    """01: how many scoring users last bought more than 365 days ago."""
    if answer is None:
        return PLACEHOLDER
    value = _number(answer)
    if value is None:
        return _not_a_number(answer, "a number of users")
    days = users["days_since_last_purchase"]
    lapsed = days > 365
    expected = int(lapsed.sum())
    if value == expected:
        never = int((users.loc[lapsed, "frequency"] == 0).sum())
        return (
            f"Correct: {expected:,} of {len(users):,} users last bought over a year ago, and "
            f"{never:,} of them have frequency 0: only users with no purchase in the last 12 "
            "months are drawn beyond 365 days."
        )
    if value == int((days >= 365).sum()) and value != expected:
        return "Not yet: that count includes day 365 itself; use > 365"
    if 0 < value < 1 and _close(value, expected / max(len(users), 1), rel=1e-3):
        return "Not yet: that is the share; the exercise asks for the number of users"
    if value == int((users["frequency"] == 0).sum()):
        return (
            "Not yet: that counts users with frequency 0; count those with "
            "days_since_last_purchase > 365"
        )
    return (
        "Not yet: count the rows of `users` whose days_since_last_purchase is above 365 "
        "(a sum of a boolean column counts its True values)"
    )


# ---- notebook 02 ------------------------------------------------------------------------------
def _top_decile_lift(
    answer: Any, scores: Sequence[float] | np.ndarray, labels: Sequence[int] | np.ndarray
) -> str:
    """02: the top decile's lift on the test split: its conversion rate over everyone's."""
    if answer is None:
        return PLACEHOLDER
    value = _number(answer)
    if value is None:
        return _not_a_number(answer, "a lift")
    table = gains.gains_table(gains.decile_aggregates(scores, labels=labels))
    if table.empty:
        return "Not yet: there are no test predictions to compute a lift from"
    expected = float(table["actual_lift"].iloc[0])
    top_rate = float(table["conversion_rate"].iloc[0])
    base_rate = float(table["converted"].sum() / table["users"].sum())
    bottom = float(table["actual_lift"].iloc[-1])
    # Splitting by quantile rather than by rank moves a few tied users across the boundary.
    if _close(value, expected, rel=0.05):
        return (
            f"Correct: the best-scored tenth of the test users converts at {top_rate:.1%}, "
            f"{expected:.2f} times the {base_rate:.1%} of all test users."
        )
    if _close(value, top_rate, rel=0.02):
        return (
            "Not yet: that is the top decile's conversion rate; divide it by the conversion "
            "rate of all test users"
        )
    if _close(value, bottom, rel=0.05):
        return (
            "Not yet: that is the bottom decile; the top decile holds the highest scores "
            "(sort descending)"
        )
    if _close(value, 1.0, rel=0.01):
        return (
            "Not yet: a lift of 1 is a random pick; keep only the 10% best-scored test users "
            "before taking their conversion rate"
        )
    return (
        "Not yet: take the 10% of test users with the highest scores, compute their "
        "conversion rate and divide it by the conversion rate of all test users"
    )


# ---- notebooks 03 and 05: a filter text --------------------------------------------------------
def _checked_filter(answer: Any) -> tuple[Any, str | None]:
    """The checked filter of ``answer``, or None and the line to show."""
    from lib.audience import parse_filter

    if not isinstance(answer, str):
        return None, (
            f"Not yet: the answer is of type {type(answer).__name__}; write the filter as "
            "text, in quotes"
        )
    if not answer.strip():
        return None, "Not yet: an empty filter selects every user; write a condition"
    try:
        return parse_filter(answer), None
    except AudienceFilterError as err:
        return None, f"Not yet: the API would refuse it: {err}"


def _german_filter(answer: Any) -> str:
    """03: a filter the API accepts that selects German users aged 30 or over.

    The text goes through ``lib.audience.parse_filter``, the API's own check, and then runs
    (its pyarrow form) on a generated sample of users, against the intended selection.
    """
    if answer is None:
        return PLACEHOLDER
    audience, refused = _checked_filter(answer)
    if refused:
        return refused
    import pyarrow as pa

    from lib.audience import to_arrow_expression
    from lib.data import generate_users

    users = generate_users(SAMPLE_USERS, SAMPLE_SEED)
    table = pa.Table.from_pandas(users, preserve_index=False)
    mask = table.filter(to_arrow_expression(audience, table.schema))
    selected = users[schema.USER_ID].isin(mask.column(schema.USER_ID).to_pylist())
    german = users["country"] == "DE"
    old_enough = users["age"] >= GERMAN_MIN_AGE
    intended = german & old_enough
    if selected.equals(intended):
        return (
            f"Correct: the API accepts it, and on {len(users):,} generated users it selects "
            f"the {int(intended.sum()):,} German users aged {GERMAN_MIN_AGE} or over."
        )
    if (selected & ~german).any():
        return (
            "Not yet: the API accepts it, but it also selects users outside Germany "
            "(country = 'DE')"
        )
    if (selected & ~old_enough).any():
        return f"Not yet: the API accepts it, but it also selects users under {GERMAN_MIN_AGE}"
    if (intended & ~selected & (users["age"] == GERMAN_MIN_AGE)).any():
        return (
            f"Not yet: it leaves out users aged exactly {GERMAN_MIN_AGE}: 'or over' includes "
            f"{GERMAN_MIN_AGE} (>= rather than >)"
        )
    missing = int((intended & ~selected).sum())
    return (
        f"Not yet: the API accepts it, but it leaves out {missing:,} German users aged "
        f"{GERMAN_MIN_AGE} or over"
    )


def _young_europeans_filter(answer: Any, users: Any) -> str:
    """05: a filter that selects French and German users aged 18 to 30, both included.

    ``users`` is the notebook's Ibis table (DuckDB): the check counts what the learner's
    filter selects and what the intended audience holds, in one query.
    """
    if answer is None:
        return PLACEHOLDER
    audience, refused = _checked_filter(answer)
    if refused:
        return refused
    from lib.audience import to_ibis

    low, high = YOUNG_AGES
    chosen = to_ibis(audience, users).fill_null(False)
    in_countries = users["country"].isin(list(YOUNG_COUNTRIES))
    in_ages = users["age"].between(low, high)
    intended = in_countries & in_ages

    def count(condition: Any) -> Any:
        return condition.ifelse(1, 0).sum()

    counts = (
        users.aggregate(
            selected=count(chosen),
            intended=count(intended),
            other_countries=count(chosen & ~in_countries),
            other_ages=count(chosen & ~in_ages),
            missing=count(intended & ~chosen),
            missing_high=count(intended & ~chosen & (users["age"] == high)),
        )
        .execute()
        .fillna(0)
        .astype("int64")
        .iloc[0]
    )
    selected, expected = int(counts["selected"]), int(counts["intended"])
    countries = " and ".join(YOUNG_COUNTRIES)
    if counts["other_countries"] == 0 and counts["other_ages"] == 0 and counts["missing"] == 0:
        return (
            f"Correct: your filter selects {selected:,} users, the same {expected:,} DuckDB "
            f"counts for {countries} users aged {low} to {high}."
        )
    if counts["other_countries"]:
        why = f"it also selects {int(counts['other_countries']):,} users outside {countries}"
    elif counts["other_ages"]:
        why = f"it also selects {int(counts['other_ages']):,} users outside ages {low} to {high}"
    elif counts["missing_high"] == counts["missing"]:
        why = f"it leaves out the users aged exactly {high} (BETWEEN includes both ends)"
    else:
        why = f"it leaves out {int(counts['missing']):,} of them"
    return (
        f"Not yet: your filter selects {selected:,} users, the audience asked for has "
        f"{expected:,}: {why}"
    )


# ---- notebook 04 ------------------------------------------------------------------------------
def _top_deciles_expected(answer: Any, deciles: pd.DataFrame) -> str:
    """04: the conversions to expect from contacting deciles 1 to 3 (a sum of scores).

    ``deciles`` is the notebook's per-decile table (``decile``, ``users``, ``expected``).
    """
    if answer is None:
        return PLACEHOLDER
    value = _number(answer)
    if value is None:
        return _not_a_number(answer, "a number of expected conversions")
    top = deciles[deciles[gains.DECILE] <= TOP_DECILES]
    expected = float(top["expected"].sum())
    total = float(deciles["expected"].sum())
    users, total_users = int(top["users"].sum()), int(deciles["users"].sum())
    if _close(value, expected, rel=1e-6, abs_tol=0.05):  # rounded to a tenth is fine
        share = expected / total if total else 0.0
        return (
            f"Correct: deciles 1 to {TOP_DECILES} hold {expected:,.1f} of the {total:,.1f} "
            f"expected conversions ({share:.0%}) with {users:,} of {total_users:,} users."
        )
    if total and _close(value, total, rel=1e-6, abs_tol=0.05):
        return (
            f"Not yet: that is the whole audience's expected conversions; keep deciles 1 to "
            f"{TOP_DECILES} only"
        )
    if total and 0 < value <= 1 and _close(value, expected / total, rel=1e-3):
        return (
            "Not yet: that is the share of expected conversions (the cumulative gain); the "
            "exercise asks for the number: the sum of the scores"
        )
    if value == users:
        return "Not yet: that counts users; sum their scores (the expected column) instead"
    return (
        f"Not yet: a user's score is their probability of converting, so expected conversions "
        f"are a sum of scores: add up the expected column of deciles 1 to {TOP_DECILES}"
    )


# ---- notebook 06 ------------------------------------------------------------------------------
def _pair(answer: Any) -> tuple[float, float] | None:
    if isinstance(answer, str | bytes | dict) or not hasattr(answer, "__len__"):
        return None
    try:
        if len(answer) != 2:
            return None
        low, high = (_number(v) for v in answer)
    except TypeError:
        return None
    if low is None or high is None:
        return None
    return low, high


def _lift_interval(answer: Any, outcomes: pd.DataFrame, confidence: float) -> str:
    """06: the uplift's interval at ``confidence``, worked out by hand: ``(low, high)``."""
    from lib.uplift import measure_lift

    if answer is None:
        return PLACEHOLDER
    pair = _pair(answer)
    if pair is None:
        return "Not yet: give the interval as two numbers, low first: answer = (low, high)"
    low, high = pair
    lift = measure_lift(outcomes, confidence)
    if not (math.isfinite(lift.low) and math.isfinite(lift.high)):
        return "Not yet: both groups need users before an interval can be computed"

    def near(a: float, b: float) -> bool:
        return abs(a - b) <= 1e-4  # 1.96 for the exact z is fine

    if near(low, lift.low) and near(high, lift.high):
        verdict = (
            "it excludes zero: an effect"
            if lift.significant
            else "it includes zero: no effect can be told from noise"
        )
        return (
            f"Correct: the uplift is {lift.uplift * 100:+.1f} points, {confidence:.0%} interval "
            f"{lift.low * 100:+.1f} to {lift.high * 100:+.1f}: {verdict}."
        )
    if near(low, lift.high) and near(high, lift.low):
        return "Not yet: the ends are swapped; low first, then high"
    if near(low / 100, lift.low) and near(high / 100, lift.high):
        return "Not yet: give the rates as fractions (0.03), not points (3.0)"
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    se = (lift.high - lift.low) / 2 / z
    if near(low, lift.uplift - se) and near(high, lift.uplift + se):
        return (
            f"Not yet: that is one standard error on each side; multiply it by z = "
            f"{z:.2f} for {confidence:.0%}"
        )
    if not (low <= lift.uplift <= high):
        return (
            "Not yet: the interval must contain the measured uplift (treatment rate minus "
            "control rate)"
        )
    return (
        "Not yet: uplift plus and minus z times the standard error, where the standard error "
        "is sqrt(p_t (1 - p_t) / n_t + p_c (1 - p_c) / n_c)"
    )


# ---- the checks the notebooks call --------------------------------------------------------------
def check_engaged_rate(answer: Any, training: pd.DataFrame) -> None:
    """01: the conversion rate of the training users with ``engagement_score >= 0.6``."""
    _check(_engaged_rate, answer, training)


def check_lapsed_count(answer: Any, users: pd.DataFrame) -> None:
    """01: how many scoring users last bought more than 365 days ago."""
    _check(_lapsed_count, answer, users)


def check_top_decile_lift(
    answer: Any, scores: Sequence[float] | np.ndarray, labels: Sequence[int] | np.ndarray
) -> None:
    """02: the top decile's lift on the test split (``result.test_scores``, ``test_labels``)."""
    _check(_top_decile_lift, answer, scores, labels)


def check_german_filter(answer: Any) -> None:
    """03: a filter text the API accepts that selects German users aged 30 or over."""
    _check(_german_filter, answer)


def check_top_deciles_expected(answer: Any, deciles: pd.DataFrame) -> None:
    """04: the conversions to expect from contacting deciles 1 to 3 (``deciles``: per decile)."""
    _check(_top_deciles_expected, answer, deciles)


def check_young_europeans_filter(answer: Any, users: Any) -> None:
    """05: a filter text selecting French and German users aged 18 to 30 (``users``: Ibis)."""
    _check(_young_europeans_filter, answer, users)


def check_lift_interval(answer: Any, outcomes: pd.DataFrame, confidence: float) -> None:
    """06: the uplift's interval at ``confidence`` as ``(low, high)``, worked out by hand."""
    _check(_lift_interval, answer, outcomes, confidence)

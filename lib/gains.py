"""Deciles, expected conversions and cumulative gains / lift: plain pandas, no Spark.

One computation for every place that shows them: notebook 02 (the holdout, where the true
labels are known), notebook 04 and the run report (the scored audience, where the scores
are the only evidence). Spark or pandas first reduces the users to at most ten rows, one
per score decile (1 = the best-scoring tenth); :func:`gains_table` finishes from there, so
the same code serves a thousand users or a hundred million.

Reading the table: a user's score is the model's probability that they convert, so the sum
of the scores is the number of conversions to expect among these users (contacted or not:
it is not the effect of contacting them, which only a control group measures). The
*cumulative gain* of the top k deciles is the share of those expected conversions they hold;
the *lift* is how many times better than contacting users at random that is.

Whom a campaign contacts follows its *contact budget* (:class:`ContactRule`): a number of
contacts (``500``) or a share of the treatment group (``30%``, the default: the size of the
top 3 deciles). :func:`plan_contacts` turns a budget and the decile table into the
:class:`ContactPlan` the notebook and the report state.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from lib.errors import InvalidInputError

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = [
    "DECILE",
    "DEFAULT_CONTACT_BUDGET",
    "ContactPlan",
    "ContactRule",
    "assign_deciles",
    "by_decile_and_bin",
    "contact_advice",
    "decile_aggregates",
    "display_table",
    "gains_table",
    "parse_contact_budget",
    "plan_contacts",
    "plot_gains",
    "small_audience_caveat",
]

DECILE = "decile"
AGGREGATE_COLUMNS = ("users", "expected", "min_score", "max_score", "control", "control_expected")


def assign_deciles(scores: Sequence[float] | pd.Series | np.ndarray) -> pd.Series:
    """Decile by rank, 1 = the best-scoring tenth (ties broken by position)."""
    values = pd.Series(np.asarray(scores, dtype=float))
    n = len(values)
    if n == 0:
        return pd.Series([], dtype="int64")
    rank = values.rank(method="first", ascending=False)
    deciles = np.ceil(rank.to_numpy() * 10 / n).clip(1, 10).astype("int64")
    return pd.Series(deciles, name=DECILE)


def decile_aggregates(
    scores: Sequence[float] | pd.Series | np.ndarray,
    deciles: Sequence[int] | pd.Series | np.ndarray | None = None,
    labels: Sequence[int] | pd.Series | np.ndarray | None = None,
) -> pd.DataFrame:
    """Per decile: users, expected conversions (sum of scores), min and max score and,
    with ``labels``, the actual conversions. Deciles by rank unless given (the job's)."""
    frame = pd.DataFrame({"score": np.asarray(scores, dtype=float)})
    frame[DECILE] = (
        assign_deciles(frame["score"]).to_numpy()
        if deciles is None
        else np.asarray(deciles, dtype="int64")
    )
    named: dict[str, Any] = {
        "users": ("score", "size"),
        "expected": ("score", "sum"),
        "min_score": ("score", "min"),
        "max_score": ("score", "max"),
    }
    if labels is not None:
        frame["converted"] = np.asarray(labels, dtype="int64")
        named["converted"] = ("converted", "sum")
    return frame.groupby(DECILE, as_index=False).agg(**named)


def by_decile_and_bin(predictions: pd.DataFrame) -> pd.DataFrame:
    """Users, score range and expected conversions per (decile, 0.05-wide score bin): what
    notebook 04's one Spark aggregation answers, computed by pandas (engine="local")."""
    from lib import schema

    score = predictions[schema.SCORE]
    control = (
        predictions[schema.GROUP].eq("control")
        if schema.GROUP in predictions
        else pd.Series(False, index=predictions.index)
    )
    keyed = predictions.assign(
        bin=np.floor(score * 20) / 20,
        control=control,
        control_score=score.where(control, 0.0),
    )
    return keyed.groupby([schema.DECILE, "bin"], as_index=False).agg(
        users=(schema.SCORE, "size"),
        min_score=(schema.SCORE, "min"),
        max_score=(schema.SCORE, "max"),
        expected=(schema.SCORE, "sum"),
        control=("control", "sum"),
        control_expected=("control_score", "sum"),
    )


def gains_table(aggregates: pd.DataFrame) -> pd.DataFrame:
    """Cumulative gains and lift by decile from per-decile ``users`` and ``expected``.

    Added columns (shares are fractions, 0-1): ``mean_score``, ``users_share``,
    ``cum_users``, ``cum_users_share``, ``expected_share``, ``cum_expected``,
    ``cum_gain`` (share of all expected conversions in deciles 1..k), ``lift`` (the
    decile's mean score over the audience's) and ``cum_lift`` (``cum_gain`` over
    ``cum_users_share``). With a ``converted`` column (known labels) also
    ``conversion_rate``, ``cum_converted``, ``cum_actual_gain`` and ``actual_lift``.
    An empty audience gives an empty table with every column.
    """
    missing = {DECILE, "users", "expected"} - set(aggregates.columns)
    if missing:
        raise ValueError(f"decile aggregates lack {sorted(missing)}")
    table = aggregates.sort_values(DECILE).reset_index(drop=True).copy()
    table["users"] = table["users"].astype("int64")
    table["expected"] = table["expected"].astype(float)
    total_users = int(table["users"].sum())
    total_expected = float(table["expected"].sum())
    users = table["users"].astype(float)

    def share(part: pd.Series, whole: float) -> pd.Series:
        return part / whole if whole else part * 0.0

    table["mean_score"] = (table["expected"] / users.where(users > 0)).fillna(0.0)
    table["users_share"] = share(users, total_users)
    table["cum_users"] = table["users"].cumsum()
    table["cum_users_share"] = share(table["cum_users"].astype(float), total_users)
    table["expected_share"] = share(table["expected"], total_expected)
    table["cum_expected"] = table["expected"].cumsum()
    table["cum_gain"] = share(table["cum_expected"], total_expected)
    overall_mean = total_expected / total_users if total_users else 0.0
    table["lift"] = share(table["mean_score"], overall_mean)
    cum_share = table["cum_users_share"]
    table["cum_lift"] = (table["cum_gain"] / cum_share.where(cum_share > 0)).fillna(0.0)
    if "converted" in table.columns:
        converted = table["converted"].astype(float)
        total_converted = float(converted.sum())
        table["conversion_rate"] = (converted / users.where(users > 0)).fillna(0.0)
        table["cum_converted"] = table["converted"].cumsum()
        table["cum_actual_gain"] = share(table["cum_converted"].astype(float), total_converted)
        base_rate = total_converted / total_users if total_users else 0.0
        table["actual_lift"] = share(table["conversion_rate"], base_rate)
    return table


def contact_advice(table: pd.DataFrame, top: int, *, population: str = "audience") -> str:
    """One sentence on contacting the top ``top`` deciles, from a :func:`gains_table`
    (notebook 02's test set; a campaign's advice follows its budget: :func:`plan_contacts`).

    Normally deciles 1 to ``top``, counting treatment users only when the table has a
    ``control`` column (the holdout: never contacted). When ties or a small audience leave
    some of them empty (users with equal scores share a decile), the advice takes the best
    non-empty deciles until they cover ``top`` tenths of the audience, and says so, rather
    than advising to contact deciles that hold nobody. ``population`` names the users the
    table counts: a campaign's audience, or notebook 02's test set (labelled users the model
    never trained on, not an audience).
    """
    total_users = int(table["users"].sum()) if not table.empty else 0
    if total_users == 0:
        return "No users matched the audience filter: there is nobody to contact."
    rows = table[table["users"] > 0].sort_values(DECILE)
    picked = rows[rows[DECILE] <= top]
    if len(picked) < top:  # ties or a small audience emptied some of the top deciles
        covered_before = rows["users"].cumsum().shift(fill_value=0) / total_users
        picked = rows[covered_before < top / 10]
    # With a holdout (``control`` and ``control_expected`` columns) only the treatment
    # users are to be contacted: the control users of the same deciles are held out.
    held = int(picked["control"].sum()) if "control" in picked else 0
    held_expected = float(picked["control_expected"].sum()) if "control" in picked else 0.0
    all_held = float(table["control_expected"].sum()) if "control" in table else 0.0
    users = int(picked["users"].sum()) - held
    expected = float(picked["expected"].sum()) - held_expected
    total_expected = float(table["expected"].sum()) - all_held
    gain = expected / total_expected if total_expected else 0.0
    numbers = (
        f"{users:,} users ({users / total_users:.1%} of the {population}), "
        f"{gain:.1%} of expected conversions ({expected:,.1f} of {total_expected:,.1f})."
    )
    if held:
        numbers += (
            f" {held:,} more users of those deciles are held out as the control group: not "
            "contacted, so that the campaign's effect can be measured."
        )
    chosen = [int(d) for d in picked[DECILE]]
    if chosen == list(range(1, top + 1)):
        deciles = "decile" if top == 1 else f"{top} deciles"
        return f"Contact the top {deciles}: {numbers}"
    names = ", ".join(map(str, chosen))
    label = "decile" if len(chosen) == 1 else "deciles"
    return (
        f"Contact the best-scoring {label} {names}: {numbers} Tied scores or a small {population} "
        f"left some deciles empty: these are the fewest best deciles that hold at least "
        f"{top / 10:.0%} of the {population}."
    )


# ---- the contact budget -----------------------------------------------------------------------
# The share the top 3 deciles hold: the advice every report gave before budgets existed.
DEFAULT_CONTACT_BUDGET = "30%"
# ASCII digits only (re.ASCII: `\d` would take '٣٠' for 30), and a length no budget needs.
_COUNT = re.compile(r"\d{1,3}(?:,\d{3})+|\d+(?:_\d+)*", re.ASCII)  # 500, 1,000, 1_000
_SHARE = re.compile(r"(\d+(?:\.\d+)?)\s*%", re.ASCII)  # 30%, 2.5 %
MAX_BUDGET_TEXT = 30


@dataclass(frozen=True)
class ContactRule:
    """Whom to contact: the ``count`` best-scoring treatment users, or the best ``share``
    (0 < share <= 1) of the treatment group. ``text`` is the budget as written."""

    text: str
    count: int | None = None
    share: float | None = None

    def contacts(self, eligible: int) -> int:
        """How many of ``eligible`` treatment users to contact: never more than there are;
        a share rounds to the nearest user, and contacts at least one when there is one."""
        if eligible <= 0:
            return 0
        if self.count is not None:
            return min(self.count, eligible)
        wanted = math.floor((self.share or 0.0) * eligible + 0.5)
        return min(eligible, max(1, wanted))

    def describe(self) -> str:
        """The budget in words, e.g. "500 contacts" or "30% of the treatment group"."""
        if self.count is not None:
            return f"{self.count:,} contact" + ("" if self.count == 1 else "s")
        return f"{_percent(self.share or 0.0)} of the treatment group"


def _percent(share: float) -> str:
    return f"{share * 100:.10g}%"


def parse_contact_budget(value: object) -> ContactRule:
    """A contact budget as a :class:`ContactRule`: a whole number of contacts (``500``,
    ``"1,000"``) or a share of the treatment group (``"30%"``, up to ``"100%"``).

    Raises :class:`InvalidInputError` (exit code 2) with one line for anything else.
    """
    if isinstance(value, ContactRule):
        return value
    shown = repr(value) if len(repr(value)) <= 40 else f"{repr(value)[:37]}..."
    problem = (
        "the contact budget is a number of contacts (e.g. 500) or a share of the treatment "
        f"group (e.g. 30%), got {shown}"
    )
    if isinstance(value, bool) or not isinstance(value, int | str):
        if isinstance(value, float):
            problem += ": write a share with a percent sign, e.g. 30%"
        raise InvalidInputError(problem)
    text = str(value).strip()
    if len(text) > MAX_BUDGET_TEXT:
        raise InvalidInputError(f"{problem}: too long for a budget")
    if _COUNT.fullmatch(text):
        count = int(text.replace(",", "").replace("_", ""))
        if count < 1:
            raise InvalidInputError(f"{problem}: contact at least 1 user")
        return ContactRule(text=text, count=count)
    if match := _SHARE.fullmatch(text):
        percent = float(match.group(1))
        if not 0 < percent <= 100:
            raise InvalidInputError(f"{problem}: a share is above 0% and at most 100%")
        return ContactRule(text=f"{match.group(1)}%", share=percent / 100)
    if re.fullmatch(r"-?\d*\.\d+|-\d+", text, re.ASCII):
        raise InvalidInputError(
            f"{problem}: a number of contacts is a whole number of 1 or more, a share ends "
            "with a percent sign"
        )
    raise InvalidInputError(problem)


@dataclass(frozen=True)
class ContactPlan:
    """Whom a budget contacts: the ``contacts`` best-scoring of the ``eligible`` treatment
    users (the audience minus the ``held_out`` control group), and the conversions expected
    among them (``expected``) and among all treatment users (``eligible_expected``).

    ``exact``: ``expected`` is the sum of the contacted users' own scores (the contact
    list); otherwise it is estimated from the decile table, assuming the users of a decile
    that is contacted only in part score alike.
    """

    rule: ContactRule
    contacts: int
    eligible: int
    held_out: int
    expected: float
    eligible_expected: float
    exact: bool = False

    @property
    def share(self) -> float:
        """The contacted share of the treatment group."""
        return self.contacts / self.eligible if self.eligible else 0.0

    @property
    def gain(self) -> float:
        """The share of the treatment group's expected conversions the contacted users hold."""
        return self.expected / self.eligible_expected if self.eligible_expected else 0.0

    @property
    def lift(self) -> float:
        """How many times what contacting as many treatment users at random would reach."""
        return self.gain / self.share if self.share else 0.0

    def with_exact_expected(self, expected: float) -> ContactPlan:
        """The plan with ``expected`` summed over the contacted users' own scores."""
        return replace(self, expected=float(expected), exact=True)

    def advice(self) -> str:
        """What to do and why, in a few sentences."""
        if self.eligible == 0:
            if self.held_out:
                return (
                    f"All {self.held_out:,} users of the audience are held out as the control "
                    "group: there is nobody to contact."
                )
            return "No users matched the audience filter: there is nobody to contact."
        if self.rule.count is not None:
            why = f"your budget: {self.rule.describe()}"
            if self.rule.count > self.eligible:
                why += f", more than the {self.eligible:,} treatment users there are"
        elif self.rule.text == DEFAULT_CONTACT_BUDGET:
            why = (
                f"the default budget: {self.rule.describe()}, the size of the top 3 deciles; "
                "set your own with contact_budget"
            )
        else:
            why = f"your budget: {self.rule.describe()}"
        if self.contacts == self.eligible:
            lead = f"Contact all {self.eligible:,} treatment users ({why})."
            reach = "They hold every expected conversion of the treatment group"
            reach += f" ({self.eligible_expected:,.1f})."
        else:
            who = (
                "the best-scoring treatment user"
                if self.contacts == 1
                else f"the {self.contacts:,} best-scoring treatment users"
            )
            about = "" if self.exact else "about "
            lead = f"Contact {who} ({why})."
            reach = (
                f"They are the best {self.share:.1%} of the {self.eligible:,} treatment users "
                f"(the top {10 * self.share:.1f} deciles) and hold {about}{self.gain:.1%} of "
                f"the treatment group's expected conversions ({self.expected:,.1f} of "
                f"{self.eligible_expected:,.1f}): {self.lift:.2f} times what contacting as "
                "many users at random would reach."
            )
        held = (
            f" {self.held_out:,} more users of the audience are held out as the control group: "
            "not contacted, so that the campaign's effect can be measured."
            if self.held_out
            else ""
        )
        return f"{lead} {reach}{held}"


def plan_contacts(
    table: pd.DataFrame, rule: ContactRule | str | int = DEFAULT_CONTACT_BUDGET
) -> ContactPlan:
    """Whom ``rule`` contacts, from a :func:`gains_table` (treatment users only when the
    table has ``control`` and ``control_expected`` columns): the best deciles in full, then
    the share of the next one the budget still covers, its expected conversions in
    proportion (an estimate; :meth:`ContactPlan.with_exact_expected` replaces it by the
    contact list's own sum)."""
    rule = parse_contact_budget(rule)
    rows = table.sort_values(DECILE).to_dict("records") if not table.empty else []
    treatment = [int(r["users"]) - int(r.get("control", 0) or 0) for r in rows]
    treatment_expected = [
        float(r["expected"]) - float(r.get("control_expected", 0.0) or 0.0) for r in rows
    ]
    held = sum(int(r.get("control", 0) or 0) for r in rows)
    eligible = int(sum(treatment))
    contacts = rule.contacts(eligible)
    remaining, reached = contacts, 0.0
    for count, total in zip(treatment, treatment_expected, strict=True):
        if remaining <= 0:
            break
        taken = min(remaining, int(count))
        reached += total * taken / count if count else 0.0
        remaining -= taken
    return ContactPlan(
        rule=rule,
        contacts=contacts,
        eligible=eligible,
        held_out=held,
        expected=reached,
        eligible_expected=float(sum(treatment_expected)),
    )


# A decile of fewer users than this (an audience under about 1,000) says little: whether a
# few more or fewer of them convert is chance, and its lift swings with each one.
SMALL_DECILE = 100


def small_audience_caveat(table: pd.DataFrame) -> str | None:
    """A warning, in words, when a :func:`gains_table`'s smallest non-empty decile holds
    fewer than :data:`SMALL_DECILE` users: how far chance alone can move that decile's
    conversions (a 95% normal interval) and its lift (one converter more or fewer).
    None when every decile is large enough, or the audience is empty."""
    rows = table[table["users"] > 0] if not table.empty else table
    if rows.empty or int(rows["users"].min()) >= SMALL_DECILE:
        return None
    smallest = rows.loc[rows["users"].idxmin()]
    users = int(smallest["users"])
    score = float(smallest["mean_score"])
    margin = 1.96 * math.sqrt(score * (1 - score) / users)
    low, high = max(0.0, score - margin), min(1.0, score + margin)
    total = int(rows["users"].sum())
    overall = float(rows["expected"].sum()) / total
    step = 1 / users / overall if overall else 0.0
    fewest, most = int(rows["users"].min()), int(rows["users"].max())
    sizes = f"{fewest:,}" if fewest == most else f"{fewest:,} to {most:,}"
    lead = (
        f"A small audience: {total:,} users, so its deciles hold only {sizes} users each."
        if total < 10 * SMALL_DECILE
        else f"Some deciles are small: the smallest holds {users:,} users."
    )
    return (
        f"{lead} Figures for so few people are mostly chance: of the {users:,} users of "
        f"decile {int(smallest[DECILE])} (average score {score:.2f}), the share who actually "
        f"convert can land anywhere from {low:.0%} to {high:.0%} (95% of the time), and one "
        f"converter more or fewer moves its lift by {step:.2f}. Do not rank deciles by lift "
        f"or trust lifts like {float(rows['lift'].max()):.2f}× at this size: they settle from "
        f"about {SMALL_DECILE} users per decile (an audience of {10 * SMALL_DECILE:,} or more)."
    )


def display_table(table: pd.DataFrame, *, population: str = "audience") -> pd.DataFrame:
    """A :func:`gains_table` for people: thousands separators, 3 decimals, percentages
    (``population``: who the table counts, as in :func:`contact_advice`)."""
    rows: dict[str, list[str]] = {
        "decile": [f"{int(d)}" for d in table[DECILE]],
        "users": [f"{int(n):,}" for n in table["users"]],
        f"share of {population}": [f"{v:.1%}" for v in table["users_share"]],
        "score range": [
            f"{row.min_score:.3f} – {row.max_score:.3f}"
            for row in table.reindex(columns=["min_score", "max_score"]).itertuples()
        ],
        "mean score": [f"{v:.3f}" for v in table["mean_score"]],
        "expected conversions": [f"{v:,.1f}" for v in table["expected"]],
        "cumulative users": [f"{int(n):,}" for n in table["cum_users"]],
        "cumulative gain": [f"{v:.1%}" for v in table["cum_gain"]],
        "lift": [f"{v:.2f}×" for v in table["lift"]],
        "cumulative lift": [f"{v:.2f}×" for v in table["cum_lift"]],
    }
    if "converted" in table.columns:
        rows["actual conversions"] = [f"{int(n):,}" for n in table["converted"]]
        rows["conversion rate"] = [f"{v:.1%}" for v in table["conversion_rate"]]
        rows["cumulative gain (actual)"] = [f"{v:.1%}" for v in table["cum_actual_gain"]]
    return pd.DataFrame(rows).set_index("decile")


def plot_gains(
    table: pd.DataFrame,
    ax: Axes | None = None,
    *,
    title: str | None = None,
    population: str = "audience",
) -> Axes:
    """The cumulative gains curve by decile against random contact (matplotlib;
    ``population``: who the table counts, as in :func:`contact_advice`)."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    x = [0.0, *table["cum_users_share"].tolist()]
    ax.plot([0, 1], [0, 1], "--", color="grey", label="random contact")
    ax.plot(x, [0.0, *table["cum_gain"].tolist()], "o-", color="#4C72B0", label="model (expected)")
    if "cum_actual_gain" in table.columns:
        actual = [0.0, *table["cum_actual_gain"].tolist()]
        ax.plot(x, actual, "s-", color="#55A868", label="model (actual conversions)")
    for _, row in table.iterrows():
        ax.annotate(
            f"{int(row[DECILE])}",
            (row["cum_users_share"], row["cum_gain"]),
            textcoords="offset points",
            xytext=(-4, 6),
            fontsize=8,
        )
    ax.set(
        xlabel=f"share of the {population} contacted (best deciles first)",
        ylabel="share of conversions",
        title=title or "Cumulative gains by decile",
        xlim=(0, 1),
        ylim=(0, 1.02),
    )
    ax.xaxis.set_major_formatter(lambda v, _: f"{v:.0%}")
    ax.yaxis.set_major_formatter(lambda v, _: f"{v:.0%}")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    return ax

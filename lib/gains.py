"""Deciles, expected conversions and cumulative gains / lift: plain pandas, no Spark.

One computation for every place that shows them: notebook 02 (the holdout, where the true
labels are known), notebook 04 and the run report (the scored audience, where the scores
are the only evidence). Spark or pandas first reduces the users to at most ten rows, one
per score decile (1 = the best-scoring tenth); :func:`gains_table` finishes from there, so
the same code serves a thousand users or a hundred million.

Reading the table: a user's score is the model's probability that they convert, so the sum
of the scores is the number of conversions to expect if everyone is contacted. The
*cumulative gain* of the top k deciles is the share of those expected conversions they hold;
the *lift* is how many times better than contacting users at random that is.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = [
    "DECILE",
    "assign_deciles",
    "by_decile_and_bin",
    "contact_advice",
    "decile_aggregates",
    "display_table",
    "gains_table",
    "plot_gains",
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


def contact_advice(table: pd.DataFrame, top: int = 3, *, population: str = "audience") -> str:
    """One sentence a marketer can act on, from a :func:`gains_table`.

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

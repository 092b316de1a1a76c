"""Did the campaign work? Treatment against control: lift, its uncertainty, and where it is.

A propensity model ranks users by how likely they are to convert, which is not how much
*contacting* them changes that. The holdout (lib.holdout) makes the effect measurable: the
control group converts as the treatment group would have without the campaign, so

    uplift = conversion rate of treatment - conversion rate of control

is the campaign's effect (in points of conversion rate), and ``uplift x treated users`` the
conversions it added. The interval is the normal (Wald) interval of a difference of two
proportions; the same arithmetic, turned around, says how large an audience and holdout
must be to detect a given effect (:func:`required_audience`, :func:`detectable_uplift`).
Notebook 06 teaches all of it on simulated outcomes whose true effect is known.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from lib import schema
from lib.holdout import CONTROL, TREATMENT

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = [
    "Lift",
    "detectable_uplift",
    "measure_lift",
    "plot_qini",
    "qini_curve",
    "required_audience",
    "uplift_by_decile",
]

CONVERTED = schema.LABEL


def _z(confidence: float) -> float:
    return NormalDist().inv_cdf(0.5 + confidence / 2)


@dataclass(frozen=True)
class Lift:
    """The measured effect of a campaign (rates are fractions, 0-1)."""

    treatment_users: int
    control_users: int
    treatment_rate: float
    control_rate: float
    uplift: float  # treatment_rate - control_rate
    low: float  # the interval of uplift at ``confidence``
    high: float
    confidence: float

    @property
    def incremental_conversions(self) -> float:
        """Conversions the campaign added among the treated users."""
        return self.uplift * self.treatment_users

    @property
    def relative_lift(self) -> float | None:
        """How many times the control rate the treatment converted at, minus one."""
        return self.uplift / self.control_rate if self.control_rate else None

    @property
    def significant(self) -> bool:
        """Does the interval exclude zero (an effect, in either direction)?"""
        return self.low > 0 or self.high < 0


def _difference(
    conv_t: float, n_t: int, conv_c: float, n_c: int, confidence: float
) -> tuple[float, float, float, float, float]:
    rate_t = conv_t / n_t if n_t else math.nan
    rate_c = conv_c / n_c if n_c else math.nan
    uplift = rate_t - rate_c
    if n_t and n_c:
        se = math.sqrt(rate_t * (1 - rate_t) / n_t + rate_c * (1 - rate_c) / n_c)
    else:
        se = math.nan
    margin = _z(confidence) * se
    return rate_t, rate_c, uplift, uplift - margin, uplift + margin


def measure_lift(outcomes: pd.DataFrame, confidence: float = 0.95) -> Lift:
    """The campaign's effect from ``outcomes`` (``group`` and ``converted`` per user)."""
    treated = outcomes[outcomes[schema.GROUP] == TREATMENT][CONVERTED]
    control = outcomes[outcomes[schema.GROUP] == CONTROL][CONVERTED]
    rate_t, rate_c, uplift, low, high = _difference(
        float(treated.sum()), len(treated), float(control.sum()), len(control), confidence
    )
    return Lift(len(treated), len(control), rate_t, rate_c, uplift, low, high, confidence)


def uplift_by_decile(
    outcomes: pd.DataFrame, deciles: pd.Series, confidence: float = 0.95
) -> pd.DataFrame:
    """Per score decile (1 = the best scores): users and conversion rate of each group, the
    uplift with its interval, and the simulation's ``true_effect`` when present."""
    frame = outcomes.assign(decile=deciles.to_numpy())
    rows = []
    for decile in sorted(int(d) for d in frame["decile"].unique()):
        part = frame[frame["decile"] == decile]
        treated = part[part[schema.GROUP] == TREATMENT]
        control = part[part[schema.GROUP] == CONTROL]
        rate_t, rate_c, uplift, low, high = _difference(
            float(treated[CONVERTED].sum()),
            len(treated),
            float(control[CONVERTED].sum()),
            len(control),
            confidence,
        )
        row = {
            "decile": decile,
            "treatment_users": len(treated),
            "control_users": len(control),
            "treatment_rate": rate_t,
            "control_rate": rate_c,
            "uplift": uplift,
            "low": low,
            "high": high,
        }
        if "true_effect" in part:
            row["true_effect"] = float(treated["true_effect"].mean()) if len(treated) else math.nan
        rows.append(row)
    return pd.DataFrame(rows)


def qini_curve(by_decile: pd.DataFrame) -> pd.DataFrame:
    """Cumulative incremental conversions when contacting deciles 1..k (a Qini curve by
    decile), beside the cumulative share of treatment conversions (the propensity gains).

    Incremental conversions of the top k deciles: treatment conversions there minus the
    control's conversion rate there times the treatment users there.
    """
    table = by_decile.sort_values("decile").reset_index(drop=True)
    conv_t = (table["treatment_rate"] * table["treatment_users"]).fillna(0.0)
    conv_c = (table["control_rate"] * table["control_users"]).fillna(0.0)
    cum_t, cum_c = conv_t.cumsum(), conv_c.cumsum()
    cum_nt, cum_nc = table["treatment_users"].cumsum(), table["control_users"].cumsum()
    incremental = cum_t - (cum_c / cum_nc.where(cum_nc > 0)).fillna(0.0) * cum_nt
    total_users = float(cum_nt.iloc[-1]) if len(table) else 0.0
    curve = pd.DataFrame(
        {
            "decile": table["decile"],
            "contacted_share": cum_nt / total_users if total_users else cum_nt * 0.0,
            "incremental_conversions": incremental,
            "gain_share": cum_t / float(cum_t.iloc[-1]) if len(table) and cum_t.iloc[-1] else 0.0,
        }
    )
    start = pd.DataFrame(
        {
            "decile": [0],
            "contacted_share": [0.0],
            "incremental_conversions": [0.0],
            "gain_share": [0.0],
        }
    )
    return pd.concat([start, curve], ignore_index=True)


def plot_qini(curve: pd.DataFrame, ax: Axes | None = None, *, title: str | None = None) -> Axes:
    """Incremental conversions by share contacted (best scores first) against random."""
    import matplotlib.pyplot as plt

    if ax is None:
        ax = plt.gca()
    share = curve["contacted_share"] * 100
    ax.plot(share, curve["incremental_conversions"], marker="o", label="by the model's score")
    final = float(curve["incremental_conversions"].iloc[-1]) if len(curve) else 0.0
    ax.plot([0, 100], [0, final], linestyle="--", color="grey", label="contacting at random")
    ax.axhline(0, color="black", linewidth=0.6)
    ax.set(
        xlabel="share of the audience contacted (%)",
        ylabel="incremental conversions",
        title=title or "Qini curve: conversions the campaign added",
    )
    ax.legend()
    return ax


def required_audience(
    base_rate: float,
    uplift: float,
    holdout_share: float,
    *,
    confidence: float = 0.95,
    power: float = 0.8,
) -> int:
    """The audience needed to detect ``uplift`` (two-sided test at ``confidence``, with
    ``power``) when ``holdout_share`` of it is held out and the control converts at
    ``base_rate``."""
    if not 0 < holdout_share < 1 or uplift == 0:
        raise ValueError("need a holdout share between 0 and 1 and a non-zero uplift")
    p_c, p_t = base_rate, min(max(base_rate + uplift, 0.0), 1.0)
    z_a, z_b = _z(confidence), NormalDist().inv_cdf(power)
    # Variance of the difference per audience member, with the groups' shares.
    variance = p_t * (1 - p_t) / (1 - holdout_share) + p_c * (1 - p_c) / holdout_share
    return math.ceil((z_a + z_b) ** 2 * variance / uplift**2)


def detectable_uplift(
    base_rate: float,
    audience: int,
    holdout_share: float,
    *,
    confidence: float = 0.95,
    power: float = 0.8,
) -> float:
    """The smallest positive uplift an audience of this size and holdout detects."""
    if audience <= 0 or not 0 < holdout_share < 1:
        return math.inf
    low, high = 1e-6, 1.0 - base_rate
    if (
        required_audience(base_rate, high, holdout_share, confidence=confidence, power=power)
        > audience
    ):
        return math.inf
    for _ in range(60):  # bisection: the required audience falls as the uplift grows
        mid = (low + high) / 2
        need = required_audience(base_rate, mid, holdout_share, confidence=confidence, power=power)
        low, high = (mid, high) if need > audience else (low, mid)
    return float(np.round(high, 6))

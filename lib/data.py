"""Synthetic users with RFM features, and a labelled training set drawn from a known model.

Generation is deterministic by seed *and* independent of how the rows are chunked: rows are
made in fixed blocks, each with its own seed derived from ``(seed, block index)``, so a 10M
row file written chunk by chunk is byte-for-byte the same table as one built in memory.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Iterator, Sequence
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from lib import schema
from lib.errors import InvalidInputError, run_cli
from lib.files import atomic_write_bytes, publish_file_mode
from lib.settings import get_settings

__all__ = [
    "COUNTRY_WEIGHTS",
    "SEGMENTS",
    "conversion_probability",
    "drifted",
    "generate_users",
    "iter_user_batches",
    "simulate_outcomes",
    "treatment_effect",
    "write_snapshot",
    "write_users",
]

# Rough shares of an international e-commerce audience; the US is the largest market.
COUNTRY_WEIGHTS: dict[str, float] = {
    "US": 0.35,
    "GB": 0.12,
    "DE": 0.11,
    "FR": 0.10,
    "CA": 0.09,
    "BR": 0.09,
    "IN": 0.08,
    "JP": 0.06,
}
BLOCK_ROWS = 65_536  # rows per seeded block: the unit of determinism, not of memory use
DEFAULT_SCORING_SEED = 42
DEFAULT_TRAINING_SEED = 7  # a different seed: the model never sees the users it scores


def conversion_probability(users: pd.DataFrame) -> np.ndarray:
    """The *true* probability that a user converts: the signal the model has to learn.

    A logistic function of the RFM features: recent, frequent, high-spending and engaged
    users convert more; a long gap since the last purchase lowers the odds.
    """
    logit = (
        -1.2
        - 0.012 * users["recency"].to_numpy()
        + 0.35 * np.sqrt(users["frequency"].to_numpy())
        + 0.30 * np.log1p(users["monetary"].to_numpy()) / np.log(10)
        + 2.4 * users["engagement_score"].to_numpy()
        - 0.0025 * users["days_since_last_purchase"].to_numpy()
    )
    return 1.0 / (1.0 + np.exp(-logit))


# ---- what happened after a campaign: simulated outcomes ---------------------------------------
SEGMENTS: tuple[str, ...] = ("sure thing", "persuadable", "lost cause", "sleeping dog")
MAX_UPLIFT = 0.12  # the largest true effect of contacting a user on their conversion probability
PEAK_PROPENSITY = 0.3  # ... reached by users this likely to convert anyway
PEAK_WIDTH = 0.15
OUTCOME_SEED = 2026


def treatment_effect(users: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The *true* effect of contacting each user on their conversion probability, and the
    user's segment: what a real campaign never reveals and the simulation knows.

    - **persuadable**: users in the middle of the propensity range convert notably more
      when contacted: up to +12 points at a propensity of 0.3, falling off on both sides;
    - **sure thing**: the likeliest converters (propensity >= 0.5) convert anyway;
      contacting them adds almost nothing;
    - **lost cause**: the least likely stay unlikely either way;
    - **sleeping dog**: frequent buyers who no longer engage (frequency >= 8, engagement
      below 0.15) are put off: contact halves their chance.

    So the users with the highest *propensity* are not those with the highest *uplift*.
    """
    base = conversion_probability(users)
    effect = MAX_UPLIFT * np.exp(-(((base - PEAK_PROPENSITY) / PEAK_WIDTH) ** 2))
    put_off = (users["frequency"].to_numpy() >= 8) & (users["engagement_score"].to_numpy() < 0.15)
    effect = np.where(put_off, -0.5 * base, effect)
    segment = np.select(
        [put_off, effect >= 0.03, base >= 0.5],
        ["sleeping dog", "persuadable", "sure thing"],
        default="lost cause",
    )
    return effect, segment


def simulate_outcomes(
    predictions: pd.DataFrame, users: pd.DataFrame, seed: int = OUTCOME_SEED
) -> pd.DataFrame:
    """Whether each scored user converted after the campaign: treatment users with their
    propensity plus the true effect of contact, control users with their propensity alone.

    ``predictions`` needs ``user_id`` and ``group`` (the job's output); ``users`` the
    features by ``user_id``. A user's draw is a fixed function of (``seed``, user id), so
    the outcome is reproducible and independent of row order. Returns ``user_id``,
    ``group``, ``segment``, ``base_probability``, ``true_effect`` and ``converted``.
    """
    from lib.holdout import TREATMENT, uniform_draw

    features = users.set_index(schema.USER_ID).loc[predictions[schema.USER_ID].to_numpy()]
    features = features.reset_index()
    base = conversion_probability(features)
    effect, segment = treatment_effect(features)
    treated = predictions[schema.GROUP].to_numpy() == TREATMENT
    probability = np.clip(base + np.where(treated, effect, 0.0), 0.0, 1.0)
    draw = uniform_draw(seed, predictions[schema.USER_ID].to_numpy())
    return pd.DataFrame(
        {
            schema.USER_ID: predictions[schema.USER_ID].to_numpy(),
            schema.GROUP: predictions[schema.GROUP].to_numpy(),
            "segment": segment,
            "base_probability": base,
            "true_effect": effect,
            schema.LABEL: draw < probability,
        }
    )


# ---- dated snapshots --------------------------------------------------------------------------
def drifted(users: pd.DataFrame, strength: float) -> pd.DataFrame:
    """The same users some months on: fewer recent visits, less engagement (``strength``
    0 to 1). Notebook 01 writes such a snapshot to show the drift check firing."""
    if not 0.0 <= strength <= 1.0:
        raise InvalidInputError(f"drift strength must be between 0 and 1, got {strength}")
    out = users.copy()
    out["recency"] = np.minimum(out["recency"] + np.round(120 * strength), 365).astype("int64")
    out["engagement_score"] = out["engagement_score"] * (1 - 0.6 * strength)
    out["days_since_last_purchase"] = np.minimum(
        out["days_since_last_purchase"] + np.round(150 * strength), 730
    ).astype("int64")
    return out


def write_snapshot(
    as_of: date, n_users: int, seed: int = DEFAULT_SCORING_SEED, *, drift: float = 0.0
) -> Path:
    """The users on ``as_of``: DATA_DIR/users/snapshot_date=YYYY-MM-DD/part-0.parquet,
    written atomically (a re-run replaces that date's snapshot only)."""
    folder = get_settings().snapshot_path(as_of)
    users = generate_users(n_users, seed)
    if drift:
        users = drifted(users, drift)
    folder.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(users, schema=schema.USER_SCHEMA, preserve_index=False)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    atomic_write_bytes(folder / "part-0.parquet", sink.getvalue().to_pybytes())
    return folder


def _block(seed: int, index: int, rows: int, labelled: bool) -> pd.DataFrame:
    """One block of users; the block's content depends only on (seed, index, rows)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, index]))
    countries = np.array(list(COUNTRY_WEIGHTS))
    weights = np.array(list(COUNTRY_WEIGHTS.values()))
    frequency = rng.poisson(lam=rng.gamma(shape=1.5, scale=3.0, size=rows))
    # Spend grows with the number of purchases; log-normal basket sizes.
    monetary = np.round(frequency * rng.lognormal(mean=3.6, sigma=0.6, size=rows), 2)
    users = pd.DataFrame(
        {
            schema.USER_ID: np.arange(index * BLOCK_ROWS + 1, index * BLOCK_ROWS + rows + 1),
            "country": countries[rng.choice(len(countries), size=rows, p=weights / weights.sum())],
            "age": np.clip(np.round(rng.normal(40, 13, size=rows)), 18, 80).astype(np.int64),
            "recency": rng.integers(0, 366, size=rows),
            "frequency": frequency.astype(np.int64),
            "monetary": monetary.astype(np.float64),
            "engagement_score": np.round(rng.beta(2.0, 3.0, size=rows), 4),
            "days_since_last_purchase": np.where(
                frequency > 0, rng.integers(0, 366, size=rows), rng.integers(180, 731, size=rows)
            ).astype(np.int64),
        }
    )
    for field in schema.USER_SCHEMA:  # a feature added in lib.schema without a generator here
        if field.name not in users:
            users[field.name] = _neutral_column(rng, field, rows)
    users = users[list(schema.USER_SCHEMA.names)]
    if labelled:
        noise = rng.normal(0.0, 0.3, size=rows)  # label noise on top of the Bernoulli draw
        p = conversion_probability(users)
        p = 1.0 / (1.0 + np.exp(-(np.log(p / (1 - p)) + noise)))
        users[schema.LABEL] = (rng.random(rows) < p).astype(np.int64)
    return users


def _neutral_column(rng: np.random.Generator, field: pa.Field, rows: int) -> np.ndarray:
    """Values for a column the generator has no recipe for: plausible, and no signal.

    The true conversion probability ignores it, so a model trained with it should learn to
    ignore it too: a safe default until you give the new feature its own distribution in
    :func:`_block` (and, if it should matter, a term in :func:`conversion_probability`).
    """
    if pa.types.is_integer(field.type):
        return rng.integers(0, 100, size=rows).astype(np.int64)
    if pa.types.is_floating(field.type):
        return np.round(rng.random(rows), 4)
    return np.array([f"v{i}" for i in rng.integers(0, 5, size=rows)])


def iter_user_batches(
    n_users: int,
    seed: int = DEFAULT_SCORING_SEED,
    *,
    labelled: bool = False,
    chunk_rows: int = 1_048_576,
) -> Iterator[pd.DataFrame]:
    """Yield the users in chunks of about ``chunk_rows`` (rounded to whole blocks)."""
    if n_users <= 0:
        raise InvalidInputError(f"n_users must be a positive number, got {n_users}")
    blocks_per_chunk = max(1, chunk_rows // BLOCK_ROWS)
    n_blocks = -(-n_users // BLOCK_ROWS)
    for first in range(0, n_blocks, blocks_per_chunk):
        parts = []
        for index in range(first, min(first + blocks_per_chunk, n_blocks)):
            rows = min(BLOCK_ROWS, n_users - index * BLOCK_ROWS)
            parts.append(_block(seed, index, rows, labelled))
        yield pd.concat(parts, ignore_index=True)


def generate_users(
    n_users: int, seed: int = DEFAULT_SCORING_SEED, *, labelled: bool = False
) -> pd.DataFrame:
    """All users in memory: convenient for notebooks and tests up to a few million rows."""
    return pd.concat(list(iter_user_batches(n_users, seed, labelled=labelled)), ignore_index=True)


def write_users(
    path: str | os.PathLike[str],
    n_users: int,
    seed: int = DEFAULT_SCORING_SEED,
    *,
    labelled: bool = False,
    chunk_rows: int = 1_048_576,
    progress: bool = False,
) -> Path:
    """Write users to Parquet chunk by chunk (memory stays flat) and atomically.

    Rows go to a temporary file beside the target, renamed over it only when complete, so
    an error or a kill never leaves a partial file at ``path``.
    """
    target = Path(path)
    table_schema = schema.TRAINING_SCHEMA if labelled else schema.USER_SCHEMA
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        os.close(fd)
    except OSError as err:
        raise InvalidInputError(f"cannot write to {target}: {err.strerror or err}") from err
    tmp = Path(tmp_name)
    batches = iter_user_batches(n_users, seed, labelled=labelled, chunk_rows=chunk_rows)
    try:
        with (
            pq.ParquetWriter(tmp, table_schema, compression="snappy") as writer,
            tqdm(
                total=n_users, unit="users", desc=f"writing {target.name}", disable=not progress
            ) as bar,
        ):
            for batch in batches:
                writer.write_table(
                    pa.Table.from_pandas(batch, schema=table_schema, preserve_index=False),
                    row_group_size=len(batch),
                )
                bar.update(len(batch))
        publish_file_mode(tmp)  # mkstemp made it 0600; give it the mode open() would
        os.replace(tmp, target)
    except OSError as err:
        raise InvalidInputError(f"cannot write to {target}: {err.strerror or err}") from err
    finally:
        tmp.unlink(missing_ok=True)
    return target


def _parser() -> argparse.ArgumentParser:
    settings = get_settings()
    parser = argparse.ArgumentParser(
        prog="python -m lib.data", description="Generate synthetic users as Parquet."
    )
    parser.add_argument("--n-users", type=int, default=1_000, help="number of users (default 1000)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SCORING_SEED, help="random seed")
    parser.add_argument("--output", type=Path, default=settings.users_path, help="Parquet path")
    parser.add_argument(
        "--labelled", action="store_true", help=f"add the '{schema.LABEL}' label (training data)"
    )
    parser.add_argument(
        "--as-of",
        type=_date_argument,
        default=None,
        help="write the snapshot of this date (YYYY-MM-DD) to DATA_DIR/users/snapshot_date=...",
    )
    parser.add_argument(
        "--drift",
        type=float,
        default=0.0,
        help="with --as-of: how far the users drifted (0 to 1; notebook 01 shows it)",
    )
    return parser


def _date_argument(text: str) -> date:
    from lib.contract import parse_date

    try:
        return parse_date(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.n_users <= 0:
        raise InvalidInputError(f"--n-users must be a positive number, got {args.n_users}")
    if args.as_of is not None:
        folder = write_snapshot(args.as_of, args.n_users, args.seed, drift=args.drift)
        print(f"✅ Wrote the {args.as_of} snapshot of {args.n_users:,} users to {folder}")
        return 0
    if args.drift:
        raise InvalidInputError("--drift goes with --as-of (a dated snapshot)")
    path = write_users(
        args.output,
        args.n_users,
        args.seed,
        labelled=args.labelled,
        progress=args.n_users >= 2_000_000,
    )
    print(f"✅ Wrote {args.n_users:,} users to {path}")
    return 0


if __name__ == "__main__":
    run_cli(main)

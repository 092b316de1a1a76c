"""A run's contact list: the treatment users its budget contacts, as a CSV a marketer opens.

The run report (lib.report) writes it beside itself, ``<report>_contacts.csv``, from the
run's local predictions: one row per user to contact, best score first, with the columns

    rank      1 = the best score
    user_id   the user
    score     the model's estimated chance that the user converts, 0 to 1 (3 decimals)
    decile    1 = the best-scoring tenth of the audience

The control group is never in it. Only what the list needs is read, with pyarrow: the
treatment users' deciles first (one small column), then the users of the best deciles that
cover the budget (and any user of a worse decile scoring as high as the last one listed),
which are sorted (best score first, ties by user id) and streamed to a temporary file that
replaces the list in one step (lib.files): a failure leaves no half list. Memory holds the
users of those best deciles, never the whole audience.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lib import schema
from lib.files import atomic_writer, local_path

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.dataset as ds

__all__ = ["COLUMNS", "ContactList", "ContactListError", "contact_list_path", "write_contact_list"]

COLUMNS = ("rank", "user_id", "score", "decile")
SCORE_DECIMALS = 3  # a score to a tenth of a percentage point: enough to rank by eye
TREATMENT = "treatment"  # lib.holdout's group name for the users to contact
BATCH_ROWS = 65_536  # rows per CSV write: the list is streamed, never formatted at once


class ContactListError(Exception):
    """Why the contact list cannot be written (one line, shown in the report)."""


@dataclass(frozen=True)
class ContactList:
    """A written contact list: where, how many users, their expected conversions (the sum
    of their unrounded scores)."""

    path: Path
    contacts: int
    expected: float


def contact_list_path(report: Path) -> Path:
    """The contact list beside a report: same folder, the report's name + ``_contacts.csv``."""
    return report.with_name(f"{report.stem}_contacts.csv")


def write_contact_list(
    predictions: str, target: Path, contacts: int, *, run_id: int | None = None
) -> ContactList:
    """Write the ``contacts`` best-scoring treatment users of the local ``predictions``
    (a Parquet file or folder, or a ``file:`` URI) to ``target``, atomically.

    With ``run_id``, the predictions must be that run's (a later run may have replaced them).
    Raises :class:`ContactListError` when they cannot be read, are another run's, or hold
    fewer treatment users than ``contacts``.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    if contacts < 1:
        raise ContactListError("there is nobody to contact")
    path = local_path(predictions)
    if path is None:
        raise ContactListError(f"{predictions} is not a local path")
    try:
        dataset = ds.dataset(path, format="parquet")
        if run_id is not None:
            _check_run(dataset, run_id, path)
        treatment = pc.field(schema.GROUP) == TREATMENT
        deciles = dataset.to_table(columns=[schema.DECILE], filter=treatment)
        last = _last_decile_needed(deciles.column(schema.DECILE), contacts)
        if last is None:
            raise ContactListError(
                f"{path} holds {deciles.num_rows:,} treatment users, fewer than the "
                f"{contacts:,} to contact"
            )
        columns = [schema.USER_ID, schema.SCORE, schema.DECILE]
        within = pc.field(schema.DECILE) <= last
        best = _best(dataset.to_table(columns=columns, filter=treatment & within), contacts)
        # Users of a worse decile who score as high as the last one listed: ties split
        # across a decile boundary (deciles by rank put equal scores apart).
        lowest = best.column(schema.SCORE)[-1]
        tied = treatment & ~within & (pc.field(schema.SCORE) >= lowest)
        more = dataset.to_table(columns=columns, filter=tied)
        if more.num_rows:
            best = _best(pa.concat_tables([best, more]), contacts)
    except FileNotFoundError:
        raise ContactListError(f"the predictions at {path} are missing") from None
    except (OSError, pa.ArrowException) as err:
        raise ContactListError(f"cannot read the predictions at {path}: {err}") from None
    expected = float(pc.sum(best.column(schema.SCORE)).as_py() or 0.0)
    rows = pa.table(
        {
            "rank": pa.array(range(1, best.num_rows + 1), pa.int64()),
            "user_id": best.column(schema.USER_ID),
            "score": pc.round(best.column(schema.SCORE), SCORE_DECIMALS),
            "decile": best.column(schema.DECILE),
        }
    )
    _write_csv(rows, target)
    return ContactList(target, rows.num_rows, expected)


def _check_run(dataset: ds.Dataset, run_id: int, path: str) -> None:
    """All rows of one output come from one run: its first row says which."""
    first = dataset.head(1, columns=["run_id"])
    found = first.column("run_id")[0].as_py() if first.num_rows else None
    if found is not None and found != run_id:
        raise ContactListError(
            f"the predictions at {path} are now run {found}'s, not this run's ({run_id}): "
            "score the campaign again for a current list"
        )


def _best(users: pa.Table, contacts: int) -> pa.Table:
    """The ``contacts`` best: highest score first, ties by the smaller user id."""
    order = [(schema.SCORE, "descending"), (schema.USER_ID, "ascending")]
    return users.sort_by(order).slice(0, contacts)


def _last_decile_needed(deciles: pa.ChunkedArray, contacts: int) -> int | None:
    """The worst decile the ``contacts`` best treatment users reach (a higher score never
    has a worse decile), or None when there are fewer treatment users than that."""
    import pyarrow.compute as pc

    counts = pc.value_counts(deciles).to_pylist()
    covered = 0
    for decile, users in sorted((c["values"], c["counts"]) for c in counts):
        covered += users
        if covered >= contacts:
            return int(decile)
    return None


def _write_csv(rows: pa.Table, target: Path) -> None:
    import pyarrow.csv as csv

    options = csv.WriteOptions(quoting_style="none", quoting_header="none")  # numbers only
    with (
        atomic_writer(target) as handle,
        csv.CSVWriter(handle, rows.schema, write_options=options) as out,
    ):
        for batch in rows.to_batches(max_chunksize=BATCH_ROWS):
            out.write_batch(batch)

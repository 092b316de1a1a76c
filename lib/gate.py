"""The input gate: do the users look like the data the model learned from?

A model scores whatever it is given: a feature that arrives as fractions where it learned
whole numbers, a column that is suddenly half empty, or values beyond anything seen at
training all give scores that look as plausible as any others. The gate compares the
audience with the model's training reference (lib.drift, kept by the registry) and stops
the job before anything is written:

- **type** (before scoring, from the Parquet footers): a feature trained on whole numbers
  must not arrive as fractions, and every feature must be numeric;
- **missing values** (before scoring, from the footers' exact null counts): the share of
  nulls may exceed the training share by at most the campaign's ``input_tolerance``;
- **range** (counted while scoring, checked before the write): the share of values outside
  the range seen at training may be at most ``input_tolerance``.

Beyond the tolerance the job stops with one line and exit code 10, records the run as
failed, and writes nothing; within it, any excess is a warning the job prints, the run
report shows and the run keeps scoring. A campaign that wants no gate sets
``input_tolerance`` to 1 (types are still checked). Remote inputs (``gs://``, ``s3a://``)
have no footers here: their types and nulls are not checked before scoring (the range is).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from lib.drift import ColumnReference, Reference, range_key
from lib.errors import InputGateError

__all__ = ["ColumnFacts", "GateResult", "check_input", "check_ranges", "column_facts"]


@dataclass(frozen=True)
class ColumnFacts:
    """What the input's footers say about one column."""

    kind: str  # "int", "float" (floats and decimals) or another Arrow type's name
    rows: int  # rows whose null count the footers give (0: no statistics)
    nulls: int


@dataclass
class GateResult:
    warnings: list[str] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)


def column_facts(path: str, columns: Sequence[str]) -> dict[str, ColumnFacts]:
    """Type, rows and nulls per column from the Parquet footers of ``path`` (a file or a
    folder of part files); no row is read. Row groups without statistics are left out."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    dataset = ds.dataset(path, format="parquet")
    facts: dict[str, ColumnFacts] = {}
    for name in columns:
        if name not in dataset.schema.names:
            continue
        typ = dataset.schema.field(name).type
        numeric = pa.types.is_floating(typ) or pa.types.is_decimal(typ)
        kind = "int" if pa.types.is_integer(typ) else "float" if numeric else str(typ)
        rows = nulls = 0
        for fragment in dataset.get_fragments():
            metadata = fragment.metadata
            # The leaf column of that name: nested columns have leaves of their own, so an
            # Arrow field's position is not its Parquet column's.
            leaves = [metadata.schema.column(i).path for i in range(metadata.num_columns)]
            if name not in leaves:
                continue
            index = leaves.index(name)
            for g in range(metadata.num_row_groups):
                group = metadata.row_group(g)
                stats = group.column(index).statistics
                if stats is not None and stats.has_null_count:
                    rows += group.num_rows
                    nulls += stats.null_count
        facts[name] = ColumnFacts(kind, rows, nulls)
    return facts


def _check_column(
    name: str, facts: ColumnFacts, ref: ColumnReference, tolerance: float, result: GateResult
) -> None:
    if facts.kind not in ("int", "float"):
        result.refusals.append(f"{name} is {facts.kind}, the model was trained on numbers")
        return
    if ref.kind == "int" and facts.kind == "float":
        result.refusals.append(
            f"{name} holds fractions (float), the model was trained on whole numbers"
        )
        return
    if facts.rows:
        missing = facts.nulls / facts.rows
        _judge(
            f"{name}: {missing:.1%} of values missing (training: {ref.null_share:.1%})",
            missing - ref.null_share,
            tolerance,
            result,
        )


def _judge(text: str, excess: float, tolerance: float, result: GateResult) -> None:
    if excess > tolerance:
        result.refusals.append(text)
    elif excess > 0:
        result.warnings.append(text)


def _refuse(result: GateResult, tolerance: float) -> None:
    if result.refusals:
        shown = "; ".join(result.refusals[:3])
        more = f" (and {len(result.refusals) - 3} more)" if len(result.refusals) > 3 else ""
        raise InputGateError(
            f"the input does not look like the model's training data: {shown}{more}; "
            f"the campaign's input_tolerance is {tolerance:g}"
        )


def check_input(path: str, reference: Reference, tolerance: float) -> GateResult:
    """Types and missing values of a local or mounted Parquet input, from its footers;
    raises InputGateError (exit 10) beyond ``tolerance``, else returns the warnings."""
    facts = column_facts(path, list(reference.features))
    result = GateResult()
    for name, ref in reference.features.items():
        if name in facts:
            _check_column(name, facts[name], ref, tolerance, result)
    _refuse(result, tolerance)
    return result


def check_ranges(
    reference: Reference, profile: Mapping[str, Sequence[int]], tolerance: float
) -> GateResult:
    """The audience's values outside the training range, counted while scoring
    (:class:`lib.drift.ProfileCounter`); raises InputGateError beyond ``tolerance``."""
    result = GateResult()
    for name, ref in reference.features.items():
        counts = profile.get(range_key(name))
        if not counts:
            continue
        below, above, rows, nulls = (int(c) for c in counts)
        present = rows - nulls
        if rows:  # NaN counts as missing here: the footers' null counts do not include it
            _judge(
                f"{name}: {nulls / rows:.1%} of values missing or NaN "
                f"(training: {ref.null_share:.1%})",
                nulls / rows - ref.null_share,
                tolerance,
                result,
            )
        if present and ref.min is not None and ref.max is not None:
            outside = (below + above) / present
            _judge(
                f"{name}: {outside:.1%} of values outside the training range "
                f"{ref.min:g} to {ref.max:g} ({below:,} below, {above:,} above)",
                outside,
                tolerance,
                result,
            )
    _refuse(result, tolerance)
    return result

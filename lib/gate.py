"""The input gate: before scoring, do the users look like the data the model learned from?

A model scores whatever it is given: a feature that arrives as text-turned-float, a column
that is suddenly half empty, or values far outside anything seen at training all give
scores that look as plausible as any others. The gate compares the input with the model's
training reference (lib.drift, kept by the registry) before any scoring, from the Parquet
footers' statistics (no pass over the data):

- **type**: a feature trained on whole numbers must not arrive as fractions (floats);
- **missing values**: the share of nulls may exceed the training share by at most the
  campaign's ``input_tolerance``;
- **range**: values may lie outside the training range by at most ``input_tolerance``
  times that range, on either side.

Beyond the tolerance the job stops with one line and exit code 10 (and records the run as
failed); within it, any excess is a warning the job prints, the run report shows and the
run keeps scoring. A campaign that wants no gate sets ``input_tolerance`` to 1 (types are
still checked). Remote inputs (``gs://``, ``s3a://``) have no footers here: the gate says
it did not run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from lib.drift import ColumnReference, Reference
from lib.errors import InputGateError

__all__ = ["ColumnFacts", "GateResult", "check_input", "column_facts"]


@dataclass(frozen=True)
class ColumnFacts:
    """What the input's footers say about one column."""

    kind: str  # "int", "float" or another Arrow type's name
    rows: int
    nulls: int
    min: float | None  # None: no statistics (or no values)
    max: float | None


@dataclass
class GateResult:
    warnings: list[str] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)


def column_facts(path: str, columns: Sequence[str]) -> dict[str, ColumnFacts]:
    """Rows, nulls, min and max per column from the Parquet footers of ``path`` (a file or
    a folder of part files); no row is read."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    dataset = ds.dataset(path, format="parquet")
    facts: dict[str, ColumnFacts] = {}
    for name in columns:
        if name not in dataset.schema.names:
            continue
        typ = dataset.schema.field(name).type
        kind = (
            "int"
            if pa.types.is_integer(typ)
            else "float"
            if pa.types.is_floating(typ)
            else str(typ)
        )
        rows = nulls = 0
        low: float | None = None
        high: float | None = None
        known = True
        for fragment in dataset.get_fragments():
            metadata = fragment.metadata
            index = metadata.schema.to_arrow_schema().get_field_index(name)
            for g in range(metadata.num_row_groups):
                column = metadata.row_group(g).column(index)
                rows += metadata.row_group(g).num_rows
                stats = column.statistics
                if stats is None or not stats.has_null_count:
                    known = False
                    continue
                nulls += stats.null_count
                if stats.has_min_max and kind in ("int", "float"):
                    low = float(stats.min) if low is None else min(low, float(stats.min))
                    high = float(stats.max) if high is None else max(high, float(stats.max))
                elif stats.num_values:
                    known = False
        facts[name] = ColumnFacts(
            kind, rows, nulls, low if known else None, high if known else None
        )
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
        excess = missing - ref.null_share
        if excess > 0:
            text = f"{name}: {missing:.1%} of values missing (training: {ref.null_share:.1%})"
            (result.refusals if excess > tolerance else result.warnings).append(text)
    if facts.min is None or facts.max is None or ref.min is None or ref.max is None:
        if facts.rows > facts.nulls:
            result.warnings.append(f"{name}: no min/max statistics in the input, range unchecked")
        return
    width = (ref.max - ref.min) or 1.0
    beyond = max((ref.min - facts.min) / width, (facts.max - ref.max) / width)
    if beyond > 0:
        text = (
            f"{name}: values from {facts.min:g} to {facts.max:g}, outside the training range "
            f"{ref.min:g} to {ref.max:g} by {beyond:.1%} of it"
        )
        (result.refusals if beyond > tolerance else result.warnings).append(text)


def check_input(path: str, reference: Reference, tolerance: float) -> GateResult:
    """The gate for a local or mounted Parquet input; raises InputGateError (exit 10) when
    a feature breaks the model's expectations beyond ``tolerance``, else returns warnings."""
    facts = column_facts(path, list(reference.features))
    result = GateResult()
    for name, ref in reference.features.items():
        if name in facts:
            _check_column(name, facts[name], ref, tolerance, result)
    if result.refusals:
        shown = "; ".join(result.refusals[:3])
        more = f" (and {len(result.refusals) - 3} more)" if len(result.refusals) > 3 else ""
        raise InputGateError(
            f"the input does not look like the model's training data: {shown}{more}; "
            f"the campaign's input_tolerance is {tolerance:g}"
        )
    return result

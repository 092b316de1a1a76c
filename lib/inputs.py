"""Input checks that need no engine: the column contract, and local Parquet footers.

The same rule judges a Spark schema (:mod:`lib.spark_engine`) and the footers read here,
so the job refuses the same inputs whatever engine runs it, before that engine starts.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lib import schema
from lib.errors import InvalidInputError
from lib.files import local_path

__all__ = ["arrow_kind", "check_columns", "check_ids", "check_local_input"]

# Column kinds, the same for Arrow (local footers) and Spark schemas: "int" (signed, or
# unsigned up to 32 bits), "float", "decimal", "string"; anything else is its type's name.
_NUMBER_KINDS = ("int", "float", "decimal")


def check_columns(kinds: dict[str, str], needed: Sequence[str]) -> None:
    """Every needed column present, of the kind the contract says; ``user_id`` whole numbers."""
    missing = [c for c in needed if c not in kinds]
    if missing:
        raise InvalidInputError(f"input lacks columns {missing} (has {sorted(kinds)})")
    for name in needed:
        kind = kinds[name]
        if name == schema.USER_ID:
            if kind != "int":
                raise InvalidInputError(
                    f"input column '{name}' must hold whole numbers that fit a signed 64-bit "
                    f"integer (int64), is {kind}"
                )
            continue
        expected = schema.AUDIENCE_COLUMNS.get(name)
        if expected in ("int", "float") and kind not in _NUMBER_KINDS:
            raise InvalidInputError(f"input column '{name}' must be numeric, is {kind}")
        if expected == "string" and kind != "string":
            raise InvalidInputError(f"input column '{name}' must be text, is {kind}")


def check_ids(rows: int, ids: int, distinct_ids: int) -> None:
    """Every scored user has an id, and each id once: the output is keyed by user_id."""
    if ids < rows:
        raise InvalidInputError(
            f"input has {rows - ids:,} users without a user_id in the audience; "
            "fix the input (every user needs an id)"
        )
    if distinct_ids < ids:
        raise InvalidInputError(
            f"input has {ids - distinct_ids:,} duplicate user_id rows in the audience; "
            "each user must appear once (deduplicate the input)"
        )


def arrow_kind(typ: Any) -> str:
    import pyarrow as pa

    if pa.types.is_dictionary(typ):  # pandas categoricals: Spark reads the values
        return arrow_kind(typ.value_type)
    if pa.types.is_signed_integer(typ) or (
        pa.types.is_unsigned_integer(typ) and typ.bit_width <= 32
    ):
        return "int"
    if pa.types.is_floating(typ):
        return "float"
    if pa.types.is_decimal(typ):
        return "decimal"
    if pa.types.is_string(typ) or pa.types.is_large_string(typ) or pa.types.is_string_view(typ):
        return "string"
    return str(typ)


def check_local_input(path: str, needed: Sequence[str]) -> int | None:
    """Fail fast, before Spark starts, when a local input is missing, unreadable or wrong.

    Reads only Parquet footers: every part file's own schema (parts that disagree on a
    needed column's type are refused: Spark would fail half-way through) and the row
    count. Returns the number of rows, or ``None`` for remote storage, which Spark checks.
    """
    import pyarrow as pa
    import pyarrow.dataset as ds

    local = local_path(path)
    if local is None:
        return None
    path = local
    if not Path(path).exists():
        raise InvalidInputError(f"input not found: {path} (run `python -m lib.data` first)")
    try:
        # Hive-style folders (country=US/part-0.parquet) carry columns in their names;
        # Spark reads them as columns, so the check must too.
        dataset = ds.dataset(path, format="parquet", partitioning="hive")
        fragments = list(dataset.get_fragments())
        if not fragments:
            raise InvalidInputError(f"input {path} holds no Parquet files")
        first_types: dict[str, tuple[Any, str]] = {}
        anywhere = {name for f in fragments for name in f.physical_schema.names}
        for fragment in fragments:
            physical = fragment.physical_schema
            in_folder_names = ds.get_partition_keys(fragment.partition_expression)
            for name in needed:
                if name in in_folder_names:
                    continue
                if name not in physical.names and name not in anywhere:
                    continue  # no part has it: check_columns names what is missing
                if name not in physical.names:
                    # Spark would read NULL for it (no schema merging) and quietly drop or
                    # mis-score those users; the python-reads path would fail half-way.
                    raise InvalidInputError(
                        f"input part {Path(fragment.path).name} lacks column '{name}' "
                        "(every part needs every column the job reads)"
                    )
                typ = physical.field(name).type
                seen = first_types.setdefault(name, (typ, fragment.path))
                if not seen[0].equals(typ):
                    raise InvalidInputError(
                        f"input parts disagree on column '{name}': {seen[0]} in "
                        f"{Path(seen[1]).name}, {typ} in {Path(fragment.path).name}"
                    )
        rows = dataset.count_rows()
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise InvalidInputError(f"cannot read input {path}: {first}") from None
    kinds = {field.name: arrow_kind(field.type) for field in dataset.schema}
    kinds.update({name: arrow_kind(typ) for name, (typ, _) in first_types.items()})
    check_columns(kinds, needed)
    return int(rows)

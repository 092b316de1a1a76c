"""Warnings for text values a filter compares with that no user has (``'UK'`` where the data
says ``GB``): the filter is valid, yet silently selects nobody.

The distinct values of the users Parquet's text columns are read with pyarrow, one column at a
time, and cached by the file's path, modification time and size (a regenerated file is read
anew). A column with more than :data:`MAX_DISTINCT` values is not checked: listing them would
not help, and keeping them would cost memory. No file, an unreadable one, or a column that is
missing or not text means no warnings: they are advice, never a reason to refuse.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator
from functools import lru_cache
from pathlib import Path
from typing import Final

from lib import schema
from lib.audience.tree import And, AudienceFilter, Compare, Condition, InList, Not, Or, literal

__all__ = ["MAX_DISTINCT", "MAX_SHOWN", "text_values", "value_warnings"]

MAX_DISTINCT: Final = 1_000  # distinct values kept per column; a column with more is not checked
MAX_SHOWN: Final = 12  # values listed in one warning
_MAX_VALUE_CHARS: Final = 30

TEXT_COLUMNS: Final = tuple(
    name for name, kind in schema.AUDIENCE_COLUMNS.items() if kind == "string"
)


def text_values(
    users_path: str | Path, columns: Iterable[str] = TEXT_COLUMNS
) -> dict[str, tuple[str, ...]]:
    """The sorted distinct values of each of ``columns`` the users data holds as text.

    Columns that are missing, not text, or hold over :data:`MAX_DISTINCT` values are left
    out; so is everything when the file is missing or unreadable.
    """
    path = Path(users_path)
    try:
        stat = path.stat()
    except OSError:
        return {}
    found = {}
    for column in columns:
        values = _distinct(str(path), stat.st_mtime_ns, stat.st_size, column)
        if values is not None:
            found[column] = values
    return found


@lru_cache(maxsize=64)
def _distinct(path: str, mtime_ns: int, size: int, column: str) -> tuple[str, ...] | None:
    """The distinct values of one text column (cached: the key holds mtime and size)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    try:
        dataset = ds.dataset(path, format="parquet")
        if column not in dataset.schema.names:
            return None
        typ = dataset.schema.field(column).type
        if pa.types.is_dictionary(typ):
            typ = typ.value_type
        if not (pa.types.is_string(typ) or pa.types.is_large_string(typ)):
            return None
        unique = pc.unique(dataset.to_table(columns=[column]).column(column))
    except (OSError, pa.ArrowException):
        return None  # the preview says what is wrong with the data; warnings stay advice
    if len(unique) > MAX_DISTINCT + 1:  # + 1: a NULL is among them, perhaps
        return None
    values = tuple(sorted(str(v) for v in unique.to_pylist() if v is not None))
    return values if len(values) <= MAX_DISTINCT else None


def value_warnings(audience: AudienceFilter | None, users_path: str | Path) -> list[str]:
    """One sentence per text value compared with ``=``, ``!=`` or ``IN`` that no user has.

    Numbers, ranges and LIKE patterns are not checked. Empty without users data.
    """
    if audience is None:
        return []
    compared = list(dict.fromkeys(_compared_text(audience.condition)))
    if not compared:
        return []
    values = text_values(users_path, {column for column, _, _ in compared})
    return [
        _unmatched(column, form, value, values[column])
        for column, form, value in compared
        if column in values and value not in values[column]
    ]


def _compared_text(condition: Condition) -> Iterator[tuple[str, str, str]]:
    """(column, "=" / "!=" / "IN", value) for every text value compared for equality."""
    match condition:
        case Compare(column, op, value) if isinstance(value, str) and op in ("=", "!="):
            yield column, op, value
        case InList(column, values):
            for value in values:
                if isinstance(value, str):
                    yield column, "IN", value
        case And(operands) | Or(operands):
            for operand in operands:
                yield from _compared_text(operand)
        case Not(operand):
            yield from _compared_text(operand)


def _unmatched(column: str, form: str, value: str, known: tuple[str, ...]) -> str:
    """``value`` occurs nowhere in ``column``: say so, list what does, suggest the closest."""
    shown = _shown(value)
    head = {
        "=": f"{column} = {shown} matches no user",
        "!=": f"{column} != {shown} leaves out no user",
        "IN": f"{shown} in {column} IN (...) matches no user",
    }[form]
    if not known:
        return f"{head}: the data has no {column} values"
    listed = ", ".join(_shown(v) for v in known[:MAX_SHOWN])
    if len(known) > MAX_SHOWN:
        listed += f" and {len(known) - MAX_SHOWN} more"
    same_letters = [v for v in known if v.casefold() == value.casefold()]
    if same_letters:
        return (
            f"{head}: text is compared case-sensitively and the data has {listed} "
            f"(did you mean {_shown(same_letters[0])}?)"
        )
    close = difflib.get_close_matches(value, known, n=1, cutoff=0.6)
    guess = f" (did you mean {_shown(close[0])}?)" if close else ""
    return f"{head}: the data has {listed}{guess}"


def _shown(value: str) -> str:
    """A value as the filter writes it, cut short."""
    if len(value) > _MAX_VALUE_CHARS:
        value = value[: _MAX_VALUE_CHARS - 1] + "…"
    return literal(value)

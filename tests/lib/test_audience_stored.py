"""Filters compare as Spark SQL compares with the stored column type (lib.audience.stored)."""

from __future__ import annotations

from decimal import Decimal

import pyarrow as pa
import pytest

from lib.audience import parse_filter
from lib.audience.stored import (
    FLOAT32,
    INT32,
    INT64,
    arrow_stored_type,
    for_stored,
)
from lib.audience.tree import Between, Compare, InList, Not
from lib.errors import AudienceFilterError

DECIMAL_12_2 = arrow_stored_type(pa.decimal128(12, 2))


def adapted(text: str, column: str, typ):
    checked = parse_filter(text)
    assert checked is not None
    return for_stored(checked, {column: typ}).condition


def test_an_exact_whole_number_compares_exactly_with_an_int64_column() -> None:
    # The report: monetary stored as int64, compared in double, selected 2^53 and 2^53 + 1.
    assert adapted("monetary = 9007199254740993", "monetary", INT64) == Compare(
        "monetary", "=", 2**53 + 1
    )


def test_a_double_literal_compares_in_double_like_spark() -> None:
    # 9.007199254740993e15 is the double 2^53; both 2^53 and 2^53 + 1 cast to it.
    assert adapted("monetary = 9.007199254740993e15", "monetary", INT64) == Between(
        "monetary", 2**53, 2**53 + 1
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("monetary > 1.5", Compare("monetary", ">=", 2)),
        ("monetary >= 1.5", Compare("monetary", ">=", 2)),
        ("monetary < 1.5", Compare("monetary", "<=", 1)),
        ("monetary <= -1.5", Compare("monetary", "<=", -2)),
        ("monetary = 1.5", Compare("monetary", "<", -(2**63))),  # never (NULL stays NULL)
        ("monetary != 1.5", Not(Compare("monetary", "<", -(2**63)))),
        ("monetary < 1e300", Compare("monetary", ">=", -(2**63))),  # always
        ("monetary > 99999999999999999999", Compare("monetary", "<", -(2**63))),
    ],
)
def test_exact_columns_compare_on_their_own_values(text: str, expected: object) -> None:
    assert adapted(text, "monetary", INT64) == expected


def test_a_decimal_column_gets_literals_of_its_own_scale() -> None:
    assert adapted("monetary > 1.505", "monetary", DECIMAL_12_2) == Compare(
        "monetary", ">=", Decimal("1.51")
    )
    assert adapted("monetary IN (1.5, 2, 3.333)", "monetary", DECIMAL_12_2) == InList(
        "monetary", (Decimal("1.50"), Decimal("2.00"))
    )


def test_float32_and_narrow_int_columns() -> None:
    assert adapted("engagement_score = 0.1", "engagement_score", FLOAT32) == Compare(
        "engagement_score", "=", 0.1
    )
    assert adapted("recency IN (1, 4294967296)", "recency", INT32) == InList("recency", (1,))
    for_float = for_stored(parse_filter("engagement_score > 0"), {"engagement_score": FLOAT32})
    assert for_float.float_columns == {"engagement_score"}
    for_int = for_stored(parse_filter("monetary > 0"), {"monetary": INT64})
    assert for_int.float_columns == frozenset()  # no NaN test on an integer column


def test_comparisons_spark_cannot_do_in_38_digits_are_refused() -> None:
    with pytest.raises(AudienceFilterError, match="38 digits"):
        adapted("monetary > 0.10000000000000000000000000000000000001", "monetary", INT64)

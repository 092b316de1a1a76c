"""The filter language's description cannot drift from the checker: everything the checker
accepts is on the page, and everything the page shows passes the checker and compiles."""

from __future__ import annotations

import html
import re

import pyarrow as pa
import pytest
from sqlglot.dialects.spark import Spark

from lib import schema
from lib.audience import (
    describe_language,
    language_html,
    parse_filter,
    to_arrow_expression,
    to_ibis,
    to_spark_column,
)
from lib.audience.check import _TOKENS
from lib.audience.language import _OPERATORS
from lib.data import generate_users
from lib.errors import AudienceFilterError

DESCRIPTION = describe_language()
PAGE = html.unescape(re.sub(r"<[^>]+>", " ", language_html(DESCRIPTION)))

# Token types that are not operators or keywords: names, values and list punctuation, which
# the page describes in words (columns, values) rather than as spellings.
NOT_OPERATORS = {"VAR", "IDENTIFIER", "STRING", "NUMBER", "R_PAREN", "COMMA", "PLUS", "DASH"}
# Where a spelling is tried: every slot an operator or keyword can take in a filter.
SLOTS = [
    "age {} 30",
    "country {} 'DE'",
    "age {} (30, 40)",
    "age {} 30 AND 40",
    "country {} 'D%'",
    "age {} NULL",
    "age IS {}",
    "age IS NOT {}",
    "age > 3 {} age < 9",
    "{} age > 3",
    "age {} IN (30)",
    "{}age > 3)",
]


def every_spelling() -> set[str]:
    tokenizer = Spark.tokenizer_class
    return set(tokenizer.SINGLE_TOKENS) | set(tokenizer.KEYWORDS)


def accepted(text: str) -> bool:
    try:
        return parse_filter(text) is not None
    except AudienceFilterError:
        return False


def test_every_operator_the_checker_accepts_is_on_the_page() -> None:
    listed = {spelling for entry in DESCRIPTION.operators for spelling in entry.spellings}
    found = {
        spelling
        for spelling in every_spelling()
        if any(accepted(slot.format(spelling)) for slot in SLOTS)
    }
    assert found, "no spelling was accepted: the slots are wrong"
    assert found - {"NULL", ")"} <= listed  # NULL and ) appear in their forms
    for spelling in found:
        assert spelling in PAGE, spelling


def test_every_keyword_of_the_allowlist_is_described() -> None:
    described = {token_type for token_type, *_ in _OPERATORS} | {"NULL"}
    assert described == set(_TOKENS) - NOT_OPERATORS


def test_no_spelling_on_the_page_is_refused() -> None:
    """sqlglot reads ~~ as LIKE, Spark SQL cannot: the checker refuses it, the page omits it."""
    listed = {spelling for entry in DESCRIPTION.operators for spelling in entry.spellings}
    assert "~~" not in listed
    assert {"=", "==", "!=", "<>", "NOT", "!"} <= listed


def test_every_column_is_on_the_page_with_its_type() -> None:
    assert [c.name for c in DESCRIPTION.columns] == list(schema.AUDIENCE_COLUMNS)
    for column in DESCRIPTION.columns:
        assert accepted(f"{column.name} IS NULL")
        assert column.name in PAGE
    types = {c.name: c.type for c in DESCRIPTION.columns}
    assert (types["country"], types["age"], types["monetary"]) == (
        "text",
        "whole number",
        "decimal number",
    )


def shown_filters() -> list[str]:
    return [
        *(example.filter for example in DESCRIPTION.examples),
        *(entry.example for entry in DESCRIPTION.operators),
        *(column.example for column in DESCRIPTION.columns),
    ]


@pytest.mark.parametrize("text", shown_filters())
def test_every_filter_on_the_page_passes_and_compiles_in_every_form(text: str) -> None:
    import ibis
    from pyspark.sql.connect import functions as connect_functions  # builds without a JVM

    checked = parse_filter(text)
    assert checked is not None
    arrow_schema = pa.schema(list(schema.USER_SCHEMA))
    assert to_arrow_expression(checked, arrow_schema) is not None
    assert to_ibis(checked, ibis.table(ibis.schema(arrow_schema), name="users")) is not None
    assert to_spark_column(checked, connect_functions) is not None
    assert text in PAGE


@pytest.mark.parametrize("example", DESCRIPTION.examples, ids=lambda e: e.filter)
def test_every_example_selects_someone_in_generated_data(example) -> None:
    import pyarrow.dataset as ds

    users = pa.Table.from_pandas(generate_users(2_000, seed=42), preserve_index=False)
    expression = to_arrow_expression(parse_filter(example.filter), users.schema)
    assert ds.dataset(users).to_table(filter=expression).num_rows > 0


def test_the_page_lists_a_text_columns_values_when_given() -> None:
    page = language_html(describe_language({"country": ("DE", "GB")}))
    assert "<code>&#x27;DE&#x27;</code>" not in page  # values are shown as they are stored
    assert "<code>GB</code>" in page
    assert describe_language().columns[1].values is None


def test_the_page_loads_nothing_from_elsewhere() -> None:
    page = language_html(DESCRIPTION)
    assert "<script" not in page
    assert not re.search(r"(src|href)=\"(https?:)?//", page)

"""The filter language's description, generated from the checker so it cannot drift from it.

The API serves it at :data:`~lib.audience.messages.LANGUAGE_PAGE` (HTML) and
``/filter-language.json``; every refused filter's message points there. What it lists comes
from the code:

- the columns and their types from :data:`lib.schema.AUDIENCE_COLUMNS`;
- each operator's spellings from sqlglot's Spark tokenizer, kept only where the checker
  accepts them (``==`` is kept, sqlglot's ``~~`` for LIKE is not): every spelling is tried
  in the operator's example through :func:`~lib.audience.check.parse_filter`;
- the limits from :mod:`lib.audience.check`;
- examples, which the tests parse and compile in every form.

The full reference (how each engine reads numbers, NaN, text) is docs/filter-language.md.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Final

from lib import schema
from lib.audience.messages import LANGUAGE_PAGE, example_for

__all__ = [
    "EXAMPLES",
    "LANGUAGE_PAGE",
    "ColumnEntry",
    "Example",
    "LanguageDescription",
    "OperatorEntry",
    "describe_language",
    "language_html",
]

TYPE_NAMES: Final[Mapping[schema.ColumnKind, str]] = {
    "string": "text",
    "int": "whole number",
    "float": "decimal number",
}


@dataclass(frozen=True)
class ColumnEntry:
    """A column a filter may read."""

    name: str
    type: str  # text, whole number or decimal number
    example: str  # a filter on this column that passes the checker
    values: tuple[str, ...] | None = None  # a text column's values in the current data


@dataclass(frozen=True)
class OperatorEntry:
    """An operator (or keyword) of the language and every spelling the checker accepts."""

    form: str
    spellings: tuple[str, ...]
    meaning: str
    example: str


@dataclass(frozen=True)
class Example:
    """A whole filter and what it selects."""

    filter: str
    meaning: str


@dataclass(frozen=True)
class LanguageDescription:
    """Everything the page shows."""

    summary: str
    columns: tuple[ColumnEntry, ...]
    operators: tuple[OperatorEntry, ...]
    values: tuple[str, ...]
    examples: tuple[Example, ...]
    not_allowed: tuple[str, ...]
    limits: Mapping[str, int]
    reference: str


SUMMARY: Final = (
    "An audience filter is one condition on the user columns; a campaign targets the users for "
    "whom it is true (empty: every user). Compare a column with a value, combine conditions "
    "with AND, OR, NOT and parentheses. Keywords and column names may be written in any case."
)

# (sqlglot token type, form, meaning, example with {op} where the spelling goes). The tests
# hold this to the checker: every token type it accepts as an operator or keyword is here.
_OPERATORS: Final = (
    ("EQ", "column = value", "equal to", "country {op} 'DE'"),
    ("NEQ", "column != value", "not equal to", "country {op} 'US'"),
    ("LT", "column < value", "less than", "age {op} 30"),
    ("LTE", "column <= value", "less than or equal to", "age {op} 30"),
    ("GT", "column > value", "greater than", "monetary {op} 100.5"),
    ("GTE", "column >= value", "greater than or equal to", "age {op} 30"),
    (
        "IN",
        "column [NOT] IN (value, ...)",
        "equal to one of the listed values",
        "country {op} ('DE', 'FR')",
    ),
    (
        "BETWEEN",
        "column [NOT] BETWEEN low AND high",
        "from low to high, both included (nothing when low > high)",
        "age {op} 25 AND 34",
    ),
    (
        "LIKE",
        "column [NOT] LIKE 'pattern'",
        "text matching a pattern: % stands for any run of characters, _ for exactly one "
        "(text columns only; no escape character)",
        "country {op} 'G%'",
    ),
    (
        "IS",
        "column IS [NOT] NULL",
        "the value is missing (with NOT: present); = NULL never matches",
        "age {op} NOT NULL",
    ),
    ("AND", "condition AND condition", "both hold", "age >= 30 {op} country = 'DE'"),
    ("OR", "condition OR condition", "either holds", "age < 25 {op} age > 60"),
    (
        "NOT",
        "NOT condition",
        "the condition does not hold (! works only before a condition)",
        "{op} country = 'US'",
    ),
    (
        "L_PAREN",
        "( condition )",
        "group conditions: without parentheses NOT binds first, then AND, then OR",
        "{op}age < 25 OR age > 60) AND country = 'DE'",
    ),
)

VALUES: Final = (
    "Text in single quotes: 'DE' (double quotes work too: \"DE\"; to put a quote inside, "
    'use the other kind: "it\'s"). Text is compared exactly, letter case included.',
    "Numbers as written: 30, -5, 0.5; whole-number columns take whole numbers only, decimal "
    "columns also 1e3.",
    "Comments: -- to the end of the line.",
)

EXAMPLES: Final = (
    Example("country = 'DE'", "users in Germany"),
    Example("country IN ('DE', 'FR') AND age >= 30", "users in Germany or France aged 30 or over"),
    Example("age BETWEEN 25 AND 34", "users aged 25 to 34"),
    Example(
        "recency <= 30 AND frequency >= 3",
        "visited in the last 30 days and bought at least 3 times in the last 12 months",
    ),
    Example("monetary > 500 OR engagement_score >= 0.8", "spent over 500, or are highly engaged"),
    Example("country LIKE 'G%'", "countries whose code starts with G"),
    Example("(age < 25 OR age > 60) AND country != 'US'", "young or senior users outside the US"),
    Example("NOT country IN ('US', 'CA')", "users outside North America"),
)

NOT_ALLOWED: Final = (
    "functions and subqueries",
    "arithmetic (age + 1 > 30) and comparing two columns",
    "ILIKE, RLIKE, LIKE ... ESCAPE, BETWEEN SYMMETRIC",
    "IS TRUE, IS UNKNOWN, IS DISTINCT FROM, <=>, = NULL (write IS NULL)",
    "typed literals and casts (10L, DATE '...', CAST(...))",
    "backslashes anywhere, adjacent quoted strings ('a' 'b'), block comments (/* */)",
)

REFERENCE: Final = (
    "docs/filter-language.md in the repository: how numbers, text and missing values compare"
)


def describe_language(
    values: Mapping[str, Sequence[str]] | None = None,
    columns: Mapping[str, schema.ColumnKind] = schema.AUDIENCE_COLUMNS,
) -> LanguageDescription:
    """The language's description; ``values``: a text column's values in the current data."""
    from lib.audience import check

    return LanguageDescription(
        summary=SUMMARY,
        columns=tuple(
            ColumnEntry(
                name,
                TYPE_NAMES[kind],
                example_for(name, kind),
                tuple(values[name]) if values and name in values else None,
            )
            for name, kind in columns.items()
        ),
        operators=_operators(),
        values=VALUES,
        examples=EXAMPLES,
        not_allowed=NOT_ALLOWED,
        limits={
            "characters": check.MAX_FILTER_LENGTH,
            "conditions": check.MAX_CONDITIONS,
            "values in one IN list": check.MAX_IN_VALUES,
            "levels of parentheses and NOT": check.MAX_DEPTH,
            "parts (a comparison such as age > 5 is 4)": check.MAX_NODES,
        },
        reference=REFERENCE,
    )


@cache
def _operators() -> tuple[OperatorEntry, ...]:
    """Each operator with the spellings sqlglot's tokenizer knows and the checker accepts."""
    from lib.audience.check import parse_filter
    from lib.errors import AudienceFilterError

    entries = []
    for token_type, form, meaning, template in _OPERATORS:
        accepted = []
        for spelling in _spellings(token_type):
            try:
                parse_filter(template.format(op=spelling))
            except AudienceFilterError:
                continue
            accepted.append(spelling)
        entries.append(
            OperatorEntry(form, tuple(accepted), meaning, template.format(op=accepted[0]))
        )
    return tuple(entries)


def _spellings(token_type: str) -> list[str]:
    """Every spelling sqlglot's Spark tokenizer reads as ``token_type``, shortest first."""
    from sqlglot.dialects.spark import Spark

    tokenizer = Spark.tokenizer_class
    known = {**tokenizer.SINGLE_TOKENS, **tokenizer.KEYWORDS}
    found = {text for text, kind in known.items() if kind.name == token_type}
    return sorted(found, key=lambda text: (not text.isalpha(), len(text), text))


# ---- HTML ----------------------------------------------------------------------------------
_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;"
    "line-height:1.5}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
    "padding:.25rem .5rem;text-align:left;vertical-align:top}code{background:#f4f4f4}"
)


def language_html(description: LanguageDescription) -> str:
    """The description as a small, self-contained HTML page (no scripts, no external files)."""

    def code(text: str) -> str:
        return f"<code>{html.escape(text)}</code>"

    def rows(cells: Sequence[Sequence[str]]) -> str:
        return "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in cells)

    columns = rows(
        [
            (
                code(c.name),
                html.escape(c.type),
                code(c.example),
                ", ".join(code(v) for v in c.values) if c.values else "",
            )
            for c in description.columns
        ]
    )
    operators = rows(
        [
            (
                code(o.form),
                " ".join(code(s) for s in o.spellings),
                html.escape(o.meaning),
                code(o.example),
            )
            for o in description.operators
        ]
    )
    examples = rows([(code(e.filter), html.escape(e.meaning)) for e in description.examples])
    limits = "".join(
        f"<li>{html.escape(what)}: at most {count:,}</li>"
        for what, count in description.limits.items()
    )
    return "\n".join(
        [
            "<!doctype html>",
            '<html lang="en"><head><meta charset="utf-8">',
            "<title>The audience filter language</title>",
            f"<style>{_STYLE}</style></head><body>",
            "<h1>The audience filter language</h1>",
            f"<p>{html.escape(description.summary)}</p>",
            "<h2>Columns</h2>",
            "<table><tr><th>column</th><th>type</th><th>example</th>"
            f"<th>values in the current data</th></tr>{columns}</table>",
            "<h2>Operators</h2>",
            "<table><tr><th>form</th><th>spellings</th><th>meaning</th><th>example</th></tr>"
            f"{operators}</table>",
            "<h2>Values</h2>",
            "<ul>" + "".join(f"<li>{html.escape(v)}</li>" for v in description.values) + "</ul>",
            "<h2>Examples</h2>",
            f"<table><tr><th>filter</th><th>selects</th></tr>{examples}</table>",
            "<h2>Not allowed</h2>",
            "<ul>"
            + "".join(f"<li>{html.escape(n)}</li>" for n in description.not_allowed)
            + "</ul>",
            f"<h2>Limits</h2><ul>{limits}</ul>",
            f"<p>The full reference: {html.escape(description.reference)}. As JSON: "
            f'<a href=".{LANGUAGE_PAGE}.json">{LANGUAGE_PAGE}.json</a>.</p>',
            "</body></html>",
        ]
    )

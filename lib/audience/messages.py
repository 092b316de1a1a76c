"""Filter errors a marketer can act on: the one place a refusal becomes the message shown.

Inside :mod:`lib.audience` a refused filter is a :class:`Refusal`: a sentence in the filter
language's terms (which word, what was expected, an example that works), or no sentence when
sqlglot could not read the text at all. :func:`filter_error` turns it into the
:class:`~lib.errors.AudienceFilterError` callers see, and is the only code that builds one
(a test holds it to that). It asks :func:`lib.audience.diagnose.diagnose` for the first
mistake whenever the refusal is vague, bounds the sentence and ends it with a pointer to the
filter language's page (:data:`LANGUAGE_PAGE`). Nothing sqlglot says reaches the message:
its errors are caught where they happen and only their existence is passed on.

Examples quoted in messages are written in backticks and are whole filters that pass the
checker (the tests parse every one they meet).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Final

from lib import schema
from lib.errors import AudienceFilterError

__all__ = [
    "LANGUAGE_PAGE",
    "SLIPS",
    "Refusal",
    "at",
    "example_for",
    "filter_error",
    "unknown_column",
    "word",
]

# The API serves the filter language's description here (api/routes/filter_language.py).
LANGUAGE_PAGE: Final = "/filter-language"
MAX_SENTENCE: Final = 400  # characters: the API shows 500, and the pointer must survive
MAX_WORD: Final = 30  # characters of the marketer's own text quoted in a sentence

AND_EXAMPLE: Final = "age >= 30 AND country = 'DE'"
OR_EXAMPLE: Final = "age < 25 OR age > 60"
GENERAL_EXAMPLE: Final = AND_EXAMPLE

# Tokens sqlglot knows that are common slips, with what to write instead
# (by sqlglot token type).
SLIPS: Final[Mapping[str, str]] = {
    "DAMP": "write AND instead of &&",
    "DPIPE": "write OR instead of ||",
    "AMP": "write AND instead of &",
    "PIPE": "write OR instead of |",
    "FARROW": "write >= instead of =>",
    "NULLSAFE_EQ": "<=> is not supported: write = to compare, IS NULL for missing values",
    "SEMICOLON": "a filter is one condition, so remove ';' and anything after it",
    "TRUE": "TRUE and FALSE are not conditions: write a comparison",
    "FALSE": "TRUE and FALSE are not conditions: write a comparison",
    "ILIKE": "ILIKE is not supported: LIKE is case-sensitive, so join both spellings with OR",
    "RLIKE": "regular expressions are not supported: use LIKE with % and _",
    "MOD": "% belongs inside a quoted LIKE pattern, for example `country LIKE 'D%'`",
    "STAR": "arithmetic is not allowed in a filter: compare a column with a plain value",
    "SLASH": "arithmetic is not allowed in a filter: compare a column with a plain value",
    "DOT": "write numbers with a digit before the point (0.5) and column names unqualified",
}


class Refusal(Exception):
    """Why a filter is refused, before :func:`filter_error` adds the pointer to the page.

    ``sentence`` None means the text could not be read; ``vague`` marks a sentence that a
    diagnosis of the tokens can usually say better (a generic "expected a condition").
    """

    def __init__(self, sentence: str | None = None, *, vague: bool = False) -> None:
        super().__init__(sentence or "the filter could not be read")
        self.sentence = sentence
        self.vague = vague or sentence is None


def filter_error(
    problem: Refusal | RecursionError | str,
    text: str | None = None,
    columns: Mapping[str, schema.ColumnKind] = schema.AUDIENCE_COLUMNS,
) -> AudienceFilterError:
    """The error a marketer reads for ``problem`` (found in ``text``, when there is one)."""
    if isinstance(problem, str):
        problem = Refusal(problem)
    sentence: str | None
    if isinstance(problem, RecursionError):
        from lib.audience.check import MAX_DEPTH

        sentence = f"the filter is nested too deeply (at most {MAX_DEPTH} levels)"
    else:
        sentence = problem.sentence
        if problem.vague and text is not None:
            from lib.audience.diagnose import diagnose

            sentence = diagnose(text, columns) or sentence
    if sentence is None:
        sentence = f"the filter could not be read: write conditions such as `{GENERAL_EXAMPLE}`"
    if len(sentence) > MAX_SENTENCE:
        sentence = sentence[: MAX_SENTENCE - 1] + "…"
    return AudienceFilterError(f"{sentence} (see {LANGUAGE_PAGE})")


# ---- pieces of sentences ---------------------------------------------------------------------
def word(text: str) -> str:
    """The marketer's own text, quoted and cut short."""
    cut = text if len(text) <= MAX_WORD else text[: MAX_WORD - 1] + "…"
    if len(text) >= 2 and text[0] in "'\"" and text[-1] == text[0]:
        return cut  # a quoted text value, shown with its own quotes
    return f'"{cut}"' if "'" in cut else f"'{cut}'"


def at(start: int) -> str:
    """Where a word starts, counted as a reader counts: the first character is 1."""
    return f"at character {start + 1}"


def example_for(column: str, kind: schema.ColumnKind) -> str:
    """A comparison on ``column`` that passes the checker."""
    if kind == "string":
        return f"{column} = 'DE'"
    return f"{column} >= 30" if kind == "int" else f"{column} > 0.5"


def unknown_column(
    raw: str, columns: Mapping[str, schema.ColumnKind], start: int | None = None
) -> str:
    """``raw`` is not a column: the closest column if one is close, and the list."""
    names = sorted(columns)
    where = f" {at(start)}" if start is not None else ""
    close = difflib.get_close_matches(raw.lower(), names, n=1, cutoff=0.6)
    guess = f" (did you mean {close[0]}?)" if close else ""
    return f"unknown column {word(raw)}{where}{guess}: the columns are {', '.join(names)}"

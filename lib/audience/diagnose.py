"""The first mistake in a filter the checker refused, said in the filter language's terms.

Runs only on the error path, to choose the message: whether a filter is accepted is decided
by :mod:`lib.audience.check` alone. A small reader walks sqlglot's tokens with the language's
grammar (conditions joined by AND/OR, NOT, parentheses; ``value op value``, IN, BETWEEN,
LIKE, IS NULL) and stops at the first token that does not fit, naming it, its position and
what would fit there. Where it finds nothing, the checker's own sentence stands.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lib import schema
from lib.audience.messages import (
    AND_EXAMPLE,
    GENERAL_EXAMPLE,
    OR_EXAMPLE,
    SLIPS,
    at,
    example_for,
    unknown_column,
    word,
)

__all__ = ["diagnose"]

_COMPARISONS = frozenset({"EQ", "NEQ", "LT", "LTE", "GT", "GTE"})
_NAMES = frozenset({"VAR", "IDENTIFIER"})
# Tokens that may stand before `(` without being a function's name.
_NOT_A_FUNCTION = frozenset(
    {"L_PAREN", "END", "AND", "OR", "NOT", "IN", "BETWEEN", "LIKE", "IS", "NULL", "COMMA"}
    | {"PLUS", "DASH", "NUMBER", "STRING", "ANY", "ALL", "SOME"}
    | _COMPARISONS
)
_MIRRORED = {"<": ">", "<=": ">=", ">": "<", ">=": "<="}
_OPERATORS = "=, !=, <, <=, >, >=, IN, BETWEEN, LIKE or IS NULL"


# What editors and phones put where a quote was typed: ‘ ’ ‚ ‛ “ ” „ ‟ ´ ′ ″ « ».
TYPOGRAPHIC_QUOTES = frozenset(
    "\u2018\u2019\u201a\u201b\u201c\u201d\u201e\u201f\u00b4\u2032\u2033\u00ab\u00bb"
)


def diagnose(text: str, columns: Mapping[str, schema.ColumnKind]) -> str | None:
    """The first mistake in ``text`` as a sentence, or None when the reader finds none."""
    from sqlglot.dialects.spark import Spark
    from sqlglot.errors import SqlglotError

    curly = next((i for i, char in enumerate(text) if char in TYPOGRAPHIC_QUOTES), None)
    if curly is not None:  # a refused filter with one: a word processor or a phone typed it
        return (
            f"{text[curly]} {at(curly)} is a typographic quote, not a quote of the filter "
            "language: type straight single quotes, for example `country = 'DE'`"
        )
    try:
        tokens = Spark().tokenize(text)
    except SqlglotError:
        return _untokenizable(text)
    reader = _Reader(text, tokens, columns)
    try:
        reader.read()
    except _Mistake as mistake:
        return mistake.sentence
    except RecursionError:  # the checker bounds nesting first; this is a last resort
        return None
    return None


def _untokenizable(text: str) -> str | None:
    """Why sqlglot's tokenizer gave up: a quote or a block comment opened, never closed."""
    position = 0
    while position < len(text):
        char = text[position]
        if text.startswith("--", position):
            end = min(
                (i for i in (text.find("\n", position), text.find("\r", position)) if i >= 0),
                default=len(text),
            )
            position = end
        elif text.startswith("/*", position):
            return (
                f"block comments (/* ... */) are not allowed in a filter ({at(position)}): "
                "start a comment with -- instead, it runs to the end of the line"
            )
        elif char in "'\"`":
            close = text.find(char, position + 1)
            if close < 0:
                if char == "`":
                    return (
                        f"the column name opened with a backtick {at(position)} has no closing "
                        "backtick: write the column without them, as in `age >= 30`"
                    )
                return (
                    f"the text opened with {char} {at(position)} has no closing {char}: end it "
                    "with the same quote, for example `country = 'DE'`"
                )
            position = close + 1
        else:
            position += 1
    return None


class _Mistake(Exception):
    """The first token that does not fit, as a sentence, and how far the reader got."""

    def __init__(self, sentence: str, index: int) -> None:
        super().__init__(sentence)
        self.sentence = sentence
        self.index = index


@dataclass(frozen=True)
class _Operand:
    """A value position's content: a known column, an unknown word, or a literal."""

    what: str  # "column", "word" or "value"
    text: str  # as written
    start: int
    kind: schema.ColumnKind | None = None  # a column's kind
    name: str = ""  # a column's name as the contract spells it


class _Reader:
    """Recursive descent over the token kinds, raising :class:`_Mistake` at the first misfit."""

    def __init__(self, text: str, tokens: list[Any], columns: Mapping[str, schema.ColumnKind]):
        self.text = text
        self.kinds = [token.token_type.name for token in tokens]
        self.starts = [token.start for token in tokens]
        self.spans = [text[token.start : token.end + 1] for token in tokens]
        self.columns = {name.lower(): (name, kind) for name, kind in columns.items()}
        self.all_columns = columns
        self.index = 0

    # ---- tokens ----
    def peek(self, ahead: int = 0) -> str:
        index = self.index + ahead
        return self.kinds[index] if index < len(self.kinds) else "END"

    def here(self, index: int | None = None) -> str:
        """The token at ``index`` (default: the current one) and where it is."""
        index = self.index if index is None else index
        if index >= len(self.kinds):
            return "the end of the filter"
        return f"{word(self.spans[index])} {at(self.starts[index])}"

    def mistake(self, sentence: str) -> _Mistake:
        if self.index >= len(self.kinds) and self.kinds:
            last = self.starts[-1] + len(self.spans[-1])
            if "--" in self.text[last:]:  # `age > --1`: the rest is a comment
                sentence += " (-- starts a comment that runs to the end of the line)"
        return _Mistake(sentence, self.index)

    # ---- the grammar ----
    def read(self) -> None:
        if not self.kinds:
            raise self.mistake(f"the filter holds no condition: write one, such as `{AND_EXAMPLE}`")
        self.disjunction()
        if self.peek() != "END":
            raise self.after_condition()

    def disjunction(self) -> None:
        self.conjunction()
        while self.peek() == "OR":
            self.index += 1
            self.conjunction()

    def conjunction(self) -> None:
        self.negation()
        while self.peek() == "AND":
            self.index += 1
            self.negation()

    def negation(self) -> None:
        while self.peek() == "NOT":
            self.index += 1
        self.atom()

    def atom(self) -> None:
        kind = self.peek()
        if kind in ("END", "AND", "OR", "R_PAREN", "COMMA"):
            raise self.missing_condition()
        if kind != "L_PAREN":
            self.predicate()
            return
        # `(` opens a condition, or a value as in `(1) < age`: read both ways, keep the reading
        # that got further (the condition on a tie).
        start = self.index
        try:
            self.index += 1
            self.disjunction()
            if self.peek() != "R_PAREN":
                raise self.unclosed(start) if self.peek() == "END" else self.after_condition()
            self.index += 1
            return
        except _Mistake as as_condition:
            self.index = start
            try:
                self.predicate()
                return
            except _Mistake as as_value:
                raise max((as_condition, as_value), key=lambda m: m.index) from None

    def predicate(self) -> None:
        left = self.operand(after=None)
        kind = self.peek()
        if kind in _COMPARISONS:
            op = self.spans[self.index]
            self.index += 1
            right = self.operand(after=self.index - 1, column=left)
            self.comparison(left, op, right)
            return
        if kind == "NOT" and self.peek(1) in ("IN", "BETWEEN", "LIKE"):
            self.index += 1
            kind = self.peek()
        if kind == "IN":
            self.subject(left, "IN")
            self.index += 1
            self.in_list(left)
        elif kind == "BETWEEN":
            self.subject(left, "BETWEEN")
            self.index += 1
            self.value_for(left, self.operand(after=self.index - 1, column=left))
            if self.peek() != "AND":
                raise self.mistake(
                    f"write BETWEEN as low AND high, for example `{_between(left)}`: "
                    f"found {self.here()} where AND belongs"
                )
            self.index += 1
            self.value_for(left, self.operand(after=self.index - 1, column=left))
        elif kind == "LIKE":
            self.subject(left, "LIKE")
            self.index += 1
            self.value_for(left, self.operand(after=self.index - 1, column=left))
        elif kind == "IS":
            self.subject(left, "IS NULL")
            self.index += 1
            if self.peek() == "NOT":
                self.index += 1
            if self.peek() != "NULL":
                raise self.is_without_null(left)
            self.index += 1
        else:
            raise self.no_operator(left)

    def operand(self, after: int | None, column: _Operand | None = None) -> _Operand:
        """A value, a column or a word; ``after`` is the operator it follows, ``column``
        the operand on its other side (for the example when the value is missing)."""
        signs = self.index
        while self.peek() in ("PLUS", "DASH"):
            self.index += 1
        kind = self.peek()
        start = self.index
        if kind not in _NOT_A_FUNCTION and self.peek(1) == "L_PAREN":
            raise self.mistake(
                f"function calls are not allowed in a filter (found "
                f"{self.spans[start].lower()}(...) {at(self.starts[start])}): compare the column "
                f"itself, for example `{AND_EXAMPLE}`"
            )
        if start > signs and kind in (*_NAMES, "STRING"):
            raise self.mistake(
                f"a sign (+ or -) may only stand before a number, not before {self.here()}"
            )
        if kind in ("NUMBER", "STRING"):
            self.index += 1
            return _Operand("value", self.spans[start], self.starts[start])
        if kind in _NAMES:
            self.index += 1
            raw = self.spans[start] if kind == "VAR" else self.spans[start].strip("`")
            known = self.columns.get(raw.lower()) if raw.isascii() else None
            if known is None:
                return _Operand("word", raw, self.starts[start])
            return _Operand("column", raw, self.starts[start], known[1], known[0])
        if kind == "L_PAREN":
            self.index += 1
            inner = self.operand(after=start, column=column)
            if self.peek() != "R_PAREN":
                raise self.unclosed(start) if self.peek() == "END" else self.after_value()
            self.index += 1
            return inner
        raise self.missing_value(after, column)

    # ---- what the parts must be ----
    def comparison(self, left: _Operand, op: str, right: _Operand) -> None:
        if left.what == "column" and right.what == "column":
            raise self.mistake(
                f"each comparison needs one column and one value: {left.text} and "
                f"{right.text} are both columns; compare with a value, for example "
                f"`{example_for(left.name, left.kind or 'int')}`"
            )
        if left.what == "value" and right.what == "value":
            raise self.mistake(
                f"each comparison needs one column and one value: {left.text} {op} "
                f"{right.text} {at(left.start)} has no column, for example `{AND_EXAMPLE}`"
            )
        if left.what == "column":
            self.value_for(left, right, op)
            return
        if right.what == "column":  # `'UK' = country`: in examples, the column comes first
            self.value_for(right, left, _MIRRORED.get(op, op))
            return
        word_ = left if left.what == "word" else right
        raise self.mistake(unknown_column(word_.text, self.all_columns, word_.start))

    def value_for(self, column: _Operand, value: _Operand, op: str | None = None) -> None:
        """``value`` must be a value for ``column``: a word is the usual slip."""
        if column.what != "column" or value.what == "value":
            return
        if value.what == "column":
            raise self.mistake(
                f"{value.text} {at(value.start)} is a column: compare {column.text} with a "
                f"value, for example `{example_for(column.name, column.kind or 'int')}`"
            )
        if column.kind == "string" and op is not None and "'" not in value.text:
            raise self.mistake(
                f"put text values in single quotes: `{column.name} {op} '{value.text}'` "
                f"({value.text} {at(value.start)} is read as a column name, and there is none)"
            )
        if column.kind == "string":
            raise self.mistake(
                f"put text values in single quotes: write {word(value.text)} instead of "
                f"{value.text} {at(value.start)}"
            )
        raise self.mistake(
            f"{word(value.text)} {at(value.start)} is not a number: {column.name} holds "
            f"numbers, for example `{example_for(column.name, column.kind or 'int')}`"
        )

    def subject(self, left: _Operand, keyword: str) -> None:
        """What stands before IN, BETWEEN, LIKE or IS must be a column."""
        if left.what == "column":
            return
        if left.what == "word":
            raise self.mistake(unknown_column(left.text, self.all_columns, left.start))
        raise self.mistake(
            f"{keyword} needs a column before it, not {word(left.text)} {at(left.start)}: "
            f"for example `{_keyword_example(keyword)}`"
        )

    def in_list(self, column: _Operand) -> None:
        open_at = self.index
        if self.peek() != "L_PAREN":
            raise self.mistake(
                f"IN needs a list in parentheses, for example `{_in_example(column)}`: "
                f"found {self.here()}"
            )
        self.index += 1
        while True:
            self.value_for(column, self.operand(after=self.index - 1, column=column))
            if self.peek() == "COMMA":
                self.index += 1
                continue
            if self.peek() == "R_PAREN":
                self.index += 1
                return
            if self.peek() == "END":
                raise self.unclosed(open_at)
            raise self.mistake(
                f"separate the values of a list with commas, for example "
                f"`{_in_example(column)}`: found {self.here()}"
            )

    # ---- the sentences ----
    def missing_condition(self) -> _Mistake:
        """A condition belongs here; say what stands instead, by what comes before."""
        previous = self.kinds[self.index - 1] if self.index else None
        kind = self.peek()
        if previous in ("AND", "OR"):
            op = previous
            example = AND_EXAMPLE if op == "AND" else OR_EXAMPLE
            if kind == "END":
                return self.mistake(
                    f"the filter ends with {op}: add a condition after it, for example `{example}`"
                )
            return self.mistake(
                f"{op} {at(self.starts[self.index - 1])} needs a condition after it, not "
                f"{self.here()}: for example `{example}`"
            )
        if kind in ("AND", "OR"):
            example = AND_EXAMPLE if kind == "AND" else OR_EXAMPLE
            if previous is None:
                return self.mistake(
                    f"the filter starts with {kind}: put a condition before it, for example "
                    f"`{example}`"
                )
            return self.mistake(
                f"{kind} {at(self.starts[self.index])} needs a condition before it, for "
                f"example `{example}`"
            )
        if previous == "NOT":
            return self.mistake(
                f"NOT {at(self.starts[self.index - 1])} needs a condition after it, for "
                "example `NOT country = 'DE'`"
            )
        if previous == "L_PAREN":
            if kind == "END":
                return self.unclosed(self.index - 1)
            return self.mistake(
                f"the parentheses {at(self.starts[self.index - 1])} hold no condition: put "
                f"one inside, for example `({OR_EXAMPLE}) AND country = 'DE'`"
            )
        if kind == "R_PAREN":
            return self.mistake(f"')' {at(self.starts[self.index])} closes no '('")
        if kind == "COMMA":
            return self.stray_comma()
        return self.mistake(f"the filter holds no condition: write one, such as `{AND_EXAMPLE}`")

    def missing_value(self, after: int | None, column: _Operand | None) -> _Mistake:
        kind = self.peek()
        if kind in SLIPS:
            return self.mistake(f"{SLIPS[kind]} ({self.here()})")
        if kind == "NULL" and after is not None:
            return self.mistake(
                f"write IS NULL to find missing values (= NULL never matches): {self.here()}"
            )
        if kind == "END" and self.kinds[self.index - 1] in ("PLUS", "DASH"):
            return self.mistake(
                f"the filter ends with a sign ({self.here(self.index - 1)}): a sign stands "
                "before a number, for example `age > -5`"
            )
        if after is None:
            if kind in _COMPARISONS or kind in ("IN", "BETWEEN", "LIKE", "IS"):
                return self.mistake(
                    f"{self.here()} needs a column before it, for example `{AND_EXAMPLE}`"
                )
            return self.foreign("a column")
        operator = self.spans[after]
        example = _after_example(self.kinds[after], operator, column)
        if self.kinds[after] == "EQ" and kind in ("LT", "GT"):
            return self.mistake(
                f"write {self.spans[self.index]}= instead of ={self.spans[self.index]} "
                f"{at(self.starts[after])}"
            )
        if kind == "END":
            return self.mistake(
                f"the filter ends after {operator}: put a value after it, for example `{example}`"
            )
        return self.mistake(
            f"{operator} {at(self.starts[after])} needs a value after it, not {self.here()}: "
            f"for example `{example}`"
        )

    def no_operator(self, left: _Operand) -> _Mistake:
        """After ``left`` comes no operator."""
        kind = self.peek()
        if kind in SLIPS:
            return self.mistake(f"{SLIPS[kind]} ({self.here()})")
        if left.what == "word":
            # Usually words of a sentence ("users from Germany"): name the first one. A guess
            # only for a lone word (`contry 'DE'`): "users from" is not a misspelt user_id.
            close = difflib.get_close_matches(left.text.lower(), self.columns, n=1, cutoff=0.6)
            lone = kind in ("END", "NUMBER", "STRING")
            guess = f" (did you mean {close[0]}?)" if close and lone else ""
            return self.mistake(
                f"{word(left.text)} {at(left.start)} is not a column or a word of the filter "
                f"language{guess}: write conditions on columns, for example "
                f"`{GENERAL_EXAMPLE}` (the columns are {', '.join(sorted(self.all_columns))})"
            )
        if left.what == "value":
            return self.mistake(
                f"{word(left.text)} {at(left.start)} is a value without a column: write a "
                f"comparison, for example `{AND_EXAMPLE}`"
            )
        example = example_for(left.name, left.kind or "int")
        if kind == "END":
            return self.mistake(
                f"the filter ends after the column {left.text}: add an operator and a value, "
                f"for example `{example}`"
            )
        if kind in ("PLUS", "DASH"):
            return self.mistake(
                "arithmetic is not allowed in a filter: compare a column with a plain value, "
                f"for example `{example}` ({self.here()})"
            )
        if kind == "NULL":
            return self.mistake(
                f"write IS NULL (or IS NOT NULL) to test for missing values: {self.here()}"
            )
        return self.mistake(
            f"{self.here()} is not an operator: after {left.text} put {_OPERATORS}, for "
            f"example `{example}`"
        )

    def is_without_null(self, left: _Operand) -> _Mistake:
        if self.peek() == "END":
            return self.mistake(
                f"the filter ends after IS: write {left.text} IS NULL or {left.text} IS NOT NULL"
            )
        found = self.here()
        if left.kind == "string" and self.peek() in ("STRING", *_NAMES):
            value = self.spans[self.index].strip("'\"`")
            if "'" not in value:
                return self.mistake(
                    f"IS works only as IS NULL or IS NOT NULL: to compare, write "
                    f"`{left.name} = '{value}'` ({found})"
                )
        return self.mistake(
            f"IS works only as IS NULL or IS NOT NULL: to compare, write "
            f"`{example_for(left.name, left.kind or 'int')}` ({found})"
        )

    def after_condition(self) -> _Mistake:
        """The condition is complete; what follows does not join another one."""
        kind = self.peek()
        if kind in SLIPS:
            return self.mistake(f"{SLIPS[kind]} ({self.here()})")
        if kind == "R_PAREN":
            return self.mistake(f"')' {at(self.starts[self.index])} closes no '('")
        if kind == "COMMA":
            return self.stray_comma()
        return self.mistake(
            f"{self.here()} does not continue the filter: join conditions with AND or OR, "
            f"for example `{AND_EXAMPLE}`"
        )

    def after_value(self) -> _Mistake:
        return self.mistake(f"{self.here()} does not fit here: for example `{AND_EXAMPLE}`")

    def unclosed(self, open_index: int) -> _Mistake:
        return self.mistake(
            f"the '(' {at(self.starts[open_index])} is never closed: add ')' after what it holds"
        )

    def stray_comma(self) -> _Mistake:
        return self.mistake(
            f"a comma {at(self.starts[self.index])} stands outside a list: join conditions "
            f"with AND or OR, and list values as in `country IN ('DE', 'FR')`"
        )

    def foreign(self, expected: str) -> _Mistake:
        return self.mistake(
            f"{self.here()} is not part of the filter language: {expected} belongs here, for "
            f"example `{AND_EXAMPLE}`"
        )


_VALUES: dict[schema.ColumnKind | None, tuple[str, str]] = {
    "string": ("'DE'", "'FR'"),
    "int": ("30", "40"),
    "float": ("0.5", "1"),
}


def _column(column: _Operand | None) -> tuple[str, tuple[str, str]]:
    """A column to show in an example (the marketer's, when known) and two values for it."""
    if column is None or column.what != "column":
        return "age", _VALUES["int"]
    return column.name, _VALUES[column.kind]


def _between(column: _Operand) -> str:
    name, (low, high) = _column(column)
    return f"{name} BETWEEN {low} AND {high}"


def _in_example(column: _Operand) -> str:
    name, (first, second) = _column(column)
    return f"{name} IN ({first}, {second})"


def _keyword_example(keyword: str) -> str:
    return {
        "IN": "country IN ('DE', 'FR')",
        "BETWEEN": "age BETWEEN 30 AND 40",
        "LIKE": "country LIKE 'D%'",
    }.get(keyword, "country IS NULL")


def _after_example(kind: str, operator: str, column: _Operand | None) -> str:
    """A filter with a value after ``operator`` (a token of ``kind``) on ``column``."""
    if kind in _COMPARISONS:
        name, (value, _) = _column(column)
        return f"{name} {operator} {value}"
    if kind in ("BETWEEN", "AND"):
        return _between(column) if column is not None else "age BETWEEN 30 AND 40"
    if kind == "LIKE":
        return "country LIKE 'D%'"
    return _in_example(column) if column is not None else "country IN ('DE', 'FR')"

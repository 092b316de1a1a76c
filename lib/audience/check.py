"""Parse a marketer's filter text, check it against the allowlist, build the checked tree.

See :mod:`lib.audience` for the rules (represented faithfully, or refused).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from functools import cache
from typing import Any

from lib import schema
from lib.audience.messages import (
    AND_EXAMPLE,
    SLIPS,
    Refusal,
    at,
    example_for,
    filter_error,
    unknown_column,
    word,
)
from lib.audience.tree import (
    And,
    AudienceFilter,
    Between,
    Compare,
    ComparisonOp,
    Condition,
    InList,
    IsNull,
    Like,
    Not,
    Or,
    Value,
)

__all__ = [
    "MAX_CONDITIONS",
    "MAX_DEPTH",
    "MAX_FILTER_LENGTH",
    "MAX_IN_VALUES",
    "MAX_NODES",
    "NODE_ARGS",
    "parse_filter",
]

MAX_FILTER_LENGTH = 2_000  # characters
MAX_NODES = 1_000  # sqlglot nodes in one filter (a comparison such as `age > 5` is 4)
MAX_CONDITIONS = 250  # comparisons, IN, BETWEEN, LIKE and IS NULL tests in one filter
MAX_IN_VALUES = 200  # literals in one IN (...) list
# Nesting: open parentheses plus a run of prefix operators (NOT, !, +, -). sqlglot's parser
# recurses about 20 Python frames per parenthesis: 30 levels stay well inside the default
# recursion limit, whoever the caller is. A flat AND/OR chain is not nesting.
MAX_DEPTH = 30
MAX_DECIMAL_DIGITS = 38  # Spark SQL refuses longer integer and decimal literals
INT64 = (-(2**63), 2**63 - 1)

# For every sqlglot node class the checker accepts (by class name): the arguments the checked
# tree represents, and the arguments refused when set, with the reason. Each key of the class's
# ``arg_types`` must be in one of the two (a test enforces it against the installed sqlglot),
# so an argument a newer sqlglot adds cannot slip through; a set argument that is in neither is
# refused as well.
_QUALIFIED = (
    "qualified column names are not allowed in a filter: write the column alone, as in `age >= 30`"
)
NODE_ARGS: Mapping[str, tuple[frozenset[str], Mapping[str, str]]] = {
    "Paren": (frozenset({"this"}), {}),
    "And": (frozenset({"this", "expression"}), {}),
    "Or": (frozenset({"this", "expression"}), {}),
    "Not": (frozenset({"this"}), {}),
    **{
        op: (frozenset({"this", "expression"}), {})
        for op in ("EQ", "NEQ", "LT", "LTE", "GT", "GTE")
    },
    "In": (
        frozenset({"this", "expressions"}),
        {
            "query": "subqueries are not allowed in a filter: list the values, as in "
            "`age IN (30, 40)`",
            "unnest": "IN UNNEST(...) is not supported: list the values, as in `age IN (30, 40)`",
            "field": "IN needs a list of values in parentheses, for example "
            "`country IN ('DE', 'FR')`",
            "is_global": "GLOBAL IN is not supported",
        },
    ),
    "Between": (
        frozenset({"this", "low", "high"}),
        {"symmetric": "BETWEEN SYMMETRIC is not supported: write the lower bound first"},
    ),
    "Like": (frozenset({"this", "expression", "negate"}), {}),
    "Is": (frozenset({"this", "expression", "negate"}), {}),
    "Null": (frozenset(), {}),
    "Column": (
        frozenset({"this"}),
        {
            "table": _QUALIFIED,
            "db": _QUALIFIED,
            "catalog": _QUALIFIED,
            "join_mark": "the (+) join marker is not allowed in a filter",
            "shadow": "write a column by its name alone, as in `age >= 30`",
        },
    ),
    "Identifier": (
        frozenset({"this", "quoted"}),
        {
            "global_": "write a column by its name alone, as in `age >= 30`",
            "temporary": "write a column by its name alone, as in `age >= 30`",
        },
    ),
    "Literal": (frozenset({"this", "is_string"}), {}),
    "Neg": (frozenset({"this"}), {}),
}

# Tokens a filter may contain. Everything else (ILIKE, RLIKE, ESCAPE, UNKNOWN, TRUE, DISTINCT,
# ISNULL, `.5`, `::`, ...) is refused, even where sqlglot would quietly rewrite it.
_TOKENS = frozenset(
    {
        "VAR",  # a column name (checked against the known columns)
        "IDENTIFIER",  # a `quoted` column name
        "STRING",
        "NUMBER",
        "L_PAREN",
        "R_PAREN",
        "COMMA",
        "EQ",
        "NEQ",
        "LT",
        "LTE",
        "GT",
        "GTE",
        "PLUS",
        "DASH",
        "AND",
        "OR",
        "NOT",
        "IN",
        "BETWEEN",
        "LIKE",
        "IS",
        "NULL",
    }
)
_WHITESPACE = frozenset(" \t\n\r")
_BANG_AFTER = frozenset({"L_PAREN", "AND", "OR", "NOT"})  # where ! may start a condition
# What AND or OR may follow: the end of a comparison, a list, a condition in parentheses.
# (A column ends a comparison written literal first: `25 < age AND ...`.)
_ENDS_AN_OPERAND = (["NUMBER"], ["STRING"], ["R_PAREN"], ["NULL"], ["VAR"], ["IDENTIFIER"])
# Around a comma in an IN list: a value ends before it and starts after it.
_ENDS_A_VALUE = (["NUMBER"], ["STRING"], ["R_PAREN"], ["VAR"], ["IDENTIFIER"])
_STARTS_A_VALUE = (["NUMBER"], ["STRING"], ["L_PAREN"], ["PLUS"], ["DASH"], ["VAR"], ["IDENTIFIER"])


# ---- parsing and checking ------------------------------------------------------------------
def parse_filter(
    text: str | None, columns: Mapping[str, schema.ColumnKind] = schema.AUDIENCE_COLUMNS
) -> AudienceFilter | None:
    """Validate ``text``; ``None`` or blank means "every user".

    Raises AudienceFilterError with a sentence a marketer can act on (lib.audience.messages).
    """
    if text is None:
        return None
    if not isinstance(text, str):
        raise filter_error("the filter must be text")
    if not text.strip():
        return None
    try:
        return _parse(text, columns)
    except (Refusal, RecursionError) as problem:  # RecursionError: a last resort (see _parse)
        raise filter_error(problem, text, columns) from None


def _parse(text: str, columns: Mapping[str, schema.ColumnKind]) -> AudienceFilter:
    from sqlglot import exp
    from sqlglot.dialects.spark import Spark
    from sqlglot.errors import SqlglotError

    if len(text) > MAX_FILTER_LENGTH:
        raise Refusal(
            f"the filter is too long ({len(text)} characters, at most {MAX_FILTER_LENGTH}): "
            "shorten it, for example with a list such as `country IN ('DE', 'FR')`"
        )
    if "\x00" in text:
        raise Refusal(f"the filter contains a NUL byte {at(text.index(chr(0)))}: remove it")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise Refusal("the filter is not valid Unicode text") from None
    if "\\" in text:
        # Spark SQL reads '\u0055S', '\125S' and 'U\S' as US; DuckDB and Python do not. No
        # filter needs a backslash, so none is accepted anywhere (comments included: Spark
        # continues a -- comment onto the next line after a trailing backslash).
        raise Refusal(
            f"backslashes are not allowed in a filter ({at(text.index(chr(92)))}): SQL engines "
            "read backslash escapes differently, so write the text without them"
        )
    dialect = Spark()
    # sqlglot's own messages name its classes and internals: only the fact that it failed
    # is passed on, and lib.audience.diagnose says what is wrong in the filter's terms.
    try:
        tokens = dialect.tokenize(text)
    except SqlglotError:
        raise Refusal() from None
    _check_layout(text, tokens)
    try:
        trees = [tree for tree in dialect.parser().parse(tokens, text) if tree is not None]
    except RecursionError:
        raise  # said as "nested too deeply" by the caller
    except Exception:
        # Not only SqlglotError: sqlglot's builders raise what they meet (`MAP(x` an
        # IndexError), and any of it would be a 500. Whatever the parser trips on is refused.
        raise Refusal() from None
    if len(trees) != 1:
        semicolon = next((t.start for t in tokens if t.token_type.name == "SEMICOLON"), None)
        if semicolon is None:  # only comments: nothing to select by
            raise Refusal(f"the filter holds no condition: write one, such as `{AND_EXAMPLE}`")
        raise Refusal(
            f"a filter is one condition: remove the ';' {at(semicolon)} and what follows it"
        )
    tree = trees[0]
    size = sum(1 for _ in tree.walk())
    if size > MAX_NODES:
        raise Refusal(
            f"the filter is too complex ({size} parts, at most {MAX_NODES}): shorten it, for "
            "example with a list such as `country IN ('DE', 'FR')`"
        )
    # Subqueries first: wherever one hides, it is the reason to refuse (and the most serious).
    if any(isinstance(node, exp.Query | exp.Subquery | exp.Exists) for node in tree.walk()):
        raise Refusal(_SUBQUERIES)
    checker = _Checker(columns, tokens, text)
    condition = checker.condition(tree, depth=0)
    _check_tokens(tokens, checker.columns)
    return AudienceFilter(text=text, condition=condition, columns=frozenset(checker.used))


def _check_layout(text: str, tokens: Sequence[Any]) -> None:
    """Between tokens only spaces, tabs, newlines and ``--`` comments; nesting bounded.

    Block comments are refused: Spark SQL nests ``/* /* */ */``, sqlglot does not, so the two
    would end a comment in different places.
    """
    position = 0
    for start, end in [(token.start, token.end + 1) for token in tokens] + [(len(text), 0)]:
        while position < start:
            char = text[position]
            if char in _WHITESPACE:
                position += 1
            elif text.startswith("--", position):  # to the end of the line, as Spark reads it
                while position < start and text[position] not in "\r\n":
                    position += 1
            elif text.startswith("/*", position):
                raise Refusal(
                    f"block comments (/* ... */) are not allowed in a filter ({at(position)}): "
                    "start a comment with -- instead, it runs to the end of the line"
                )
            else:
                raise Refusal(
                    f"unexpected character {char!r} {at(position)}: outside quoted text a "
                    "filter holds only columns, numbers, operators, spaces and line breaks"
                )
        position = max(position, end)  # sqlglot gives `10L` three tokens on one span
    depth = run = 0
    for token in tokens:
        kind = token.token_type.name
        if kind == "L_PAREN":
            depth += 1
        elif kind == "R_PAREN":
            depth -= 1
        run = run + 1 if kind in ("NOT", "PLUS", "DASH") else 0
        if depth + run > MAX_DEPTH:
            raise Refusal(_too_deep(token.start))


def _check_tokens(tokens: Sequence[Any], columns: Mapping[str, Any]) -> None:
    """The token stream holds only what the checked tree shows (sqlglot drops some tokens)."""
    kinds = [token.token_type.name for token in tokens]
    for index, (token, kind) in enumerate(zip(tokens, kinds, strict=True)):
        where = f"{word(token.text)} {at(token.start)}"
        if kind not in _TOKENS:
            hint = SLIPS.get(kind) or (
                "a filter holds columns, values, =, !=, <, <=, >, >=, IN, BETWEEN, LIKE, "
                "IS [NOT] NULL, AND, OR, NOT and parentheses"
            )
            raise Refusal(f"{where} is not allowed in a filter: {hint}")
        if kind == "LIKE" and token.text.upper() != "LIKE":
            # sqlglot reads `~~` as LIKE; Spark SQL cannot read it at all.
            raise Refusal(f"write LIKE instead of {token.text} ({at(token.start)})")
        if kind in ("VAR", "IDENTIFIER") and token.text.lower() not in columns:
            raise Refusal(f"{where} is not allowed in a filter", vague=True)
        if kind in ("PLUS", "DASH"):
            # sqlglot drops a unary plus: make sure every sign belongs to a number.
            after = index + 1
            while after < len(kinds) and kinds[after] in ("PLUS", "DASH", "L_PAREN"):
                after += 1
            if after == len(kinds) or kinds[after] != "NUMBER":
                raise Refusal(
                    f"a sign (+ or -) may only stand before a number ({where}), for example "
                    "`age > -5`"
                )
        if kind == "NOT" and token.text == "!" and index and kinds[index - 1] not in _BANG_AFTER:
            # Spark 4 reads ! as NOT only in front of a condition: `age ! IN (1)` is an error.
            raise Refusal(
                f"use NOT, not !, in NOT IN, NOT BETWEEN, NOT LIKE and IS NOT ({at(token.start)})"
            )
        if kind == "COMMA" and (
            kinds[index - 1 : index] not in _ENDS_A_VALUE
            or kinds[index + 1 : index + 2] not in _STARTS_A_VALUE
        ):
            # sqlglot drops empty list elements (`age IN (,25,,30)` is IN (25, 30)); Spark's
            # parser refuses them. A comma must stand between two values.
            raise Refusal(
                f"a list needs a value between every two commas, and none may start or end "
                f"with a comma ({at(token.start)}): write `age IN (25, 30)`"
            )
        if kind in ("AND", "OR") and kinds[index - 1 : index] not in _ENDS_AN_OPERAND:
            # sqlglot reads `AND (age = 3)` as a condition and `age = OR (3)` as a value;
            # Spark's parser reads them as calls of its and()/or() functions, and fails.
            # The diagnosis names the misplaced word and what belongs before it.
            raise Refusal(
                f"{token.text.upper()} {at(token.start)} must stand between two conditions, "
                f"for example `{AND_EXAMPLE}`",
                vague=True,
            )
        if kind == "IS" and kinds[index - 1 : index] not in (["VAR"], ["IDENTIFIER"]):
            raise Refusal(
                f"write IS NULL or IS NOT NULL right after a column name ({at(token.start)}), "
                "for example `age IS NOT NULL`"
            )
        if kind == "BETWEEN" and not _one_literal_then_and(kinds, index + 1):
            # sqlglot reads `age BETWEEN 1 2` without its AND; Spark's parser refuses it.
            raise Refusal(
                f"write BETWEEN as column BETWEEN low AND high ({at(token.start)}), for "
                "example `age BETWEEN 30 AND 40`"
            )
        if kind == "NULL":
            # Only IS NULL / IS NOT NULL: sqlglot also reads `age NOT NULL` as IS NOT NULL.
            before = kinds[max(0, index - 2) : index]
            if not (before[-1:] == ["IS"] or before == ["IS", "NOT"]):
                raise Refusal(
                    f"NULL is only allowed in IS NULL and IS NOT NULL ({at(token.start)}), "
                    "for example `age IS NULL`"
                )


_LITERAL_PARTS = frozenset({"PLUS", "DASH", "L_PAREN", "R_PAREN"})


def _one_literal_then_and(kinds: Sequence[str], start: int) -> bool:
    """False when ``kinds[start:]`` holds two literals before the next AND (the AND was left
    out); anything else is for the parser and the other checks to judge."""
    values = 0
    for kind in kinds[start:]:
        if kind == "AND" or kind not in _LITERAL_PARTS | {"NUMBER", "STRING"}:
            return True
        values += kind in ("NUMBER", "STRING")
        if values == 2:
            return False
    return True


class _Checker:
    """Walks a sqlglot tree and rebuilds it as a :data:`Condition`, refusing anything else."""

    def __init__(
        self, columns: Mapping[str, schema.ColumnKind], tokens: Sequence[Any], text: str
    ) -> None:
        self.text = text
        self.all_columns = columns
        self.columns = {name.lower(): (name, kind) for name, kind in columns.items()}
        self.tokens = tokens
        self.used: set[str] = set()
        self.leaves = 0

    def start_of(self, name: str) -> int | None:
        """Where the marketer wrote the name ``name`` first (for "at character N")."""
        for token in self.tokens:
            if token.token_type.name in ("VAR", "IDENTIFIER") and token.text == name:
                return int(token.start)
        return None

    def accept(self, node: Any) -> None:
        """Refuse ``node`` unless its class is accepted and every set argument represented."""
        spec = NODE_ARGS.get(type(node).__name__)
        if spec is None or not _is_sqlglot_class(node):
            raise _refusal(node, text=self.text)
        represented, refused = spec
        for key, value in node.args.items():
            if key in represented or not _is_set(value):
                continue
            if key in refused:
                raise Refusal(refused[key])
            # An argument a newer sqlglot sets: refused, worded by the diagnosis.
            raise Refusal(f"this form is not supported: {_snippet(node)}", vague=True)

    def condition(self, node: Any, depth: int) -> Condition:
        from sqlglot import exp

        if depth > MAX_DEPTH:
            raise Refusal(_too_deep())
        kind = type(node)
        if kind is exp.Escape:
            raise Refusal(
                "LIKE ... ESCAPE is not supported: % and _ always match any text and any one "
                "character"
            )
        if kind is exp.Concat and all(isinstance(part, exp.Literal) for part in node.expressions):
            raise Refusal(_ADJACENT_STRINGS)
        self.accept(node)
        if kind is exp.Paren:
            return self.condition(node.this, depth + 1)
        if kind in (exp.And, exp.Or):
            operands = tuple(
                self.condition(operand, depth + 1) for operand in self.chain(node, kind)
            )
            return And(operands) if kind is exp.And else Or(operands)
        if kind is exp.Not:
            return Not(self.condition(node.this, depth + 1))
        self.leaves += 1
        if self.leaves > MAX_CONDITIONS:
            raise Refusal(
                f"the filter has too many conditions (at most {MAX_CONDITIONS}): join values in "
                "a list such as `country IN ('DE', 'FR')`"
            )
        if kind in _comparisons():
            return self.comparison(node, _comparisons()[kind])
        if kind is exp.In:
            name, kind_ = self.column(node.this)
            values = node.expressions
            if not values:
                raise Refusal(
                    f"the IN list after {name} is empty: list at least one value, for example "
                    f"`{_in_example(name, kind_)}`"
                )
            if len(values) > MAX_IN_VALUES:
                raise Refusal(
                    f"the IN list after {name} has over {MAX_IN_VALUES} values: split it into "
                    "lists joined with OR"
                )
            return InList(name, tuple(self.literal(v, name, kind_) for v in values))
        if kind is exp.Between:
            name, kind_ = self.column(node.this)
            return Between(
                name,
                self.literal(node.args["low"], name, kind_),
                self.literal(node.args["high"], name, kind_),
            )
        if kind is exp.Like:
            name, kind_ = self.column(node.this)
            if kind_ != "string":
                raise Refusal(
                    f"LIKE needs a text column, and {name} holds numbers: compare it with =, <, "
                    f">, or BETWEEN, for example `{name} BETWEEN 20 AND 29`"
                )
            like = Like(name, str(self.literal(node.expression, name, kind_)))
            return Not(like) if node.args.get("negate") else like
        if kind is exp.Is:
            if type(node.expression) is not exp.Null:
                raise Refusal(
                    "only IS NULL and IS NOT NULL are allowed: to compare, write for example "
                    "`country = 'DE'`",
                    vague=True,
                )
            self.accept(node.expression)
            name, _ = self.column(node.this)
            return Not(IsNull(name)) if node.args.get("negate") else IsNull(name)
        raise _refusal(node, text=self.text)  # pragma: no cover (accept() refused it)

    def chain(self, node: Any, kind: type[Any]) -> Iterator[Any]:
        """The operands of a flat AND (or OR) chain, in order, through parentheses.

        Iterative: sqlglot builds ``a AND b AND c`` as a left-deep tree, and a chain of a few
        hundred must neither recurse nor count as nesting.
        """
        from sqlglot import exp

        stack = [node]
        while stack:
            current = stack.pop()
            inner: Any = current
            while type(inner) is exp.Paren:
                inner = inner.this
            if type(inner) is kind:
                self.accept(current)
                if inner is not current:
                    self.accept(inner)
                stack.extend([inner.expression, inner.this])  # popped left first
            else:
                yield current

    def comparison(self, node: Any, op: ComparisonOp) -> Compare:
        from sqlglot import exp

        left, right = node.this, node.expression
        if type(left) is exp.Column and type(right) is not exp.Column:
            name, kind = self.column(left)
            return Compare(name, op, self.literal(right, name, kind))
        if type(right) is exp.Column and type(left) is not exp.Column:
            name, kind = self.column(right)
            return Compare(name, _FLIPPED[op], self.literal(left, name, kind))
        for side in (left, right):  # name a function or subquery when that is the problem
            if isinstance(side, exp.Func | exp.Anonymous | exp.Subquery | exp.Select):
                raise _refusal(side, text=self.text)
        raise Refusal(
            f"each comparison needs one column and one value: {_snippet(node)}", vague=True
        )

    def column(self, node: Any) -> tuple[str, schema.ColumnKind]:
        from sqlglot import exp

        if type(node) is not exp.Column or type(node.this) is not exp.Identifier:
            if isinstance(node, exp.Column):  # e.g. a qualified name or a star
                self.accept(node)
            raise _refusal(node, expected="a column", text=self.text)
        self.accept(node)
        self.accept(node.this)
        raw = node.this.name
        # ASCII only: Python's lower() folds some non-ASCII letters (the Kelvin sign) to ASCII.
        known = self.columns.get(raw.lower()) if raw.isascii() else None
        if known is None:
            raise Refusal(unknown_column(raw, self.all_columns, self.start_of(raw)))
        self.used.add(known[0])
        return known

    def literal(self, node: Any, column: str, kind: schema.ColumnKind) -> Value:
        """A literal for ``column``, with signs and parentheses folded exactly."""
        from sqlglot import exp

        minus = 0
        while type(node) in (exp.Neg, exp.Paren):  # iterative: -(-(+(30)))
            self.accept(node)
            minus += type(node) is exp.Neg
            node = node.this
        if type(node) is exp.Concat and all(isinstance(p, exp.Literal) for p in node.expressions):
            raise Refusal(_ADJACENT_STRINGS)
        if type(node) is not exp.Literal:
            if type(node) is exp.TryCast and getattr(node.this, "is_number", False):
                raise Refusal(
                    "typed numbers and casts (10L, 1.5D, CAST(...)) are not allowed: "
                    f"write the plain number {node.this.this}"
                )
            if type(node) is exp.Null:
                raise Refusal(
                    f"write {column} IS NULL to find missing values (= NULL never matches)"
                )
            raise _refusal(
                node,
                expected=f"a value for {column}",
                example=example_for(column, kind),
                text=self.text,
            )
        self.accept(node)
        if node.is_string:
            text = str(node.this)
            if kind != "string":
                plain = _PLAIN_NUMBER[kind].fullmatch(text.strip())
                example = f"{column} = {text.strip()}" if plain else example_for(column, kind)
                raise Refusal(
                    f"{column} is a number: compare it with a number without quotes, for "
                    f"example `{example}`, not {word(text)}"
                )
            if minus:
                raise Refusal(f"a sign (+ or -) cannot stand before text ({column})")
            return text
        if kind == "string":
            raise Refusal(
                f"{column} is text: put text values in single quotes, for example "
                f"`{column} = '{node.this}'`"
            )
        return _number(str(node.this), minus, column, kind)


def _number(text: str, minus: int, column: str, kind: schema.ColumnKind) -> Value:
    """The value Spark SQL gives the literal ``text`` under ``minus`` negations, exactly.

    Spark types ``30`` as INT/BIGINT (a larger whole number as DECIMAL), ``1.5`` as an exact
    DECIMAL and ``1e3`` as DOUBLE; against a DOUBLE column it compares in double, against a
    BIGINT column exactly (a DOUBLE literal would round the column to double: refused).
    """
    exponent = "e" in text.lower()
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise Refusal(f"{word(text)} is not a number") from None
    if not number.is_finite():
        raise Refusal(f"{word(text)} is not a finite number")
    if minus % 2:
        number = number.copy_negate()  # exact, and no decimal context to overflow (1e9999999)
    if not exponent:
        digits, scale = len(number.as_tuple().digits), -int(number.as_tuple().exponent)
        if max(digits, scale) > MAX_DECIMAL_DIGITS:
            raise Refusal(f"{word(text)} has too many digits (at most {MAX_DECIMAL_DIGITS})")
    whole = not exponent and "." not in text
    if whole and minus >= 2 and number.copy_abs() in (2**31, 2**63):
        # Spark SQL reads -2147483648 as the smallest INT; negating it again overflows.
        raise Refusal(f"{word(text)} overflows when negated twice in Spark SQL: drop the signs")
    if kind == "int":
        if not whole:
            raise Refusal(
                f"{column} is a whole number: compare it with a whole number, for example "
                f"`{example_for(column, kind)}`, not {text}"
            )
        value = int(number)
        if not INT64[0] <= value <= INT64[1]:
            raise Refusal(
                f"{value} is out of range for {column} (whole numbers from -2^63 to 2^63 - 1)"
            )
        return value
    # A float column: the literal keeps the type Spark SQL gives it (an exact whole number or
    # decimal, or a DOUBLE), because how it compares depends on how the data is stored
    # (lib.audience.stored): exactly against an integer or decimal column, in double against
    # a floating-point one.
    as_float = float(number)  # rounds correctly, as Spark's BigDecimal.doubleValue does
    if as_float != as_float or as_float in (float("inf"), float("-inf")):
        raise Refusal(f"{word(text)} is not a finite number")
    if exponent:
        return as_float + 0.0  # -0.0 becomes 0.0: the two are equal everywhere, keep one
    return int(number) if whole else number


_ADJACENT_STRINGS = (
    "adjacent quoted strings ('it''s' or 'a' 'b') are read differently by SQL engines: "
    'write one quoted string (for a quote inside, use the other quote: "it\'s")'
)


def _is_sqlglot_class(node: Any) -> bool:
    from sqlglot import exp

    return getattr(exp, type(node).__name__, None) is type(node)


def _is_set(value: Any) -> bool:
    """Whether a sqlglot argument carries meaning (None, False and empty lists do not)."""
    return value is not None and value is not False and value != [] and value != ""


def _snippet(node: Any) -> str:
    snippet = node.sql(dialect="spark")
    return snippet if len(snippet) <= 60 else snippet[:57] + "..."


_SUBQUERIES = (
    "subqueries are not allowed in a filter: compare columns with values, for example "
    f"`{AND_EXAMPLE}`"
)
_PLAIN_NUMBER = {
    "int": re.compile(r"-?[0-9]{1,18}"),
    "float": re.compile(r"-?[0-9]{1,18}(\.[0-9]{1,18})?"),
}


def _too_deep(start: int | None = None) -> str:
    where = f" ({at(start)})" if start is not None else ""
    return (
        f"the filter is nested too deeply{where}: at most {MAX_DEPTH} levels of parentheses "
        "and NOT, so remove the ones it does not need"
    )


def _in_example(column: str, kind: schema.ColumnKind) -> str:
    values = {"string": "'DE', 'FR'", "int": "30, 40", "float": "0.5, 1"}[kind]
    return f"{column} IN ({values})"


def _refusal(
    node: Any, expected: str = "a condition", example: str = AND_EXAMPLE, *, text: str = ""
) -> Refusal:
    """What was found where a condition (or a column, a value) was expected, in ``text``.

    Subqueries, functions the marketer wrote and operators are named here; anything else is
    vague, and the diagnosis of the tokens says it better (which word, where).
    """
    from sqlglot import exp

    if isinstance(node, exp.Subquery | exp.Select | exp.Exists | exp.Query):
        return Refusal(_SUBQUERIES)
    if isinstance(node, exp.Func | exp.Anonymous):
        name = node.sql_name() if not isinstance(node, exp.Anonymous) else node.name
        # sqlglot also reads some operators as functions (`?` as jsonb_contains, `10L` as
        # try_cast, RLIKE as regexp_like): name a function only when the marketer wrote it.
        written = name.lower() in text.lower()
        return Refusal(
            f"function calls are not allowed in a filter (found {name.lower()}(...)): compare "
            f"the column itself, for example `{AND_EXAMPLE}`",
            vague=not written,
        )
    if isinstance(node, exp.Binary):  # sqlglot's rendering may not be what was written
        return Refusal(
            f"this operator is not allowed in a filter: {_snippet(node)}; compare one column "
            f"with one value, for example `{AND_EXAMPLE}`",
            vague=True,
        )
    return Refusal(
        f"{expected} belongs here, not {_snippet(node)}: for example `{example}`", vague=True
    )


@cache
def _comparisons() -> dict[type, ComparisonOp]:
    """sqlglot's comparison classes (imported on first use: ``import lib.audience`` is light)."""
    from sqlglot import exp

    return {exp.EQ: "=", exp.NEQ: "!=", exp.LT: "<", exp.LTE: "<=", exp.GT: ">", exp.GTE: ">="}


_FLIPPED: dict[ComparisonOp, ComparisonOp] = {
    "=": "=",
    "!=": "!=",
    "<": ">",
    "<=": ">=",
    ">": "<",
    ">=": "<=",
}

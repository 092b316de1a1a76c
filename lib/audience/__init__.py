"""Audience filters: parse a marketer's condition, check it against an allowlist, compile it.

A campaign's ``audience_filter`` is a SQL-like condition such as ``country='US' AND age > 25``.
Handing that text to ``DataFrame.filter(str)``, ``expr()`` or ``spark.sql()`` would let anyone
who can create a campaign run any Spark SQL, up to OS commands via ``TRANSFORM ... USING``.
So the text is parsed with sqlglot (Spark dialect) and checked against an allowlist: known user
columns, literals, comparisons, ``IN``, ``BETWEEN``, ``LIKE``, ``IS [NOT] NULL`` and
``AND/OR/NOT``. What passes becomes a tiny typed tree of our own (:class:`Condition`), which is
compiled to a PySpark ``Column`` or an Ibis expression by building the expression objects
directly: the user's text never reaches a SQL parser again.

The rule is *represented faithfully, or refused*: a filter is accepted only when every engine
(the Spark Column, the Ibis/DuckDB expression, and Spark SQL reading the same text) selects the
same users. So the checker

- walks sqlglot's tree exhaustively: for every node type it accepts, each argument sqlglot may
  set is either represented or refused when set (:data:`NODE_ARGS`);
- also checks the tokens, because sqlglot's parser drops things a tree cannot show (a unary
  ``+``, ``IS UNKNOWN`` read as ``IS NULL``, ``ISNULL``, ``NOT NULL``) and comments it reads
  differently from Spark (nested ``/* */``);
- refuses backslashes anywhere (Spark SQL reads ``'\\u0055S'`` as ``US``, the others do not)
  and adjacent quoted strings (Spark reads ``'it''s'`` as ``it's``, sqlglot as ``its``);
- types numeric literals the way Spark SQL does (whole numbers are exact, ``1.5`` is an exact
  decimal, ``1e3`` is a double) and folds signs and parentheses exactly.

NaN policy: in a float column NaN is treated as NULL by every compiled filter (a filter never

Numbers compare as Spark SQL compares them with the column's *stored* type (an integer,
decimal or float column of any width): :mod:`lib.audience.stored`. NaN policy: in a
floating-point column NaN is NULL for every compiled filter (a filter never selects a NaN row
unless it asks for ``IS NULL``); ``±inf`` and ``-0.0`` are ordinary values.

One module per concern:

- :mod:`~lib.audience.check`: parse and check the text (the allowlist), build the tree;
- :mod:`~lib.audience.tree`: the checked condition tree and its canonical text;
- :mod:`~lib.audience.stored`: the tree adapted to the data's stored column types;
- :mod:`~lib.audience.spark_form`, :mod:`~lib.audience.ibis_form`,
  :mod:`~lib.audience.arrow_form`: the compiled forms (a PySpark Column, an Ibis expression,
  a pyarrow compute expression for Python code that reads Parquet itself);
- :mod:`~lib.audience.preview`: counts and samples through Ibis (DuckDB or PySpark);
- :mod:`~lib.audience.messages`: the one place a refusal becomes the marketer's message
  (helped by :mod:`~lib.audience.diagnose`, which names the first misplaced word);
- :mod:`~lib.audience.language`: the language's description, generated from the checker,
  which the API serves at ``/filter-language`` and every refusal points to;
- :mod:`~lib.audience.values`: warnings for compared text values no user has.

``import lib.audience`` stays light: sqlglot, pyspark and ibis load on first use.
"""

from __future__ import annotations

from lib.audience.arrow_form import to_arrow_expression
from lib.audience.check import (
    MAX_CONDITIONS,
    MAX_DEPTH,
    MAX_FILTER_LENGTH,
    MAX_IN_VALUES,
    MAX_NODES,
    NODE_ARGS,
    parse_filter,
)
from lib.audience.ibis_form import to_ibis
from lib.audience.language import LanguageDescription, describe_language, language_html
from lib.audience.messages import LANGUAGE_PAGE
from lib.audience.preview import AudiencePreview, preview_audience, preview_parquet
from lib.audience.spark_form import to_spark_column
from lib.audience.stored import StoredFilter, StoredType, for_stored
from lib.audience.tree import (
    And,
    AudienceFilter,
    Between,
    Compare,
    Condition,
    InList,
    IsNull,
    Like,
    Not,
    Or,
)
from lib.audience.values import text_values, value_warnings

__all__ = [
    "LANGUAGE_PAGE",
    "MAX_CONDITIONS",
    "MAX_DEPTH",
    "MAX_FILTER_LENGTH",
    "MAX_IN_VALUES",
    "MAX_NODES",
    "NODE_ARGS",
    "And",
    "AudienceFilter",
    "AudiencePreview",
    "Between",
    "Compare",
    "Condition",
    "InList",
    "IsNull",
    "LanguageDescription",
    "Like",
    "Not",
    "Or",
    "StoredFilter",
    "StoredType",
    "describe_language",
    "for_stored",
    "language_html",
    "parse_filter",
    "preview_audience",
    "preview_parquet",
    "text_values",
    "to_arrow_expression",
    "to_ibis",
    "to_spark_column",
    "value_warnings",
]

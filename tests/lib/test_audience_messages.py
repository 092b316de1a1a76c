"""Filter errors a marketer can act on: the tester's cases, and a fuzzer proving that no
parser internals ever reach a message and that every message points at the language page."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.limits import MAX_MESSAGE_CHARS
from lib.audience import LANGUAGE_PAGE, parse_filter
from lib.errors import AudienceFilterError

POINTER = f"(see {LANGUAGE_PAGE})"
# What sqlglot's own errors say; none of it may reach a marketer.
INTERNALS = (
    "sqlglot",
    "<class",
    "expressions.",
    "Line 1, Col",
    "Required keyword",
    "Invalid expression",
    "Unexpected token",
    "Error tokenizing",
    "Expecting )",
    "Traceback",
)
EXAMPLE_IN_MESSAGE = re.compile(r"`([^`]+)`")


def refusal(text: str) -> str:
    with pytest.raises(AudienceFilterError) as info:
        parse_filter(text)
    return str(info.value)


def assert_actionable(text: str, message: str) -> None:
    """No internals, the pointer at the end, short enough to show whole, examples that work."""
    for internal in INTERNALS:
        assert internal not in message, (text, message)
    assert message.endswith(POINTER), (text, message)
    assert len(message) <= MAX_MESSAGE_CHARS, (text, message)  # the API cuts longer ones
    if "`" not in text:  # else a backtick the message quotes may pair with an example's
        for example in EXAMPLE_IN_MESSAGE.findall(message):
            assert parse_filter(example) is not None, (text, message, example)


# ---- the tester's cases, and their kin -------------------------------------------------------
GUIDANCE = [
    (
        "age >= 30 AND",
        "the filter ends with AND: add a condition after it, for example "
        "`age >= 30 AND country = 'DE'`",
    ),
    ("country = 'DE' OR", "the filter ends with OR: add a condition after it"),
    ("AND age > 3", "the filter starts with AND: put a condition before it"),
    ("OR (age > 3)", "the filter starts with OR: put a condition before it"),
    ("age > 3 AND AND age < 5", "AND at character 9 needs a condition after it"),
    ("NOT", "NOT at character 1 needs a condition after it"),
    ("country = UK", "put text values in single quotes: `country = 'UK'`"),
    ("country IN (DE, 'FR')", "put text values in single quotes: write 'DE' instead of DE"),
    ("users from Germany older than 30", "'users' at character 1 is not a column"),
    ("Germany", "'Germany' at character 1 is not a column"),
    ("contry = 'DE'", "unknown column 'contry' at character 1 (did you mean country?)"),
    ("salary > 100", "the columns are age, country, days_since_last_purchase"),
    ("(age > 3", "the '(' at character 1 is never closed: add ')'"),
    ("country IN ('DE', 'FR'", "the '(' at character 12 is never closed"),
    ("age > 3)", "')' at character 8 closes no '('"),
    ("country = 'DE", "the text opened with ' at character 11 has no closing '"),
    ('country = "DE', 'the text opened with " at character 11 has no closing "'),
    ("`age > 3", "the column name opened with a backtick at character 1 has no closing"),
    ("age => 30", "write >= instead of =>"),
    ("age =< 30", "write <= instead of =<"),
    ("country = 'DE' && age > 3", "write AND instead of &&"),
    ("age < 3 || age > 60", "write OR instead of ||"),
    ("country ~~ 'U%'", "write LIKE instead of ~~"),
    ("age = thirty", "'thirty' at character 7 is not a number: age holds numbers"),
    ("age 30", "'30' at character 5 is not an operator"),
    ("age", "the filter ends after the column age: add an operator and a value"),
    ("age >", "the filter ends after >: put a value after it, for example `age > 30`"),
    ("'DE'", "'DE' at character 1 is a value without a column"),
    ("age = recency", "each comparison needs one column and one value"),
    ("age = NULL", "write age IS NULL"),
    ("country IS 'DE'", "IS works only as IS NULL or IS NOT NULL: to compare, write "),
    ("age > '30'", "age is a number: compare it with a number without quotes"),
    ("age BETWEEN 30", "write BETWEEN as low AND high"),
    ("age > 3; DROP TABLE campaigns", "a filter is one condition"),
    ("upper(country) = 'DE'", "function calls are not allowed"),
]


@pytest.mark.parametrize(("text", "guidance"), GUIDANCE)
def test_refusals_say_what_to_change_in_the_filters_terms(text: str, guidance: str) -> None:
    message = refusal(text)
    assert guidance in message, message
    assert_actionable(text, message)


def test_an_unknown_word_in_a_sentence_gets_no_misleading_guess() -> None:
    """'users' is close to user_id, but "users from Germany" is a sentence, not a typo."""
    assert "did you mean" not in refusal("users from Germany older than 30")
    assert "(did you mean country?)" in refusal("contry 'DE'")


@pytest.mark.parametrize(
    "text", ["country = \u2018DE\u2019", "country = \u201cDE\u201d", "country = \u00b4DE\u00b4"]
)
def test_typographic_quotes_are_named_and_straight_ones_asked_for(text: str) -> None:
    message = refusal(text)
    assert "typographic quote" in message and "straight single quotes" in message
    assert_actionable(text, message)


@pytest.mark.parametrize("text", ["MAP(x", "MAP(ISNULL", "age > 1 OR map(age", "ARRAY(1"])
def test_what_the_parser_trips_on_is_refused_in_words_not_a_crash(text: str) -> None:
    # sqlglot's MAP builder raised IndexError: an HTTP 500 on create, update and preview.
    assert_actionable(text, refusal(text))


@pytest.mark.parametrize("text", ["age == 30", 'country = "DE"', "country = 'DE' -- note"])
def test_spellings_spark_sql_shares_are_accepted(text: str) -> None:
    assert parse_filter(text) is not None


def test_only_the_messages_module_builds_the_error() -> None:
    """The one place: every refusal in lib.audience is worded through lib.audience.messages."""
    package = Path(parse_filter.__code__.co_filename).parent
    builders = [
        path.name
        for path in sorted(package.glob("*.py"))
        if "AudienceFilterError(" in path.read_text()
    ]
    assert builders == ["messages.py"]


# ---- the fuzzer: token soups and damaged valid filters ---------------------------------------
WORDS = [
    *["age", "country", "monetary", "AGE", "`age`", "`country`", "user_id"],
    *["users", "from", "Germany", "older", "than", "UK", "DE", "contry", "thirty", "years"],
    *["AND", "OR", "NOT", "IN", "BETWEEN", "LIKE", "IS", "NULL", "TRUE", "SELECT", "and"],
    *["=", "==", "!=", "<>", "<", "<=", ">", ">=", "=>", "=<", "&&", "||", "!", "+", "-"],
    *["*", "%", "~~", "<=>", "(", ")", ",", ";", ".", ":", "[", "]", "{", "}", "@", "?"],
    *["'DE'", "'UK'", '"DE"', "'", '"', "`", "'it''s'", "30", "0.5", "1e3", "10L", ".5", "-5"],
    *["--", "-- note\n", "/*", "*/", "\n", "ILIKE", "ESCAPE", "DISTINCT", "X'55'", "upper"],
    *["MAP(", "ARRAY(", "STRUCT(", "map", "CAST(", "EXTRACT("],  # builders that raise
]
VALID = [
    "country IN ('DE', 'FR') AND age >= 30",
    "(age < 25 OR age > 60) AND country != 'US'",
    "monetary > 500.5 OR NOT engagement_score BETWEEN 0.2 AND 0.8",
    "country LIKE 'G%' AND recency IS NOT NULL",
    "`age` <> -5 -- a note",
]
SEEDS = VALID + [text for text, _ in GUIDANCE]


@st.composite
def damaged_filters(draw: st.DrawFn) -> str:
    """A valid (or nearly valid) filter cut short, with a piece left out, or one inserted."""
    text = draw(st.sampled_from(SEEDS))
    start = draw(st.integers(0, len(text)))
    end = draw(st.integers(start, len(text)))
    how = draw(st.sampled_from(["truncate", "remove", "insert", "prefix"]))
    if how == "truncate":
        return text[:end]
    if how == "remove":
        return text[:start] + text[end:]
    piece = draw(st.sampled_from(WORDS))
    if how == "prefix":
        return f"{piece} {text}"
    return f"{text[:start]} {piece} {text[start:]}"


def test_the_fuzzers_seeds_are_valid_filters() -> None:
    assert all(parse_filter(text) is not None for text in VALID)


TOKEN_SOUPS = st.lists(st.sampled_from(WORDS), min_size=1, max_size=12).map(" ".join)
GLUED_SOUPS = st.lists(st.sampled_from(WORDS), min_size=1, max_size=8).map("".join)


@settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES") or 400),
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
@given(st.one_of(TOKEN_SOUPS, GLUED_SOUPS, damaged_filters()))
def test_no_refusal_leaks_parser_internals_and_each_points_at_the_language(text: str) -> None:
    try:
        parse_filter(text)
    except AudienceFilterError as err:
        assert_actionable(text, str(err))

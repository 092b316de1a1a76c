"""User text on a terminal, in a log or a notebook: control characters shown, never obeyed.

A campaign name (or a filter, a path, a server's error message) can hold ESC, a carriage
return, U+2028 or a BOM. Printed raw, ``\\x1b[2J`` clears the learner's screen and a newline
forges a progress line such as "✅ JOB COMPLETED SUCCESSFULLY". Everything the job and the
command lines print goes through :func:`escape_controls`: such characters are written as
Python escapes (``\\x1b``, ``\\u2028``), which are visible and harmless.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable

__all__ = ["INVISIBLE_CATEGORIES", "escape_controls", "escaping", "first_invisible"]

# Unicode general categories with no visible glyph of their own: controls (C0, DEL, C1),
# format characters (BOM, zero-width space and joiners, bidi overrides), line and paragraph
# separators, unpaired surrogates.
INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})


def _escaped(char: str) -> str:
    """Python's own escape for one character (``\\x1b``, ``\\u2028``, ``\\U000e0001``)."""
    return repr(char)[1:-1]


def escape_controls(text: str) -> str:
    """``text`` with every invisible character written as a visible escape."""
    if text.isprintable():  # the common case: nothing to do (spaces are printable)
        return text
    return "".join(
        _escaped(c) if unicodedata.category(c) in INVISIBLE_CATEGORIES else c for c in text
    )


def first_invisible(text: str) -> tuple[int, str] | None:
    """(index, escaped character) of the first invisible character in ``text``, or None."""
    for index, char in enumerate(text):
        if unicodedata.category(char) in INVISIBLE_CATEGORIES:
            return index, _escaped(char)
    return None


def escaping(echo: Callable[[str], None]) -> Callable[[str], None]:
    """``echo`` that escapes invisible characters in each line it prints (the job's log)."""

    def safe_echo(line: str) -> None:
        echo(escape_controls(line))

    return safe_echo

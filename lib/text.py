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

__all__ = [
    "EMOJI_SELECTORS",
    "INVISIBLE_CATEGORIES",
    "escape_controls",
    "escaping",
    "first_invisible",
    "is_ignorable",
    "without_ignorable",
]

# Unicode general categories with no visible glyph of their own: controls (C0, DEL, C1),
# format characters (BOM, zero-width space and joiners, bidi overrides), line and paragraph
# separators, unpaired surrogates.
INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})


def _escaped(char: str) -> str:
    """Python's own escape for one character (``\\x1b``, ``\\u2028``, ``\\U000e0001``)."""
    escaped = repr(char)[1:-1]
    if escaped != char:
        return escaped
    code = ord(char)  # printable to Python, yet invisible (U+034F, U+3164): escape it anyway
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def escape_controls(text: str) -> str:
    """``text`` with every invisible character written as a visible escape."""
    if text.isprintable():  # the common case: nothing to do (spaces are printable)
        return text
    return "".join(
        _escaped(c) if unicodedata.category(c) in INVISIBLE_CATEGORIES else c for c in text
    )


# Unicode's Default_Ignorable_Code_Point (DerivedCoreProperties.txt): characters a renderer
# shows as nothing (zero-width joiners, variation selectors, Hangul fillers, tags), plus the
# braille blank, which renders as an empty cell.
_IGNORABLE = (
    (0x00AD, 0x00AD),
    (0x034F, 0x034F),
    (0x061C, 0x061C),
    (0x115F, 0x1160),
    (0x17B4, 0x17B5),
    (0x180B, 0x180F),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x206F),
    (0x2800, 0x2800),
    (0x3164, 0x3164),
    (0xFE00, 0xFE0F),
    (0xFEFF, 0xFEFF),
    (0xFFA0, 0xFFA0),
    (0xFFF0, 0xFFF8),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0000, 0xE0FFF),
)
# Categories a name may not hold: invisible ones, private use (no agreed glyph), unassigned.
_UNSEEN_CATEGORIES = INVISIBLE_CATEGORIES | {"Co", "Cn"}
# Emoji presentation selectors: "❤️" is U+2764 U+FE0F. Allowed in names, ignored in keys.
EMOJI_SELECTORS = frozenset("\ufe0e\ufe0f")


def is_ignorable(char: str) -> bool:
    """Whether ``char`` renders as nothing (Default_Ignorable_Code_Point, braille blank)."""
    code = ord(char)
    return any(low <= code <= high for low, high in _IGNORABLE)


def first_invisible(text: str) -> tuple[int, str] | None:
    """(index, escaped character) of the first character of ``text`` a reader cannot see
    (controls, format characters, separators, default-ignorables, private use, unassigned;
    emoji presentation selectors excepted), or None."""
    for index, char in enumerate(text):
        if char in EMOJI_SELECTORS:
            continue
        if unicodedata.category(char) in _UNSEEN_CATEGORIES or is_ignorable(char):
            return index, _escaped(char)
    return None


def without_ignorable(text: str) -> str:
    """``text`` without the characters that render as nothing."""
    return "".join(char for char in text if not is_ignorable(char))


def escaping(echo: Callable[[str], None]) -> Callable[[str], None]:
    """``echo`` that escapes invisible characters in each line it prints (the job's log)."""

    def safe_echo(line: str) -> None:
        echo(escape_controls(line))

    return safe_echo

"""User text printed by the job and the command lines: control characters shown, never obeyed."""

from __future__ import annotations

import pytest

from lib.errors import InvalidInputError, run_cli
from lib.notebook import one_line
from lib.text import escape_controls, escaping, first_invisible

FORGED = "Sale\x1b[2J\r\n✅ JOB COMPLETED SUCCESSFULLY\u2028\ufeff\u202e"


def test_escape_controls_writes_invisible_characters_as_escapes() -> None:
    shown = escape_controls(FORGED)
    assert shown == "Sale\\x1b[2J\\r\\n✅ JOB COMPLETED SUCCESSFULLY\\u2028\\ufeff\\u202e"
    assert shown.isprintable()


def test_escape_controls_keeps_visible_text_as_it_is() -> None:
    for text in ["Black Friday Campaign", "Café 😀 ｄｕｐ", "a  b", "İstanbul ß Ω", "\u00a0x"]:
        assert escape_controls(text) == text


def test_an_unpaired_surrogate_is_escaped_so_printing_cannot_fail() -> None:
    assert escape_controls("a\ud800b") == "a\\ud800b"
    assert escape_controls("a\ud800b").encode("utf-8")


def test_first_invisible_names_the_character_and_its_index() -> None:
    assert first_invisible("ab\u200bc") == (2, "\\u200b")
    assert first_invisible("plain text") is None


def test_the_jobs_echo_escapes_every_line() -> None:
    lines: list[str] = []
    escaping(lines.append)(f"✅ Loaded campaign: {FORGED}")
    assert len(lines) == 1 and "\x1b" not in lines[0] and "\n" not in lines[0]


def test_cli_errors_quote_user_text_escaped(capsys: pytest.CaptureFixture[str]) -> None:
    def main(_: object) -> int:
        raise InvalidInputError(f"campaign {FORGED!s} is broken")

    with pytest.raises(SystemExit) as exit_:
        run_cli(main, [])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "\x1b" not in err and "\\x1b[2J" in err


def test_notebook_error_line_is_escaped() -> None:
    assert one_line(InvalidInputError(FORGED)) == f"❌ error: {escape_controls(FORGED)}"

"""What a notebook calls in its first code cell: pipeline errors as one red line.

A :class:`~lib.errors.PipelineError` (the config API is down, an unknown campaign, a
tampered model...) is something the learner fixes outside the code, and its message says
how. In a Jupyter kernel it would still come with a 15-line traceback through ``lib``; with
:func:`show_errors_in_one_line` the cell shows ``❌ error: <message>`` instead. The cell
still fails (papermill and nbclient stop there, the job's exit code is kept), and every
other exception, a bug, keeps its full traceback.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

from lib.errors import PipelineError
from lib.text import escape_controls

__all__ = ["one_line", "show_errors_in_one_line"]

RED, RESET = "\x1b[31m", "\x1b[0m"


def one_line(error: BaseException) -> str:
    """The line a user sees for a pipeline error (the CLI's ``lib.errors.run_cli`` too);
    control characters in the message (user text it quotes) are shown as escapes."""
    return f"❌ error: {escape_controls(str(error))}"


def _show_one_line(
    shell: Any,
    etype: type[BaseException],
    value: BaseException,
    tb: TracebackType | None,
    tb_offset: int | None = None,
) -> list[str]:
    structured = [f"{RED}{one_line(value)}{RESET}"]
    # IPython calls a custom handler instead of showing a traceback; _showtraceback is what
    # sends the `error` output (ename, evalue, these lines) to the notebook, and records the
    # traceback the kernel's execute_reply carries, so the cell still counts as failed.
    shell._showtraceback(etype, value, structured)
    return structured


def show_errors_in_one_line() -> bool:
    """In IPython/Jupyter, show pipeline errors as one red line; elsewhere do nothing.

    Returns whether a handler was installed (False outside IPython).
    """
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    if shell is None:
        return False
    shell.set_custom_exc((PipelineError,), _show_one_line)
    return True

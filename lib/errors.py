"""Errors a user can cause, each with its own exit code, and the CLI wrapper that prints them.

A user error ends a command with one readable line on stderr and a non-zero exit code; a
traceback is kept for bugs, never shown for bad input.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence


class PipelineError(Exception):
    """Base of every error caused by input, configuration or environment (not by a bug)."""

    exit_code = 1


def pipeline_error_named(name: str) -> type[PipelineError] | None:
    """The PipelineError subclass called ``name`` (as papermill reports a notebook's error),
    wherever it is defined (lib.api_client's ApiError too); None for anything else."""
    pending = [PipelineError]
    while pending:
        cls = pending.pop()
        if cls.__name__ == name:
            return cls
        pending.extend(cls.__subclasses__())
    return None


def exit_code_for(error_name: str) -> int:
    """The job's exit code for an exception class name (a notebook's error, as papermill
    reports it): the PipelineError's own code, 1 for anything else (a bug)."""
    error = pipeline_error_named(error_name)
    return error.exit_code if error is not None else 1


class InvalidInputError(PipelineError):
    """Bad arguments or a bad input file (missing, wrong columns, unwritable output)."""

    exit_code = 2


class ModelError(PipelineError):
    """A model artifact is missing, unregistered, tampered with or unusable."""

    exit_code = 3


class CampaignNotFoundError(PipelineError):
    """The config API has no campaign with that id."""

    exit_code = 4


class CampaignInactiveError(PipelineError):
    """The campaign exists but is switched off."""

    exit_code = 5


class ApiUnavailableError(PipelineError):
    """The config API cannot be reached or answered with a server error."""

    exit_code = 6


class AudienceFilterError(PipelineError):
    """The audience filter is not in the allowed language (see lib.audience)."""

    exit_code = 7


class StorageError(PipelineError):
    """Writing failed for a reason of the storage: no space left, quota, permission."""

    exit_code = 8


class SparkFailureError(PipelineError):
    """Spark lost what the job ran on: an executor, the Connect server, the JVM, memory."""

    exit_code = 9


class SparkUnreachableError(SparkFailureError):
    """No Spark Connect server answers at the URL (down, wrong port, not a Connect server).
    Here, not in lib.spark: the runner maps a notebook's error to its exit code by name."""


class InputGateError(PipelineError):
    """The users to score are not what the model learned from (lib.gate): a feature of
    another type, more missing values or values further outside the training range than
    the campaign's ``input_tolerance`` allows."""

    exit_code = 10


class JobInterruptedError(PipelineError):
    """The job was stopped by a signal (SIGTERM from a scheduler, ``kubectl delete``)."""

    exit_code = 143  # 128 + SIGTERM, what a shell reports for a terminated process


def run_cli(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None) -> None:
    """Run a CLI ``main`` and turn a :class:`PipelineError` into one line and its exit code."""
    try:
        code = main(argv)
    except PipelineError as err:
        from lib.text import escape_controls  # messages quote user text (names, paths)

        print(f"❌ error: {escape_controls(str(err))}", file=sys.stderr)
        code = err.exit_code
    except KeyboardInterrupt:
        print("❌ interrupted", file=sys.stderr)
        code = 130
    sys.exit(code)

"""The run state machine, in one place: which histories a run record may have.

    (new) ─▶ queued ─▶ running ─▶ succeeded
               │          └─────▶ failed
               └────────────────▶ failed

- A run starts ``queued`` or ``running``; ``succeeded`` and ``failed`` are final: a finished
  run takes no change at all (sending what it already holds is answered as a no-op, so a
  client may retry its last update).
- ``finished_at`` is set exactly when the run is finished (by the server's clock when the
  update that finishes it does not say: :func:`finish_time`).
- Times are in order: ``finished_at >= started_at``, both at least ``created_at`` less
  :data:`CLOCK_SKEW` (started and finished come from the job's clock, created from the
  server's).
- The outcome (counts, output path, model sha256) belongs to a succeeded run only, the
  error message to a failed one.

:func:`check_run` raises :class:`RunTransitionError` with the reason; the routes answer 409.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

__all__ = [
    "CLOCK_SKEW",
    "FINAL",
    "OUTCOME_FIELDS",
    "RunTransitionError",
    "check_run",
    "finish_time",
    "state_of",
]

CLOCK_SKEW = timedelta(minutes=5)
FINAL = frozenset({"succeeded", "failed"})
STARTS = frozenset({"queued", "running"})
NEXT: Mapping[str, frozenset[str]] = {
    "queued": frozenset({"queued", "running", "failed"}),
    "running": frozenset({"running", "succeeded", "failed"}),
}
OUTCOME_FIELDS = ("input_rows", "audience_size", "scored_rows", "output_path", "model_sha256")
STATE_FIELDS = (
    "status",
    "created_at",
    "started_at",
    "finished_at",
    "heartbeat_at",
    "error_message",
    *OUTCOME_FIELDS,
)


class RunTransitionError(Exception):
    """The change would give the run an impossible history; the message says why."""


def state_of(row: Any) -> dict[str, Any]:
    """The fields of a stored run that the state machine reads."""
    return {name: getattr(row, name, None) for name in STATE_FIELDS}


def check_run(before: Mapping[str, Any] | None, after: Mapping[str, Any]) -> None:
    """Refuse going from ``before`` (None for a new run) to ``after`` (the whole record)."""
    status = after["status"]
    if before is None:
        if status not in STARTS:
            raise RunTransitionError(
                f"a run starts as queued or running, not {status}: record its outcome with "
                "PATCH once it has one"
            )
    elif before["status"] in FINAL:
        if any(after.get(name) != before.get(name) for name in STATE_FIELDS):
            raise RunTransitionError(
                f"the run already {before['status']}: a finished run cannot change"
            )
        return
    elif status not in NEXT.get(before["status"], STARTS | FINAL):  # unknown: a repair
        raise RunTransitionError(f"a {before['status']} run cannot become {status}")
    _check_fields(status, after)
    _check_times(after)


def finish_time(
    before: Mapping[str, Any], changes: Mapping[str, Any], now: datetime
) -> dict[str, Any]:
    """``changes`` with ``finished_at`` = ``now`` when they finish the run without one."""
    finishing = changes.get("status") in FINAL and before.get("status") not in FINAL
    if finishing and changes.get("finished_at", before.get("finished_at")) is None:
        return {**changes, "finished_at": now}
    return dict(changes)


def _check_fields(status: str, after: Mapping[str, Any]) -> None:
    finished = status in FINAL
    if finished and after.get("finished_at") is None:
        raise RunTransitionError(f"a {status} run needs finished_at")
    if not finished and after.get("finished_at") is not None:
        raise RunTransitionError(f"finished_at is for a finished run, not a {status} one")
    if status != "succeeded":
        given = [name for name in OUTCOME_FIELDS if after.get(name) is not None]
        if given:
            raise RunTransitionError(
                f"{', '.join(given)} belong to a succeeded run, not a {status} one"
            )
    if status != "failed" and after.get("error_message") is not None:
        raise RunTransitionError(f"error_message is for a failed run, not a {status} one")


def _check_times(after: Mapping[str, Any]) -> None:
    # A value that is not a datetime is a malformed stored one (api.models.Malformed): the
    # schemas answer for it, the order of times cannot be judged.
    created, started, finished = (
        value if isinstance(value, datetime) else None
        for value in (after.get("created_at"), after.get("started_at"), after.get("finished_at"))
    )
    minutes = int(CLOCK_SKEW.total_seconds() // 60)
    if created is not None:
        for name, value in (("started_at", started), ("finished_at", finished)):
            if value is not None and created - value > CLOCK_SKEW:  # (never overflows)
                raise RunTransitionError(
                    f"{name} {value.isoformat()} is before the run was created "
                    f"({created.isoformat()}, allowing {minutes} minutes of clock skew)"
                )
    if started is not None and finished is not None and finished < started:
        raise RunTransitionError(
            f"finished_at {finished.isoformat()} is before started_at {started.isoformat()}"
        )

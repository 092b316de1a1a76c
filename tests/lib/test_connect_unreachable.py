"""A Spark Connect client whose server does not answer fails fast, in one line, and stops on
a signal while it waits: pyspark's own retry policy waits more than 10 minutes (issue: a
learner's notebook 04 sat "Busy" for 10 minutes after `make down`)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lib.errors import SparkFailureError
from lib.spark import (
    CONNECT_TIMEOUT_SECONDS,
    QUICK_RETRIES,
    SparkUnreachableError,
    connect_spark,
    wait_until_answering,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port bound by this test and not listening: a connect is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A loopback port that accepts connections and never says a word."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield sock.getsockname()[1]


def test_a_closed_port_is_refused_at_once_with_the_command_that_helps(closed_port: int) -> None:
    started = time.monotonic()
    with pytest.raises(SparkUnreachableError) as caught:
        connect_spark(f"sc://localhost:{closed_port}")
    assert time.monotonic() - started < 3
    message = str(caught.value)
    assert f"sc://localhost:{closed_port}" in message and "nothing listens there" in message
    assert "make up" in message and "SPARK_REMOTE" in message
    assert "\n" not in message


def test_a_port_that_never_answers_gives_up_after_the_deadline(silent_port: int) -> None:
    from pyspark.sql.connect.client import DefaultChannelBuilder

    url = f"sc://127.0.0.1:{silent_port}"
    started = time.monotonic()
    with pytest.raises(SparkUnreachableError, match="did not answer as Spark Connect within 1 s"):
        wait_until_answering(DefaultChannelBuilder(url), url, "127.0.0.1", silent_port, timeout=1)
    assert 0.9 < time.monotonic() - started < 4


def test_the_token_never_appears_in_the_message(closed_port: int) -> None:
    with pytest.raises(SparkUnreachableError) as caught:
        connect_spark(f"sc://localhost:{closed_port}/;token=s3cret-token")
    assert "s3cret-token" not in str(caught.value)


def test_an_unreachable_server_is_a_spark_failure_with_its_exit_code() -> None:
    assert issubclass(SparkUnreachableError, SparkFailureError)
    assert SparkUnreachableError.exit_code == 9


def test_the_session_retries_for_seconds_not_minutes() -> None:
    from pyspark.sql.connect.client.retries import DefaultPolicy

    policy = DefaultPolicy(**QUICK_RETRIES)
    waits, backoff = [], float(policy.initial_backoff)
    for _ in range(policy.max_retries or 0):  # the policy's own schedule, jitter aside
        waits.append(min(backoff, policy.max_backoff or backoff))
        backoff *= policy.backoff_multiplier
    assert 2 < sum(waits) / 1000 < 10  # a blip is tolerated, a dead server fails fast
    assert CONNECT_TIMEOUT_SECONDS <= 10


WAITER = textwrap.dedent(
    """
    import signal, sys
    from pyspark.sql.connect.client import DefaultChannelBuilder
    from lib import predict
    from lib.spark import wait_until_answering

    signal.signal(signal.SIGTERM, predict._on_sigterm)  # the job's own handler
    port = int(sys.argv[1])
    url = f"sc://127.0.0.1:{port}"
    print("waiting", flush=True)
    wait_until_answering(DefaultChannelBuilder(url), url, "127.0.0.1", port, timeout=300)
    """
)


@pytest.mark.parametrize(
    ("signum", "said"),
    [(signal.SIGTERM, "JobInterruptedError"), (signal.SIGINT, "KeyboardInterrupt")],
)
def test_a_signal_stops_the_wait_within_seconds(
    silent_port: int, signum: signal.Signals, said: str
) -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", WAITER, str(silent_port)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert process.stdout is not None and process.stdout.readline() == "waiting\n"
        time.sleep(0.5)  # inside the wait
        process.send_signal(signum)
        started = time.monotonic()
        _, stderr = process.communicate(timeout=20)
        assert time.monotonic() - started < 5
    finally:
        process.kill()
        process.wait()
    assert process.returncode != 0
    assert said in stderr


@pytest.mark.parametrize(
    "url",
    [
        "sc://:15002/;token=SECRET3",
        "sc://127.0.0.1:15002/;token=SECRET4==",
        "sc://localhost:x/;token=S5",
    ],
)
def test_a_malformed_url_is_one_line_that_never_shows_the_token(url: str) -> None:
    from lib.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="is not a Spark Connect URL") as caught:
        connect_spark(url)
    assert "SECRET" not in str(caught.value) and "S5" not in str(caught.value)


def test_a_foreign_listener_with_a_token_the_user_gave_is_pyspark_s_to_dial(
    silent_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # docker-compose's notebooks: their Spark Connect shares the network namespace
    # (sc://localhost:15002), not started by this checkout, token in the environment.
    import lib.spark

    monkeypatch.setenv("SPARK_CONNECT_AUTHENTICATE_TOKEN", "a-token-the-user-gave")
    monkeypatch.setattr(lib.spark, "CONNECT_TIMEOUT_SECONDS", 1.0)
    with pytest.raises(SparkUnreachableError, match="did not answer as Spark Connect"):
        connect_spark(f"sc://localhost:{silent_port}")  # reached the handshake, not refused


def test_a_foreign_listener_without_a_token_is_refused(silent_port: int) -> None:
    from lib.connect_server import ConnectServerError

    with pytest.raises(ConnectServerError, match="in use by a program"):
        connect_spark(f"sc://localhost:{silent_port}")

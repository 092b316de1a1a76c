"""One strict reading of a campaign id, for the API, lib.predict, lib.runner and notebook 04."""

from __future__ import annotations

import subprocess
import sys

import pytest

from lib.contract import MAX_ID, parse_id
from lib.errors import InvalidInputError
from lib.predict import run_job
from lib.settings import PROJECT_ROOT

# Each of these is an int to Python's int() (and to argparse's type=int), most of them the
# wrong campaign: "1_0" was campaign 10.
LAX = ["1_0", "+1", " 1", "1 ", "01", "\u0661\u0660", "１", "1.0", "-1", "0", "", str(MAX_ID + 1)]


@pytest.mark.parametrize("text", LAX)
def test_parse_id_refuses_anything_but_plain_decimal_digits(text: str) -> None:
    with pytest.raises(ValueError, match="campaign id"):
        parse_id(text)


def test_parse_id_reads_plain_digits_and_ints_within_the_apis_bounds() -> None:
    assert parse_id("10") == 10
    assert parse_id(str(MAX_ID)) == MAX_ID
    assert parse_id(7) == 7
    for value in (True, 0, MAX_ID + 1, 1.0, None):
        with pytest.raises(ValueError):
            parse_id(value)


@pytest.mark.parametrize("module", ["lib.predict", "lib.runner"])
@pytest.mark.parametrize("text", ["1_0", "+1", "\u0661\u0660"])
def test_command_lines_refuse_lax_ids_before_any_work(module: str, text: str) -> None:
    out = subprocess.run(
        [sys.executable, "-m", module, "--campaign-id", text],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2, out.stderr
    assert "plain decimal digits" in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize("value", ["1_0", " 1", 1.5, True])
def test_notebook_parameter_is_read_strictly(value: object) -> None:
    # papermill -r campaign_id TEXT hands notebook 04 the text; run_job reads it first.
    with pytest.raises(InvalidInputError, match="campaign id"):
        run_job(value, config_api_url="http://127.0.0.1:9")  # type: ignore[arg-type]

from __future__ import annotations

import html
import re
import socket
from pathlib import Path

import httpx
import pytest

from lib.settings import Settings
from tests.notebooks.conftest import executed_notebook, output_text, outputs
from tests.servers import uvicorn_server

pytestmark = [pytest.mark.notebooks, pytest.mark.e2e]


def test_config_api_notebook_against_a_real_server(
    isolated_settings: Settings, trained_model_dir: Path, tmp_path: Path
) -> None:
    env = {"DATA_DIR": str(isolated_settings.data_dir), "MODEL_DIR": str(trained_model_dir)}
    with uvicorn_server(env, tmp_path / "api.log") as url:
        with executed_notebook("03_config_api.ipynb", {"config_api_url": url}) as tb:
            assert tb.value("n_listed") == 1
            refusals = tb.value("refusals")
            assert len(refusals) == 4
            assert all(status == 422 for status, _ in refusals.values())
            assert "function calls" in refusals["reflect('java.lang.Runtime', 'getRuntime')"][1]
            assert "subqueries" in " ".join(why for _, why in refusals.values())
            # The reasons in full: pandas cuts cells at 50 characters unless told otherwise.
            shown = "\n".join(o.get("data", {}).get("text/html", "") for o in outputs(tb))
            assert all(len(why) > 50 for _, why in refusals.values())
            for _, why in refusals.values():
                assert html.escape(why, quote=False) in shown
            status, why = tb.value("feature_error")
            assert status == 422 and "favourite_colour" in why
            black_friday_id = tb.value("black_friday_id")
            # Dates shown readably (ISO 8601), never as datetime.datetime(2026, 12, ...) reprs.
            shown_text = output_text(tb)
            assert "datetime.datetime(" not in shown_text
            assert re.search(r"created: \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}", shown_text)
            assert re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", shown_text)  # the table
        campaigns = httpx.get(f"{url}/campaigns/").json()
        assert [(c["id"], c["name"]) for c in campaigns] == [
            (black_friday_id, "Black Friday Campaign")
        ]
        # A second run reuses the seed campaign instead of failing on its name.
        with executed_notebook("03_config_api.ipynb", {"config_api_url": url}) as tb:
            assert tb.value("black_friday_id") == black_friday_id


def test_config_api_notebook_without_the_api_says_how_to_start_it(
    isolated_settings: Settings,
) -> None:
    # Bound and never listening: connections are refused, and no other process of the
    # suite can take the port meanwhile (a free_port() number could be reused: CI saw a
    # ReadTimeout from whatever listened there next).
    with socket.socket() as reserved:
        reserved.bind(("127.0.0.1", 0))
        port = reserved.getsockname()[1]
        url = f"http://127.0.0.1:{port}"
        with executed_notebook("03_config_api.ipynb", {"config_api_url": url}, fails=True) as tb:
            (error,) = outputs(tb, "error")
    assert error.ename == "ApiUnavailableError"
    (line,) = error.traceback  # one red line, not a 15-line traceback
    assert f"config API unreachable at {url}" in line
    # The commands that serve it where the notebook looks, not on 8000.
    assert f"`make api API_PORT={port}`" in line and f"`make up API_PORT={port}`" in line

"""JupyterLab as `make lab` opens it, in a real browser: a learner opens notebook 01 from the
file browser and runs it from the menu, offline, without pop-ups or errors.

The server serves a temporary copy of notebooks/ with its data folders in a temporary
folder (see the ``jupyter_lab`` fixture); the notebook is never saved.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from playwright.sync_api import Locator, Page, expect

from lib import schema
from lib.data import conversion_probability, write_users
from lib.holdout import is_control
from tests.browser.conftest import JupyterLab, RequestLog

pytestmark = pytest.mark.e2e  # a real JupyterLab server and kernel

NOTEBOOK = "01_generate_data.ipynb"
NEWS_QUESTION = "Would you like to get notified about official Jupyter news?"
ALL_CELLS_RAN = """() => {
  // The notebook in front only: the workspace may restore an earlier test's notebook too.
  const panel = '.jp-NotebookPanel:not(.lm-mod-hidden)';
  const prompts = [...document.querySelectorAll(`${panel} .jp-CodeCell .jp-InputPrompt`)];
  return prompts.length > 0 && prompts.every(p => /\\[\\d+\\]/.test(p.textContent));
}"""


def run_all_cells(jupyter_lab: JupyterLab, page: Page, name: str) -> Locator:
    """Open ``name`` from the file browser, run all its cells from the menu, wait until every
    cell ran and the kernel is idle; no error output. Returns the notebook panel."""
    page.goto(jupyter_lab.open_url("/"))
    expect(page).to_have_url(re.compile(r"/lab/tree/notebooks"))  # the default URL
    page.locator(".jp-DirListing-itemText", has_text=name).dblclick()

    notebook = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")
    kernel_status = page.locator(".jp-StatusBar-Widget", has_text="Python 3 (spark-ml-pipeline)")
    expect(kernel_status).to_contain_text("| Idle", timeout=60_000)  # its kernel has started
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
    page.wait_for_function(ALL_CELLS_RAN, timeout=90_000)
    expect(kernel_status).to_contain_text("| Idle", timeout=30_000)

    stderr = notebook.locator(
        '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'
    )
    errors = [text for text in stderr.all_inner_texts() if re.search(r"Traceback|\w+Error\b", text)]
    assert errors == []
    return notebook


def test_a_learner_runs_notebook_01_in_jupyterlab(
    jupyter_lab: JupyterLab, page: Page, page_requests: RequestLog
) -> None:
    notebook = run_all_cells(jupyter_lab, page, NOTEBOOK)
    expect(notebook.locator(".jp-OutputArea-output", has_text="labelled users ->")).to_be_visible()
    assert (jupyter_lab.data_dir / "sample_users.parquet").exists()  # not the checkout's data/
    expect(page.get_by_text(NEWS_QUESTION)).to_have_count(0)
    assert page_requests.off_loopback() == []
    # The kernel talks to the server over IPC sockets: no TCP warning in `make lab`'s terminal.
    log = (jupyter_lab.root.parent / "jupyterlab.log").read_text()
    assert "Kernel started" in log and "TCP without encryption" not in log


def test_a_learner_runs_notebook_06_in_jupyterlab(
    jupyter_lab: JupyterLab, page: Page, page_requests: RequestLog
) -> None:
    # What notebook 04 leaves for campaign 1: the users (notebook 01's defaults) and their
    # predictions with deciles and the holdout's groups (here from the true propensity).
    users_path = jupyter_lab.data_dir / "sample_users.parquet"
    if not users_path.exists():
        write_users(users_path, 1_000, seed=42)
    users = pd.read_parquet(users_path)
    ids = users[schema.USER_ID].to_numpy()
    propensity = pd.Series(conversion_probability(users))
    predictions = pd.DataFrame(
        {
            schema.USER_ID: ids,
            schema.SCORE: propensity,
            schema.DECILE: pd.qcut(-propensity, 10, labels=False) + 1,
            schema.GROUP: np.where(is_control(1, ids, 0.1), "control", "treatment"),
        }
    )
    jupyter_lab.output_dir.mkdir(parents=True, exist_ok=True)
    predictions.to_parquet(jupyter_lab.output_dir / "predictions_campaign_1.parquet")

    notebook = run_all_cells(jupyter_lab, page, "06_campaign_effect.ipynb")
    expect(notebook.locator(".jp-OutputArea-output", has_text="uplift:")).to_be_visible()
    expect(
        notebook.locator(".jp-OutputArea-output", has_text="smallest detectable")
    ).to_be_visible()
    assert (jupyter_lab.output_dir / "outcomes_campaign_1.parquet").exists()
    assert page_requests.off_loopback() == []


def test_a_learner_solves_an_exercise_in_jupyterlab(
    jupyter_lab: JupyterLab, page: Page, page_requests: RequestLog
) -> None:
    # "Run All" with the exercises untouched: every check asks for an answer, nothing fails.
    notebook = run_all_cells(jupyter_lab, page, NOTEBOOK)
    code_cells = notebook.locator(".jp-CodeCell")
    texts = code_cells.all_text_contents()
    (index,) = [i for i, text in enumerate(texts) if "a conversion rate between 0 and 1" in text]
    exercise = code_cells.nth(index)  # by position: its text is about to change
    check = code_cells.nth(index + 1)
    expect(check).to_contain_text("check_engaged_rate(answer, training)")
    verdict = check.locator(".jp-OutputArea-output")
    expect(verdict).to_have_text(re.compile(r"^Not yet: replace None"))

    # The learner types an answer over the placeholder, runs it, then the check below it.
    exercise.locator(".cm-content").click()
    page.keyboard.press("Control+a")
    answer = 'answer = training.loc[training["engagement_score"] >= 0.6, "converted"].mean()'
    page.keyboard.insert_text(answer)
    expect(exercise.locator(".cm-content")).to_have_text(answer)
    page.keyboard.press("Shift+Enter")  # runs the exercise, selects the check cell
    page.keyboard.press("Shift+Enter")
    expect(verdict).to_have_text(re.compile(r"^Correct: \d+\.\d% of the engaged users converted"))
    assert page_requests.off_loopback() == []

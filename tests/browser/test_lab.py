"""JupyterLab as `make lab` opens it, in a real browser: a learner opens notebook 01 from the
file browser and runs it from the menu, offline, without pop-ups or errors.

The server serves a temporary copy of notebooks/ with its data folders in a temporary
folder (see the ``jupyter_lab`` fixture); the notebook is never saved.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import JupyterLab, RequestLog

pytestmark = pytest.mark.e2e  # a real JupyterLab server and kernel

NOTEBOOK = "01_generate_data.ipynb"
NEWS_QUESTION = "Would you like to get notified about official Jupyter news?"
ALL_CELLS_RAN = """() => {
  const prompts = [...document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputPrompt')];
  return prompts.length > 0 && prompts.every(p => /\\[\\d+\\]/.test(p.textContent));
}"""


def test_a_learner_runs_notebook_01_in_jupyterlab(
    jupyter_lab: JupyterLab, page: Page, page_requests: RequestLog
) -> None:
    page.goto(jupyter_lab.open_url("/"))
    expect(page).to_have_url(re.compile(r"/lab/tree/notebooks"))  # the default URL
    page.locator(".jp-DirListing-itemText", has_text=NOTEBOOK).dblclick()

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
    expect(notebook.locator(".jp-OutputArea-output", has_text="labelled users ->")).to_be_visible()
    assert (jupyter_lab.data_dir / "sample_users.parquet").exists()  # not the checkout's data/
    expect(page.get_by_text(NEWS_QUESTION)).to_have_count(0)
    assert page_requests.off_loopback() == []

"""The notebooks as lessons, read from their JSON (no kernel): the narrative says what the code
and charts show, and each notebook points to the next."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from lib.settings import PROJECT_ROOT

NOTEBOOK_DIR = PROJECT_ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))


def cells(path: Path) -> list[dict[str, Any]]:
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def text(cell: dict[str, Any]) -> str:
    return "".join(cell["source"])


def markdown(name: str) -> str:
    return "\n\n".join(text(c) for c in cells(NOTEBOOK_DIR / name) if c["cell_type"] == "markdown")


def test_notebook_01_explains_the_cliff_at_365_days() -> None:
    narrative = markdown("01_generate_data.ipynb")
    (paragraph,) = [p for p in narrative.split("\n\n") if "cliff at 365" in p]
    assert "`days_since_last_purchase`" in paragraph and "not a cap" in paragraph
    assert "`frequency`" in paragraph and "12 months" in paragraph


def test_notebook_02_does_not_call_its_test_set_the_audience() -> None:
    nb = cells(NOTEBOOK_DIR / "02_train_catboost.ipynb")
    gains_cell = next(text(c) for c in nb if "holdout_gains = " in text(c))
    # lib.gains says "audience" unless told who the table counts.
    for call in ("gains.plot_gains(", "gains.contact_advice(", "gains.display_table("):
        assert call in gains_cell
    assert gains_cell.count('population="test set"') == 3
    assert "not a campaign's audience" in markdown("02_train_catboost.ipynb")


def test_notebook_04_says_what_its_timing_chart_can_show() -> None:
    nb = cells(NOTEBOOK_DIR / "04_spark_scoring.ipynb")
    (timing,) = [text(c) for c in nb if text(c).startswith("## Where did the time go?")]
    # No promise the chart can contradict: a cold server's first job takes many seconds.
    for claim in ("fraction of a second", "in about a second", "pays about a second"):
        assert claim not in timing
    assert "cold\nstart" in timing or "cold start" in timing
    assert "`make up`" in timing and "this run's own measurement" in timing


def test_notebook_04_points_to_the_next_notebooks() -> None:
    last = text(cells(NOTEBOOK_DIR / "04_spark_scoring.ipynb")[-1])
    assert last.startswith("**Next:**")
    assert "05_ibis_audiences.ipynb" in last and "06_campaign_effect.ipynb" in last


@pytest.mark.parametrize("path", NOTEBOOKS[:-1], ids=lambda p: p.name)
def test_each_notebook_points_to_the_following_one(path: Path) -> None:
    number = int(path.name[:2])
    (following,) = NOTEBOOK_DIR.glob(f"{number + 1:02d}_*.ipynb")
    assert following.name in text(cells(path)[-1])


def test_notebook_05_explains_the_nan_guard_in_the_compiled_sql() -> None:
    narrative = markdown("05_ibis_audiences.ipynb")
    (paragraph,) = [p for p in narrative.split("\n\n") if "isnan" in p.lower()]
    assert "IF(ISNAN(" in paragraph and "NaN counts as NULL" in paragraph
    assert "DuckDB" in paragraph and "Spark" in paragraph and "pyarrow" in paragraph

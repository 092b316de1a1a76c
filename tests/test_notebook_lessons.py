"""The notebooks as lessons, read from their JSON (no kernel): each ends with what the learner
learned and at least one exercise with its check, and the narrative says what the code and
charts show."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

import pytest

from lib import exercises
from lib.settings import PROJECT_ROOT
from tests.helpers import emoji_in
from tests.notebooks.solutions import SOLUTIONS

NOTEBOOK_DIR = PROJECT_ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))


def cells(path: Path) -> list[dict[str, Any]]:
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def text(cell: dict[str, Any]) -> str:
    return "".join(cell["source"])


def tags(cell: dict[str, Any]) -> list[str]:
    return cell["metadata"].get("tags", [])


def markdown(name: str) -> str:
    return "\n\n".join(text(c) for c in cells(NOTEBOOK_DIR / name) if c["cell_type"] == "markdown")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_notebook_ends_with_what_you_learned_and_exercises(path: Path) -> None:
    nb = cells(path)
    (learned,) = [
        i
        for i, c in enumerate(nb)
        if c["cell_type"] == "markdown" and "## What you learned" in text(c)
    ]
    assert text(nb[learned]).startswith("## What you learned")
    bullets = [line for line in text(nb[learned]).splitlines() if line.startswith("* ")]
    assert 3 <= len(bullets) <= 5, bullets
    # After it: only the exercises (task, exercise cell, check cell) and a last "Next:".
    closing = nb[learned + 1 :]
    code = [c for c in closing if c["cell_type"] == "code"]
    assert [tags(c) for c in code] == [["exercise"], ["check"]] * (len(code) // 2), path.name
    assert 1 <= len(code) // 2 <= 2
    assert text(closing[-1]).startswith("**Next:**"), path.name
    exercise_cells = [c for c in nb if "exercise" in tags(c)]
    assert exercise_cells == code[::2]  # no exercise anywhere else
    assert len(SOLUTIONS[path.name]) == len(exercise_cells)  # a reference solution for each
    for cell in nb[learned:]:
        assert re.fullmatch(r"[0-9]+", cell["id"]), cell["id"]  # nbstripout's numbering
        assert emoji_in(text(cell)) == [], (path.name, cell["id"])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_exercise_cells_hold_a_placeholder_and_checks_call_lib_exercises(path: Path) -> None:
    nb = cells(path)
    for cell in nb:
        if "exercise" in tags(cell):
            (statement,) = ast.parse(text(cell)).body  # one line: the learner replaces None
            assert ast.unparse(statement) == "answer = None", text(cell)
            assert "your code here" in text(cell)
        if "check" in tags(cell):
            tree = ast.parse(text(cell))
            imported = [a.name for n in tree.body if isinstance(n, ast.ImportFrom) for a in n.names]
            called = [
                n.value.func.id
                for n in tree.body
                if isinstance(n, ast.Expr) and isinstance(n.value, ast.Call)
            ]
            assert len(called) == 1 and called == imported, text(cell)
            assert called[0] in exercises.__all__
            assert "from lib.exercises import" in text(cell)


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


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebooks_write_no_emoji_where_a_font_may_lack_them(path: Path) -> None:
    # JupyterLab in a browser without an emoji font showed boxes (the learner's report).
    found = {cell["id"]: emoji_in(text(cell)) for cell in cells(path) if emoji_in(text(cell))}
    assert found == {}

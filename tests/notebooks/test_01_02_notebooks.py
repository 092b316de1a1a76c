from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from lib import registry, schema
from lib.settings import Settings
from tests.notebooks.conftest import assert_no_noise, executed_notebook, output_text

pytestmark = pytest.mark.notebooks


def test_generate_and_train_notebooks_run_in_order(isolated_settings: Settings) -> None:
    with executed_notebook(
        "01_generate_data.ipynb", {"n_users": 250, "n_training_rows": 4_000}
    ) as tb:
        assert tb.value("n_written_users") == 250
        assert tb.value("n_written_training") == 4_000
        assert 0.1 < tb.value("positive_rate") < 0.5
        assert tb.value("str(users_path)") == str(isolated_settings.users_path)
        assert_no_noise(output_text(tb))  # tqdm.auto with ipywidgets: no TqdmWarning
        # The dated snapshot, drifted: older visits, less engagement, the rest unchanged.
        assert tb.value("str(snapshot_folder)") == str(
            isolated_settings.snapshot_path(date(2026, 12, 1))
        )
    users = pd.read_parquet(isolated_settings.users_path)
    assert len(users) == 250
    assert list(users.columns) == schema.USER_SCHEMA.names
    snapshot = pd.read_parquet(isolated_settings.snapshot_path(date(2026, 12, 1)))
    assert len(snapshot) == 250 and list(snapshot.columns) == schema.USER_SCHEMA.names
    assert snapshot["recency"].mean() > users["recency"].mean() + 50
    assert snapshot["engagement_score"].mean() < users["engagement_score"].mean() * 0.6
    assert snapshot["frequency"].equals(users["frequency"])

    with executed_notebook("02_train_catboost.ipynb", {"iterations": 60}) as tb:
        assert tb.value("accuracy") > 0.6
        assert 0.7 < tb.value("roc_auc") <= 1.0
        assert tb.value("max_diff") == {".cbm": 0.0, ".pkl": 0.0}
        assert tb.value("result.features") == list(schema.FEATURES)
        # Gains and lift on the holdout (lib.gains, as in the run report) and calibration.
        assert tb.value("holdout_gains['decile'].tolist()") == list(range(1, 11))
        assert tb.value("int(holdout_gains['users'].sum())") == tb.value("result.test_rows")
        assert tb.value("float(holdout_gains['cum_actual_gain'].iloc[-1])") == 1.0
        assert tb.value("top_decile_lift") > 1.5
        assert 0.0 <= tb.value("calibration_gap") < 0.25
        assert tb.value("len(prob_true)") >= 5
        assert "Contact the top 3 deciles" in output_text(tb)
        # The held-out test set is no campaign's audience, and the notebook does not say so.
        assert "30.0% of the test set" in output_text(tb)
        assert "audience" not in output_text(tb)
    entries = registry.read_registry(isolated_settings.model_dir)
    assert set(entries) == {"campaign_model_v1.cbm", "campaign_model_v1.pkl"}
    assert not (isolated_settings.model_dir.parent / "notebooks" / "catboost_info").exists()


def test_training_notebook_without_data_tells_to_run_notebook_01(
    isolated_settings: Settings,
) -> None:
    with executed_notebook("02_train_catboost.ipynb", fails=True) as tb:
        (error,) = [o for c in tb.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert error.ename == "InvalidInputError"
    (line,) = error.traceback  # one line, not a traceback through lib
    assert "run 01_generate_data.ipynb first" in line

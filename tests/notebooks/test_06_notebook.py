"""Notebook 06: did the campaign work? The measured lift recovers the simulation's effect."""

from __future__ import annotations

import pandas as pd
import pytest

from lib import predict, schema
from lib.data import write_users
from lib.settings import Settings
from tests.notebooks.conftest import assert_no_noise, executed_notebook, output_text
from tests.project import Project

pytestmark = [pytest.mark.notebooks, pytest.mark.e2e]


def test_notebook_06_recovers_the_simulated_effect_within_its_interval(
    project: Project, isolated_settings: Settings
) -> None:
    # An audience large enough to measure an effect (the demo's 1,000 users are not: the
    # notebook's power calculation says so), scored by the job (in process: no Spark).
    users = isolated_settings.data_dir / "campaign_users.parquet"
    write_users(users, 30_000, seed=11)
    campaign_id = project.create_campaign("notebook 06", None, holdout_share=0.2)
    output = isolated_settings.prediction_path(campaign_id)
    predict.run_job(
        campaign_id,
        config_api_url=project.url,
        input_path=str(users),
        output_path=str(output),
        model_dir=project.models,
        echo=lambda line: None,
        engine="local",
    )
    parameters = {"campaign_id": campaign_id, "users_path": str(users)}
    with executed_notebook("06_campaign_effect.ipynb", parameters) as tb:
        # The notebook's 95% interval misses the truth in 1 run of 20 by design, and the
        # holdout depends on the campaign id (the suite's order): the test allows 4 standard
        # errors (a miss in about 1 of 16,000) and checks the notebook's own verdict agrees.
        estimate, truth = tb.value("lift.uplift"), tb.value("true_uplift")
        low, high = tb.value("lift.low"), tb.value("lift.high")
        standard_error = (high - low) / (2 * 1.959964)
        assert abs(estimate - truth) <= 4 * standard_error, (estimate, truth, standard_error)
        assert tb.value("recovered") is (low <= truth <= high)
        assert tb.value("lift.significant") is True
        assert tb.value("lift.uplift") > 0
        held = int((pd.read_parquet(output)[schema.GROUP] == "control").sum())
        assert tb.value("lift.control_users") == held
        # The lesson: the effect peaks below the best-scoring decile.
        assert tb.value("best_uplift_decile") > 1
        assert tb.value("len(by_decile)") == 10
        assert tb.value("bool(qini['incremental_conversions'].iloc[-1] > 0)") is True
        assert tb.value("detectable") < tb.value("lift.uplift")  # this audience can see it
        written = pd.read_parquet(isolated_settings.outcomes_path(campaign_id))
        assert len(written) == 30_000 and written[schema.LABEL].dtype == bool
        assert_no_noise(output_text(tb))

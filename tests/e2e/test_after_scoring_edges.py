"""After the scoring, at the edges (found in review): NaN features, nested columns, damaged
drift references, few distinct scores, an input without rows. On the local engine."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lib import predict
from lib.errors import InputGateError, ModelError
from tests.project import Project

pytestmark = [pytest.mark.e2e]


def score(project: Project, campaign_id: int, users: Path, out: Path, models: Path | None = None):
    return predict.run_job(
        campaign_id,
        config_api_url=project.url,
        input_path=str(users),
        output_path=str(out),
        model_dir=models or project.models,
        echo=lambda line: None,
        engine="local",
    )


def newest_run(project: Project, campaign_id: int):
    with project.api() as api:
        return api.list_runs(campaign_id)[0]


def users_with(project: Project, name: str, column: pa.Array) -> pa.Table:
    table = pq.read_table(project.users)
    return table.set_column(table.schema.get_field_index(name), name, column)


def test_a_feature_of_nan_values_is_refused_like_a_feature_of_nulls(
    project: Project, tmp_path: Path
) -> None:
    """NaN is a missing value to CatBoost and to ProfileCounter (it counts it as a null), but
    the footers' null counts do not include NaN and check_ranges never judges the nulls."""
    campaign_id = project.create_campaign("review nan", None, input_tolerance=0.05)
    n = pq.read_metadata(project.users).num_rows
    nulls = users_with(project, "monetary", pa.nulls(n, pa.float64()))
    pq.write_table(nulls, tmp_path / "nulls.parquet")
    with pytest.raises(InputGateError):  # the control: nulls are refused
        score(project, campaign_id, tmp_path / "nulls.parquet", tmp_path / "a.parquet")
    nans = users_with(project, "monetary", pa.array(np.full(n, np.nan)))
    pq.write_table(nans, tmp_path / "nans.parquet")
    with pytest.raises(InputGateError):  # fails: the job scores 100% NaN and warns nothing
        score(project, campaign_id, tmp_path / "nans.parquet", tmp_path / "b.parquet")


def test_a_nested_column_does_not_hide_a_features_nulls(project: Project, tmp_path: Path) -> None:
    """lib.gate.column_facts indexes the row group's (leaf) columns with the Arrow field index:
    any struct/list column before a feature shifts it onto a neighbour's statistics."""
    campaign_id = project.create_campaign("review nested", None, input_tolerance=0.05)
    n = pq.read_metadata(project.users).num_rows
    table = users_with(project, "days_since_last_purchase", pa.nulls(n, pa.int64()))
    pq.write_table(table, tmp_path / "flat.parquet")
    with pytest.raises(InputGateError):  # the control: without the struct it is refused
        score(project, campaign_id, tmp_path / "flat.parquet", tmp_path / "out.parquet")
    address = pa.array(
        [{"street": "x", "city": "y"}] * n,
        pa.struct([("street", pa.string()), ("city", pa.string())]),
    )
    pq.write_table(table.add_column(1, "address", address), tmp_path / "nested.parquet")
    with pytest.raises(InputGateError):  # fails: it reads engagement_score's (no nulls)
        score(project, campaign_id, tmp_path / "nested.parquet", tmp_path / "out.parquet")


def edited_models(project: Project, tmp_path: Path, edit) -> Path:
    models = tmp_path / "models"
    shutil.copytree(project.models, models)
    registry = json.loads((models / "registry.json").read_text())
    for entry in registry["artifacts"].values():
        if isinstance(entry, dict) and entry.get("reference"):
            edit(entry["reference"])
    (models / "registry.json").write_text(json.dumps(registry))
    return models


def test_a_score_reference_with_merged_bins_is_refused_before_any_work(
    project: Project, tmp_path: Path
) -> None:
    """Ties used to merge decile edges, so a model with few distinct scores sent fewer than
    ten score shares, which the API refused: the run stayed 'running' while its predictions
    were written. References now always have ten bins; one with fewer (hand-edited, or from
    before) is a one-line ModelError before anything is written."""

    def merge_two_score_bins(reference) -> None:
        score = reference["score"]
        del score["edges"][0]
        score["shares"][1] += score["shares"].pop(0)

    models = edited_models(project, tmp_path, merge_two_score_bins)
    campaign_id = project.create_campaign("review merged bins", None)
    with pytest.raises(ModelError, match="edges must be a list of 9"):
        score(project, campaign_id, project.users, tmp_path / "out.parquet", models)
    assert not (tmp_path / "out.parquet").exists()
    assert newest_run(project, campaign_id).status == "failed"


def test_a_model_with_few_distinct_scores_still_records_ten_score_shares(
    project: Project, tmp_path: Path
) -> None:
    from lib.data import generate_users
    from lib.training import save_model, train_model

    models = tmp_path / "models"
    result = train_model(generate_users(2_000, seed=7, labelled=True), iterations=1, depth=1)
    assert len(set(result.test_scores.round(12))) < 10  # tied deciles
    save_model(result, models)
    campaign_id = project.create_campaign("review few scores", None)
    score(project, campaign_id, project.users, tmp_path / "out.parquet", models)
    run = newest_run(project, campaign_id)
    assert run.status == "succeeded" and run.score_shares is not None
    assert len(run.score_shares) == 10


def test_a_nan_in_a_registered_reference_is_a_model_error(project: Project, tmp_path: Path) -> None:
    """ColumnReference.from_json checks the edges are finite, not the shares, null share or
    range: a NaN share passes the registry check, the PSI is NaN, and httpx refuses to encode
    it when the job records the run: ValueError traceback after the predictions are written,
    and the run stays 'running'."""

    def nan_share(reference) -> None:
        reference["features"]["recency"]["shares"][0] = float("nan")

    models = edited_models(project, tmp_path, nan_share)
    campaign_id = project.create_campaign("review nan reference", None)
    from lib.errors import ModelError

    with pytest.raises(ModelError):  # fails: ValueError (Out of range float values...)
        score(project, campaign_id, project.users, tmp_path / "out.parquet", models)
    assert not (tmp_path / "out.parquet").exists()


def test_an_input_without_rows_is_an_empty_audience(project: Project, tmp_path: Path) -> None:
    """lib.local_engine: pa.Table.from_batches([], schema=None) raises before the empty-table
    fallback on the next line (before this change the schema was given): a Parquet file
    with no rows (no row groups) ends in 'ValueError: Must pass schema, or at least one
    RecordBatch' (an unexpected error, not a one-line PipelineError)."""
    campaign_id = project.create_campaign("review zero rows", None)
    pq.write_table(pq.read_table(project.users).slice(0, 0), tmp_path / "none.parquet")
    result = score(project, campaign_id, tmp_path / "none.parquet", tmp_path / "out.parquet")
    assert result.audience_size == 0  # fails: ValueError

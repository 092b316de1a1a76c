from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lib import registry, schema, training
from lib.data import generate_users
from lib.errors import InvalidInputError, ModelError
from tests.helpers import python_module


@pytest.fixture(scope="module")
def small_result() -> training.TrainResult:
    return training.train_model(generate_users(3_000, seed=7, labelled=True), iterations=40)


@pytest.fixture
def model_dir(tmp_path: Path, small_result: training.TrainResult) -> Path:
    training.save_model(small_result, tmp_path)
    return tmp_path


@pytest.fixture(scope="module")
def sample() -> pd.DataFrame:
    return generate_users(500, seed=42)


def test_model_learns_real_signal() -> None:
    result = training.train_model(generate_users(20_000, seed=7, labelled=True), iterations=150)
    assert result.metrics["roc_auc"] > 0.75
    assert 0.5 < result.metrics["accuracy"] <= 1.0


def test_model_uses_exactly_the_seed_features(small_result: training.TrainResult) -> None:
    assert small_result.features == list(schema.FEATURES)
    assert small_result.model.feature_names_ == list(schema.FEATURES)


def test_training_does_not_litter_catboost_info(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    training.train_model(generate_users(500, seed=1, labelled=True), iterations=5)
    assert list(tmp_path.iterdir()) == []


def test_single_class_training_set_is_refused() -> None:
    data = generate_users(200, labelled=True).assign(converted=0)
    with pytest.raises(InvalidInputError, match="both classes"):
        training.train_model(data)


def test_missing_training_columns_are_named() -> None:
    data = generate_users(200, labelled=True).drop(columns=["monetary"])
    with pytest.raises(InvalidInputError, match="monetary"):
        training.train_model(data)


@pytest.mark.parametrize("suffix", [".cbm", ".pkl"])
def test_save_load_round_trip_gives_same_probabilities(
    model_dir: Path, small_result: training.TrainResult, sample: pd.DataFrame, suffix: str
) -> None:
    loaded = registry.load_model(f"campaign_model_v1{suffix}", model_dir)
    expected = training.predict_proba(small_result.model, sample, schema.FEATURES)
    np.testing.assert_array_equal(training.predict_proba(loaded, sample, schema.FEATURES), expected)


def test_seed_style_path_relative_to_project_root_is_accepted(model_dir: Path) -> None:
    artifact = registry.resolve_artifact("models/campaign_model_v1.pkl", model_dir)
    assert artifact.name == "campaign_model_v1.pkl"
    assert artifact.format == "pickle"


def test_metadata_is_complete(model_dir: Path, small_result: training.TrainResult) -> None:
    import catboost

    meta = json.loads((model_dir / "campaign_model_v1.json").read_text())
    assert meta["features"] == list(schema.FEATURES)
    assert meta["catboost_version"] == catboost.__version__
    assert meta["training_rows"] == small_result.train_rows
    assert set(meta["metrics"]) >= {"accuracy", "roc_auc"}
    assert meta["created_at"].endswith("+00:00")
    for name in ("campaign_model_v1.cbm", "campaign_model_v1.pkl"):
        assert meta["artifacts"][name] == registry.sha256_file(model_dir / name)


def test_registry_lists_both_files_with_checksums(model_dir: Path) -> None:
    entries = registry.read_registry(model_dir)
    assert set(entries) == {"campaign_model_v1.cbm", "campaign_model_v1.pkl"}
    for name, entry in entries.items():
        assert entry["sha256"] == registry.sha256_file(model_dir / name)


def test_saving_twice_keeps_one_registry_entry_per_file(
    model_dir: Path, small_result: training.TrainResult
) -> None:
    training.save_model(small_result, model_dir, "campaign_model_v2")
    assert len(registry.read_registry(model_dir)) == 4


def test_tampered_pickle_is_never_unpickled(model_dir: Path, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (Path.touch, (marker,))

    (model_dir / "campaign_model_v1.pkl").write_bytes(pickle.dumps(Exploit()))
    with pytest.raises(ModelError, match="checksum"):
        registry.load_model("campaign_model_v1.pkl", model_dir)
    assert not marker.exists()


def test_unregistered_file_is_refused(model_dir: Path) -> None:
    shutil.copy(model_dir / "campaign_model_v1.cbm", model_dir / "copy.cbm")
    with pytest.raises(ModelError, match="not registered"):
        registry.load_model("copy.cbm", model_dir)


def test_missing_file_is_refused(model_dir: Path) -> None:
    (model_dir / "campaign_model_v1.cbm").unlink()
    with pytest.raises(ModelError, match="missing"):
        registry.load_model("campaign_model_v1.cbm", model_dir)


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("", "empty"),
        ("/etc/passwd.pkl", "relative"),
        ("../models/campaign_model_v1.pkl", r"'\.\.'"),
        ("models/../../x.pkl", r"'\.\.'"),
        ("file:///tmp/x.pkl", "not"),
        ("http://evil.example/x.pkl", "not"),
        ("campaign_model_v1.pkl\x00.cbm", "control"),
        ("~/x.pkl", "not"),
        ("models\\campaign_model_v1.pkl", "separators"),
        ("registry.json", r"\.cbm or \.pkl"),
        ("campaign_model_v1.json", r"\.cbm or \.pkl"),
        ("./campaign_model_v1.pkl", "'.'"),
        ("models//campaign_model_v1.pkl", "empty"),
        ("C:/models/campaign_model_v1.pkl", "relative"),
    ],
)
def test_hostile_paths_are_refused(model_dir: Path, path: str, message: str) -> None:
    with pytest.raises(ModelError, match=message):
        registry.resolve_artifact(path, model_dir)


def test_symlink_out_of_the_model_directory_is_refused(model_dir: Path, tmp_path_factory) -> None:
    outside = tmp_path_factory.mktemp("outside") / "evil.pkl"
    outside.write_bytes(b"x")
    (model_dir / "link.pkl").symlink_to(outside)
    with pytest.raises(ModelError, match="outside"):
        registry.resolve_artifact("link.pkl", model_dir)


def test_train_cli_prints_the_seed_lines(tmp_path: Path) -> None:
    out = python_module(
        "lib.training",
        "--n-rows",
        "2000",
        "--iterations",
        "20",
        "--model-dir",
        str(tmp_path),
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert "Model accuracy: 0." in out.stdout
    assert "ROC AUC: 0." in out.stdout
    assert f"Model saved to {tmp_path / 'campaign_model_v1.pkl'}" in out.stdout
    assert f"Required features: {list(schema.FEATURES)}" in out.stdout
    assert not (tmp_path / "catboost_info").exists()


def test_train_cli_single_class_data_fails_with_one_line(tmp_path: Path) -> None:
    data = generate_users(300, labelled=True).assign(converted=1)
    data.to_parquet(tmp_path / "one_class.parquet")
    out = python_module(
        "lib.training",
        "--training-data",
        str(tmp_path / "one_class.parquet"),
        "--model-dir",
        str(tmp_path / "models"),
        cwd=tmp_path,
    )
    assert out.returncode == InvalidInputError.exit_code
    assert out.stderr.strip().count("\n") == 0
    assert "both classes" in out.stderr
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "models").exists()


def test_data_cli_rejects_zero_users_with_one_line(tmp_path: Path) -> None:
    out = python_module(
        "lib.data", "--n-users", "0", "--output", str(tmp_path / "u.parquet"), cwd=tmp_path
    )
    assert out.returncode == InvalidInputError.exit_code
    assert out.stderr.strip() == "❌ error: --n-users must be a positive number, got 0"
    assert list(tmp_path.iterdir()) == []

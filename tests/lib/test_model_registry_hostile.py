"""The registry as a boundary: every malformed entry, file or sidecar is one ModelError.

Each case is something a careless hand edit, a bad copy or a full disk can leave behind in
``models/``; none may reach the job or the API as a traceback (API: 500, job: exit 1).
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from lib import registry, training
from lib.data import generate_users
from lib.errors import ModelError


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    result = training.train_model(generate_users(600, seed=3, labelled=True), iterations=10)
    directory = tmp_path_factory.mktemp("registry")
    training.save_model(result, directory)
    return directory


@pytest.fixture
def models(saved: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "models"
    copy.mkdir()
    for item in saved.iterdir():
        (copy / item.name).write_bytes(item.read_bytes())
    return copy


def edit_entry(models: Path, name: str, change: Callable[[dict], object]) -> None:
    registry = json.loads((models / "registry.json").read_text())
    registry["artifacts"][name] = change(registry["artifacts"][name])
    (models / "registry.json").write_text(json.dumps(registry))


def test_registry_records_each_files_size(models: Path) -> None:
    entries = registry.read_registry(models)
    for name, entry in entries.items():
        assert entry["size"] == (models / name).stat().st_size


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda e: "not an object", "is not an object"),
        (lambda e: [e], "is not an object"),
        (lambda e: {k: v for k, v in e.items() if k != "sha256"}, "no valid sha256"),
        (lambda e: {**e, "sha256": "abc"}, "no valid sha256"),
        (lambda e: {**e, "sha256": 42}, "no valid sha256"),
        (lambda e: {k: v for k, v in e.items() if k != "features"}, "no valid features"),
        (lambda e: {**e, "features": "recency"}, "no valid features"),
        (lambda e: {**e, "features": []}, "no valid features"),
        (lambda e: {**e, "features": [1, 2]}, "no valid features"),
        (lambda e: {**e, "size": -1}, "invalid size"),
        (lambda e: {**e, "size": "big"}, "invalid size"),
        (lambda e: {**e, "metadata": ["x"]}, "invalid metadata"),
    ],
)
def test_malformed_registry_entry_is_a_model_error(models: Path, change, message: str) -> None:
    edit_entry(models, "campaign_model_v1.pkl", change)
    with pytest.raises(ModelError, match=message):
        registry.resolve_artifact("campaign_model_v1.pkl", models)


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", '"a string"', "\xff\xfe"])
def test_corrupt_metadata_sidecar_is_a_model_error(models: Path, text: str) -> None:
    (models / "campaign_model_v1.json").write_bytes(text.encode("latin-1"))
    with pytest.raises(ModelError, match="metadata"):
        registry.resolve_artifact("campaign_model_v1.cbm", models)


@pytest.mark.parametrize("text", ["{not json", '{"artifacts": 3}', "[]", '{"other": {}}'])
def test_corrupt_registry_is_a_model_error(models: Path, text: str) -> None:
    (models / "registry.json").write_text(text)
    with pytest.raises(ModelError):
        registry.resolve_artifact("campaign_model_v1.cbm", models)


def test_pickle_registered_as_catboost_is_refused_by_format(models: Path) -> None:
    edit_entry(models, "campaign_model_v1.pkl", lambda e: {**e, "format": "catboost"})
    with pytest.raises(ModelError, match="must be 'pickle'"):
        registry.resolve_artifact("campaign_model_v1.pkl", models)


@pytest.mark.parametrize(
    ("name", "fmt"), [("campaign_model_v1.pkl", "catboost"), ("campaign_model_v1.cbm", "pickle")]
)
def test_bytes_of_the_other_format_are_a_model_error(models: Path, name: str, fmt: str) -> None:
    data = (models / name).read_bytes()
    with pytest.raises(ModelError, match="wrong format"):
        registry.model_from_bytes(data, fmt)


@pytest.mark.parametrize("name", ["campaign_model_v1.pkl", "campaign_model_v1.cbm"])
def test_truncated_model_registered_as_such_is_a_model_error(models: Path, name: str) -> None:
    """Someone registered a half-copied file (checksum and size of the truncated bytes)."""
    path = models / name
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    edit_entry(
        models,
        name,
        lambda e: {**e, "sha256": registry.sha256_file(path), "size": path.stat().st_size},
    )
    with pytest.raises(ModelError, match="truncated"):
        registry.load_model(name, models)


def test_oversized_file_in_place_of_a_model_is_refused_without_reading_it_whole(
    models: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = models / "campaign_model_v1.cbm"
    registered = path.stat().st_size
    with open(path, "ab") as handle:  # a sparse 1 GiB tail: cheap on disk
        handle.truncate(registered + (1 << 30))
    chunks: list[int] = []
    real_open = open

    def counting_open(file, mode="r", *args, **kwargs):  # type: ignore[no-untyped-def]
        handle = real_open(file, mode, *args, **kwargs)
        if Path(file) == path and "b" in mode:
            read = handle.read

            def counted(n: int = -1) -> bytes:
                data = read(n)
                chunks.append(len(data))
                return data

            handle.read = counted  # type: ignore[method-assign]
        return handle

    monkeypatch.setattr("builtins.open", counting_open)
    with pytest.raises(ModelError, match="larger than its registered size"):
        registry.resolve_artifact("campaign_model_v1.cbm", models)
    assert sum(chunks) <= registered + (1 << 20)  # stopped within one chunk past the size


def test_saved_files_have_the_default_mode_not_mkstemps_0600(tmp_path: Path) -> None:
    result = training.train_model(generate_users(300, seed=1, labelled=True), iterations=3)
    old = os.umask(0o022)
    try:
        training.save_model(result, tmp_path)
    finally:
        os.umask(old)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()}
    assert set(modes.values()) == {0o644}, modes


@pytest.mark.parametrize("name", ["a\x00b", "x" * 5000, "../registry.json", "/etc/passwd", "."])
def test_metadata_names_that_are_not_plain_file_names_are_a_model_error(
    models: Path, name: str
) -> None:
    edit_entry(models, "campaign_model_v1.cbm", lambda e: {**e, "metadata": name})
    with pytest.raises(ModelError, match="invalid metadata file name"):
        registry.resolve_artifact("campaign_model_v1.cbm", models)


def test_model_file_in_a_symlink_loop_is_a_model_error(models: Path) -> None:
    edit_entry(models, "campaign_model_v1.cbm", lambda e: e)  # registered, then replaced:
    (models / "campaign_model_v1.cbm").unlink()
    (models / "campaign_model_v1.cbm").symlink_to(models / "loop.cbm")
    (models / "loop.cbm").symlink_to(models / "campaign_model_v1.cbm")
    with pytest.raises(ModelError):
        registry.resolve_artifact("campaign_model_v1.cbm", models)

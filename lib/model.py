"""Train, evaluate, save and safely load the campaign model (a CatBoost classifier).

Every saved artifact is listed in ``registry.json`` inside the model directory with its
sha256. :func:`load_model` opens a file only if it lies inside that directory, is listed,
and still has the listed checksum, so a swapped or hand-copied pickle is never unpickled.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pickle
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from lib import schema
from lib.errors import InvalidInputError, ModelError, run_cli
from lib.files import atomic_write_bytes, publish_file_mode
from lib.settings import get_settings

if TYPE_CHECKING:  # CatBoost is heavy: imported only where a model is trained or loaded
    from catboost import CatBoostClassifier

__all__ = [
    "DEFAULT_MODEL_NAME",
    "ModelArtifact",
    "TrainResult",
    "load_artifact",
    "load_model",
    "model_from_bytes",
    "predict_proba",
    "read_registry",
    "read_verified_bytes",
    "resolve_artifact",
    "save_model",
    "sha256_file",
    "train_model",
]

DEFAULT_MODEL_NAME = "campaign_model_v1"
MODEL_SUFFIXES = {".cbm": "catboost", ".pkl": "pickle"}
REGISTRY_NAME = "registry.json"


@dataclass(frozen=True)
class TrainResult:
    """A fitted model and how it did on the held-out split."""

    model: CatBoostClassifier
    features: list[str]
    metrics: dict[str, float]
    train_rows: int
    test_rows: int
    test_labels: np.ndarray = field(repr=False)
    test_scores: np.ndarray = field(repr=False)


@dataclass(frozen=True)
class ModelArtifact:
    """A registered model file, resolved and checked (see :func:`resolve_artifact`)."""

    name: str  # the registry key: the file's path relative to the model directory
    path: Path
    sha256: str
    format: str
    features: list[str]
    metadata: dict[str, Any]
    size: int | None = None  # bytes, as registered (older registries lack it)


def train_model(
    data: pd.DataFrame,
    features: Sequence[str] = schema.FEATURES,
    *,
    label: str = schema.LABEL,
    test_size: float = 0.2,
    seed: int = 0,
    iterations: int = 300,
    depth: int = 5,
    learning_rate: float = 0.08,
) -> TrainResult:
    """Fit a CatBoost classifier on a stratified split and score the held-out part."""
    from catboost import CatBoostClassifier
    from sklearn.metrics import accuracy_score, roc_auc_score
    from sklearn.model_selection import train_test_split

    missing = [c for c in [*features, label] if c not in data.columns]
    if missing:
        raise InvalidInputError(f"training data lacks columns: {', '.join(missing)}")
    classes = sorted(data[label].unique().tolist())
    if len(classes) != 2:
        raise InvalidInputError(
            f"training data needs both classes in '{label}', found only {classes}"
        )
    x_train, x_test, y_train, y_test = train_test_split(
        data[list(features)],
        data[label],
        test_size=test_size,
        random_state=seed,
        stratify=data[label],
    )
    model = CatBoostClassifier(
        iterations=iterations,
        depth=depth,
        learning_rate=learning_rate,
        random_seed=seed,
        verbose=False,
        allow_writing_files=False,  # no catboost_info/ litter in the working directory
        thread_count=-1,
    )
    model.fit(x_train, y_train, eval_set=(x_test, y_test))
    scores = model.predict_proba(x_test)[:, 1]
    metrics = {
        "accuracy": float(accuracy_score(y_test, scores >= 0.5)),
        "roc_auc": float(roc_auc_score(y_test, scores)),
        "positive_rate": float(np.mean(data[label])),
    }
    return TrainResult(
        model=model,
        features=list(features),
        metrics=metrics,
        train_rows=len(x_train),
        test_rows=len(x_test),
        test_labels=y_test.to_numpy(),
        test_scores=scores,
    )


def predict_proba(
    model: CatBoostClassifier, data: pd.DataFrame, features: Sequence[str]
) -> np.ndarray:
    """Probability of the positive class, with the columns in the model's order."""
    return model.predict_proba(data[list(features)])[:, 1].astype(np.float64)


def sha256_file(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_registry(model_dir: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The registry's artifacts (file name -> entry); empty when nothing was saved yet."""
    path = Path(model_dir or get_settings().model_dir) / REGISTRY_NAME
    if not path.exists():
        return {}
    try:
        return dict(json.loads(path.read_text(encoding="utf-8"))["artifacts"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ModelError(f"model registry {path} is unreadable: {err}") from err


def save_model(
    result: TrainResult,
    model_dir: str | os.PathLike[str] | None = None,
    name: str = DEFAULT_MODEL_NAME,
    *,
    extra_metadata: dict[str, Any] | None = None,
) -> dict[str, Path]:
    """Save the model natively (.cbm) and as the seed's pickle (.pkl), with metadata.

    Both files are registered with their sha256 in ``registry.json``; the metadata JSON
    records features (in order), metrics, versions and checksums.
    """
    import catboost

    directory = Path(model_dir or get_settings().model_dir)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        cbm, pkl, meta = (directory / f"{name}{suffix}" for suffix in (".cbm", ".pkl", ".json"))
        tmp_cbm = directory / f".{name}.cbm.tmp"
        result.model.save_model(str(tmp_cbm), format="cbm")
        publish_file_mode(tmp_cbm)
        os.replace(tmp_cbm, cbm)
        atomic_write_bytes(pkl, pickle.dumps(result.model, protocol=pickle.HIGHEST_PROTOCOL))
    except OSError as err:
        raise ModelError(f"cannot save the model in {directory}: {err.strerror or err}") from err
    created_at = datetime.now(UTC).isoformat()
    checksums = {path.name: sha256_file(path) for path in (cbm, pkl)}
    sizes = {path.name: path.stat().st_size for path in (cbm, pkl)}
    metadata = {
        "model_name": name,
        "features": result.features,
        "metrics": result.metrics,
        "catboost_version": catboost.__version__,
        "training_rows": result.train_rows,
        "test_rows": result.test_rows,
        "created_at": created_at,
        "artifacts": checksums,
        **(extra_metadata or {}),
    }
    atomic_write_bytes(meta, json.dumps(metadata, indent=2).encode())
    registry = read_registry(directory)
    for path in (cbm, pkl):
        registry[path.name] = {
            "sha256": checksums[path.name],
            "size": sizes[path.name],
            "format": MODEL_SUFFIXES[path.suffix],
            "model_name": name,
            "features": result.features,
            "metadata": meta.name,
            "registered_at": created_at,
        }
    payload = {"artifacts": dict(sorted(registry.items()))}
    atomic_write_bytes(directory / REGISTRY_NAME, json.dumps(payload, indent=2).encode())
    return {"cbm": cbm, "pkl": pkl, "metadata": meta, "registry": directory / REGISTRY_NAME}


def _registry_key(model_path: str, model_dir: Path) -> str:
    """Turn a user-given model path into a registry key, refusing anything outside.

    Accepted: ``campaign_model_v1.cbm`` or ``models/campaign_model_v1.pkl`` (the seed's
    form, relative to the project root, where ``models/`` stands for the model directory).
    Refused: empty, NUL bytes, URLs, absolute paths, backslashes, ``..`` and ``~``.
    """
    if not isinstance(model_path, str) or not model_path.strip():
        raise ModelError("model path is empty")
    if "\x00" in model_path or any(ord(ch) < 32 for ch in model_path):
        raise ModelError("model path contains control characters")
    if "://" in model_path or model_path.startswith(("file:", "~")):
        raise ModelError(f"model path must be a file in the model directory, not {model_path!r}")
    if "\\" in model_path:
        raise ModelError("model path must use '/' separators")
    if PurePosixPath(model_path).is_absolute() or (len(model_path) > 1 and model_path[1] == ":"):
        raise ModelError(f"model path must be relative to the model directory: {model_path!r}")
    parts = model_path.split("/")  # not PurePosixPath: it would silently drop "." parts
    if any(part in ("", ".", "..") for part in parts):
        raise ModelError(f"model path may not contain empty, '.' or '..' parts: {model_path!r}")
    if len(parts) > 1 and parts[0] in ("models", model_dir.name):
        parts = parts[1:]
    return "/".join(parts)


MAX_MODEL_BYTES = 1 << 30  # a registry entry without a recorded size is read up to 1 GiB
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def _checked_entry(key: str, entry: Any, registry: Path) -> dict[str, Any]:
    """A registry entry with the fields the job relies on, of the right types, or ModelError.

    The registry is a file anyone with write access to the model directory can edit; a
    hand-edited entry must fail with a message, not a KeyError deep inside the job.
    """
    where = f"registry entry {key!r} in {registry}"
    if not isinstance(entry, dict):
        raise ModelError(f"{where} is not an object")
    sha = entry.get("sha256")
    if not isinstance(sha, str) or not _SHA256.match(sha):
        raise ModelError(f"{where} has no valid sha256 (64 lowercase hex digits)")
    features = entry.get("features")
    if (
        not isinstance(features, list)
        or not features
        or not all(isinstance(f, str) and f for f in features)
    ):
        raise ModelError(f"{where} has no valid features (a list of column names)")
    expected_format = MODEL_SUFFIXES[PurePosixPath(key).suffix]
    if entry.get("format") != expected_format:
        raise ModelError(
            f"{where} says format {entry.get('format')!r}, but a "
            f"{PurePosixPath(key).suffix} file must be {expected_format!r}"
        )
    size = entry.get("size")
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
        raise ModelError(f"{where} has an invalid size")
    metadata = entry.get("metadata")
    if metadata is not None and not isinstance(metadata, str):
        raise ModelError(f"{where} has an invalid metadata file name")
    return entry


def _read_metadata(directory: Path, name: str | None) -> dict[str, Any]:
    """The metadata sidecar (informational); a damaged one is reported, never a traceback."""
    if not name:
        return {}
    path = (directory / name).resolve()
    if not path.is_relative_to(directory) or not path.is_file():
        return {}
    try:
        metadata = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ModelError(f"model metadata {path} is unreadable: {err}") from None
    if not isinstance(metadata, dict):
        raise ModelError(f"model metadata {path} is not a JSON object")
    return metadata


def resolve_artifact(
    model_path: str, model_dir: str | os.PathLike[str] | None = None, *, verify: bool = True
) -> ModelArtifact:
    """Check a model path against the registry; with ``verify`` also the file's sha256.

    Raises :class:`ModelError` naming the problem: outside the model directory, not a model
    file, not registered, a malformed registry entry, missing, or checksum mismatch.
    """
    directory = Path(model_dir or get_settings().model_dir).resolve()
    key = _registry_key(model_path, directory)
    suffix = PurePosixPath(key).suffix
    if suffix not in MODEL_SUFFIXES:
        raise ModelError(f"model path must name a .cbm or .pkl model file, not {model_path!r}")
    path = (directory / key).resolve()
    if not path.is_relative_to(directory):  # a symlink pointing out of the directory
        raise ModelError(f"model path resolves outside the model directory: {model_path!r}")
    registry_path = directory / REGISTRY_NAME
    raw_entry = read_registry(directory).get(key)
    if raw_entry is None:
        raise ModelError(f"model {model_path!r} is not registered in {registry_path}")
    entry = _checked_entry(key, raw_entry, registry_path)
    if not path.is_file():
        raise ModelError(f"model file is missing: {path}")
    artifact = ModelArtifact(
        name=key,
        path=path,
        sha256=entry["sha256"],
        format=entry["format"],
        features=list(entry["features"]),
        metadata=_read_metadata(directory, entry.get("metadata")),
        size=entry.get("size"),
    )
    if verify:
        read_verified_bytes(artifact)
    return artifact


def read_verified_bytes(artifact: ModelArtifact) -> bytes:
    """The artifact's bytes, checked again: the file may have changed since it was resolved.

    The file is read in chunks and hashed as it streams; reading stops as soon as it is
    larger than the registered size, so a huge file put in a model's place is refused
    without being loaded into memory.
    """
    limit = artifact.size if artifact.size is not None else MAX_MODEL_BYTES
    digest = hashlib.sha256()
    chunks: list[bytes] = []
    read = 0
    try:
        with open(artifact.path, "rb") as handle:
            while chunk := handle.read(1 << 20):
                read += len(chunk)
                if read > limit:
                    raise ModelError(
                        f"model file {artifact.path} is larger than its registered size "
                        f"({limit:,} bytes); refusing to load it"
                    )
                digest.update(chunk)
                chunks.append(chunk)
    except OSError as err:
        raise ModelError(f"cannot read model file {artifact.path}: {err.strerror or err}") from None
    actual = digest.hexdigest()
    if actual != artifact.sha256:
        raise _checksum_mismatch(artifact.path, artifact.sha256, actual)
    return b"".join(chunks)


def _checksum_mismatch(path: Path, expected: str, actual: str) -> ModelError:
    return ModelError(
        f"model file {path} does not match its registered checksum "
        f"(expected sha256 {expected[:12]}…, found {actual[:12]}…); refusing to load it"
    )


def load_artifact(artifact: ModelArtifact) -> CatBoostClassifier:
    """Load a model from a checked artifact's file (use :func:`load_model` from paths)."""
    return model_from_bytes(read_verified_bytes(artifact), artifact.format)


def model_from_bytes(data: bytes, fmt: str) -> CatBoostClassifier:
    """Rebuild a model from already-verified bytes (used to ship a model to Spark workers).

    Bytes that are not a model of the registered format (a truncated file, a pickle
    registered as ``catboost`` or the reverse) raise :class:`ModelError`.
    """
    from catboost import CatBoostClassifier, CatBoostError

    if fmt == "pickle":
        try:
            model = pickle.loads(data)  # only ever reached with bytes whose sha256 was checked
        except Exception as err:  # unpickling raises almost anything on foreign bytes
            raise ModelError(
                f"model bytes are not a readable pickle ({type(err).__name__}); "
                "is the file truncated or registered with the wrong format?"
            ) from None
        if not isinstance(model, CatBoostClassifier):
            raise ModelError(
                f"pickled object is a {type(model).__name__}, not a CatBoostClassifier"
            )
        return model
    model = CatBoostClassifier()
    try:
        model.load_model(blob=data, format="cbm")
    except CatBoostError as err:
        first = str(err).strip().splitlines()[-1] if str(err).strip() else "unreadable"
        raise ModelError(
            f"model bytes are not a CatBoost .cbm model ({first[:200]}); "
            "is the file truncated or registered with the wrong format?"
        ) from None
    return model


def load_model(
    model_path: str, model_dir: str | os.PathLike[str] | None = None
) -> CatBoostClassifier:
    """Load a registered model; the file is opened only after the registry and sha256 checks."""
    return load_artifact(resolve_artifact(model_path, model_dir))


def _parser() -> argparse.ArgumentParser:
    settings = get_settings()
    parser = argparse.ArgumentParser(
        prog="python -m lib.model", description="Train and register the campaign model."
    )
    parser.add_argument("--n-rows", type=int, default=20_000, help="training rows (default 20000)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the training data")
    parser.add_argument("--iterations", type=int, default=300, help="boosting iterations")
    parser.add_argument(
        "--training-data",
        type=Path,
        default=None,
        help="labelled Parquet to train on (default: generate --n-rows rows)",
    )
    parser.add_argument("--model-dir", type=Path, default=settings.model_dir)
    parser.add_argument("--name", default=DEFAULT_MODEL_NAME, help="artifact base name")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from lib.data import generate_users

    args = _parser().parse_args(argv)
    if args.training_data is not None:
        if not args.training_data.is_file():
            raise InvalidInputError(f"training data not found: {args.training_data}")
        data = pd.read_parquet(args.training_data)
    else:
        if args.n_rows <= 1:
            raise InvalidInputError(f"--n-rows must be at least 2, got {args.n_rows}")
        data = generate_users(args.n_rows, args.seed, labelled=True)
    result = train_model(data, iterations=args.iterations)
    paths = save_model(result, args.model_dir, args.name)
    print(f"Model accuracy: {result.metrics['accuracy']:.3f}")
    print(f"ROC AUC: {result.metrics['roc_auc']:.3f}")
    print(f"✅ Model saved to {paths['pkl']} (native: {paths['cbm']})")
    print(f"Registry: {paths['registry']}")
    print(f"Required features: {result.features}")
    return 0


if __name__ == "__main__":
    run_cli(main)

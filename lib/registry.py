"""The model registry: the boundary between a model file on disk and code that loads it.

Every saved artifact is listed in ``registry.json`` inside the model directory with its
sha256 and size. :func:`resolve_artifact` and :func:`load_verified` open a file only if it
lies inside that directory, is listed, and still has the listed size and checksum, so a
swapped or hand-copied pickle is never unpickled.

This module is what the config API imports to validate a campaign: it needs neither numpy,
pandas nor CatBoost (CatBoost is imported only to rebuild a model from verified bytes).
Training lives in :mod:`lib.training`.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from lib.drift import Reference
from lib.errors import ModelError
from lib.files import atomic_write_bytes
from lib.settings import get_settings

if TYPE_CHECKING:  # CatBoost is heavy: imported only where a model is loaded
    from catboost import CatBoostClassifier

__all__ = [
    "MODEL_SUFFIXES",
    "REGISTRY_NAME",
    "ModelArtifact",
    "VerifiedModel",
    "check_features",
    "feature_mismatch",
    "load_model",
    "load_verified",
    "model_from_bytes",
    "read_registry",
    "read_verified_bytes",
    "register",
    "resolve_artifact",
    "sha256_file",
]

MODEL_SUFFIXES = {".cbm": "catboost", ".pkl": "pickle"}
REGISTRY_NAME = "registry.json"


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
    # The training data's profile (lib.drift: bins, null shares, ranges) for drift and the
    # input gate; None for models registered before it existed.
    reference: Reference | None = None


@dataclass(frozen=True)
class VerifiedModel:
    """A registered model whose bytes were read once and matched the registry's sha256.

    The job passes this one object around: the bytes that were checked are the bytes
    that are deserialised here and shipped to Spark's workers.
    """

    artifact: ModelArtifact
    data: bytes = field(repr=False)

    @property
    def sha256(self) -> str:
        return self.artifact.sha256

    @property
    def format(self) -> str:
        return self.artifact.format

    @property
    def features(self) -> list[str]:
        return self.artifact.features

    def load(self) -> CatBoostClassifier:
        """The model itself (raises ModelError when the bytes are not a model)."""
        return model_from_bytes(self.data, self.format)


def feature_mismatch(features: Sequence[str], model_features: Sequence[str]) -> str | None:
    """Why ``features`` are not exactly the model's inputs, or None when they are.

    The one rule for "the campaign's features are the model's": the config API answers it
    as a 422 on ``features``, the job as exit code 3.
    """
    missing = [f for f in model_features if f not in features]
    unknown = [f for f in features if f not in model_features]
    duplicated = sorted({f for f in features if list(features).count(f) > 1})
    if not (missing or unknown or duplicated):
        return None
    parts = []
    if missing:
        parts.append(f"missing {missing}")
    if unknown:
        parts.append(f"unknown to the model {unknown}")
    if duplicated:
        parts.append(f"listed twice {duplicated}")
    return f"features must be the model's features {list(model_features)}: " + "; ".join(parts)


def check_features(features: Sequence[str], model_features: Sequence[str]) -> None:
    """Raise ModelError (exit code 3) when ``features`` are not exactly the model's."""
    if (problem := feature_mismatch(features, model_features)) is not None:
        raise ModelError(problem)


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


def register(directory: Path, entries: Mapping[str, dict[str, Any]]) -> Path:
    """Add or replace registry entries (file name -> entry) and write the registry atomically."""
    registry = read_registry(directory)
    registry.update(entries)
    payload = {"artifacts": dict(sorted(registry.items()))}
    path = directory / REGISTRY_NAME
    atomic_write_bytes(path, json.dumps(payload, indent=2).encode())
    return path


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
_PLAIN_NAME = re.compile(r"^[\w][\w.-]{0,254}$")  # a file name in the model directory, no path


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
    if metadata is not None and (not isinstance(metadata, str) or not _PLAIN_NAME.match(metadata)):
        raise ModelError(f"{where} has an invalid metadata file name (a plain file name)")
    if entry.get("reference") is not None:
        try:
            reference = Reference.from_json(entry["reference"])
        except ValueError as err:
            raise ModelError(f"{where} has an invalid drift reference: {err}") from None
        if sorted(reference.features) != sorted(features):
            raise ModelError(f"{where} has a drift reference for other features than its own")
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
    try:
        return _resolve(model_path, model_dir, verify=verify)
    except (OSError, RuntimeError, ValueError) as err:  # symlink loops, long names, NULs
        raise ModelError(f"model {model_path!r} cannot be resolved: {err}") from None


def _resolve(
    model_path: str, model_dir: str | os.PathLike[str] | None, *, verify: bool
) -> ModelArtifact:
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
        reference=(
            Reference.from_json(entry["reference"]) if entry.get("reference") is not None else None
        ),
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


def load_verified(
    model_path: str, model_dir: str | os.PathLike[str] | None = None
) -> VerifiedModel:
    """Resolve a model path and read its bytes once, checked against size and sha256."""
    artifact = resolve_artifact(model_path, model_dir, verify=False)
    return VerifiedModel(artifact, read_verified_bytes(artifact))

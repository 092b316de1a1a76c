"""Checks that need the model registry: the model path and the features it expects."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from lib.errors import ModelError
from lib.model import ModelArtifact, resolve_artifact


class CampaignValidationError(Exception):
    """A field is wrong; the API answers 422 naming the field and the reason."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def check_model_and_features(
    model_path: str, features: Sequence[str], model_dir: Path
) -> ModelArtifact:
    """The model must be a registered, intact artifact and the features exactly its inputs."""
    try:
        artifact = resolve_artifact(model_path, model_dir)
    except ModelError as err:
        raise CampaignValidationError("model_path", str(err)) from None
    missing = [f for f in artifact.features if f not in features]
    unknown = [f for f in features if f not in artifact.features]
    if missing or unknown:
        parts = []
        if missing:
            parts.append(f"missing {missing}")
        if unknown:
            parts.append(f"unknown to the model {unknown}")
        raise CampaignValidationError(
            "features",
            f"features must be the model's features {artifact.features}: " + "; ".join(parts),
        )
    return artifact

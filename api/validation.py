"""Checks that need the model registry: the model path and the features it expects."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from lib.errors import ModelError
from lib.registry import ModelArtifact, feature_mismatch, resolve_artifact


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
    if (problem := feature_mismatch(features, artifact.features)) is not None:
        raise CampaignValidationError("features", problem)
    return artifact

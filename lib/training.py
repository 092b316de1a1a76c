"""Train and evaluate the campaign model (a CatBoost classifier) and save it registered.

``python -m lib.training`` trains on a synthetic labelled set and registers the model in
``models/registry.json`` (see :mod:`lib.registry`, the boundary every loader goes through).
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from lib import schema
from lib.drift import Reference, reference_profile
from lib.errors import InvalidInputError, ModelError, run_cli
from lib.files import atomic_write_bytes, publish_file_mode
from lib.registry import MODEL_SUFFIXES, register, sha256_file
from lib.settings import get_settings

if TYPE_CHECKING:  # CatBoost is heavy: imported only where a model is trained
    from catboost import CatBoostClassifier

__all__ = ["DEFAULT_MODEL_NAME", "TrainResult", "predict_proba", "save_model", "train_model"]

DEFAULT_MODEL_NAME = "campaign_model_v1"


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
    # The training data's profile (lib.drift), registered with the model: each run's drift
    # and input gate compare with it.
    reference: Reference | None = field(default=None, repr=False)


def train_model(
    data: pd.DataFrame,
    features: Sequence[str] | None = None,
    *,
    label: str = schema.LABEL,
    test_size: float = 0.2,
    seed: int = 0,
    iterations: int = 300,
    depth: int = 5,
    learning_rate: float = 0.08,
) -> TrainResult:
    """Fit a CatBoost classifier on a stratified split and score the held-out part.

    ``features`` defaults to lib.schema.FEATURES, read at call time.
    """
    features = list(schema.FEATURES if features is None else features)
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
        reference=reference_profile(
            data, features, model.predict_proba(data[list(features)])[:, 1]
        ),
    )


def predict_proba(
    model: CatBoostClassifier, data: pd.DataFrame, features: Sequence[str]
) -> np.ndarray:
    """Probability of the positive class, with the columns in the model's order."""
    return model.predict_proba(data[list(features)])[:, 1].astype(np.float64)


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
    registry = register(
        directory,
        {
            path.name: {
                "sha256": checksums[path.name],
                "size": sizes[path.name],
                "format": MODEL_SUFFIXES[path.suffix],
                "model_name": name,
                "features": result.features,
                "metadata": meta.name,
                "registered_at": created_at,
                **({"reference": result.reference.to_json()} if result.reference else {}),
            }
            for path in (cbm, pkl)
        },
    )
    return {"cbm": cbm, "pkl": pkl, "metadata": meta, "registry": registry}


def _parser() -> argparse.ArgumentParser:
    settings = get_settings()
    parser = argparse.ArgumentParser(
        prog="python -m lib.training", description="Train and register the campaign model."
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

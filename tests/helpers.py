"""Plain helpers shared by test modules (import them as ``from helpers import ...``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REAL_DATA_ENV = "GGO_DATA"


def tiny_overrides(tmp_path: Path, tracking_uri: str | None = None) -> list[str]:
    """The smallest real configuration: synthetic data, 64 px, a few filters, 2 epochs."""
    ov = [
        "data=synthetic",
        "preprocess.resolution=64",
        "gen.depth=3",
        "gen.base_filters=4",
        "gen.max_filters=16",
        "disc.base_filters=4",
        "disc.max_filters=16",
        "train.epochs=2",
        "train.batch_size=8",
        "train.patience=0",
        "tracking.image_every=1",
        "tracking.n_images=2",
    ]
    if tracking_uri:
        ov.append(f"tracking.uri={tracking_uri}")
    else:
        ov.append("tracking=none")
    return ov


def real_data_root() -> Path:
    """The real dataset from GGO_DATA: required in CI, skipped with a reason elsewhere."""
    root = os.environ.get(REAL_DATA_ENV)
    if not root:
        if os.environ.get("CI"):
            pytest.fail(f"{REAL_DATA_ENV} must point at the dataset copy in CI")
        pytest.skip(f"set {REAL_DATA_ENV} to the dataset copy to run real-data tests")
    return Path(root)

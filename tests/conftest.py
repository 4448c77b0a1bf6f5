"""Shared fixtures: an isolated cache and MLflow store per test session, the real config composed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MPLBACKEND", "Agg")

REAL_DATA_ENV = "GGO_DATA"


@pytest.fixture(scope="session")
def session_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache dir for the whole session, so tests that prepare the same data share it."""
    return tmp_path_factory.mktemp("ggo-cache")


@pytest.fixture(autouse=True)
def _isolated_cache(session_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never write into the developer's data/cache from a test."""
    monkeypatch.setenv("GGO_CACHE", str(session_cache))


@pytest.fixture()
def tracking_uri(tmp_path: Path) -> str:
    """A fresh SQLite MLflow store for one test."""
    return f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"


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

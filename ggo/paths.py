"""Where things live: the project root, the dataset, the cache and the MLflow store."""

from __future__ import annotations

import os
from pathlib import Path

DATASET_DIRNAME = "covid-19-chest-xray-segmentations-dataset"


def project_root() -> Path:
    """The checkout that holds ``pyproject.toml`` (editable install), else the current directory.

    Hydra changes the working directory of a job; everything that must outlive a job (the MLflow
    store, the cache) is placed relative to this root, never relative to Hydra's output dir.
    """
    env = os.environ.get("GGO_ROOT")
    if env:
        return Path(env).resolve()
    here = Path(__file__).resolve().parent.parent
    if (here / "pyproject.toml").exists():
        return here
    return Path.cwd().resolve()


def default_data_root() -> Path:
    """``$GGO_DATA`` if set, else ``data/covid-19-chest-xray-segmentations-dataset`` under the root."""
    env = os.environ.get("GGO_DATA")
    if env:
        return Path(env).expanduser().resolve()
    return project_root() / "data" / DATASET_DIRNAME


def default_cache_dir() -> Path:
    """``$GGO_CACHE`` if set, else ``data/cache`` under the project root."""
    env = os.environ.get("GGO_CACHE")
    if env:
        return Path(env).expanduser().resolve()
    return project_root() / "data" / "cache"


def default_tracking_uri() -> str:
    """SQLite store at ``<project root>/mlruns/mlflow.db`` (artifacts beside it)."""
    return f"sqlite:///{project_root() / 'mlruns' / 'mlflow.db'}"

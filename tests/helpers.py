"""Plain helpers shared by test modules (import them as ``from helpers import ...``)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
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


def assert_outcomes_painted(picture: np.ndarray, truth: np.ndarray, pred: np.ndarray, gray: np.ndarray, alpha: float = 0.45) -> int:
    """Inside each of TP, FP, FN (away from its outline) the picture is ``gray`` blended with that
    outcome's colour; where neither mask is, it is ``gray`` untouched. Returns the pixels checked."""
    import cv2

    from ggo.evaluation import viz

    checked = 0
    tn = ~truth & ~pred
    assert (picture[tn] == gray[tn][:, None]).all(), "true negatives are left as the X-ray"
    checked += int(tn.sum())
    for name, region in {"TP": truth & pred, "FP": pred & ~truth, "FN": truth & ~pred}.items():
        def erode(kernel: np.ndarray, times: int = 1) -> np.ndarray:  # outside the picture is outside the region
            return cv2.erode(region.astype(np.uint8), kernel, iterations=times, borderType=cv2.BORDER_CONSTANT, borderValue=0).astype(bool)

        inner = erode(np.ones((3, 3), np.uint8), 2)
        if not inner.any():
            continue
        colour = np.array(viz.OUTCOME_RGB[name], np.float32)
        want = np.clip(np.rint((1 - alpha) * gray[inner][:, None].astype(np.float32) + alpha * colour), 0, 255)
        assert (picture[inner] == want).all(), f"{name} pixels are tinted {viz.OUTCOME_RGB[name]}"
        # The border OpenCV traces: region pixels with a 4-neighbour outside it.
        edge = region & ~erode(cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3)))
        assert (picture[edge] == colour.astype(np.uint8)).all(axis=-1).mean() > 0.9, f"{name} is outlined in its colour"
        checked += int(inner.sum())
    return checked

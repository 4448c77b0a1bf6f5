"""Per-image scores: one row per film, the unit every honest comparison pairs on.

A run logs them as ``scores/per_image.csv`` (and as an MLflow table, so the UI shows them):
``image, patient, split, dice, tp, fp, fn, truth_fraction, pred_fraction``. ``split`` is ``val``
or ``test`` for one training run; a cross-validation parent logs ``test`` (its fold ensemble) and
``oof`` (out of fold: every non-test film scored by the fold model that did not train on it).
Pixel counts are on the model's grid, as every logged metric is.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

COLUMNS = ["image", "patient", "split", "dice", "tp", "fp", "fn", "truth_fraction", "pred_fraction"]
ARTIFACT = "scores/per_image.csv"


def per_image_table(
    names: Sequence[str], patients: Sequence[str], split: str, masks: np.ndarray, predictions: np.ndarray
) -> pd.DataFrame:
    """The rows of one split. ``masks`` and ``predictions`` are (N, H, W[, 1]) binary {0, 1}
    (predictions already thresholded and post-processed)."""
    from ggo.metrics import confusion_per_image, dice_from_counts

    if len(names) != len(patients) or len(names) != len(masks) or masks.shape != predictions.shape:
        raise ValueError(
            f"per-image scores need aligned inputs: {len(names)} names, {len(patients)} patients, "
            f"masks {masks.shape}, predictions {predictions.shape}"
        )
    if not len(names):
        return pd.DataFrame(columns=COLUMNS)
    tp, fp, fn, tn = (np.asarray(c, dtype=np.float64) for c in confusion_per_image(masks, predictions))
    pixels = tp + fp + fn + tn
    return pd.DataFrame(
        {
            "image": list(names),
            "patient": [str(p) for p in patients],
            "split": split,
            "dice": np.asarray(dice_from_counts(tp, fp, fn), dtype=np.float64),
            "tp": tp.astype(np.int64), "fp": fp.astype(np.int64), "fn": fn.astype(np.int64),
            "truth_fraction": (tp + fn) / pixels,
            "pred_fraction": (tp + fp) / pixels,
        }
    )  # fmt: skip


def read_table(path: str) -> pd.DataFrame:
    """Read a logged ``per_image.csv``, checking its columns."""
    table = pd.read_csv(path, dtype={"image": str, "patient": str, "split": str})
    missing = [c for c in ("image", "patient", "split", "dice") if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: not a per-image score table (missing columns {missing}; expected {COLUMNS})")
    return table


__all__ = ["ARTIFACT", "COLUMNS", "per_image_table", "read_table"]

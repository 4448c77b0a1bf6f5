"""GGO-free films (negatives): how much GGO a model predicts where there is none.

The figure is ``<split>/ggo_free_area``: over the GGO-free films of a split, the mean fraction of
the model grid's pixels predicted GGO, after the same post-processing and threshold as the GGO
metrics (:func:`ggo.evaluation.evaluate.masks_of`). 0 is perfect; lower is better. Dice has nothing to say
about a film without GGO, so these films never enter ``val/*``/``test/*`` dice or
``scores/per_image.csv`` (what :mod:`ggo.evaluation.compare` pairs): their rows go to ``scores/ggo_free.csv``
(``image, patient, split, pred_fraction``). ``split`` is ``val`` or ``test`` for one training run;
a cross-validation parent logs ``oof`` (each fold's val films by that fold's model) and ``test``
(its fold ensemble), as it does for the per-image scores.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

ARTIFACT = "scores/ggo_free.csv"
COLUMNS = ["image", "patient", "split", "pred_fraction"]
METRIC = "ggo_free_area"


def area_table(names: Sequence[str], patients: Sequence[str], split: str, predictions: np.ndarray) -> pd.DataFrame:
    """One row per GGO-free film: ``pred_fraction`` = predicted-positive pixels / pixels of its
    binary (N, H, W[, 1]) ``predictions`` (already post-processed and thresholded)."""
    if len(names) != len(patients) or len(names) != len(predictions):
        raise ValueError(f"GGO-free area needs aligned inputs: {len(names)} names, {len(patients)} patients, {len(predictions)} predictions")
    if not len(names):
        return pd.DataFrame(columns=COLUMNS)
    flat = np.asarray(predictions, dtype=np.float64).reshape(len(names), -1)
    return pd.DataFrame(
        {"image": list(names), "patient": [str(p) for p in patients], "split": split, "pred_fraction": (flat > 0.5).mean(axis=1)}
    )


def area_metrics(table: pd.DataFrame) -> dict[str, float]:
    """``{"<split>/ggo_free_area": mean pred_fraction}`` for every split in ``table``."""
    return {f"{split}/{METRIC}": float(rows["pred_fraction"].mean()) for split, rows in table.groupby("split", sort=True)}


def score_ggo_free(generators: Any, splits: Mapping[str, Any], settings: Any) -> pd.DataFrame:
    """Predict the GGO-free films of each split (``{"val": split, ...}``, each with ``images``,
    ``names``, ``patients``) with a generator or a fold ensemble, and tabulate :func:`area_table`."""
    from ggo.evaluation.evaluate import masks_of, predict

    tables = [
        area_table(split.names, split.patients, name, masks_of(predict(generators, split.images, settings), settings))
        for name, split in splits.items()
        if split is not None and len(split.names)
    ]
    return combine(tables)


def combine(tables: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """The rows of ``tables`` together (an empty table with :data:`COLUMNS` when none has rows)."""
    tables = [t for t in tables if len(t)]
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=COLUMNS)


def log_ggo_free(tracker: Any, table: pd.DataFrame) -> None:
    """Log ``scores/ggo_free.csv`` (nothing when the table is empty); the metrics are
    :func:`area_metrics`, logged by the caller with its other final metrics."""
    if len(table):
        tracker.log_text(table.to_csv(index=False), ARTIFACT)

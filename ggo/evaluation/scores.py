"""Per-image scores: one row per film, the unit every honest comparison pairs on.

A run logs them as ``scores/per_image.csv`` (and as an MLflow table, so the UI shows them):
``image, patient, split, dice, tp, fp, fn, truth_fraction, pred_fraction``. ``split`` is ``val``
or ``test`` for one training run; a cross-validation parent logs ``test`` (its fold ensemble) and
``oof`` (out of fold: every non-test film scored by the fold model that did not train on it).
Pixel counts are on the model's grid, as every logged metric is.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

COLUMNS = ["image", "patient", "split", "dice", "tp", "fp", "fn", "truth_fraction", "pred_fraction"]
ARTIFACT = "scores/per_image.csv"


def per_image_table(
    names: Sequence[str], patients: Sequence[str], split: str, masks: np.ndarray, predictions: np.ndarray
) -> pd.DataFrame:
    """The rows of one split. ``masks`` and ``predictions`` are (N, H, W[, 1]) binary {0, 1}
    (predictions already thresholded and post-processed)."""
    from ggo.evaluation.metrics import confusion_per_image, dice_from_counts

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


def log_per_image(tracker: Any, table: pd.DataFrame) -> None:
    """``scores/per_image.csv`` (what ``python -m ggo.compare`` pairs) and the same rows as an
    MLflow table (``scores/per_image.json``), which the UI shows in the run's Artifacts."""
    tracker.log_text(table.to_csv(index=False), ARTIFACT)
    tracker.log_table(table, ARTIFACT.replace(".csv", ".json"))


def uncertainty_columns(keys: Sequence[str], extra: pd.DataFrame) -> dict[str, list[str]]:
    """Two readable columns from :func:`ranking_uncertainty`'s result, in the order of ``keys``:
    the 95% CI of each row's mean dice, and how it compares with the top row."""

    def ci(key: str) -> str:
        row = extra.loc[key] if key in extra.index else None
        if row is None or "ci_low" not in row or not np.isfinite(row["ci_low"]):
            return ""
        return f"[{row['ci_low']:.3f}, {row['ci_high']:.3f}]"

    def vs_top(key: str) -> str:
        row = extra.loc[key] if key in extra.index else None
        if row is None or row["vs_top"] in ("top", "n/a"):
            return "n/a" if row is None else row["vs_top"]
        return f"{row['vs_top']}: {row['delta_vs_top']:+.3f} [{row['delta_ci_low']:+.3f}, {row['delta_ci_high']:+.3f}]"

    return {"dice 95% CI": [ci(k) for k in keys], "vs top (paired 95% CI)": [vs_top(k) for k in keys]}


def read_table(path: str) -> pd.DataFrame:
    """Read a logged ``per_image.csv``, checking its columns."""
    table = pd.read_csv(path, dtype={"image": str, "patient": str, "split": str})
    missing = [c for c in ("image", "patient", "split", "dice") if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: not a per-image score table (missing columns {missing}; expected {COLUMNS})")
    return table




def ranking_uncertainty(tables: Mapping[str, pd.DataFrame | None], order: Sequence[str], split: str) -> pd.DataFrame:
    """Uncertainty columns for a ranking whose best row is ``order[0]``.

    ``tables`` maps a row key (run id) to its per-image table (None: the run logged none). Per
    row: ``ci_low``/``ci_high``, the 95% patient-bootstrap interval of its mean dice on ``split``;
    ``delta_vs_top``/``delta_ci_low``/``delta_ci_high``, the paired difference to the top row on
    the films both scored; ``vs_top``: ``top``, ``worse`` (the interval excludes 0), ``noise``
    (it does not: this row cannot be told apart from the top one), or ``n/a``.
    """
    from ggo.evaluation.stats import paired_difference, patient_bootstrap_ci

    def rows_of(key: str) -> pd.DataFrame | None:
        table = tables.get(key)
        if table is None:
            return None
        rows = table[table["split"] == split]
        return rows if len(rows) else None

    top = rows_of(order[0]) if order else None
    out = []
    for key in order:
        rows, record = rows_of(key), {"key": key, "vs_top": "n/a"}
        if rows is not None:
            _, record["ci_low"], record["ci_high"] = patient_bootstrap_ci(rows["dice"], rows["patient"])
        if rows is not None and top is not None:
            both = top[["image", "patient", "dice"]].merge(rows[["image", "dice"]], on="image", suffixes=("_top", ""))
            if key == order[0]:
                record["vs_top"] = "top"
            elif len(both):
                r = paired_difference(both["dice_top"], both["dice"], both["patient"])
                record.update(delta_vs_top=r.delta_dice, delta_ci_low=r.ci_low, delta_ci_high=r.ci_high)
                record["vs_top"] = "worse" if r.ci_high < 0 else ("better" if r.ci_low > 0 else "noise")
        out.append(record)
    frame = pd.DataFrame(out) if out else pd.DataFrame(columns=["key", "vs_top"])  # no finished run yet
    return frame.set_index("key")


__all__ = ["ARTIFACT", "COLUMNS", "log_per_image", "per_image_table", "ranking_uncertainty", "read_table", "uncertainty_columns"]

"""Postprocessing of predicted masks (numpy and OpenCV): the threshold and small-component removal.

Both are chosen on validation folds only (``ggo.sweep.summarize_cv``), never on the test patients.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import cv2
import numpy as np

#: Candidate minimum component sizes, as a fraction of the image area (0: keep everything).
MIN_COMPONENT_FRACTIONS = (0.0, 0.0005, 0.001, 0.002, 0.004, 0.008)
#: Candidate probability thresholds (a fold ensemble's mean map is rarely calibrated at 0.5).
THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7)


def remove_small_components(mask: np.ndarray, min_px: int) -> np.ndarray:
    """``mask`` (H, W) bool without its 8-connected components smaller than ``min_px`` pixels."""
    mask = np.asarray(mask).astype(bool)
    if min_px <= 0 or not mask.any():
        return mask
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    keep = np.zeros(n, bool)
    keep[1:] = stats[1:, cv2.CC_STAT_AREA] >= min_px
    return keep[labels]


def postprocess_probs(probs: np.ndarray, min_px: int, threshold: float = 0.5) -> np.ndarray:
    """Probability maps (N, H, W, 1) with the pixels of small predicted components set to 0."""
    if min_px <= 0:
        return probs
    out = np.array(probs, dtype=np.float32, copy=True)
    for i in range(len(out)):
        fg = out[i, ..., 0] > threshold
        removed = fg & ~remove_small_components(fg, min_px)
        out[i, ..., 0][removed] = 0.0
    return out


def candidate_sizes(resolution: int, fractions: Sequence[float] = MIN_COMPONENT_FRACTIONS) -> list[int]:
    """Minimum component sizes in pixels at ``resolution`` for the candidate area fractions."""
    return sorted({int(round(f * resolution * resolution)) for f in fractions})


def choose_min_component(
    folds: Iterable[tuple[np.ndarray, np.ndarray]], resolution: int, metric: str = "dice"
) -> tuple[int, dict[int, float]]:
    """The size that maximises the mean ``metric`` over validation folds ``(masks, probs)``.

    Returns the chosen size and the mean score of every candidate; ties keep the smaller size.
    """
    from ggo.metrics import evaluate

    folds = list(folds)
    scores: dict[int, float] = {}
    for size in candidate_sizes(resolution):
        values = [evaluate(masks, postprocess_probs(probs, size))[metric] for masks, probs in folds]
        scores[size] = float(np.mean(values))
    best = max(scores, key=lambda s: (scores[s], -s))
    return best, scores


def choose_postprocess(
    folds: Iterable[tuple[np.ndarray, np.ndarray]],
    resolution: int,
    thresholds: Sequence[float] = THRESHOLDS,
    metric: str = "dice",
) -> tuple[float, int, dict[str, float]]:
    """The (threshold, minimum component size) that maximise the mean ``metric`` over
    validation folds ``(masks, probs)``.

    Returns the threshold, the size, and the mean score of every pair keyed ``"<t>/<px>"``. Ties
    keep the threshold nearest 0.5, then the smaller size.
    """
    from ggo.metrics import evaluate

    folds = list(folds)
    scores: dict[tuple[float, int], float] = {}
    for t in thresholds:
        for size in candidate_sizes(resolution):
            values = [evaluate(masks, postprocess_probs(probs, size, t), t)[metric] for masks, probs in folds]
            scores[(float(t), size)] = float(np.mean(values))
    t, size = max(scores, key=lambda k: (scores[k], -abs(k[0] - 0.5), -k[1]))
    return t, size, {f"{k[0]:g}/{k[1]}": v for k, v in scores.items()}

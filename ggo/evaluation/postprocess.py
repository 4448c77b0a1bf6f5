"""Postprocessing of predicted masks (numpy and OpenCV): the threshold and small-component removal.

Both are chosen on validation folds only (``ggo.evaluation.evaluate.choose_postprocess``, from
``ggo.sweeps.cv.summarize_cv``), never on the test patients; these are the candidates.
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from ggo.config import defaults

#: A true (or drawn) mask's pixel is GGO above this level: masks are 0/1, boolean, or resized 0..1.
MASK_LEVEL = 0.5
#: Candidate minimum component sizes, as a fraction of the image area (0: keep everything).
MIN_COMPONENT_FRACTIONS = (0.0, 0.0005, 0.001, 0.002, 0.004, 0.008)
#: Candidate probability thresholds (a fold ensemble's mean map is rarely calibrated at eval.threshold's default).
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


def postprocess_probs(probs: np.ndarray, min_px: int, threshold: float = defaults("eval")["threshold"]) -> np.ndarray:
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

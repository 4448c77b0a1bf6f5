"""Segmentation metrics exactly as the evaluation protocol (docs/evaluation.md) defines them.

A pixel is positive when its value is **strictly greater** than the threshold (the config
schema's ``eval.threshold``, 0.5 unless set), for the prediction and for the ground truth alike
(the same rule as the data cache's "> 0.5").

- ``dice``: mean over images of 2|P∩G| / (|P| + |G|); an image with empty P and G scores 1.
- ``dice_pooled``: 2|P∩G| / (|P| + |G|) over all pixels of the set at once.
- ``iou`` = TP / (TP + FP + FN), ``precision`` = TP / (TP + FP), ``recall`` (sensitivity)
  = TP / (TP + FN), ``specificity`` = TN / (TN + FP), all pooled over the pixels of the set.

0/0 convention (only possible for degenerate sets): a metric whose denominator is zero scores
1 when prediction and truth agree on every pixel (FP = FN = 0) and 0 otherwise. So an all-empty
prediction on a set without GGO has precision 1, but on a set with GGO precision 0 (it found
nothing), recall 0; a prediction with false positives on a set without GGO has recall 0. This
extends the per-image rule "empty P and empty G score 1" to every metric.

Three ways in:
- functions on tensors (``dice``, ``iou``, ...) for one batch of probabilities;
- ``SegmentationMetrics``, a stateful ``keras.metrics.Metric`` that accumulates confusion
  counts and the per-image Dice over batches (what ``GAN.fit`` logs);
- ``evaluate(y_true, y_prob)`` on numpy arrays of a whole set (final evaluation, prediction).
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from ggo.config import defaults

METRIC_NAMES = ("dice", "dice_pooled", "iou", "precision", "recall", "specificity")
THRESHOLD = defaults("eval")["threshold"]  # the schema's eval.threshold


def confusion_per_image(y_true, y_prob, threshold: float = THRESHOLD):
    """Per-image pixel counts ``(tp, fp, fn, tn)``, each float32 of shape (B,).

    ``y_true`` and ``y_prob`` are (B, H, W, 1) (or any shape with the batch first) with values
    in [0, 1]; both are binarised with ``> threshold``.
    """
    g = ops.cast(ops.greater(ops.cast(y_true, "float32"), threshold), "float32")
    p = ops.cast(ops.greater(ops.cast(y_prob, "float32"), threshold), "float32")
    g = ops.reshape(g, (ops.shape(g)[0], -1))  # (B, H*W*C)
    p = ops.reshape(p, (ops.shape(p)[0], -1))
    tp = ops.sum(p * g, axis=1)
    fp = ops.sum(p * (1.0 - g), axis=1)
    fn = ops.sum((1.0 - p) * g, axis=1)
    tn = ops.sum((1.0 - p) * (1.0 - g), axis=1)
    return tp, fp, fn, tn


def _ratio(num, den, agree):
    """num / den where den > 0; else 1 where ``agree`` (FP = FN = 0), 0 otherwise."""
    safe = ops.where(ops.greater(den, 0), den, ops.ones_like(den))
    fallback = ops.cast(agree, num.dtype)
    return ops.where(ops.greater(den, 0), num / safe, fallback)


def dice_from_counts(tp, fp, fn):
    """Dice 2 TP / (2 TP + FP + FN), 1 when both masks are empty (works per image or pooled)."""
    return _ratio(2.0 * tp, 2.0 * tp + fp + fn, ops.logical_and(ops.equal(fp, 0), ops.equal(fn, 0)))


def pooled_from_counts(tp, fp, fn, tn) -> dict:
    """The pooled metrics from set-wide counts (scalars)."""
    agree = ops.logical_and(ops.equal(fp, 0), ops.equal(fn, 0))
    return {
        "dice_pooled": dice_from_counts(tp, fp, fn),
        "iou": _ratio(tp, tp + fp + fn, agree),
        "precision": _ratio(tp, tp + fp, agree),
        "recall": _ratio(tp, tp + fn, agree),
        "specificity": _ratio(tn, tn + fp, agree),
    }


def dice(y_true, y_prob, threshold: float = THRESHOLD):
    """Mean over images of the per-image Dice (empty P and empty G score 1)."""
    tp, fp, fn, _ = confusion_per_image(y_true, y_prob, threshold)
    return ops.mean(dice_from_counts(tp, fp, fn))


def _pooled(name: str, y_true, y_prob, threshold: float):
    tp, fp, fn, tn = (ops.sum(c) for c in confusion_per_image(y_true, y_prob, threshold))
    return pooled_from_counts(tp, fp, fn, tn)[name]


def dice_pooled(y_true, y_prob, threshold: float = THRESHOLD):
    """Dice over all pixels of the batch at once."""
    return _pooled("dice_pooled", y_true, y_prob, threshold)


def iou(y_true, y_prob, threshold: float = THRESHOLD):
    """Pooled intersection over union TP / (TP + FP + FN)."""
    return _pooled("iou", y_true, y_prob, threshold)


def precision(y_true, y_prob, threshold: float = THRESHOLD):
    """Pooled precision TP / (TP + FP)."""
    return _pooled("precision", y_true, y_prob, threshold)


def recall(y_true, y_prob, threshold: float = THRESHOLD):
    """Pooled recall (sensitivity) TP / (TP + FN)."""
    return _pooled("recall", y_true, y_prob, threshold)


def specificity(y_true, y_prob, threshold: float = THRESHOLD):
    """Pooled specificity TN / (TN + FP)."""
    return _pooled("specificity", y_true, y_prob, threshold)


class SegmentationMetrics(keras.metrics.Metric):
    """All six metrics, accumulated over batches so a whole set is scored exactly.

    Keeps the pooled TP/FP/FN/TN counts and the sum and count of per-image Dice scores (in
    float64, so counts stay exact past 2**24 pixels). ``result()`` returns a dict
    ``{"dice", "dice_pooled", "iou", "precision", "recall", "specificity"}``; Keras logs each
    key as its own metric (``dice``, ``val_dice``, ...).

    Args:
        from_logits: whether ``y_pred`` holds logits (default, what the generators return) or
            probabilities.
        threshold: probability threshold; a pixel is positive when ``prob > threshold``.
    """

    def __init__(
        self,
        name: str = "segmentation",
        *,
        from_logits: bool = True,
        threshold: float = THRESHOLD,
        dtype=None,
    ):
        super().__init__(name=name, dtype=dtype)
        self.from_logits = from_logits
        self.threshold = threshold
        self._counts = {
            key: self.add_variable(shape=(), initializer="zeros", dtype="float64", name=key)
            for key in ("tp", "fp", "fn", "tn", "dice_sum", "n_images")
        }

    def update_state(self, y_true, y_pred, sample_weight=None):
        """Add one batch: ``y_true`` (B, H, W, 1) in [0, 1], ``y_pred`` logits or probabilities."""
        if sample_weight is not None:
            raise ValueError("SegmentationMetrics does not support sample_weight")
        y_pred = ops.cast(y_pred, "float32")
        prob = ops.sigmoid(y_pred) if self.from_logits else y_pred
        tp, fp, fn, tn = confusion_per_image(y_true, prob, self.threshold)  # each (B,)
        per_image_dice = dice_from_counts(tp, fp, fn)
        batch = {
            "tp": ops.sum(tp),
            "fp": ops.sum(fp),
            "fn": ops.sum(fn),
            "tn": ops.sum(tn),
            "dice_sum": ops.sum(per_image_dice),
            "n_images": ops.cast(ops.shape(tp)[0], "float32"),
        }
        for key, value in batch.items():
            var = self._counts[key]
            var.assign(var + ops.cast(value, "float64"))

    def result(self) -> dict:
        c = {key: var.value for key, var in self._counts.items()}
        pooled = pooled_from_counts(c["tp"], c["fp"], c["fn"], c["tn"])
        # No image seen yet: report 0 rather than 0/0.
        n = c["n_images"]
        mean_dice = ops.where(ops.greater(n, 0), c["dice_sum"] / ops.maximum(n, 1.0), ops.zeros_like(n))
        out = {"dice": mean_dice, **pooled}
        return {name: ops.cast(out[name], "float32") for name in METRIC_NAMES}

    def reset_state(self):
        for var in self._counts.values():
            var.assign(ops.zeros_like(var.value))

    def get_config(self):
        return {**super().get_config(), "from_logits": self.from_logits, "threshold": self.threshold}


def evaluate(
    y_true: np.ndarray,
    y_prob: np.ndarray,
    threshold: float = THRESHOLD,
    *,
    batch_size: int = 64,
) -> dict[str, float]:
    """Score a whole set of probability maps against its masks.

    Args:
        y_true: (N, H, W, 1) or (N, H, W) masks in [0, 1].
        y_prob: probabilities of the same shape (apply a sigmoid to logits first).
        threshold: a pixel is positive when its value is > threshold.
        batch_size: images per accumulation step (bounds memory, not the result).

    Returns:
        ``{"dice", "dice_pooled", "iou", "precision", "recall", "specificity"}`` as floats.
    """
    y_true = np.asarray(y_true, dtype=np.float32)
    y_prob = np.asarray(y_prob, dtype=np.float32)
    if y_true.shape != y_prob.shape:
        raise ValueError(f"y_true shape {y_true.shape} != y_prob shape {y_prob.shape}")
    if y_true.ndim < 2 or len(y_true) == 0:
        raise ValueError(f"Expected a non-empty batch of masks (N, H, W[, 1]), got {y_true.shape}")
    metric = SegmentationMetrics(from_logits=False, threshold=threshold)
    for start in range(0, len(y_true), batch_size):
        metric.update_state(y_true[start : start + batch_size], y_prob[start : start + batch_size])
    return {name: float(value) for name, value in metric.result().items()}


__all__ = [
    "METRIC_NAMES",
    "SegmentationMetrics",
    "confusion_per_image",
    "dice",
    "dice_from_counts",
    "dice_pooled",
    "evaluate",
    "iou",
    "pooled_from_counts",
    "precision",
    "recall",
    "specificity",
]

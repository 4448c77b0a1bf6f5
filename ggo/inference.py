"""Prediction from preprocessed arrays: sigmoid, flip test-time augmentation, fold ensembles.

Training's final evaluation and the shipped model both go through :func:`ensemble_probs`, so
the numbers a run reports are the numbers its model reproduces.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np


def sigmoid(x: Any) -> np.ndarray:
    """Logistic function without overflow warnings for large negative logits."""
    x = np.asarray(x, np.float32)
    return np.exp(-np.logaddexp(0.0, -x)).astype(np.float32)


def gated_probs(logits: Any) -> np.ndarray:
    """GGO probabilities (N, R, R, 1) from generator logits (N, R, R, 1 or 2).

    With a lung head (2 channels) the lungs are a prior: P(GGO) x P(lung), so GGO predicted
    where the network sees no lung (shoulders, neck, abdomen) fades out.
    """
    p = sigmoid(logits)
    if p.shape[-1] == 2:
        return p[..., :1] * p[..., 1:2]
    return p


def lung_probs(generator: Any, images: np.ndarray, batch_size: int = 8) -> np.ndarray:
    """Lung probabilities (N, R, R, 1) float32 from a generator with a lung head (``gen.lung_head=true``).

    The lungs are the second of its two output channels (the first is GGO). A generator without a
    lung head raises a ValueError that says so.
    """
    out = []
    for i in range(0, len(images), batch_size):
        logits = np.asarray(generator(images[i : i + batch_size], training=False))
        if logits.shape[-1] != 2:
            raise ValueError(
                f"generator {getattr(generator, 'name', '?')!r} has {logits.shape[-1]} output channel(s), not the 2 of a "
                "lung head: its run was not trained with gen.lung_head=true"
            )
        out.append(sigmoid(logits[..., 1:2]))
    return np.concatenate(out).astype(np.float32) if out else np.zeros((*images.shape[:-1], 1), np.float32)


def predict_probs(generator: Any, images: np.ndarray, batch_size: int = 8, *, tta_flip: bool = False) -> np.ndarray:
    """GGO probability maps (N, R, R, 1) float32 for preprocessed ``images``.

    ``tta_flip`` averages with the prediction of the horizontally flipped image (flipped back).
    A generator with a lung head is gated by its lungs (:func:`gated_probs`).
    """
    if len(images) == 0:
        return np.zeros((*images.shape[:-1], 1), dtype=np.float32)
    out = []
    for i in range(0, len(images), batch_size):
        x = images[i : i + batch_size]
        p = gated_probs(generator(x, training=False))
        if tta_flip:
            p = 0.5 * (p + gated_probs(generator(x[:, :, ::-1], training=False))[:, :, ::-1])
        out.append(p)
    return np.concatenate(out).astype(np.float32)


def ensemble_probs(generators: Sequence[Any], images: np.ndarray, batch_size: int = 8, *, tta_flip: bool = False) -> np.ndarray:
    """The mean of :func:`predict_probs` over ``generators`` (a fold ensemble)."""
    return np.mean([predict_probs(g, images, batch_size, tta_flip=tta_flip) for g in generators], axis=0).astype(np.float32)

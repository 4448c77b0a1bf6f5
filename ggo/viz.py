"""Pictures for people: mask overlays and curves (numpy, OpenCV and matplotlib only)."""

from __future__ import annotations

import textwrap
from typing import Iterable, Mapping, Sequence

import cv2
import numpy as np

from ggo.config import defaults
from ggo.postprocess import MASK_LEVEL

THRESHOLD = defaults("eval")["threshold"]

TRUTH_RGB = (0, 220, 0)
PRED_RGB = (255, 40, 40)


def to_rgb_uint8(image: np.ndarray) -> np.ndarray:
    """A preprocessed image in [-1, 1] (H, W) or (H, W, 1) -> (H, W, 3) uint8."""
    img = np.asarray(image, dtype=np.float32)
    if img.ndim == 3:
        img = img[..., 0]
    img = np.clip((img + 1.0) * 127.5, 0, 255).astype(np.uint8)
    return np.repeat(img[..., None], 3, axis=-1)


def overlay(
    rgb: np.ndarray,
    mask: np.ndarray,
    color: Sequence[int],
    alpha: float = 0.35,
    *,
    thickness: int = 1,
    outline_holes: bool = False,
) -> np.ndarray:
    """Tint ``mask`` on ``rgb`` (any 3-channel uint8 picture; ``color`` in its channel order) and
    outline it, so both the area and its border show. ``outline_holes`` also draws the inner
    borders of components with holes."""
    out = rgb.copy()
    m = np.asarray(mask).squeeze() > MASK_LEVEL
    if m.any():
        tint = np.array(color, dtype=np.float32)
        out[m] = np.clip(np.rint((1 - alpha) * out[m].astype(np.float32) + alpha * tint), 0, 255).astype(np.uint8)
        mode = cv2.RETR_LIST if outline_holes else cv2.RETR_EXTERNAL
        contours, _ = cv2.findContours(m.astype(np.uint8), mode, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(out, contours, -1, tuple(int(c) for c in color), thickness)
    return out


def overlay_grid(images: np.ndarray, truths: np.ndarray, probs: np.ndarray, threshold: float = THRESHOLD) -> np.ndarray:
    """One row per image: input | truth (green) | prediction (red) | both contours.

    ``images`` (N, H, W, 1) in [-1, 1]; ``truths`` and ``probs`` (N, H, W, 1) in [0, 1].
    Returns an (N*H, 4*W, 3) uint8 picture with a 2 px white gutter.
    """
    rows = []
    for img, truth, prob in zip(images, truths, probs):
        rgb = to_rgb_uint8(img)
        pred = np.asarray(prob).squeeze() > threshold
        both = overlay(overlay(rgb, truth, TRUTH_RGB, alpha=0.0), pred, PRED_RGB, alpha=0.0)
        tiles = [rgb, overlay(rgb, truth, TRUTH_RGB), overlay(rgb, pred, PRED_RGB), both]
        rows.append(_hstack(tiles))
    return _vstack(rows)


def _hstack(tiles: list[np.ndarray], gap: int = 2) -> np.ndarray:
    h = tiles[0].shape[0]
    sep = np.full((h, gap, 3), 255, np.uint8)
    parts: list[np.ndarray] = []
    for i, t in enumerate(tiles):
        parts += [sep, t] if i else [t]
    return np.concatenate(parts, axis=1)


def _vstack(rows: list[np.ndarray], gap: int = 2) -> np.ndarray:
    w = rows[0].shape[1]
    sep = np.full((gap, w, 3), 255, np.uint8)
    parts: list[np.ndarray] = []
    for i, r in enumerate(rows):
        parts += [sep, r] if i else [r]
    return np.concatenate(parts, axis=0)


def curves_figure(history: Mapping[str, Sequence[float]], title: str = ""):
    """The DSC curves (train/val dice) beside the generator and discriminator losses."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def points(values: Sequence[float]) -> tuple[list[int], list[float]]:
        """(epoch, value) of the finite values: an epoch without validation holds NaN."""
        kept = [(i, float(v)) for i, v in enumerate(values, start=1) if v is not None and np.isfinite(v)]
        return [i for i, _ in kept], [v for _, v in kept]

    fig, (ax_dice, ax_loss) = plt.subplots(1, 2, figsize=(10, 3.8))
    for key in ("train/dice", "val/dice"):
        if key in history:
            ax_dice.plot(*points(history[key]), label=key)
    ax_dice.set_xlabel("epoch")
    ax_dice.set_ylabel("DSC")
    ax_dice.set_ylim(0, 1)
    ax_dice.grid(alpha=0.3)
    ax_dice.legend()
    for key in ("train/g_loss", "val/g_loss", "train/d_loss"):
        if key in history:
            ax_loss.plot(*points(history[key]), label=key)
    ax_loss.set_xlabel("epoch")
    ax_loss.set_yscale("symlog")
    ax_loss.grid(alpha=0.3)
    ax_loss.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def sweep_figure(curves: Iterable[tuple[str, Sequence[float]]], metric: str = "val/dice"):
    """All children's ``metric`` curves of a sweep on one axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for label, values in curves:
        if len(values):
            # Run names are Hydra overrides, often wider than the figure: wrap them so the legend fits.
            label = "\n".join(textwrap.wrap(label, 70)) or label
            ax.plot(range(1, len(values) + 1), values, label=label, marker="." if len(values) < 30 else None)
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric)
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig

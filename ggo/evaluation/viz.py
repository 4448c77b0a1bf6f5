"""Pictures for people: mask overlays and curves (numpy, OpenCV and matplotlib only)."""

from __future__ import annotations

import textwrap
from typing import Iterable, Mapping, Sequence

import cv2
import numpy as np

from ggo.config import defaults
from ggo.evaluation.postprocess import MASK_LEVEL

THRESHOLD = defaults("eval")["threshold"]

TRUTH_RGB = (0, 220, 0)
PRED_RGB = (255, 40, 40)
#: Where a prediction meets the truth, in the Okabe-Ito palette (told apart with any colour vision).
OUTCOME_RGB = {"TP": (240, 228, 66), "FP": (213, 94, 0), "FN": (86, 180, 233)}
OUTCOME_LABELS = {"TP": "TP: GGO found (yellow)", "FP": "FP: false alarm (orange)", "FN": "FN: GGO missed (blue)"}
_FONT = cv2.FONT_HERSHEY_SIMPLEX


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


def outcome_masks(truth: np.ndarray, pred: np.ndarray) -> dict[str, np.ndarray]:
    """``{"TP", "FP", "FN": (H, W) bool}``: GGO found, predicted where there is none, missed."""
    t = np.asarray(truth).squeeze() > MASK_LEVEL
    p = np.asarray(pred).squeeze() > MASK_LEVEL
    return {"TP": t & p, "FP": p & ~t, "FN": t & ~p}


def outcome_overlay(rgb: np.ndarray, truth: np.ndarray, pred: np.ndarray, alpha: float = 0.45, *, thickness: int = 1) -> np.ndarray:
    """``rgb`` (H, W, 3) uint8 with TP, FP and FN tinted and outlined in :data:`OUTCOME_RGB`."""
    out = rgb
    for name, region in outcome_masks(truth, pred).items():
        out = overlay(out, region, OUTCOME_RGB[name], alpha, thickness=thickness, outline_holes=True)
    return out


def film_dice(truth: np.ndarray, pred: np.ndarray) -> float:
    """The per-image Dice of the evaluation protocol (1 when both masks are empty)."""
    from ggo.evaluation.metrics import dice_from_counts

    counts = {k: float(v.sum()) for k, v in outcome_masks(truth, pred).items()}
    return float(dice_from_counts(np.float32(counts["TP"]), np.float32(counts["FP"]), np.float32(counts["FN"])))


def _text_band(width: int, items: Sequence[tuple[str, Sequence[int] | None]], scale: float) -> np.ndarray:
    """A white band ``width`` px wide with ``items`` (text, swatch colour or None) in a row, shrunk to fit."""
    while True:
        thick = max(1, round(scale * 2))
        sizes = [cv2.getTextSize(text, _FONT, scale, thick)[0] for text, _ in items]
        h = max(s[1] for s in sizes)
        pad = max(2, h // 2)
        need = sum(s[0] + pad * 2 + (h + pad if colour is not None else 0) for s, (_, colour) in zip(sizes, items))
        if need <= width or scale <= 0.25:
            break
        scale *= 0.85
    band = np.full((h + 3 * pad, width, 3), 255, np.uint8)
    x, base = pad, h + pad
    for (text, colour), (w, _) in zip(items, sizes):
        if colour is not None:
            cv2.rectangle(band, (x, base - h), (x + h, base), tuple(int(c) for c in colour), -1)
            cv2.rectangle(band, (x, base - h), (x + h, base), (0, 0, 0), 1)
            x += h + pad
        cv2.putText(band, text, (x, base), _FONT, scale, (0, 0, 0), thick, cv2.LINE_AA)
        x += w + 2 * pad
    return band


def legend_band(width: int, scale: float = 0.5) -> np.ndarray:
    """The TP / FP / FN colour key as a white RGB band ``width`` px wide."""
    return _text_band(width, [(OUTCOME_LABELS[k], OUTCOME_RGB[k]) for k in OUTCOME_RGB], scale)


def caption_scale(width: int) -> float:
    """A font scale that reads well on a picture ``width`` px wide."""
    return float(np.clip(width / 700, 0.4, 1.5))


def outcome_picture(rgb: np.ndarray, truth: np.ndarray, pred: np.ndarray, title: str, *, legend: bool = True) -> np.ndarray:
    """One film: ``title`` (its name and dice) above the TP/FP/FN overlay, and the colour key below.

    The overlay keeps ``rgb``'s size; the title band sits on top and the legend band underneath.
    """
    scale = caption_scale(rgb.shape[1])
    thickness = max(1, round(max(rgb.shape[:2]) / 400))
    parts = [_text_band(rgb.shape[1], [(title, None)], scale), outcome_overlay(rgb, truth, pred, thickness=thickness)]
    if legend:
        parts.append(legend_band(rgb.shape[1], scale))
    return np.concatenate(parts, axis=0)


def outcome_figure(films: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray, str]], columns: int = 3, size: int = 360) -> np.ndarray:
    """A grid of films ``(rgb, truth, pred, title)``, each fitted into a ``size`` px square, one
    colour key below. Returns an RGB uint8 picture.

    Masks are resized with nearest neighbours before drawing, so outlines stay sharp; titles should
    carry the dice computed at the original size.
    """
    if not films:
        raise ValueError("outcome_figure needs at least one film")
    scale = caption_scale(size)
    tiles = []
    for rgb, truth, pred, title in films:
        f = size / max(rgb.shape[:2])
        w, h = max(1, round(rgb.shape[1] * f)), max(1, round(rgb.shape[0] * f))
        small = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)
        t, p = (cv2.resize(np.asarray(m).squeeze().astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) for m in (truth, pred))
        film = outcome_overlay(small, t, p)
        left, top = (size - w) // 2, (size - h) // 2
        film = np.pad(film, ((top, size - h - top), (left, size - w - left), (0, 0)), constant_values=255)
        tiles.append(np.concatenate([_text_band(size, [(title, None)], scale), film], axis=0))
    height = max(t.shape[0] for t in tiles)  # a long title shrinks its band
    tiles = [np.pad(t, ((height - t.shape[0], 0), (0, 0), (0, 0)), constant_values=255) for t in tiles]
    tiles += [np.full_like(tiles[0], 255)] * (-len(tiles) % columns)
    rows = [_hstack(tiles[i : i + columns], gap=6) for i in range(0, len(tiles), columns)]
    grid = _vstack(rows, gap=6)
    return np.concatenate([grid, legend_band(grid.shape[1], scale)], axis=0)


def overlay_grid(images: np.ndarray, truths: np.ndarray, probs: np.ndarray, threshold: float = THRESHOLD) -> np.ndarray:
    """One row per image: input | truth (green) | prediction (red) | TP/FP/FN (:data:`OUTCOME_RGB`).

    ``images`` (N, H, W, 1) in [-1, 1]; ``truths`` and ``probs`` (N, H, W, 1) in [0, 1].
    Returns an (N*H, 4*W, 3) uint8 picture with a 2 px white gutter.
    """
    rows = []
    for img, truth, prob in zip(images, truths, probs):
        rgb = to_rgb_uint8(img)
        pred = np.asarray(prob).squeeze() > threshold
        tiles = [rgb, overlay(rgb, truth, TRUTH_RGB), overlay(rgb, pred, PRED_RGB), outcome_overlay(rgb, truth, pred)]
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

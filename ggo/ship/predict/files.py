"""Reading ``predict``'s inputs: folders walked for images, each file read by the one image reader
(:mod:`ggo.data.imagefile`: truncated files and oversized images refused before decoding), and
the overlay PNG drawn on the original X-ray (through :mod:`ggo.evaluation.viz`): the mask alone, or where the
truth is known, TP / FP / FN in three colours."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np

from ggo.data.imagefile import MAX_PIXELS  # larger inputs are refused: decoding one takes gigabytes

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")
RED_BGR = (0, 0, 255)


def collect_inputs(paths: Iterable[str | Path]) -> list[tuple[Path, str | None]]:
    """``(path, problem)`` per input: folders expand to their image files (sorted, recursive).

    A file named explicitly is kept whatever its suffix (reading it decides); a missing path or a
    folder without images comes back with a problem instead of being dropped silently.
    """
    out: list[tuple[Path, str | None]] = []
    seen: set[Path] = set()
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(
                p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
            )
            if not found:
                out.append((path, f"{path}: folder has no images ({', '.join(IMAGE_SUFFIXES)})"))
            for p in found:
                if p.resolve() not in seen:
                    seen.add(p.resolve())
                    out.append((p, None))
        elif path.is_file():
            if path.resolve() not in seen:
                seen.add(path.resolve())
                out.append((path, None))
        else:
            out.append((path, f"{path}: no such file or folder"))
    return out


def load_image(path: Path) -> np.ndarray:
    """Read one input for the model (:func:`ggo.serving.model.read_image`): refused with a reason when
    empty, truncated, not an image, smaller than 2 x 2 or over :data:`MAX_PIXELS` (checked from
    the header, before decoding)."""
    from ggo.serving.model import read_image

    return read_image(path)


def overlay(image: np.ndarray, mask: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """The X-ray in gray (BGR) with ``mask`` tinted red and its contours (holes too) drawn in red."""
    import cv2

    from ggo.data import to_grayscale_uint8
    from ggo.evaluation.viz import overlay as tint

    bgr = cv2.cvtColor(to_grayscale_uint8(image), cv2.COLOR_GRAY2BGR)
    return tint(bgr, mask.astype(bool), RED_BGR, alpha, thickness=max(1, round(max(mask.shape) / 400)), outline_holes=True)


def outcome_overlay(image: np.ndarray, truth: np.ndarray, mask: np.ndarray, title: str) -> np.ndarray:
    """The X-ray in gray (BGR) with TP, FP and FN in their colours (:func:`ggo.evaluation.viz.outcome_picture`):
    ``title`` in a band above, the colour key in a band below."""
    import cv2

    from ggo.data import to_grayscale_uint8
    from ggo.evaluation.viz import outcome_picture

    rgb = cv2.cvtColor(to_grayscale_uint8(image), cv2.COLOR_GRAY2RGB)
    return cv2.cvtColor(outcome_picture(rgb, truth, mask, title), cv2.COLOR_RGB2BGR)


def unique_stem(stem: str, used: set[str]) -> str:
    """``stem``, or ``stem-2``, ``stem-3``... if already in ``used`` (which it joins)."""
    candidate, n = stem, 1
    while candidate in used:
        n += 1
        candidate = f"{stem}-{n}"
    used.add(candidate)
    return candidate


__all__ = ["IMAGE_SUFFIXES", "MAX_PIXELS", "collect_inputs", "load_image", "outcome_overlay", "overlay", "unique_stem"]

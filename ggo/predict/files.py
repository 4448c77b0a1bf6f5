"""Reading ``predict``'s inputs: folders walked for images, sizes checked before decoding, and
the overlay PNG drawn on the original X-ray (through :func:`ggo.viz.overlay`)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Iterable

import numpy as np

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")
MAX_PIXELS = 100_000_000  # larger inputs are refused: decoding one takes gigabytes
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


def header_size(path: Path) -> tuple[int, int] | None:
    """(height, width) from the file's header without decoding the pixels; None if Pillow cannot tell."""
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - Pillow comes with matplotlib
        return None
    limit = Image.MAX_IMAGE_PIXELS
    try:
        # Pillow's own decompression-bomb check would hide the size; we only read the header here
        # and apply our limit in check_size.
        Image.MAX_IMAGE_PIXELS = None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as im:
                return int(im.height), int(im.width)
    except Exception:  # noqa: BLE001 - not readable by Pillow: OpenCV decides
        return None
    finally:
        Image.MAX_IMAGE_PIXELS = limit


def check_size(path: Path, height: int, width: int) -> None:
    if height * width > MAX_PIXELS:
        raise ValueError(
            f"{path}: {width} x {height} pixels ({height * width / 1e6:.0f} megapixels) is over the "
            f"{MAX_PIXELS // 1_000_000} megapixel limit: downscale it first (X-rays need no more than ~4k x 4k)"
        )


def load_image(path: Path) -> np.ndarray:
    """Read one input for the model, refusing very large images before decoding them."""
    from ggo.serving import read_image

    if path.is_file() and path.stat().st_size > 0:
        size = header_size(path)
        if size is not None:
            check_size(path, *size)
    image = read_image(path)
    check_size(path, image.shape[0], image.shape[1])
    return image


def overlay(image: np.ndarray, mask: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """The X-ray in gray (BGR) with ``mask`` tinted red and its contours (holes too) drawn in red."""
    import cv2

    from ggo.data import to_grayscale_uint8
    from ggo.viz import overlay as tint

    bgr = cv2.cvtColor(to_grayscale_uint8(image), cv2.COLOR_GRAY2BGR)
    return tint(bgr, mask.astype(bool), RED_BGR, alpha, thickness=max(1, round(max(mask.shape) / 400)), outline_holes=True)


def unique_stem(stem: str, used: set[str]) -> str:
    """``stem``, or ``stem-2``, ``stem-3``... if already in ``used`` (which it joins)."""
    candidate, n = stem, 1
    while candidate in used:
        n += 1
        candidate = f"{stem}-{n}"
    used.add(candidate)
    return candidate


__all__ = ["IMAGE_SUFFIXES", "MAX_PIXELS", "check_size", "collect_inputs", "header_size", "load_image", "overlay", "unique_stem"]

"""The one preprocessing path shared by training (the cache) and prediction.

An image goes: any dtype / channel layout -> 8-bit grayscale -> optional CLAHE ->
torchxrayvision's ``normalize`` (to [-1024, 1024]) / 1024 -> resized into a ``resolution`` square,
keeping aspect by padding (``fit="pad"``) or by stretching (``fit="stretch"``).

Masks follow the same geometry (:func:`preprocess_mask`), and :func:`restore_mask` maps a model's
square probability map back onto the original image, undoing that geometry exactly. All three use
:func:`square_geometry`, so they can never disagree about where the image sits in the square.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

FITS = ("pad", "stretch")
PAD_VALUE = -1.0  # the value of black after normalisation: padding looks like the film's edge
_BAND_ROWS = 512  # rows converted at a time from 16 bit to 8 (bounds the temporaries)


@dataclass(frozen=True)
class Geometry:
    """Where an ``height`` x ``width`` image lands inside a ``resolution`` square.

    The image is resized to ``content_height`` x ``content_width`` and placed with its top-left
    corner at (``top``, ``left``); the rest of the square is padding.
    """

    height: int
    width: int
    resolution: int
    fit: str
    content_height: int
    content_width: int
    top: int
    left: int

    @property
    def content(self) -> tuple[slice, slice]:
        """Row and column slices of the square that hold the image."""
        return (
            slice(self.top, self.top + self.content_height),
            slice(self.left, self.left + self.content_width),
        )


def check_resolution(resolution: Any) -> int:
    """``resolution`` as an int, or a ValueError naming the bad value."""
    if isinstance(resolution, (bool, np.bool_)) or not isinstance(resolution, (int, np.integer)) or resolution <= 0:
        raise ValueError(f"resolution must be a positive integer (pixels per side), got {resolution!r}")
    return int(resolution)


def check_fit(fit: Any) -> str:
    """``fit`` if it is one of :data:`FITS`, else a ValueError naming it."""
    if fit not in FITS:
        raise ValueError(f"fit must be one of {', '.join(FITS)}, got {fit!r}")
    return fit


def square_geometry(shape: tuple[int, ...], resolution: int, fit: str = "pad") -> Geometry:
    """The scale and offsets that put an image of ``shape`` (H, W, ...) into the square.

    ``pad`` scales the longer side to ``resolution`` and centres the image; ``stretch`` scales each
    axis independently to fill the square.
    """
    resolution = check_resolution(resolution)
    fit = check_fit(fit)
    if len(shape) < 2:
        raise ValueError(f"expected an image shape (height, width, ...), got {tuple(shape)}")
    height, width = int(shape[0]), int(shape[1])
    if height < 2 or width < 2:
        raise ValueError(f"image of shape {tuple(shape)} is too small: need at least 2 x 2 pixels")
    if fit == "stretch":
        return Geometry(height, width, resolution, fit, resolution, resolution, 0, 0)
    scale = resolution / max(height, width)
    content_h = min(resolution, max(1, round(height * scale)))
    content_w = min(resolution, max(1, round(width * scale)))
    top = (resolution - content_h) // 2
    left = (resolution - content_w) // 2
    return Geometry(height, width, resolution, fit, content_h, content_w, top, left)


def _check_image(image: Any, what: str = "image") -> np.ndarray:
    if not isinstance(image, np.ndarray):
        raise TypeError(f"{what} must be a numpy array, got {type(image).__name__}")
    if image.size == 0:
        raise ValueError(f"{what} is empty (shape {image.shape})")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (3, 4)):
        raise ValueError(
            f"{what} of shape {image.shape} is not an image: expected (H, W) gray, (H, W, 3) BGR or (H, W, 4) BGRA"
        )
    if image.shape[0] < 2 or image.shape[1] < 2:
        raise ValueError(f"{what} of shape {image.shape} is too small: need at least 2 x 2 pixels")
    return image


def _to_uint8_values(image: np.ndarray) -> np.ndarray:
    """Same channels, values mapped to uint8: 16-bit by /257 (so 8-bit * 257 round-trips exactly)."""
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.bool_:
        return image.astype(np.uint8) * 255
    if np.issubdtype(image.dtype, np.floating):
        if not np.all(np.isfinite(image)):
            raise ValueError("image contains NaN or infinite values")
        lo, hi = float(image.min()), float(image.max())
        if lo < 0:
            raise ValueError(f"float image has negative values (min {lo:g}): expected [0, 1] or [0, 255]")
        if hi > 255:
            raise ValueError(f"float image has values up to {hi:g}: expected [0, 1] or [0, 255]")
        scaled = image * 255.0 if hi <= 1.0 else image
        return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    if np.issubdtype(image.dtype, np.integer):
        lo, hi = int(image.min()), int(image.max())
        if lo < 0:
            raise ValueError(f"integer image has negative values (min {lo}): expected 8 or 16 bit intensities")
        if image.dtype == np.uint16 or hi > 255:
            if hi > 65535:
                raise ValueError(f"integer image has values up to {hi}: expected at most 16 bit (65535)")
            # (v + 128) // 257 rounds v / 257 to nearest and maps 257 * k exactly back to k. A band of
            # rows at a time: the uint32 temporaries of a 100-megapixel RGBA film would take gigabytes.
            out = np.empty(image.shape, np.uint8)
            for top in range(0, image.shape[0], _BAND_ROWS):
                out[top : top + _BAND_ROWS] = (image[top : top + _BAND_ROWS].astype(np.uint32) + 128) // 257
            return out
        return image.astype(np.uint8)
    raise TypeError(f"unsupported image dtype {image.dtype}: use uint8, uint16 or float")


def to_grayscale_uint8(image: np.ndarray) -> np.ndarray:
    """An (H, W) uint8 grayscale copy of ``image``.

    Accepts (H, W), (H, W, 1), (H, W, 3) BGR or (H, W, 4) BGRA as OpenCV reads them (alpha is
    ignored), in uint8, uint16 (scaled by 1/257, so a 16-bit copy of an 8-bit image gives the same
    result), bool, or float in [0, 1] (or [0, 255] when the maximum exceeds 1).
    """
    image = _check_image(image)
    image = _to_uint8_values(image)  # before colour conversion: 8 and 16-bit stay identical
    if image.ndim == 3:
        code = cv2.COLOR_BGR2GRAY if image.shape[2] == 3 else cv2.COLOR_BGRA2GRAY
        image = cv2.cvtColor(np.ascontiguousarray(image), code)
    return np.ascontiguousarray(image)


def xrv_normalize(image: np.ndarray, maxval: float) -> np.ndarray:
    """torchxrayvision's ``normalize``: ``(2 * image / maxval - 1) * 1024``, roughly [-1024, 1024].

    The same formula as ``torchxrayvision.utils.normalize`` (a test pins them equal), written out
    here so that prediction does not load torch and torchvision: 2-3 s and ~1 GB for one linear
    rescale, and torchvision segfaults when loaded into a process that already holds TensorFlow.
    """
    if image.max() > maxval:
        raise ValueError(f"max image value ({image.max()}) higher than expected bound ({maxval})")
    return (2 * (image.astype(np.float32) / maxval) - 1.0) * 1024


#: xrv_normalize(v, 255) / 1024 for every uint8 value v, computed with the same float32 operations,
#: so looking a film up is exactly the formula, without its full-size temporaries.
_UNIT_NORMALIZED = xrv_normalize(np.arange(256, dtype=np.uint8), 255).astype(np.float32) / 1024.0


def _place(content: np.ndarray, geom: Geometry, fill: float) -> np.ndarray:
    """Resize-free placement: ``content`` (already resized) in a filled square."""
    out = np.full((geom.resolution, geom.resolution), fill, dtype=np.float32)
    out[geom.content] = content
    return out


def preprocess(
    image: np.ndarray,
    resolution: int,
    fit: str = "pad",
    clahe: bool = False,
    clahe_clip: float = 2.0,
) -> np.ndarray:
    """A model input: float32 (resolution, resolution) in [-1, 1] from a raw image.

    Steps: grayscale uint8 (:func:`to_grayscale_uint8`), optional CLAHE (``clahe_clip`` is
    OpenCV's clip limit, 8 x 8 tiles), torchxrayvision ``normalize`` then / 1024, and resize with
    area interpolation. ``fit="pad"`` keeps the aspect ratio and centres the image in the square,
    padding with -1 (black); ``fit="stretch"`` fills the square.
    """
    resolution = check_resolution(resolution)
    fit = check_fit(fit)
    gray = to_grayscale_uint8(image)
    if clahe:
        if not clahe_clip or float(clahe_clip) <= 0:
            raise ValueError(f"clahe_clip must be a positive number, got {clahe_clip!r}")
        gray = cv2.createCLAHE(clipLimit=float(clahe_clip), tileGridSize=(8, 8)).apply(gray)
    values = _UNIT_NORMALIZED[gray]  # (H, W) in [-1, 1]: xrv_normalize(gray, 255) / 1024, one array
    geom = square_geometry(gray.shape, resolution, fit)
    resized = cv2.resize(values, (geom.content_width, geom.content_height), interpolation=cv2.INTER_AREA)
    return np.clip(_place(resized, geom, PAD_VALUE), -1.0, 1.0)


def preprocess_mask(mask: np.ndarray, resolution: int, fit: str = "pad") -> np.ndarray:
    """A training target: float32 (resolution, resolution) in {0, 1}, same geometry as :func:`preprocess`.

    Any non-zero pixel of ``mask`` (H, W) counts as foreground. Area interpolation then > 0.5, so a
    structure thinner than about one output pixel can vanish (the cache summary reports it).
    """
    resolution = check_resolution(resolution)
    fit = check_fit(fit)
    mask = _check_image(np.asarray(mask), "mask")
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D (H, W), got shape {mask.shape}")
    geom = square_geometry(mask.shape, resolution, fit)
    binary = (mask > 0).astype(np.float32)
    resized = cv2.resize(binary, (geom.content_width, geom.content_height), interpolation=cv2.INTER_AREA)
    return _place((resized > 0.5).astype(np.float32), geom, 0.0)


def restore_mask(values: np.ndarray, original_shape: tuple[int, ...], fit: str = "pad") -> np.ndarray:
    """Map a (R, R) or (R, R, 1) map from the model back to the original (H, W) image, as float32.

    Undoes :func:`preprocess`'s geometry for an image of ``original_shape`` (H, W, ...): the padding
    is cut away and the content is resized back with bilinear interpolation, so probabilities stay
    probabilities. Threshold the result yourself (e.g. ``> 0.5``).
    """
    fit = check_fit(fit)
    values = np.asarray(values)
    if values.ndim == 3 and values.shape[2] == 1:
        values = values[:, :, 0]
    if values.ndim != 2 or values.shape[0] != values.shape[1] or values.shape[0] < 1:
        raise ValueError(f"values must be a square (R, R) map from the model, got shape {values.shape}")
    geom = square_geometry(tuple(original_shape), values.shape[0], fit)
    content = np.ascontiguousarray(values[geom.content], dtype=np.float32)
    return cv2.resize(content, (geom.width, geom.height), interpolation=cv2.INTER_LINEAR)

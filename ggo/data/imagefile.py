"""Reading one image file, refusing the ones a decoder would only half read.

Every image and mask ggo decodes (the dataset reader, ``data=folder``, ``ggo.ship.predict``, its
``--truth`` masks, and the served model's base64 films) goes through :func:`read_image_file`, so
they all accept and refuse the same files.

Why a check before decoding: OpenCV decodes a JPEG file that was cut short (an interrupted
download or copy) as far as the data goes, fills the rest with grey, and only prints "Premature
end of JPEG file" on stderr; the caller gets a confident, wrong image. Pillow's decoders raise
instead (``ImageFile.LOAD_TRUNCATED_IMAGES`` is False by default), so before OpenCV decodes the
bytes, Pillow reads them through:

- JPEG (and MPO): decoded at 1/8 scale (``draft``), which still runs libjpeg over the whole
  entropy-coded stream but skips most of the inverse DCT;
- PNG: ``verify()``, which walks every chunk up to IEND and checks its CRC without inflating.

Other formats (TIFF, BMP, WebP) need no extra pass: OpenCV refuses them when truncated. The
pixels themselves still come from ``cv2.imdecode`` with the caller's flags, exactly what
``cv2.imread`` gives for a good file (checked on all 688 films and masks of the bundled dataset;
reading them all this way took no longer than ``cv2.imread`` alone).
"""

from __future__ import annotations

import io
import threading
import warnings
from pathlib import Path

import cv2
import numpy as np

MAX_PIXELS = 100_000_000  # ggo.ship.predict and the served model refuse larger inputs: decoding one takes gigabytes

_PILLOW_LOCK = threading.Lock()  # guards the temporary change of Pillow's global pixel limit


class ImageFileError(ValueError):
    """A file (or buffer) that cannot be used as an image; ``str()`` is ``"<name>: <reason>"``."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"{name}: {reason}")
        self.name = name
        self.reason = reason


def read_image_file(
    source: str | Path | bytes,
    *,
    name: str | None = None,
    flags: int = cv2.IMREAD_UNCHANGED,
    max_pixels: int | None = MAX_PIXELS,
) -> np.ndarray:
    """Decode an image file (a path, or its bytes) with OpenCV ``flags``, as ``cv2.imread`` would.

    Raises :class:`FileNotFoundError` for a missing path and :class:`ImageFileError` (a
    ValueError naming the file, or ``name`` for bytes) for a file that is empty, truncated or
    otherwise only partly decodable, not an image, or over ``max_pixels`` (None: no limit; the
    size is read from the header, before the pixels are decoded).
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        data, label = bytes(source), name or "the image"
        if not data:
            raise ImageFileError(label, "no bytes: the image is empty")
    else:
        path = Path(source)
        label = name or str(path)
        if not path.is_file():
            raise FileNotFoundError(f"{label}: no such file")
        data = path.read_bytes()
        if not data:
            raise ImageFileError(label, "the file is empty")
    check_complete(data, label, max_pixels)
    image = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if image is None or image.size == 0:
        raise ImageFileError(label, "not an image OpenCV can read (corrupt, or not PNG/JPEG/TIFF/BMP/WebP)")
    _check_pixels(label, image.shape[0], image.shape[1], max_pixels)
    return image


def check_complete(data: bytes, label: str, max_pixels: int | None = MAX_PIXELS) -> None:
    """Raise :class:`ImageFileError` if ``data`` is a JPEG or PNG that ends (or breaks) before its
    image does, or declares more than ``max_pixels`` pixels. Data Pillow does not recognise passes
    (OpenCV decides)."""
    from PIL import Image, JpegImagePlugin, PngImagePlugin

    with _PILLOW_LOCK, warnings.catch_warnings():
        # Pillow's decompression-bomb check would hide the size we report (our limit applies
        # instead), and it warns about odd EXIF or chunks that OpenCV reads fine.
        warnings.simplefilter("ignore")
        limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        try:
            image = Image.open(io.BytesIO(data))
        except Exception:  # noqa: BLE001 - not an image Pillow knows: OpenCV decides
            return
        finally:
            Image.MAX_IMAGE_PIXELS = limit
        with image:
            _check_pixels(label, image.height, image.width, max_pixels)
            if isinstance(image, JpegImagePlugin.JpegImageFile):  # MPO too
                kind = "JPEG"
            elif isinstance(image, PngImagePlugin.PngImageFile):
                kind = "PNG"
            else:
                return
            try:
                if kind == "JPEG":
                    _read_jpeg_through(image)
                else:
                    image.verify()  # PngImageFile.verify: every chunk's CRC, up to IEND
            except Exception as exc:  # noqa: BLE001 - OSError, SyntaxError, struct.error, ...: all mean broken data
                raise ImageFileError(
                    label,
                    f"truncated or corrupt {kind} ({exc}): only part of the image would decode (the rest "
                    "grey), so it is refused; copy the file again from its source",
                ) from None


def _read_jpeg_through(image: object) -> None:
    """Run libjpeg over every scan of ``image`` at 1/8 scale (Pillow raises if the data ends early)."""
    width, height = image.size  # type: ignore[attr-defined]
    image.draft("L", (max(1, width // 8), max(1, height // 8)))  # type: ignore[attr-defined]
    image.load()  # type: ignore[attr-defined]


def _check_pixels(label: str, height: int, width: int, max_pixels: int | None) -> None:
    if max_pixels is not None and height * width > max_pixels:
        raise ImageFileError(
            label,
            f"{width} x {height} pixels ({height * width / 1e6:.0f} megapixels) is over the "
            f"{max_pixels / 1e6:g} megapixel limit: downscale it first (X-rays need no more than ~4k x 4k)",
        )


__all__ = ["MAX_PIXELS", "ImageFileError", "check_complete", "read_image_file"]

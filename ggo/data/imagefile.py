"""Reading one image file: the format from its first bytes, the size from its header, then the pixels.

Every image and mask ggo decodes (the dataset reader, ``data=folder``, ``ggo.ship.predict``, its
``--truth`` masks, and the served model's base64 films) goes through :func:`read_image_file`, so
they all accept and refuse the same files. Reading is in two steps, and nothing is decoded before
the first one passes:

1. :func:`read_header`: the format by its magic bytes (PNG, JPEG, TIFF, BMP or WebP; anything else,
   Radiance HDR, PNM, GIF, ... is refused even where OpenCV could decode it), then the declared
   width and height from Pillow's parser for that one format, which reads the header and no pixel.
   A header Pillow cannot parse (a PNG chunk whose CRC does not match, a JPEG without a frame
   header) is refused: what a careful parser cannot read, OpenCV is not asked to decode. A size
   over ``max_pixels`` is refused here, from a few hundred bytes, whatever the file would inflate to.
2. :func:`decode`: the file read through to its end (a cut-short file is refused), then the pixels
   from ``cv2.imdecode`` with the caller's flags, exactly what ``cv2.imread`` gives for a good file.

Why the read-through: OpenCV decodes a JPEG that was cut short (an interrupted download or copy) as
far as the data goes, fills the rest with grey and only prints "Premature end of JPEG file" on
stderr. Pillow's decoders raise instead, so a JPEG (and MPO) is first decoded at 1/8 scale
(``draft``: libjpeg still runs over the whole entropy-coded stream, most of the inverse DCT is
skipped), and a PNG is ``verify()``-ed (every chunk's CRC up to IEND, without inflating). TIFF,
BMP and WebP need no extra pass: OpenCV refuses them when truncated.

OpenCV's own pixel cap (``OPENCV_IO_MAX_IMAGE_PIXELS``, 2^30 by default) is set to
:data:`MAX_PIXELS` when this module is imported, unless the environment sets it: OpenCV reads it
once, at its first decode, so a decode that slipped past the header check still stops there.
"""

from __future__ import annotations

import io
import os
import threading
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import cv2
import numpy as np

MAX_PIXELS = 100_000_000  # ggo.ship.predict and the served model refuse larger inputs: decoding one takes gigabytes
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(MAX_PIXELS))

#: The formats ggo reads, by the bytes their files start with.
MAGIC = {
    "PNG": (b"\x89PNG\r\n\x1a\n",),
    "JPEG": (b"\xff\xd8\xff",),
    "TIFF": (b"II*\x00", b"MM\x00*"),
    "BMP": (b"BM",),
    "WEBP": (b"RIFF",),  # and "WEBP" at offset 8 (see sniff_format)
}
FORMATS_TEXT = "PNG, JPEG, TIFF, BMP or WebP"
_WARNINGS_LOCK = threading.Lock()  # warnings.catch_warnings changes process-wide state


class ImageFileError(ValueError):
    """A file (or buffer) that cannot be used as an image; ``str()`` is ``"<name>: <reason>"``."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"{name}: {reason}")
        self.name = name
        self.reason = reason


@dataclass(frozen=True)
class ImageHeader:
    """What a file's header declares: its format (a key of :data:`MAGIC`), size and Pillow mode."""

    format: str
    width: int
    height: int
    mode: str

    @property
    def pixels(self) -> int:
        return self.width * self.height


def read_image_file(
    source: str | Path | bytes,
    *,
    name: str | None = None,
    flags: int = cv2.IMREAD_UNCHANGED,
    max_pixels: int | None = MAX_PIXELS,
) -> np.ndarray:
    """Decode an image file (a path, or its bytes) with OpenCV ``flags``, as ``cv2.imread`` would.

    Raises :class:`FileNotFoundError` for a missing path and :class:`ImageFileError` (a
    ValueError naming the file, or ``name`` for bytes) for a file that is empty, not one of
    :data:`FORMATS_TEXT`, has a header that cannot be read, is truncated or otherwise only partly
    decodable, or declares more than ``max_pixels`` pixels (None: no limit beyond OpenCV's).
    """
    data, label = read_bytes(source, name)
    return decode(data, label, read_header(data, label, max_pixels), flags=flags, max_pixels=max_pixels)


def read_bytes(source: str | Path | bytes, name: str | None = None) -> tuple[bytes, str]:
    """``(the file's bytes, its label)``; FileNotFoundError or ImageFileError when there are none."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data, label = bytes(source), name or "the image"
        if not data:
            raise ImageFileError(label, "no bytes: the image is empty")
        return data, label
    path = Path(source)
    label = name or str(path)
    if not path.is_file():
        raise FileNotFoundError(f"{label}: no such file")
    data = path.read_bytes()
    if not data:
        raise ImageFileError(label, "the file is empty")
    return data, label


def sniff_format(data: bytes) -> str | None:
    """The format ``data`` starts like (a key of :data:`MAGIC`), or None."""
    for kind, magics in MAGIC.items():
        if data.startswith(magics) and (kind != "WEBP" or data[8:12] == b"WEBP"):
            return kind
    return None


def read_header(data: bytes, label: str, max_pixels: int | None = MAX_PIXELS) -> ImageHeader:
    """The format by its magic bytes and the size its header declares; no pixel is decoded.

    Raises :class:`ImageFileError` for data that is not one of :data:`FORMATS_TEXT`, whose header
    that format's parser cannot read, or that declares more than ``max_pixels`` pixels.
    """
    kind = sniff_format(data)
    if kind is None:
        raise ImageFileError(label, f"not an image ggo reads: its first bytes are not those of a {FORMATS_TEXT} file")
    try:
        with _open_header(kind, data) as image:
            header = ImageHeader(kind, int(image.width), int(image.height), str(image.mode))
    except Exception as exc:  # noqa: BLE001 - SyntaxError, OSError, struct.error, ...: all mean a broken header
        raise ImageFileError(
            label, f"its {kind} header cannot be read ({_short(exc)}): the file is damaged, or not really a {kind} file"
        ) from None
    if header.width < 1 or header.height < 1:
        raise ImageFileError(label, f"its {kind} header declares {header.width} x {header.height} pixels")
    _check_pixels(label, header.height, header.width, max_pixels)
    return header


def decode(
    data: bytes, label: str, header: ImageHeader, *, flags: int = cv2.IMREAD_UNCHANGED, max_pixels: int | None = MAX_PIXELS
) -> np.ndarray:
    """The pixels of ``data`` (whose :func:`read_header` is ``header``), read through to the end first."""
    _check_complete(data, label, header.format)
    image = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if image is None or image.size == 0:
        raise ImageFileError(label, f"not an image OpenCV can read (a corrupt {header.format} file)")
    _check_pixels(label, image.shape[0], image.shape[1], max_pixels)
    return image


@contextmanager
def _open_header(kind: str, data: bytes) -> Iterator[Any]:
    """Pillow's parser for ``kind`` over ``data``, which reads the header only; closed after the block.

    Called directly rather than through ``Image.open``, so that no other format's parser is tried,
    the parser's own error comes back (``Image.open`` turns it into "cannot identify image file"),
    and Pillow's global decompression-bomb limit does not apply (ours does). Pillow's warnings
    (odd EXIF, unusual chunks: OpenCV reads those files fine) are silenced.
    """
    from PIL import BmpImagePlugin, JpegImagePlugin, PngImagePlugin, TiffImagePlugin, WebPImagePlugin

    parser = {
        "PNG": PngImagePlugin.PngImageFile,
        "JPEG": JpegImagePlugin.jpeg_factory,  # a JpegImageFile, or an MpoImageFile for a multi-picture JPEG
        "TIFF": TiffImagePlugin.TiffImageFile,
        "BMP": BmpImagePlugin.BmpImageFile,
        "WEBP": WebPImagePlugin.WebPImageFile,
    }[kind]
    with _WARNINGS_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        image = parser(io.BytesIO(data))
        try:
            yield image
        finally:
            image.close()


def _check_complete(data: bytes, label: str, kind: str) -> None:
    """Raise :class:`ImageFileError` if ``data`` is a JPEG or PNG that ends (or breaks) before its image does."""
    if kind not in ("JPEG", "PNG"):
        return
    try:
        with _open_header(kind, data) as image:
            if kind == "JPEG":
                width, height = image.size
                image.draft("L", (max(1, width // 8), max(1, height // 8)))
                image.load()
            else:
                image.verify()  # PngImageFile.verify: every chunk's CRC, up to IEND
    except Exception as exc:  # noqa: BLE001 - OSError, SyntaxError, struct.error, ...: all mean broken data
        raise ImageFileError(
            label,
            f"truncated or corrupt {kind} ({_short(exc)}): only part of the image would decode (the rest "
            "grey), so it is refused; copy the file again from its source",
        ) from None


def _short(exc: BaseException) -> str:
    """An exception in a few words, without object reprs (``<_io.BytesIO object at 0x...>``)."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return (text if "<" not in text else type(exc).__name__)[:160]


def _check_pixels(label: str, height: int, width: int, max_pixels: int | None) -> None:
    if max_pixels is not None and height * width > max_pixels:
        raise ImageFileError(
            label,
            f"{width} x {height} pixels ({height * width / 1e6:.0f} megapixels) is over the "
            f"{max_pixels / 1e6:g} megapixel limit: downscale it first (X-rays need no more than ~4k x 4k)",
        )


__all__ = [
    "FORMATS_TEXT", "MAGIC", "MAX_PIXELS", "ImageFileError", "ImageHeader", "decode", "read_bytes", "read_header",
    "read_image_file", "sniff_format",
]  # fmt: skip

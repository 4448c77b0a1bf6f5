"""Image files a hostile client would send, built in a few kilobytes without ever holding their pixels.

Import with ``from hostile_images import ...``. Each builder returns the file's bytes:

- :func:`zero_png`: a valid PNG of ``width`` x ``height`` zero pixels, deflated row by row (a
  20000 x 20000 one is ~0.4 MB, 400 MB once decoded);
- :func:`damaged_chunk_png`: the same with one ancillary text chunk whose CRC is wrong, the kind
  a lenient decoder (OpenCV) reads whole while a careful parser (Pillow) refuses its header;
- :func:`radiance_hdr`: a Radiance ``.hdr`` file, a format OpenCV decodes (3 float32 per pixel)
  but ggo does not read;
- :func:`pnm`: a binary PGM, another format OpenCV decodes and ggo does not read.
"""

from __future__ import annotations

import struct
import zlib

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: PNG colour types and bit depths -> (channels, bytes per sample)
PNG_COLOUR = {"gray": (0, 1), "rgb": (2, 3), "rgba": (6, 4)}


def png_chunk(kind: bytes, data: bytes, crc: int | None = None) -> bytes:
    """One PNG chunk; ``crc`` overrides the right checksum (to damage it)."""
    right = zlib.crc32(kind + data)
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", right if crc is None else crc)


def zero_png(width: int, height: int, colour: str = "gray", depth: int = 8, extra: bytes = b"") -> bytes:
    """A PNG of zero pixels (``colour`` gray, rgb or rgba; ``depth`` 8 or 16), ``extra`` chunks before its data."""
    colour_type, channels = PNG_COLOUR[colour]
    row = b"\x00" * (1 + width * channels * depth // 8)  # filter byte 0, then the samples
    deflate = zlib.compressobj(9)
    rows_per_piece = max(1, (8 << 20) // len(row))  # deflate 8 MB at a time, never the whole image
    parts = []
    for start in range(0, height, rows_per_piece):
        parts.append(deflate.compress(row * min(rows_per_piece, height - start)))
    parts.append(deflate.flush())
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour_type, 0, 0, 0)
    return PNG_SIGNATURE + png_chunk(b"IHDR", ihdr) + extra + png_chunk(b"IDAT", b"".join(parts)) + png_chunk(b"IEND", b"")


def damaged_chunk_png(width: int, height: int) -> bytes:
    """:func:`zero_png` with a ``tEXt`` chunk whose CRC does not match its content."""
    text = b"Comment\x00a text chunk with a wrong checksum"
    return zero_png(width, height, extra=png_chunk(b"tEXt", text, crc=zlib.crc32(b"tEXt" + text) ^ 1))


def radiance_hdr(width: int, height: int) -> bytes:
    """A flat-run-length Radiance RGBE file (every pixel the same colour): a few bytes per row."""
    header = b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n" + f"-Y {height} +X {width}\n".encode()
    row = b"\x02\x02" + struct.pack(">H", width)  # new-style RLE scanline marker
    for value in (128, 64, 32, 129):  # R, G, B, exponent: each component one run per 127 pixels
        left = width
        while left:
            run = min(127, left)
            row += bytes([128 + run, value])
            left -= run
    return header + row * height


def pnm(width: int, height: int) -> bytes:
    """A binary PGM (P5) of zeros."""
    return f"P5\n{width} {height}\n255\n".encode() + b"\x00" * (width * height)

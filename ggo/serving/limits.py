"""What one request to the served model may cost, and how whoever deploys it changes that.

The served model reads these environment variables once, when ``mlflow models serve`` loads it
(an unusable value stops the server at start, naming the variable):

========================================  =======  ===============================================
variable                                  default  limit
========================================  =======  ===============================================
``GGO_SERVE_MAX_BODY_MB``                 100      request body (HTTP 413 over it)
``GGO_SERVE_MAX_ROWS``                    32       images (rows) per request (413)
``GGO_SERVE_MAX_CELL_MB``                 40       base64 text of one ``image_b64`` cell (413)
``GGO_SERVE_MAX_REQUEST_MEGAPIXELS``      200      pixels of all images of a request, as their
                                                   headers declare them (413)
``GGO_SERVE_MAX_IMAGE_MEGAPIXELS``        100      pixels of one image (that row's error); at
                                                   most 100, OpenCV's cap in ggo
========================================  =======  ===============================================

Every limit is checked before any pixel is decoded: the body and rows first, then each cell's
length, then each image's header. Megabytes are 10^6 bytes.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, fields
from typing import Mapping

from ggo.data.imagefile import MAX_PIXELS

#: field of :class:`RequestLimits` -> the environment variable that sets it
ENV = {
    "max_body_mb": "GGO_SERVE_MAX_BODY_MB",
    "max_rows": "GGO_SERVE_MAX_ROWS",
    "max_cell_mb": "GGO_SERVE_MAX_CELL_MB",
    "max_request_megapixels": "GGO_SERVE_MAX_REQUEST_MEGAPIXELS",
    "max_image_megapixels": "GGO_SERVE_MAX_IMAGE_MEGAPIXELS",
}


def million(value: float) -> int:
    """A limit in bytes or pixels from its value in millions (MB, megapixels)."""
    return int(value * 1e6)


@dataclass(frozen=True)
class RequestLimits:
    """The budget of one request (see the module docstring); every value positive."""

    max_body_mb: float = 100.0
    max_rows: int = 32
    max_cell_mb: float = 40.0
    max_request_megapixels: float = 200.0
    max_image_megapixels: float = MAX_PIXELS / 1e6

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "RequestLimits":
        """The defaults, with each limit the environment sets instead; a ValueError naming the
        variable for a value that is not a positive number (or an image limit over OpenCV's cap)."""
        environ = os.environ if environ is None else environ
        values: dict[str, float | int] = {}
        for spec in fields(cls):
            key = ENV[spec.name]
            raw = environ.get(key, "").strip()
            if not raw:
                continue
            kind = int if spec.type in (int, "int") else float
            try:
                value = kind(raw)
            except ValueError:
                value = -1
            if not (value > 0 and math.isfinite(value)):
                what = "a whole number" if kind is int else "a number"
                raise ValueError(f"{key}={raw!r}: give {what} above 0 (default {spec.default}), or unset it")
            values[spec.name] = value
        limits = cls(**values)  # type: ignore[arg-type]
        if million(limits.max_image_megapixels) > MAX_PIXELS:
            raise ValueError(
                f"{ENV['max_image_megapixels']}={limits.max_image_megapixels:g}: at most {MAX_PIXELS / 1e6:g} "
                "(OpenCV's pixel cap in ggo); lower it, or unset it"
            )
        return limits

    def describe(self) -> str:
        """One line for the server's log: the limits in force and their variables."""
        return ", ".join(f"{ENV[f.name]}={getattr(self, f.name):g}" for f in fields(self))


__all__ = ["ENV", "RequestLimits", "million"]

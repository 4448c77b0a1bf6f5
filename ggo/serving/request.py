"""One request to the served model: its rows checked against the budget, read, segmented, answered.

A request is a table with an ``image_b64`` column (what ``mlflow models serve`` hands the model
for ``dataframe_split``, ``dataframe_records``, CSV and Parquet bodies, and, as a dict of columns,
for ``inputs`` / ``instances``). It is answered in three passes, so that nothing is decoded before
the whole request is known to fit :class:`~ggo.serving.limits.RequestLimits`:

1. :func:`read_rows`: the columns (a ``path`` column is refused: see :data:`PATH_REFUSED`), the
   number of rows, every cell's length; then each cell's base64 and its image header
   (:func:`ggo.data.imagefile.read_header`); then the pixels all the headers declare, summed.
   Over a limit: :class:`RequestError` with HTTP 413 naming the variable that sets it.
2. :func:`segment_rows`: the images decoded and preprocessed one at a time (only the model's small
   input is kept), segmented a batch at a time, each mask restored to its image's size, encoded as
   PNG and dropped; so a request holds one full-size image at a time, not all of them.
3. The answer: one row per input row, ``status`` ``ok`` with the mask, or ``error`` with a
   one-line reason naming the row; a row's failure never fails the others.
"""

from __future__ import annotations

import base64
import binascii
import logging
import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INTERNAL_ERROR, INVALID_PARAMETER_VALUE, REQUEST_LIMIT_EXCEEDED

from ggo.data.imagefile import ImageFileError, ImageHeader, decode, read_header
from ggo.serving.limits import ENV, RequestLimits, million

FRAME_COLUMNS = ("status", "error", "ggo_present", "ggo_probability", "mask_png_b64", "ggo_fraction", "height", "width")
REQUEST_SHAPE = '{"dataframe_split": {"columns": ["image_b64"], "data": [["<base64 of the file>"], ...]}}'
PATH_REFUSED = (
    "the served model reads only the images sent in the request: put each file's bytes, base64-encoded, "
    "in an 'image_b64' column; a 'path' column is refused (the server does not open files named by a client)"
)
_log = logging.getLogger(__name__)


class RequestError(MlflowException):
    """A request the model cannot answer at all, with a short reason and nothing else: HTTP
    ``status`` 400 (wrong as a whole), 413 (over a limit) or 500 (the model failed).

    The scoring server rewrites an MlflowException's message to ``Failed to predict data '<the
    whole request>'. Error: ...``; the message here ignores that rewrite so the client reads the
    reason alone (no request echo, no stack trace, no server paths).
    """

    _CODES = {400: INVALID_PARAMETER_VALUE, 413: REQUEST_LIMIT_EXCEEDED, 500: INTERNAL_ERROR}

    def __init__(self, reason: str, status: int = 400) -> None:
        self._reason, self.status = reason, status
        super().__init__(reason, error_code=self._CODES[status])

    @property
    def message(self) -> str:
        return self._reason

    @message.setter
    def message(self, value: str) -> None:  # the server's rewrite (see the class docstring)
        pass

    def get_http_status_code(self) -> int:
        return self.status


@dataclass
class Row:
    """One input row on its way: its file's bytes and header, or the reason it has none."""

    index: int
    data: bytes | None = None
    header: ImageHeader | None = None
    error: str | None = None


def as_frame(model_input: Any) -> pd.DataFrame:
    """The request as a table: a DataFrame as it is, a dict of columns (``{"inputs": {...}}``) made
    one; anything else is a :class:`RequestError` showing the shape to send."""
    if isinstance(model_input, pd.DataFrame):
        return model_input
    if isinstance(model_input, dict):
        try:
            return pd.DataFrame({str(k): np.atleast_1d(np.asarray(v, dtype=object)) for k, v in model_input.items()})
        except Exception:  # noqa: BLE001 - columns of different lengths, nested shapes: a bad request
            raise RequestError(f"the request's columns cannot form a table (one image per row): send {REQUEST_SHAPE}") from None
    raise RequestError(f"send the images as a table with an 'image_b64' column: {REQUEST_SHAPE}")


def read_rows(frame: pd.DataFrame, limits: RequestLimits) -> list[Row]:
    """Every row's bytes and header, or its error; :class:`RequestError` for a request over a
    limit or without an ``image_b64`` column. Decodes no pixel."""
    columns = [str(c) for c in frame.columns]
    if "path" in columns:
        raise RequestError(PATH_REFUSED)
    if "image_b64" not in columns:
        raise RequestError(f"the request needs a column 'image_b64' (base64 of each image file); it has {columns[:10]}")
    if len(frame) == 0:
        raise RequestError(f"the request has no rows: send one row per image, {REQUEST_SHAPE}")
    if len(frame) > limits.max_rows:
        raise RequestError(
            f"the request has {len(frame)} images, over the limit of {limits.max_rows} per request "
            f"({ENV['max_rows']}): send them in several requests", 413,
        )  # fmt: skip
    cells = list(frame["image_b64"].iloc[:, 0] if frame["image_b64"].ndim == 2 else frame["image_b64"])
    for i, value in enumerate(cells):
        if isinstance(value, (str, bytes)) and len(value) > million(limits.max_cell_mb):
            raise RequestError(
                f"row {i}: its image_b64 is {len(value) / 1e6:.1f} MB, over the limit of {limits.max_cell_mb:g} MB "
                f"per image ({ENV['max_cell_mb']}): send a smaller file (PNG of the X-ray at its own size)", 413,
            )  # fmt: skip
    rows = [_read_row(value, i, limits) for i, value in enumerate(cells)]
    pixels = sum(row.header.pixels for row in rows if row.header is not None)
    if pixels > million(limits.max_request_megapixels):
        raise RequestError(
            f"the request's images hold {pixels / 1e6:.0f} megapixels, over the limit of "
            f"{limits.max_request_megapixels:g} per request ({ENV['max_request_megapixels']}): send fewer "
            "images per request", 413,
        )  # fmt: skip
    return rows


def _read_row(value: Any, index: int, limits: RequestLimits) -> Row:
    label = f"row {index}"
    try:
        data = _b64_bytes(value, label)
        return Row(index, data, read_header(data, label, million(limits.max_image_megapixels)))
    except ValueError as exc:  # ImageFileError is one
        return Row(index, error=str(exc))


def _b64_bytes(value: Any, label: str) -> bytes:
    """One cell -> the image file's bytes; ValueError with a short reason naming the row."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        raise ValueError(f"{label}: 'image_b64' is empty (null)")
    if not isinstance(value, (str, bytes)):
        raise ValueError(f"{label}: 'image_b64' must be a base64 string of an image file's bytes, got {type(value).__name__}")
    try:
        data = base64.b64decode("".join(value.split()) if isinstance(value, str) else value, validate=True)  # wrapped lines are fine
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"{label}: 'image_b64' is not valid base64 ({exc}): send base64 of the image file's bytes") from None
    if not data:
        raise ImageFileError(label, "no bytes: the image is empty")
    return data


def decode_row(row: Row, max_pixels: int) -> np.ndarray:
    """The pixels of a row :func:`read_rows` read; ValueError with a one-line reason naming the row."""
    label = f"row {row.index}"
    try:
        image = decode(row.data, label, row.header, max_pixels=max_pixels)  # type: ignore[arg-type]
    except ImageFileError:
        raise
    except Exception as exc:  # noqa: BLE001 - cv2.error, MemoryError, ...: this row's error, the trace in the log
        _log.warning("%s: decoding failed", label, exc_info=True)
        raise ValueError(f"{label}: the image could not be decoded ({type(exc).__name__})") from None
    if image.ndim not in (2, 3) or image.shape[0] < 2 or image.shape[1] < 2:
        raise ImageFileError(label, f"an image of shape {image.shape} is too small: need at least 2 x 2 pixels")
    return image


def segment_rows(
    rows: Sequence[Row],
    *,
    prepare: Callable[[np.ndarray], np.ndarray],
    infer: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
    restore: Callable[[np.ndarray, tuple[int, int]], np.ndarray],
    threshold: float,
    max_pixels: int,
    batch_size: int = 8,
) -> pd.DataFrame:
    """The answer to ``rows``: ``prepare`` one image into the model's input, ``infer`` a batch of
    those into probability maps and each film's ``ggo_probability`` (NaN: unknown), ``restore``
    one map to an image's (H, W). A row's failure is its
    error; a failure of ``infer`` is the model's: :class:`RequestError` with HTTP 500."""
    import cv2

    answer = [dict.fromkeys(FRAME_COLUMNS) for _ in rows]
    todo = [row for row in rows if row.error is None]
    for row in rows:
        if row.error is not None:
            answer[row.index].update(status="error", error=row.error)
    for start in range(0, len(todo), batch_size):
        inputs, shapes, done = [], [], []
        for row in todo[start : start + batch_size]:
            try:
                image = decode_row(row, max_pixels)
                shapes.append(image.shape[:2])
                inputs.append(prepare(image))
                done.append(row)
            except ValueError as exc:
                answer[row.index].update(status="error", error=str(exc))
            finally:
                row.data = None  # the file's bytes are no longer needed
            image = None  # one full-size image at a time
        if not inputs:
            continue
        try:
            probs, film = infer(np.stack(inputs))
        except Exception as exc:  # noqa: BLE001 - the trace goes to the server's log, not to the client
            _log.exception("the ggo segmenter failed on a batch of %d image(s)", len(inputs))
            raise RequestError(f"the model failed ({type(exc).__name__}); the server's log has the details", 500) from exc
        for row, shape, prob, p_ggo in zip(done, shapes, probs, film):
            try:
                mask = (restore(prob, shape) > threshold).astype(np.uint8)
                ok, png = cv2.imencode(".png", mask * 255)
            except Exception as exc:  # noqa: BLE001 - MemoryError, cv2.error: this row's error, the trace in the log
                _log.warning("row %d: restoring its mask failed", row.index, exc_info=True)
                answer[row.index].update(status="error", error=f"row {row.index}: its mask could not be made ({type(exc).__name__})")
                continue
            answer[row.index].update(
                status="ok", mask_png_b64=base64.b64encode(png.tobytes()).decode("ascii") if ok else "",
                ggo_present=bool(mask.any()), ggo_probability=None if np.isnan(p_ggo) else round(float(p_ggo), 6),
                ggo_fraction=float(mask.mean()), height=int(mask.shape[0]), width=int(mask.shape[1]),
            )  # fmt: skip
    return pd.DataFrame(answer, columns=list(FRAME_COLUMNS), dtype=object)  # object: null, not NaN, in JSON


__all__ = ["FRAME_COLUMNS", "PATH_REFUSED", "REQUEST_SHAPE", "RequestError", "Row", "as_frame", "decode_row", "read_rows", "segment_rows"]

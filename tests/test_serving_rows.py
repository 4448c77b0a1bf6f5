"""What the served model makes of each cell of a request's ``image_b64`` column (no server needed)."""

from __future__ import annotations

import base64

import cv2
import numpy as np
import pytest

from ggo.serving.model import _decode_row


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def test_a_good_film_in_base64_decodes_even_with_wrapped_lines() -> None:
    film = np.random.default_rng(0).integers(0, 256, (40, 30), dtype=np.uint8)
    text = b64(cv2.imencode(".png", film)[1].tobytes())
    wrapped = "\n".join(text[i : i + 76] for i in range(0, len(text), 76))  # what `base64` prints without -w0
    for value in (text, wrapped):
        assert np.array_equal(_decode_row(value, "image_b64", 0), film)


def test_each_bad_cell_gets_a_short_reason_naming_its_row() -> None:
    noisy = np.random.default_rng(1).integers(0, 256, (60, 80), dtype=np.uint8)
    jpeg = cv2.imencode(".jpg", noisy)[1].tobytes()
    cells = {
        12: r"^row 0: 'image_b64' must be a base64 string of an image file's bytes, got int$",
        "@@@ not base64": r"^row 1: 'image_b64' is not valid base64 \(.*\): send base64 of the image file's bytes$",
        "": r"^row 2: no bytes: the image is empty$",
        b64(b"a text file"): r"^row 3: not an image OpenCV can read",
        b64(jpeg[: len(jpeg) // 3]): r"^row 4: truncated or corrupt JPEG \(.*\): only part of the image would decode",
        None: r"^row 5: 'image_b64' is empty \(null\)$",
    }
    for row, (value, pattern) in enumerate(cells.items()):
        with pytest.raises(ValueError, match=pattern) as caught:
            _decode_row(value, "image_b64", row)
        assert "Traceback" not in str(caught.value) and "/" not in str(caught.value).split(":", 1)[0]

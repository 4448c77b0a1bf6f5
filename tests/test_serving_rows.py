"""What the served model makes of a request's table before any model runs (no server needed):
each ``image_b64`` cell, the budget, and the shapes it refuses. tests/test_serve_hostile.py sends
the same requests to a live server."""

from __future__ import annotations

import base64

import cv2
import numpy as np
import pandas as pd
import pytest

from hostile_images import zero_png

from ggo.serving.limits import RequestLimits
from ggo.serving.request import PATH_REFUSED, RequestError, as_frame, decode_row, read_rows


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def table(*cells: object, column: str = "image_b64") -> pd.DataFrame:
    return pd.DataFrame({column: list(cells)})


def test_a_good_film_in_base64_decodes_even_with_wrapped_lines() -> None:
    film = np.random.default_rng(0).integers(0, 256, (40, 30), dtype=np.uint8)
    text = b64(cv2.imencode(".png", film)[1].tobytes())
    wrapped = "\n".join(text[i : i + 76] for i in range(0, len(text), 76))  # what `base64` prints without -w0
    rows = read_rows(table(text, wrapped), RequestLimits())
    for row in rows:
        assert row.error is None and (row.header.width, row.header.height) == (30, 40)
        assert np.array_equal(decode_row(row, 10**6), film)


def test_each_bad_cell_gets_a_short_reason_naming_its_row() -> None:
    noisy = np.random.default_rng(1).integers(0, 256, (60, 80), dtype=np.uint8)
    jpeg = cv2.imencode(".jpg", noisy)[1].tobytes()
    cells = {
        12: r"^row 0: 'image_b64' must be a base64 string of an image file's bytes, got int$",
        "@@@ not base64": r"^row 1: 'image_b64' is not valid base64 \(.*\): send base64 of the image file's bytes$",
        "": r"^row 2: no bytes: the image is empty$",
        b64(b"a text file"): r"^row 3: not an image ggo reads",
        b64(jpeg[: len(jpeg) // 3]): r"^row 4: truncated or corrupt JPEG \(.*\): only part of the image would decode",
        None: r"^row 5: 'image_b64' is empty \(null\)$",
        b64(zero_png(12_000, 10_000)): r"^row 6: 12000 x 10000 pixels \(120 megapixels\) is over the 100 megapixel limit",
    }
    rows = read_rows(table(*cells), RequestLimits(max_request_megapixels=1000))
    for row, pattern in zip(rows, cells.values()):
        error = row.error
        if error is None:  # the header was fine: the cut shows when the pixels are read
            with pytest.raises(ValueError) as caught:
                decode_row(row, 10**8)
            error = str(caught.value)
        assert __import__("re").match(pattern, error), (row.index, error)
        assert "Traceback" not in error and "/" not in error.split(":", 1)[0]


def test_a_path_column_is_refused_with_one_message_whatever_the_file(tmp_path) -> None:
    film = tmp_path / "film.png"
    assert cv2.imwrite(str(film), np.zeros((8, 8), np.uint8))
    for path in (str(film), "/etc/passwd", str(tmp_path / "missing.png"), 12):
        for frame in (table(path, column="path"), pd.DataFrame({"image_b64": [b64(film.read_bytes())], "path": [path]})):
            with pytest.raises(RequestError) as caught:
                read_rows(frame, RequestLimits())
            assert (caught.value.status, caught.value.message) == (400, PATH_REFUSED)


def test_the_budget_is_checked_before_decoding_and_names_its_variable() -> None:
    small = b64(zero_png(100, 100))
    cases = {
        "GGO_SERVE_MAX_ROWS": (RequestLimits(max_rows=2), table(small, small, small)),
        "GGO_SERVE_MAX_CELL_MB": (RequestLimits(max_cell_mb=0.0001), table(small)),
        "GGO_SERVE_MAX_REQUEST_MEGAPIXELS": (RequestLimits(), table(*[b64(zero_png(3000, 3000))] * 23)),  # 207 MP
    }
    for variable, (limits, frame) in cases.items():
        with pytest.raises(RequestError, match=variable) as caught:
            read_rows(frame, limits)
        assert caught.value.status == 413 and caught.value.get_http_status_code() == 413
    rows = read_rows(table(*[b64(zero_png(3000, 3000))] * 22), RequestLimits())  # 198 MP: within
    assert all(row.error is None for row in rows)


def test_limits_come_from_the_environment_and_a_bad_value_names_its_variable() -> None:
    limits = RequestLimits.from_env({"GGO_SERVE_MAX_ROWS": "4", "GGO_SERVE_MAX_REQUEST_MEGAPIXELS": "50.5"})
    assert (limits.max_rows, limits.max_request_megapixels, limits.max_cell_mb) == (4, 50.5, 40.0)
    for key, value in {"GGO_SERVE_MAX_ROWS": "lots", "GGO_SERVE_MAX_CELL_MB": "-1", "GGO_SERVE_MAX_BODY_MB": "nan",
                       "GGO_SERVE_MAX_IMAGE_MEGAPIXELS": "500"}.items():  # fmt: skip
        with pytest.raises(ValueError, match=f"^{key}="):
            RequestLimits.from_env({key: value})


def test_odd_shapes_become_a_table_or_a_400() -> None:
    assert list(as_frame({"image_b64": np.array(["a", "b"])})["image_b64"]) == ["a", "b"]
    assert list(as_frame({"image_b64": "a"})["image_b64"]) == ["a"]
    for odd in (np.array([[[[1]]]]), [{"image_b64": "a"}], "a", {"image_b64": ["a"], "other": ["a", "b"]}):
        with pytest.raises(RequestError) as caught:
            as_frame(odd)
        assert caught.value.status == 400 and "image_b64" in caught.value.message

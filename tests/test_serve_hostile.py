"""The served model against a hostile client: one live ``mlflow models serve`` for the module,
every request of tests/serve_probe.py sent to it.

The server runs with smaller limits than the defaults (set through the environment variables a
deployer would use), so that every over-budget request is cheap to build and the tests also pin
that ``mlflow models serve`` hands those variables to the model. What is pinned:

- a ``path`` column, in any shape or content type, gets one answer whatever the file;
- bombs are refused from their headers, with the server's memory barely moved;
- the budget (body, rows, cell, megapixels) is checked before decoding: HTTP 413 naming the limit;
- malformed bodies and odd shapes get 400 with a short reason;
- no answer carries a stack trace, a server path or an echo of the request.
"""

from __future__ import annotations

import json
from typing import Iterator

import pytest

from hostile_images import zero_png
from serve_probe import CASES, PeakRss, assert_clean, b64, films, send, split
from sweep_fixture import TinySweep, champion, model_server, tiny_sweep  # noqa: F401 - fixtures

from ggo.serving.request import PATH_REFUSED

pytestmark = pytest.mark.slow
LIMITS = {
    "GGO_SERVE_MAX_BODY_MB": "30",
    "GGO_SERVE_MAX_ROWS": "8",
    "GGO_SERVE_MAX_CELL_MB": "10",
    "GGO_SERVE_MAX_REQUEST_MEGAPIXELS": "20",
}
BARELY_MOVED = 60e6  # bytes of RSS: a request refused before decoding costs about its own body


@pytest.fixture(scope="module")
def served(tiny_sweep: TinySweep, champion: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """The champion behind ``mlflow models serve`` with :data:`LIMITS`: (base URL, the server's pid)."""
    with model_server(tiny_sweep.uri, champion, tmp_path_factory.mktemp("hostile") / "server.log", **LIMITS) as (url, proc):
        yield url, proc.pid


def post(served: tuple[str, int], body: bytes, content_type: str | None = "application/json") -> tuple[int, dict, int]:
    """(status, the JSON answer, how far the server tree's RSS rose above where it was while answering)."""
    url, pid = served
    with PeakRss(pid) as peak:
        before = peak.peak
        status, text = send(url, body, content_type)
    assert_clean(text)
    return status, json.loads(text), peak.peak - before


def row_error(answer: dict) -> str:
    (row,) = answer["predictions"]
    assert row["status"] == "error" and row["mask_png_b64"] is None
    return row["error"]


def test_a_path_column_gets_one_answer_whatever_the_file_and_whatever_the_shape(served: tuple[str, int]) -> None:
    names = [name for name in CASES if name.startswith("path")]
    assert len(names) >= 8
    for name in names:
        status, answer, _ = post(served, CASES[name].build(), CASES[name].content_type)
        assert (status, answer) == (400, {"error_code": "INVALID_PARAMETER_VALUE", "message": PATH_REFUSED}), name


def test_bombs_are_refused_from_their_headers_with_the_server_memory_barely_moved(served: tuple[str, int]) -> None:
    expected = {
        "20000 x 20000 zero PNG (0.4 MB)": r"row 0: 20000 x 20000 pixels (400 megapixels) is over the 100 megapixel limit",
        "108 MP PNG behind a damaged chunk (105 KB)": "row 0: its PNG header cannot be read (broken PNG file (bad header checksum in b'tEXt'))",
        "PNG declaring 40000 x 40000": "row 0: 40000 x 40000 pixels (1600 megapixels) is over the 100 megapixel limit",
        "Radiance HDR 8000 x 8000": "row 0: not an image ggo reads: its first bytes are not those of a PNG, JPEG, TIFF, BMP or WebP file",
    }
    for name, start in expected.items():
        status, answer, rose = post(served, CASES[name].build())
        assert status == 200 and row_error(answer).startswith(start), (name, answer)
        assert rose < BARELY_MOVED, f"{name}: the server's memory rose by {rose / 1e6:.0f} MB"


def test_the_budget_is_checked_before_decoding_and_names_its_limit(served: tuple[str, int]) -> None:
    film = zero_png(3000, 3000)  # 9 megapixels in 12 KB
    over = {
        "GGO_SERVE_MAX_ROWS": films(*[zero_png(8, 8)] * 9),
        "GGO_SERVE_MAX_REQUEST_MEGAPIXELS": films(film, film, film),  # 27 MP
        "GGO_SERVE_MAX_CELL_MB": split("image_b64", "A" * 11_000_000),
        "GGO_SERVE_MAX_BODY_MB": split("image_b64", *["A" * 8_000_000] * 4),  # 32 MB in cells under their limit
    }
    for variable, body in over.items():
        status, answer, rose = post(served, body)
        assert status == 413 and answer["error_code"] == "REQUEST_LIMIT_EXCEEDED", (variable, answer)
        assert variable in answer["message"], answer["message"]
        assert rose < BARELY_MOVED + len(body) * 4, f"{variable}: the server's memory rose by {rose / 1e6:.0f} MB"
    status, answer, _ = post(served, films(film, film))  # 18 MP: within
    assert status == 200 and [row["status"] for row in answer["predictions"]] == ["ok", "ok"]
    assert {(row["height"], row["width"]) for row in answer["predictions"]} == {(3000, 3000)}


def test_malformed_bodies_and_odd_shapes_get_400_with_a_short_reason(served: tuple[str, int]) -> None:
    names = ["inputs [[[[1]]]]", "inputs of strings", "malformed JSON", "not UTF-8", "a JSON list", "rows wider than the columns",
             "no rows", "two input keys", "CSV that is not CSV", "Parquet that is not Parquet", "threshold that is not a number",
             "chat messages"]  # fmt: skip
    for name in names:
        status, answer, _ = post(served, CASES[name].build(), CASES[name].content_type)
        assert status == 400, (name, status, answer)
        assert set(answer) == {"error_code", "message"} and "\n" not in answer["message"] and len(answer["message"]) < 400, answer
    status, answer, _ = post(served, CASES["no Content-Type"].build(), None)
    assert status == 415 and "Content-Type: application/json" in answer["message"]


def test_no_answer_carries_a_trace_a_server_path_or_an_echo(served: tuple[str, int]) -> None:
    url, _ = served
    for name, case in CASES.items():
        status, text = send(url, case.build(), case.content_type)
        assert status < 500, (name, status, text[:300])
        assert_clean(text, name)


def test_good_and_bad_films_in_one_request_each_get_their_own_row(served: tuple[str, int]) -> None:
    good = zero_png(40, 30)
    body = split("image_b64", b64(good), "@@@", b64(zero_png(20_000, 20_000)), b64(good))
    status, answer, _ = post(served, body)
    rows = answer["predictions"]
    assert status == 200 and [row["status"] for row in rows] == ["ok", "error", "error", "ok"]
    assert rows[1]["error"].startswith("row 1: 'image_b64' is not valid base64")
    assert rows[2]["error"].startswith("row 2: 20000 x 20000 pixels")
    assert (rows[3]["height"], rows[3]["width"]) == (30, 40)


def test_a_deployers_unusable_limit_stops_the_model_from_loading(tiny_sweep: TinySweep, champion: str, monkeypatch) -> None:
    """What the server does at start (its log shows this error and it exits before answering)."""
    from ggo.tracking import load_pyfunc

    monkeypatch.setenv("GGO_SERVE_MAX_ROWS", "many")
    with pytest.raises(ValueError, match=r"GGO_SERVE_MAX_ROWS='many': give a whole number above 0 \(default 32\), or unset it"):
        load_pyfunc(tiny_sweep.uri, champion)

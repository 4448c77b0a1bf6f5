"""The champion behind a real ``mlflow models serve`` REST server: base64 images in, masks out, per film.

The request a client sends (one row per image; PNG, JPEG, TIFF, ... file bytes in base64), built
and sent as docs/serving.md says (``python -c ... > request.json`` and ``curl ... -d @request.json``)::

    POST /invocations  Content-Type: application/json
    {"dataframe_split": {"columns": ["image_b64"], "data": [["<base64 of the file>"], ...]}}

and the answer, one prediction per row, a bad film's error in its own row::

    {"predictions": [{"status": "ok", "error": null, "mask_png_b64": "<base64 PNG, 0/255, the image's size>",
                      "ggo_fraction": 0.12, "height": 1552, "width": 1726},
                     {"status": "error", "error": "row 1: truncated or corrupt JPEG ...", "mask_png_b64": null, ...}]}

A request wrong as a whole gets HTTP 400 and ``{"error_code": ..., "message": "<the reason>"}``.
"""

from __future__ import annotations

import base64
import json
import shlex
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import cv2
import numpy as np
import pytest

from helpers import real_data_root
from sweep_fixture import TinySweep, champion, model_server, tiny_sweep  # noqa: F401 - fixtures

pytestmark = pytest.mark.slow
SERVING_DOC = Path(__file__).resolve().parents[1] / "docs" / "serving.md"
ROW_FIELDS = ("mask_png_b64", "ggo_fraction", "height", "width")


@pytest.fixture(scope="module")
def server(tiny_sweep: TinySweep, champion: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``mlflow models serve -m models:/ggo-segmenter@champion`` on a free 127.0.0.1 port; its base URL."""
    with model_server(tiny_sweep.uri, champion, tmp_path_factory.mktemp("serve") / "server.log") as (url, _):
        yield url


def invoke(base_url: str, images: list[bytes]) -> list[dict[str, Any]]:
    """POST the documented request with ``images`` (encoded files) and return the predictions."""
    body = {"dataframe_split": {"columns": ["image_b64"], "data": [[base64.b64encode(b).decode("ascii")] for b in images]}}
    request = urllib.request.Request(
        f"{base_url}/invocations", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        assert response.status == 200
        answer = json.loads(response.read())
    return answer["predictions"]


def decode_mask(prediction: dict[str, Any]) -> np.ndarray:
    mask = cv2.imdecode(np.frombuffer(base64.b64decode(prediction["mask_png_b64"]), np.uint8), cv2.IMREAD_UNCHANGED)
    assert mask is not None, "mask_png_b64 is not a PNG"
    return mask


def check(prediction: dict[str, Any], height: int, width: int) -> None:
    assert prediction["status"] == "ok" and prediction["error"] is None, prediction.get("error")
    mask = decode_mask(prediction)
    assert mask.shape == (height, width), "the mask has the image's size"
    assert (prediction["height"], prediction["width"]) == (height, width)
    assert set(np.unique(mask)) <= {0, 255}
    assert prediction["ggo_fraction"] == pytest.approx((mask > 0).mean(), abs=1e-6)


@pytest.fixture(scope="session")
def real_xray() -> Path:
    """The first X-ray of $GGO_DATA/images (checked before the server starts: skip or fail fast)."""
    images = sorted(p for p in (real_data_root() / "images").iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    assert images, "no X-rays in $GGO_DATA/images"
    return images[0]


def test_server_returns_a_mask_of_the_image_size_for_a_real_xray(real_xray: Path, server: str) -> None:
    raw = real_xray.read_bytes()  # the file as a client has it, no re-encoding
    height, width = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_UNCHANGED).shape[:2]
    (prediction,) = invoke(server, [raw])
    check(prediction, height, width)


def test_server_answers_one_prediction_per_row_in_order(server: str) -> None:
    rng = np.random.default_rng(0)
    shapes = [(90, 140), (128, 64)]
    files = [cv2.imencode(".png", rng.integers(0, 255, size=(*shapes[0], 3), dtype=np.uint8))[1].tobytes(),
             cv2.imencode(".jpg", rng.integers(0, 255, size=shapes[1], dtype=np.uint8))[1].tobytes()]  # fmt: skip
    predictions = invoke(server, files)
    assert len(predictions) == 2
    for prediction, (height, width) in zip(predictions, shapes):
        check(prediction, height, width)


def readme_http_example() -> tuple[str, list[str]]:
    """docs/serving.md's HTTP example: the Python code of the line that writes request.json, and the curl command."""
    lines = SERVING_DOC.read_text().splitlines()
    build = [line for line in lines if line.startswith("python -c '") and line.endswith("> request.json")]
    send = [line for line in lines if line.startswith("curl ") and "-d @request.json" in line]
    assert len(build) == 1 and len(send) == 1, "docs/serving.md shows one line that builds request.json and one curl that sends it"
    return shlex.split(build[0])[2], shlex.split(send[0])


def test_readme_request_with_good_and_bad_films_answers_each_film_in_its_own_row(
    real_xray: Path, server: str, tmp_path: Path
) -> None:
    code, curl = readme_http_example()
    shutil.copy(real_xray, tmp_path / real_xray.name)
    raw = real_xray.read_bytes()
    (tmp_path / "cut.jpg").write_bytes(raw[: len(raw) // 3])  # an interrupted download
    (tmp_path / "notes.png").write_text("a text file with an image suffix")
    with open(tmp_path / "request.json", "w") as out:
        subprocess.run([sys.executable, "-c", code, real_xray.name, "cut.jpg", "notes.png"], cwd=tmp_path, stdout=out, check=True)
    assert curl[curl.index("-d") + 1] == "@request.json"
    curl = [arg.replace("http://127.0.0.1:5001", server) for arg in curl]
    proc = subprocess.run(curl, cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    good, cut, notes = json.loads(proc.stdout)["predictions"]

    height, width = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_UNCHANGED).shape[:2]
    check(good, height, width)
    assert cut["status"] == "error" and cut["error"].startswith("row 1: truncated or corrupt JPEG"), cut
    assert notes["status"] == "error" and notes["error"].startswith("row 2: not an image"), notes
    assert all(row[field] is None for row in (cut, notes) for field in ROW_FIELDS)
    assert not any(word in proc.stdout for word in ("Traceback", ".py", "site-packages")), "no stack trace, no server paths"


def test_a_request_without_an_image_column_gets_400_with_the_reason_alone(server: str) -> None:
    body = {"dataframe_split": {"columns": ["image"], "data": [["aGVsbG8="]]}}
    request = urllib.request.Request(
        f"{server}/invocations", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=60)
    assert caught.value.code == 400
    answer = json.loads(caught.value.read())
    assert answer["error_code"] == "INVALID_PARAMETER_VALUE" and "stack_trace" not in answer
    assert answer["message"] == "the request needs a column 'image_b64' (base64 of each image file); it has ['image']"


def test_params_reach_the_model_through_mlflow_pyfunc(tiny_sweep: TinySweep, champion: str, tmp_path: Path) -> None:
    import mlflow.pyfunc.scoring_server  # noqa: F401 - imported, as some MLflow helpers do: still not a server

    from ggo.tracking import load_pyfunc

    film = tmp_path / "film.png"
    assert cv2.imwrite(str(film), np.random.default_rng(0).integers(0, 256, (50, 70), dtype=np.uint8))
    model = load_pyfunc(tiny_sweep.uri, champion)
    (prob,) = model.predict([str(film)], params={"output": "probability"})
    assert prob.dtype == np.float32 and prob.shape == (50, 70) and 0.0 <= prob.min() <= prob.max() <= 1.0
    assert model.predict([str(film)], params={"threshold": -1.0})[0].all()
    assert not model.predict([str(film)], params={"threshold": 2.0})[0].any()

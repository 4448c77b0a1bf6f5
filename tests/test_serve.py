"""The champion behind a real ``mlflow models serve`` REST server: base64 images in, masks out.

The request a client sends (one row per image; PNG, JPEG, TIFF, ... bytes in base64)::

    POST /invocations  Content-Type: application/json
    {"dataframe_split": {"columns": ["image_b64"], "data": [["<base64 PNG>"], ...]}}

and the answer, one prediction per row::

    {"predictions": [{"mask_png_b64": "<base64 PNG, 0/255, the image's size>",
                      "ggo_fraction": 0.12, "height": 1552, "width": 1726}, ...]}
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import cv2
import numpy as np
import pytest

from helpers import real_data_root
from sweep_fixture import (  # noqa: F401 - fixtures
    TinySweep,
    champion,
    free_port,
    stop_process_group,
    subprocess_env,
    tiny_sweep,
    wait_for_http,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tiny_sweep: TinySweep, champion: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``mlflow models serve -m models:/ggo-segmenter@champion`` on a free 127.0.0.1 port; its base URL."""
    port = free_port()
    log = tmp_path_factory.mktemp("serve") / "server.log"
    bin_dir = str(Path(sys.executable).parent)  # the server runs `uvicorn` from the virtualenv
    env = subprocess_env(MLFLOW_TRACKING_URI=tiny_sweep.uri, PATH=bin_dir + os.pathsep + os.environ.get("PATH", ""))
    with open(log, "w") as handle:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "models", "serve", "-m", champion, "--env-manager", "local",
             "-h", "127.0.0.1", "-p", str(port)],
            env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        wait_for_http(f"http://127.0.0.1:{port}/health", proc, timeout=120, log=log)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process_group(proc)
    assert proc.poll() is not None


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

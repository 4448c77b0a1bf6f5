"""The shippable model: raw X-rays in, GGO masks out, preprocessing inside.

:class:`GGOSegmenter` is an ``mlflow.pyfunc.PythonModel`` over one or more saved generators (one
per fold for an ensemble; their probability maps are averaged). It reads images of any size,
grayscale, RGB or RGBA, 8 or 16 bit, runs the same :func:`ggo.data.preprocess` as training, and
returns each mask at its image's original size. Loading it needs no training config and no GPU:
generators are exported in float32 whatever precision trained them.

Inputs ``predict`` accepts:

- a file path, a numpy array (H, W[, C]), or a list of either -> a list of (H, W) uint8 masks
  (0/1), or probability maps with ``params={"output": "probability"}``; a bad input raises;
- a pandas DataFrame with an ``image_b64`` column (base64 of an image file's bytes: what the REST
  server receives) or a ``path`` column -> a DataFrame with one row per input row, answered per
  film as ``ggo.ship.predict`` does: ``status`` ``ok`` with ``mask_png_b64``, ``ggo_fraction``,
  ``height``, ``width``, or ``status`` ``error`` with a short ``error`` (those four null). A
  request wrong as a whole (no such column) raises :class:`RequestError`, which the server
  answers with HTTP 400 and the reason alone.

Every file is read by :func:`ggo.data.imagefile.read_image_file`, so a truncated JPEG or PNG is
refused here as in ``ggo.ship.predict`` and the dataset reader.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import math
import warnings
from pathlib import Path
from typing import Any, Mapping, Sequence

import cv2
import numpy as np
import pandas as pd

import mlflow.models
import mlflow.pyfunc
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INTERNAL_ERROR, INVALID_PARAMETER_VALUE

PREPROCESS_ARTIFACT = "preprocess"
FRAME_COLUMNS = ("status", "error", "mask_png_b64", "ggo_fraction", "height", "width")
_log = logging.getLogger(__name__)


class RequestError(MlflowException):
    """A request the model cannot answer at all (HTTP 400 from ``mlflow models serve``), or an
    internal failure (``internal=True``, HTTP 500), with a short reason and nothing else.

    The scoring server rewrites an MlflowException's message to ``Failed to predict data '<the
    whole request>'. Error: ...``; the message here ignores that rewrite so the client reads the
    reason alone (no request echo, no stack trace, no server paths).
    """

    def __init__(self, reason: str, internal: bool = False) -> None:
        self._reason = reason
        super().__init__(reason, error_code=INTERNAL_ERROR if internal else INVALID_PARAMETER_VALUE)

    @property
    def message(self) -> str:
        return self._reason

    @message.setter
    def message(self, value: str) -> None:  # the server's rewrite (see the class docstring)
        pass


def read_image(source: Any, name: str | None = None) -> np.ndarray:
    """A path, raw file bytes, or an array -> the array as OpenCV reads it. Raises
    FileNotFoundError or :class:`~ggo.data.imagefile.ImageFileError` (a ValueError naming the file,
    or ``name`` for bytes) for a missing, empty, truncated, unreadable, 1-pixel or over-100-megapixel input."""
    from ggo.data.imagefile import MAX_PIXELS, ImageFileError, read_image_file

    if isinstance(source, np.ndarray):
        image, label = source, name or "the array"
    elif isinstance(source, (bytes, bytearray)):
        label = name or "the image bytes"
        image = read_image_file(bytes(source), name=label, max_pixels=MAX_PIXELS)
    else:
        label = name or str(source)
        image = read_image_file(Path(str(source)), name=label, max_pixels=MAX_PIXELS)
    if image.ndim not in (2, 3) or image.shape[0] < 2 or image.shape[1] < 2:
        raise ImageFileError(label, f"an image of shape {image.shape} is too small or not 2-D: need at least 2 x 2 pixels")
    return image


def _decode_row(value: Any, column: str, row: int) -> np.ndarray:
    """One DataFrame cell -> an image; ValueError with a short reason naming the row."""
    label = f"row {row}"
    if column == "path":
        if not isinstance(value, str):
            raise ValueError(f"{label}: 'path' must be a file path, got {type(value).__name__}")
        return read_image(value, name=f"{label} ({value})")
    if value is None or (isinstance(value, float) and math.isnan(value)):
        raise ValueError(f"{label}: '{column}' is empty (null)")
    if not isinstance(value, (str, bytes)):
        raise ValueError(f"{label}: 'image_b64' must be a base64 string of an image file's bytes, got {type(value).__name__}")
    try:
        data = base64.b64decode("".join(value.split()) if isinstance(value, str) else value, validate=True)  # wrapped lines are fine
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"{label}: 'image_b64' is not valid base64 ({exc}): send base64 of the image file's bytes") from None
    return read_image(data, name=label)


class GGOSegmenter(mlflow.pyfunc.PythonModel):
    """Fold-ensemble GGO segmenter with ggo's preprocessing built in."""

    def load_context(self, context: Any) -> None:
        import keras

        arts = context.artifacts
        self.config = json.loads(Path(arts[PREPROCESS_ARTIFACT]).read_text())
        keys = sorted(k for k in arts if k.startswith("generator"))
        self.generators = [keras.models.load_model(arts[k], compile=False) for k in keys]

    # Plain method so tests and ggo.ship.predict can call it without MLflow's wrapper.
    @property
    def settings(self) -> Any:
        """The model's :class:`ggo.evaluation.evaluate.EvalSettings` (threshold, min component, flip TTA)."""
        from ggo.evaluation.evaluate import EvalSettings

        return EvalSettings.from_config(self.config)

    def probabilities(self, images: Sequence[np.ndarray], batch_size: int = 8) -> list[np.ndarray]:
        """Per image: the mean probability map of the ensemble at the image's original size."""
        from ggo.data import preprocess, restore_mask
        from ggo.evaluation.evaluate import postprocess, predict

        p, settings = self.config, self.settings
        out: list[np.ndarray] = []
        for start in range(0, len(images), batch_size):
            chunk = images[start : start + batch_size]
            x = np.stack(
                [preprocess(img, p["resolution"], fit=p["fit"], clahe=p["clahe"], clahe_clip=p["clahe_clip"]) for img in chunk]
            )[..., None]  # (B, R, R, 1)
            probs = postprocess(predict(list(self.generators), x, settings, batch_size), settings)
            for img, pr in zip(chunk, probs):
                out.append(restore_mask(pr[..., 0], img.shape[:2], fit=p["fit"]))
        return out

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> Any:
        """Masks for ``model_input`` (see the module docstring for what it accepts and returns).

        The ``pd.DataFrame`` hint is what the REST server passes; paths, arrays and lists work too.
        MLflow reads no schema from a DataFrame hint, so it neither validates nor reshapes the input.
        """
        params = params or {}
        threshold = float(params.get("threshold", self.settings.threshold))
        if isinstance(model_input, dict):  # {"inputs": {"image_b64": [...]}} over HTTP
            model_input = pd.DataFrame(model_input)
        if isinstance(model_input, pd.DataFrame):
            return self._predict_frame(model_input, threshold)
        if isinstance(model_input, np.ndarray) and model_input.dtype.kind in "USO":
            raise RequestError(
                "send the images as a DataFrame with an 'image_b64' column: "
                '{"dataframe_split": {"columns": ["image_b64"], "data": [["<base64 of the file>"], ...]}}'
            )
        items = model_input if isinstance(model_input, (list, tuple)) else [model_input]
        images = [read_image(item) for item in items]
        probs = self.probabilities(images)
        if params.get("output") == "probability":
            return probs
        return [(pr > threshold).astype(np.uint8) for pr in probs]

    def _predict_frame(self, frame: pd.DataFrame, threshold: float) -> pd.DataFrame:
        """One row per input row: the mask's fields, or the row's own error; the others go on."""
        column = next((c for c in ("image_b64", "path") if c in frame.columns), None)
        if column is None:
            raise RequestError(
                f"the request needs a column 'image_b64' (base64 of each image file) or 'path'; "
                f"it has {[str(c) for c in frame.columns]}"
            )
        images: dict[int, np.ndarray] = {}
        rows: list[dict[str, Any]] = []
        for i, value in enumerate(frame[column]):
            rows.append(dict.fromkeys(FRAME_COLUMNS))
            try:
                images[i] = _decode_row(value, column, i)
                rows[i]["status"] = "ok"
            except (ValueError, FileNotFoundError) as exc:  # ImageFileError is a ValueError
                rows[i].update(status="error", error=str(exc))
        try:
            probs = self.probabilities(list(images.values()))
        except Exception as exc:  # noqa: BLE001 - the trace goes to the server's log, not to the client
            _log.exception("ggo segmenter failed on a request of %d image(s)", len(images))
            raise RequestError(f"the model failed ({type(exc).__name__}); the server's log has the details", internal=True) from exc
        for i, pr in zip(images, probs):
            mask = (pr > threshold).astype(np.uint8)
            ok, png = cv2.imencode(".png", mask * 255)
            rows[i].update(
                mask_png_b64=base64.b64encode(png.tobytes()).decode("ascii") if ok else "",
                ggo_fraction=float(mask.mean()), height=int(mask.shape[0]), width=int(mask.shape[1]),
            )  # fmt: skip
        return pd.DataFrame(rows, columns=list(FRAME_COLUMNS), dtype=object)  # object: null, not NaN, in JSON


def serving_config(config: Any) -> dict[str, Any]:
    """What a shipped model needs of a run's config (``preprocess.json``): the preprocessing, the
    generator's name and the ``eval`` settings (the schema's defaults for keys the config lacks).
    ``config``: the typed config, or a mapping of it (a logged ``config.yaml``)."""
    from ggo.config import typed
    from ggo.evaluation.evaluate import EvalSettings

    config = typed(config, lenient=True)
    p = config.preprocess
    ev = EvalSettings.from_config(config.eval)
    return {
        "resolution": int(p.resolution),
        "fit": str(p.fit),
        "clahe": bool(p.clahe),
        "clahe_clip": float(p.clahe_clip),
        "threshold": ev.threshold,
        "tta_flip": ev.tta_flip,
        "min_component_px": ev.min_component_px,
        "lung_gate": ev.lung_gate,
        "gen": str(config.gen.name),
    }


def export_generator(generator: Any, gen_config: Mapping[str, Any], resolution: int, path: Path) -> Path:
    """Save ``generator`` as a float32 ``.keras`` file, whatever precision trained it.

    A model saved under mixed_float16 would compute in float16 wherever it is loaded, which CPUs
    run slowly or not at all; rebuilding under float32 and copying the weights makes the shipped
    model portable.
    """
    import keras

    from ggo.models import generator_from_config

    previous = keras.mixed_precision.global_policy()
    try:
        keras.mixed_precision.set_global_policy("float32")
        clone = generator_from_config(gen_config, resolution)
        clone.set_weights([np.asarray(w, np.float32) for w in generator.get_weights()])
        clone.save(path)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    return path


def pip_requirements() -> list[str]:
    """What a machine needs to load the model (ggo's own code travels with it)."""
    from importlib.metadata import version

    reqs = []
    for dist in ("tensorflow", "keras", "numpy", "opencv-python-headless", "torchxrayvision", "pandas"):
        try:
            reqs.append(f"{dist}=={version(dist)}")
        except Exception:
            reqs.append(dist)
    return reqs


def model_signature(preprocess_config: Mapping[str, Any]) -> Any:
    """The logged model's signature: its ``params`` only (``threshold``, default the model's own;
    ``output``, ``mask`` or ``probability``), so ``pyfunc.predict(..., params=...)`` and a REST
    request's ``"params"`` reach :meth:`GGOSegmenter.predict` instead of being dropped. No input
    schema: MLflow would then coerce the paths, arrays and lists ``predict`` accepts."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import ParamSchema, ParamSpec

    from ggo.evaluation.evaluate import EvalSettings

    threshold = EvalSettings.from_config(preprocess_config).threshold
    return ModelSignature(params=ParamSchema([ParamSpec("threshold", "double", threshold), ParamSpec("output", "string", "mask")]))


def log_segmenter(tracker: Any, generator_paths: Sequence[str | Path], preprocess_config: dict[str, Any], workdir: str | Path) -> None:
    """Log ``generator_paths`` (saved ``.keras`` files) as one pyfunc model named ``model``."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    cfg_path = workdir / "preprocess.json"
    cfg_path.write_text(json.dumps(preprocess_config, indent=2))
    artifacts = {f"generator_{i}": str(p) for i, p in enumerate(generator_paths)}
    artifacts[PREPROCESS_ARTIFACT] = str(cfg_path)
    with warnings.catch_warnings():
        # MLflow advises an input example to check a signature's input schema against; this one has
        # no input schema (see model_signature), and an example would make MLflow load and run the
        # model inside every training run (measured: +0.7 s warm, +6.5 s cold for a tiny model).
        warnings.filterwarnings("ignore", message=".*An input example was not provided", category=UserWarning)
        tracker.log_model(
            python_model=str(Path(__file__).resolve()),  # models-from-code: no pickled object in the model
            artifacts=artifacts,
            code_paths=[str(Path(__file__).resolve().parents[1])],  # the whole ggo package
            pip_requirements=pip_requirements(),
            signature=model_signature(preprocess_config),
        )


# Models-from-code entry: when MLflow loads this file as a model's code, this is the model.
mlflow.models.set_model(GGOSegmenter())

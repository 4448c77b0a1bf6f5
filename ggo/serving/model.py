"""The shippable model: raw X-rays in, GGO masks out, preprocessing inside.

:class:`GGOSegmenter` is an ``mlflow.pyfunc.PythonModel`` over one or more saved generators (one
per fold for an ensemble; their probability maps are averaged). It reads images of any size,
grayscale, RGB or RGBA, 8 or 16 bit, runs the same :func:`ggo.data.preprocess` as training, and
returns each mask at its image's original size. Loading it needs no training config and no GPU:
generators are exported in float32 whatever precision trained them.

Inputs ``predict`` accepts, and who can send them:

- over HTTP (``mlflow models serve``), and from Python: a table with an ``image_b64`` column
  (base64 of an image file's bytes): a pandas DataFrame, or a dict of columns, which is what the
  REST server makes of any JSON, CSV or Parquet body. The answer is a DataFrame with one row per
  input row, answered per film as ``ggo.ship.predict`` does: ``status`` ``ok`` with
  ``mask_png_b64``, ``ggo_fraction``, ``height``, ``width``, or ``status`` ``error`` with a short
  ``error`` (those four null). The request is checked against its budget
  (:mod:`ggo.serving.limits`) before any pixel is decoded (:mod:`ggo.serving.request`). A table
  with a ``path`` column is refused with one fixed message: that is the shape a client would send
  to make the server open files on its own disk.
- from Python only: a file path, a numpy array (H, W[, C]), or a list of either -> a list of
  (H, W) uint8 masks (0/1), or probability maps with ``params={"output": "probability"}``; a bad
  input raises. The REST server never hands the model a path or a list of paths (it makes numpy
  arrays or tables of what it parses); inside a scoring server these inputs are refused anyway.

A request wrong as a whole raises :class:`RequestError` (HTTP 400; 413 over a limit; 500 when the
model itself fails), whose message is the reason alone. When the model loads in a scoring server
it also guards the server's own error paths (:mod:`ggo.serving.http`): no response ever carries
a stack trace, a server path or an echo of the request.

Every file is read by :func:`ggo.data.imagefile.read_image_file` (or its two steps), so a file is
accepted or refused here exactly as in ``ggo.ship.predict`` and the dataset reader.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import warnings
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

import mlflow.models
import mlflow.pyfunc

from ggo.serving.limits import RequestLimits, million
from ggo.serving.request import FRAME_COLUMNS, REQUEST_SHAPE, RequestError, as_frame, read_rows, segment_rows

PREPROCESS_ARTIFACT = "preprocess"
_log = logging.getLogger(__name__)
#: One request decodes and segments at a time per process: the budget bounds one request's
#: memory, and TensorFlow already uses every core for one batch. Others wait their turn.
_ONE_AT_A_TIME = threading.Lock()

__all__ = [
    "FRAME_COLUMNS", "GGOSegmenter", "RequestError", "export_generator", "log_segmenter", "model_signature",
    "pip_requirements", "read_image", "serving_config",
]  # fmt: skip


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
    elif isinstance(source, (str, os.PathLike)):
        label = name or str(source)
        image = read_image_file(Path(source), name=label, max_pixels=MAX_PIXELS)
    else:
        raise TypeError(f"an input must be a file path, image bytes or a numpy array, got {type(source).__name__}")
    if image.ndim not in (2, 3) or image.shape[0] < 2 or image.shape[1] < 2:
        raise ImageFileError(label, f"an image of shape {image.shape} is too small or not 2-D: need at least 2 x 2 pixels")
    return image


def _in_scoring_server() -> bool:
    """Does this process answer HTTP requests (``mlflow models serve``)?"""
    from ggo.serving import http

    return http.installed() or os.environ.get("_MLFLOW_IS_IN_SERVING_ENVIRONMENT", "").lower() == "true"


class GGOSegmenter(mlflow.pyfunc.PythonModel):
    """Fold-ensemble GGO segmenter with ggo's preprocessing built in."""

    def load_context(self, context: Any) -> None:
        import keras

        from ggo.serving import http

        self.limits = RequestLimits.from_env()  # a bad value stops the server at start, naming the variable
        http.install(self.limits)
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

    def prepare(self, image: np.ndarray) -> np.ndarray:
        """One image -> the model's (R, R) input, as training preprocessed it."""
        from ggo.data import preprocess

        p = self.config
        return preprocess(image, p["resolution"], fit=p["fit"], clahe=p["clahe"], clahe_clip=p["clahe_clip"])

    def infer(self, inputs: np.ndarray, batch_size: int = 8) -> np.ndarray:
        """(B, R, R) prepared inputs -> (B, R, R, 1) postprocessed probability maps of the ensemble
        (a film the film-level answer calls GGO-free: all zero)."""
        return self.answer(inputs, batch_size)[0]

    def answer(self, inputs: np.ndarray, batch_size: int = 8) -> tuple[np.ndarray, np.ndarray]:
        """(B, R, R) prepared inputs -> the postprocessed maps (:meth:`infer`) and each film's
        ``ggo_probability`` (NaN for a model without a film-level answer, :mod:`ggo.evaluation.film`)."""
        from ggo.evaluation.evaluate import film_probabilities, postprocess, predict

        settings = self.settings
        raw = predict(list(self.generators), inputs[..., None], settings, batch_size)
        return postprocess(raw, settings), film_probabilities(raw, settings)

    def restore(self, prob: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
        """One (R, R[, 1]) map -> (H, W) float32 at the original image's size."""
        from ggo.data import restore_mask

        return restore_mask(prob[..., 0] if prob.ndim == 3 else prob, shape, fit=self.config["fit"])

    def probabilities(self, images: Sequence[np.ndarray], batch_size: int = 8) -> list[np.ndarray]:
        """Per image: the mean probability map of the ensemble at the image's original size."""
        return self.film_answers(images, batch_size)[0]

    def film_answers(self, images: Sequence[np.ndarray], batch_size: int = 8) -> tuple[list[np.ndarray], list[float]]:
        """Per image: its probability map at its original size (:meth:`probabilities`) and its
        ``ggo_probability`` (NaN for a model without a film-level answer)."""
        out: list[np.ndarray] = []
        film: list[float] = []
        for start in range(0, len(images), batch_size):
            chunk = images[start : start + batch_size]
            probs, p_ggo = self.answer(np.stack([self.prepare(img) for img in chunk]), batch_size)
            out.extend(self.restore(pr, img.shape[:2]) for img, pr in zip(chunk, probs))
            film.extend(float(p) for p in p_ggo)
        return out, film

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> Any:
        """Masks for ``model_input`` (see the module docstring for what it accepts and returns).

        The ``pd.DataFrame`` hint is what the REST server passes; paths, arrays and lists work too
        from Python. MLflow reads no schema from a DataFrame hint, so it neither validates nor
        reshapes the input.
        """
        params = params or {}
        if isinstance(model_input, (pd.DataFrame, dict)):
            return self._predict_frame(model_input, params)
        threshold = float(params.get("threshold", self.settings.threshold))
        if _in_scoring_server() or (isinstance(model_input, np.ndarray) and model_input.dtype.kind in "USO"):
            raise RequestError(f"send the images as a table with an 'image_b64' column: {REQUEST_SHAPE}")
        items = model_input if isinstance(model_input, (list, tuple)) else [model_input]
        images = [read_image(item) for item in items]
        probs, film = self.film_answers(images)
        if params.get("output") == "probability":
            return probs
        masks = [(pr > threshold).astype(np.uint8) for pr in probs]
        if params.get("output") == "film":
            return [
                {"ggo_present": bool(m.any()), "ggo_probability": None if np.isnan(p) else p, "mask": m}
                for m, p in zip(masks, film)
            ]  # fmt: skip
        return masks

    def _predict_frame(self, table: Any, params: Mapping[str, Any]) -> pd.DataFrame:
        """One row per input row: the mask's fields, or the row's own error; the others go on.
        Whatever fails beyond a row is a :class:`RequestError` (its trace in the server's log)."""
        try:
            threshold = float(params.get("threshold", self.settings.threshold))
        except (TypeError, ValueError):
            raise RequestError(f"the parameter 'threshold' must be a number, got {str(params.get('threshold'))[:40]!r}") from None
        limits = getattr(self, "limits", None) or RequestLimits.from_env()
        try:
            rows = read_rows(as_frame(table), limits)  # the whole budget, before any pixel is decoded
            with _ONE_AT_A_TIME:
                return segment_rows(
                    rows, prepare=self.prepare, infer=self.answer, restore=self.restore, threshold=threshold,
                    max_pixels=million(limits.max_image_megapixels),
                )  # fmt: skip
        except RequestError:
            raise
        except Exception as exc:  # noqa: BLE001 - a failure outside any one row: the server's, in its log
            _log.exception("the ggo segmenter failed on a request")
            raise RequestError(f"the model failed ({type(exc).__name__}); the server's log has the details", 500) from exc


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
        "film_a": ev.film_a,
        "film_b": ev.film_b,
        "film_cut": ev.film_cut,
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

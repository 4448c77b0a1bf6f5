"""The shippable model: raw X-rays in, GGO masks out, preprocessing inside.

:class:`GGOSegmenter` is an ``mlflow.pyfunc.PythonModel`` over one or more saved generators (one
per fold for an ensemble; their probability maps are averaged). It reads images of any size,
grayscale, RGB or RGBA, 8 or 16 bit, runs the same :func:`ggo.data.preprocess` as training, and
returns each mask at its image's original size. Loading it needs no training config and no GPU:
generators are exported in float32 whatever precision trained them.

Inputs ``predict`` accepts:

- a file path, a numpy array (H, W[, C]), or a list of either -> a list of (H, W) uint8 masks
  (0/1), or probability maps with ``params={"output": "probability"}``;
- a pandas DataFrame with a ``path`` column or an ``image_b64`` column (base64 PNG/JPEG bytes,
  what the REST server receives) -> a DataFrame with ``mask_png_b64``, ``ggo_fraction``,
  ``height``, ``width`` per row.
"""

from __future__ import annotations

import base64
import json
import warnings
from pathlib import Path
from typing import Any, Mapping, Sequence

import cv2
import numpy as np

import mlflow.models
import mlflow.pyfunc

PREPROCESS_ARTIFACT = "preprocess"

# predict() deliberately has no type hints (MLflow would turn them into a strict input schema and
# refuse DataFrames); silence MLflow's advice to add them.
warnings.filterwarnings("ignore", message=".*[Tt]ype hint.*", category=UserWarning)


def read_image(source: Any) -> np.ndarray:
    """A path, raw bytes, or an array -> the array as OpenCV reads it. Clear errors for bad files."""
    if isinstance(source, np.ndarray):
        image = source
    elif isinstance(source, (bytes, bytearray)):
        image = cv2.imdecode(np.frombuffer(source, np.uint8), cv2.IMREAD_UNCHANGED)
        if image is None:
            raise ValueError("the bytes given are not an image OpenCV can decode (PNG, JPEG, TIFF, ...)")
    else:
        path = Path(str(source))
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such file")
        if path.stat().st_size == 0:
            raise ValueError(f"{path}: the file is empty")
        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if image is None:
            raise ValueError(f"{path}: not an image OpenCV can read (corrupt, or not PNG/JPEG/TIFF/...)")
    if image.ndim not in (2, 3) or image.shape[0] < 2 or image.shape[1] < 2:
        raise ValueError(f"image of shape {image.shape} is too small or not 2-D: need at least 2 x 2 pixels")
    return image


class GGOSegmenter(mlflow.pyfunc.PythonModel):
    """Fold-ensemble GGO segmenter with ggo's preprocessing built in."""

    def load_context(self, context: Any) -> None:
        import keras

        arts = context.artifacts
        self.config = json.loads(Path(arts[PREPROCESS_ARTIFACT]).read_text())
        keys = sorted(k for k in arts if k.startswith("generator"))
        self.generators = [keras.models.load_model(arts[k], compile=False) for k in keys]

    # Plain method so tests and ggo.predict can call it without MLflow's wrapper.
    @property
    def settings(self) -> Any:
        """The model's :class:`ggo.evaluation.EvalSettings` (threshold, min component, flip TTA)."""
        from ggo.evaluation import EvalSettings

        return EvalSettings.from_config(self.config)

    def probabilities(self, images: Sequence[np.ndarray], batch_size: int = 8) -> list[np.ndarray]:
        """Per image: the mean probability map of the ensemble at the image's original size."""
        from ggo.data import preprocess, restore_mask
        from ggo.evaluation import postprocess, predict

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

    def predict(self, context, model_input, params=None):  # no type hints: MLflow would read them as a schema
        import pandas as pd

        params = params or {}
        threshold = float(params.get("threshold", self.settings.threshold))
        if isinstance(model_input, pd.DataFrame):
            return self._predict_frame(model_input, threshold)
        items = model_input if isinstance(model_input, (list, tuple)) else [model_input]
        images = [read_image(item) for item in items]
        probs = self.probabilities(images)
        if params.get("output") == "probability":
            return probs
        return [(pr > threshold).astype(np.uint8) for pr in probs]

    def _predict_frame(self, frame: Any, threshold: float) -> Any:
        import pandas as pd

        if "image_b64" in frame.columns:
            images = [read_image(base64.b64decode(s)) for s in frame["image_b64"]]
        elif "path" in frame.columns:
            images = [read_image(s) for s in frame["path"]]
        else:
            raise ValueError(
                f"a DataFrame input needs an 'image_b64' column (base64 PNG/JPEG) or a 'path' column; "
                f"got columns {list(frame.columns)}"
            )
        rows = []
        for pr in self.probabilities(images):
            mask = (pr > threshold).astype(np.uint8)
            ok, png = cv2.imencode(".png", mask * 255)
            rows.append(
                {
                    "mask_png_b64": base64.b64encode(png.tobytes()).decode("ascii") if ok else "",
                    "ggo_fraction": float(mask.mean()),
                    "height": int(mask.shape[0]),
                    "width": int(mask.shape[1]),
                }
            )
        return pd.DataFrame(rows)


def serving_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """What a shipped model needs of a run's config (``preprocess.json``): the preprocessing, the
    generator's name and the ``eval`` settings (the schema's defaults for keys the config lacks)."""
    from ggo.evaluation import EvalSettings

    p = config["preprocess"]
    ev = EvalSettings.from_config(config.get("eval"))
    return {
        "resolution": int(p["resolution"]),
        "fit": p["fit"],
        "clahe": bool(p["clahe"]),
        "clahe_clip": float(p["clahe_clip"]),
        "threshold": ev.threshold,
        "tta_flip": ev.tta_flip,
        "min_component_px": ev.min_component_px,
        "gen": config["gen"]["name"],
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


def log_segmenter(tracker: Any, generator_paths: Sequence[str | Path], preprocess_config: dict[str, Any], workdir: str | Path) -> None:
    """Log ``generator_paths`` (saved ``.keras`` files) as one pyfunc model named ``model``."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    cfg_path = workdir / "preprocess.json"
    cfg_path.write_text(json.dumps(preprocess_config, indent=2))
    artifacts = {f"generator_{i}": str(p) for i, p in enumerate(generator_paths)}
    artifacts[PREPROCESS_ARTIFACT] = str(cfg_path)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Tt]ype hint.*", category=UserWarning)
        tracker.log_model(
            python_model=str(Path(__file__).resolve()),  # models-from-code: no pickled object in the model
            artifacts=artifacts,
            code_paths=[str(Path(__file__).resolve().parent)],
            pip_requirements=pip_requirements(),
        )


# Models-from-code entry: when MLflow loads this file as a model's code, this is the model.
mlflow.models.set_model(GGOSegmenter())

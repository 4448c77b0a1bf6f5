"""Inference from image files through the logged MLflow model, preprocessing included.

Writes X-ray-sized synthetic films (PNG and JPEG, ``ggo.data.make_synthetic_dataset``), exports a
freshly built default generator with ``export_generator`` + ``log_segmenter`` into a throw-away
MLflow store, loads it back with ``ggo.tracking.load_pyfunc`` and times ``predict`` over the file
paths: reading, preprocessing, the network, thresholding and restoring each mask to its
image's size, which is what a user of ``python -m ggo.predict`` waits for.
"""

from __future__ import annotations

import logging
import statistics
import tempfile
import warnings
import time
from pathlib import Path
from typing import Any


def measure_inference(
    *,
    resolution: int = 256,
    gen: str = "unet",
    gen_opts: dict[str, Any],
    n_files: int = 16,
    image_size: int = 1024,
    repeats: int = 3,
    workdir: str | Path | None = None,
) -> dict[str, Any]:
    """Images/s of the logged pyfunc model's ``predict`` over ``n_files`` image paths."""
    # MLflow advises type hints on predict each time it defines the model class (ggo.serving.model
    # leaves them out on purpose). Its own decorator puts a "once" filter in front of any
    # ignore filter, so drop the advice where it is shown instead.
    shown = warnings.showwarning

    def show(message, category, *args, **kwargs):
        if "type hint" not in str(message).lower():
            shown(message, category, *args, **kwargs)

    warnings.showwarning = show
    try:
        return _measure(resolution, gen, gen_opts, n_files, image_size, repeats, workdir)
    finally:
        warnings.showwarning = shown


def _measure(resolution, gen, gen_opts, n_files, image_size, repeats, workdir) -> dict[str, Any]:
    import keras

    from ggo.data import make_synthetic_dataset
    from ggo.serving.model import export_generator
    from ggo.models import build_generator
    from ggo.serving.model import log_segmenter
    from ggo.tracking import MlflowTracker, load_pyfunc
    from ggo.training import set_random_seed

    with tempfile.TemporaryDirectory(prefix="ggo-bench-infer-", dir=workdir) as tmp:
        tmp = Path(tmp)
        data = make_synthetic_dataset(tmp / "films", n_images=n_files, n_patients=n_files, image_size=image_size)
        paths = sorted(str(p) for p in (data / "images").iterdir())

        keras.mixed_precision.set_global_policy("float32")
        set_random_seed(0)
        generator = build_generator(gen, resolution, **gen_opts)
        model_file = export_generator(generator, {"name": gen, **gen_opts}, resolution, tmp / "generator.keras")
        serving = {
            "resolution": resolution, "fit": "pad", "clahe": False, "clahe_clip": 2.0, "threshold": 0.5,
            "tta_flip": False, "min_component_px": 0, "gen": gen,
        }  # fmt: skip
        uri = f"sqlite:///{tmp / 'mlruns' / 'mlflow.db'}"
        mlflow_log = logging.getLogger("mlflow")
        level = mlflow_log.level
        mlflow_log.setLevel(logging.WARNING)  # no "creating tables" chatter from the throw-away store
        try:
            t = time.perf_counter()
            tracker = MlflowTracker(uri=uri, experiment="ggo-bench", run_name="bench-inference")
            log_segmenter(tracker, [model_file], serving, tmp / "model")
            tracker.finish()
            log_s = time.perf_counter() - t
            t = time.perf_counter()
            model = load_pyfunc(uri, f"runs:/{tracker.run_id}/model")
            load_s = time.perf_counter() - t
            model.predict(paths[:1])  # warm-up: traces the generator
            seconds = []
            for _ in range(repeats):
                t = time.perf_counter()
                masks = model.predict(paths)
                seconds.append(time.perf_counter() - t)
            if len(masks) != len(paths):
                raise RuntimeError(f"predict returned {len(masks)} masks for {len(paths)} files")
        finally:
            mlflow_log.setLevel(level)
            keras.backend.clear_session()
    return {
        "images_per_s": round(len(paths) / statistics.median(seconds), 2),
        "n_files": len(paths),
        "image_size": image_size,
        "resolution": resolution,
        "gen": gen,
        "repeats": repeats,
        "predict_s": [round(s, 3) for s in seconds],
        "log_model_s": round(log_s, 2),
        "load_model_s": round(load_s, 2),
    }


__all__ = ["measure_inference"]

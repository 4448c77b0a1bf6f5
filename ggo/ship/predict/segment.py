"""Masks for files: the model from the registry, one row per input, each failure recorded."""

from __future__ import annotations

import csv
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ggo.data.atomic import atomic_file
from ggo.ship.predict.files import collect_inputs, load_image, outcome_overlay, overlay, unique_stem

DEFAULT_MODEL = "models:/ggo-segmenter@champion"
CSV_COLUMNS = ("file", "ggo_present", "ggo_probability", "ggo_fraction", "height", "width", "status", "error", "mask", "overlay", "dice")


@dataclass
class Prediction:
    """The outcome for one input: ``status`` ``ok`` with the mask's figures, or ``error`` with why."""

    file: str
    status: str = "ok"
    error: str = ""
    ggo_fraction: float = float("nan")
    ggo_probability: float = float("nan")  # P(the film shows GGO); NaN: the model has no film-level answer
    height: int | None = None
    width: int | None = None
    mask: str = ""
    overlay: str = ""
    dice: float = float("nan")  # against the true mask, when one is known
    probability: np.ndarray | None = field(default=None, repr=False)

    def row(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "ggo_present": "" if math.isnan(self.ggo_fraction) else int(self.ggo_fraction > 0),
            "ggo_probability": "" if math.isnan(self.ggo_probability) else f"{self.ggo_probability:.6f}",
            "ggo_fraction": "" if math.isnan(self.ggo_fraction) else f"{self.ggo_fraction:.6f}",
            "height": "" if self.height is None else self.height,
            "width": "" if self.width is None else self.width,
            "status": self.status,
            "error": self.error,
            "mask": self.mask,
            "overlay": self.overlay,
            "dice": "" if math.isnan(self.dice) else f"{self.dice:.6f}",
        }


def film_answer(segmenter: Any, image: np.ndarray) -> tuple[np.ndarray, float]:
    """One image's probability map at its size and its ``ggo_probability`` (NaN when unknown: a
    model without a film-level answer, or one saved before ggo had it)."""
    if hasattr(segmenter, "film_answers"):
        (prob,), (p_ggo,) = segmenter.film_answers([image])
        return prob, p_ggo
    return segmenter.probabilities([image])[0], float("nan")


def load_segmenter(model_uri: str = DEFAULT_MODEL, tracking_uri: str | None = None) -> Any:
    """The ggo segmenter behind ``model_uri`` as its Python object (it has ``probabilities``)."""
    from ggo import tracking

    uri = tracking.resolve_uri(tracking_uri)
    if model_uri.startswith(("models:/", "runs:/")):
        try:
            tracking.check_store_exists(uri)
        except FileNotFoundError as exc:
            raise RuntimeError(f"cannot load {model_uri}: {exc}") from None
    model = tracking.load_pyfunc(uri, model_uri)
    segmenter = model.unwrap_python_model()
    if not hasattr(segmenter, "probabilities"):
        raise RuntimeError(
            f"{model_uri} is a {type(segmenter).__name__}, not a ggo segmenter: pass --model with a model "
            f"logged by ggo.train (runs:/<run id>/model) or registered by ggo.ship.promote"
        )
    return segmenter


def model_settings(segmenter: Any) -> Any:
    """The :class:`ggo.evaluation.evaluate.EvalSettings` a segmenter ships with (the schema's defaults for
    what its ``preprocess.json`` lacks)."""
    from ggo.evaluation.evaluate import EvalSettings

    return EvalSettings.from_config(getattr(segmenter, "config", {}))


def predict_files(
    segmenter: Any,
    inputs: Sequence[str | Path],
    out_dir: str | Path,
    *,
    threshold: float | None = None,
    keep_probabilities: bool = False,
    truth: Mapping[str, np.ndarray] | None = None,
    log: Any = None,
) -> list[Prediction]:
    """Masks, overlays and ``predictions.csv`` under ``out_dir`` for ``inputs`` (files or folders).

    Each input is handled on its own: a failure is recorded in its row and the rest go on.
    ``threshold`` defaults to the model's (:func:`model_settings`). Where ``truth`` (``{stem: mask}``)
    holds a mask of the image's size, the overlay shows TP / FP / FN (:func:`outcome_overlay`) under
    the file name and its dice, and the row gets the dice. Returns one :class:`Prediction` per input.
    """
    from ggo.evaluation.viz import film_dice

    import cv2

    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if threshold is None:
        threshold = model_settings(segmenter).threshold
    results: list[Prediction] = []
    used: set[str] = set()
    for path, problem in collect_inputs(inputs):
        pred = Prediction(file=str(path))
        results.append(pred)
        if problem:
            pred.status, pred.error = "error", problem
            log(f"[ggo] {problem}")
            continue
        try:
            image = load_image(path)
            prob, pred.ggo_probability = film_answer(segmenter, image)  # (H, W) float32 at the original size
            mask = prob > threshold
            stem = unique_stem(path.stem, used)
            mask_path, overlay_path = out / f"{stem}_mask.png", out / f"{stem}_overlay.png"
            with atomic_file(mask_path) as tmp:  # a crash leaves no half-written mask
                if not cv2.imwrite(str(tmp), mask.astype(np.uint8) * 255):
                    raise OSError(f"could not write {mask_path}: check that {out} is writable")
            true = (truth or {}).get(path.stem)
            if true is not None and true.shape == mask.shape:
                pred.dice = film_dice(true, mask)
                picture = outcome_overlay(image, true, mask, f"{path.name}  dice {pred.dice:.3f}")
            else:
                picture = overlay(image, mask)
            with atomic_file(overlay_path) as tmp:
                if not cv2.imwrite(str(tmp), picture):
                    raise OSError(f"could not write {overlay_path}: check that {out} is writable")
        except Exception as exc:  # noqa: BLE001 - one bad input must not stop the rest
            message = str(exc) if str(path) in str(exc) else f"{path}: {exc}"
            pred.status, pred.error = "error", f"{type(exc).__name__}: {message}"
            log(f"[ggo] {pred.error}")
            continue
        pred.height, pred.width = int(mask.shape[0]), int(mask.shape[1])
        pred.ggo_fraction = float(mask.mean())
        pred.mask, pred.overlay = str(mask_path), str(overlay_path)
        if keep_probabilities:
            pred.probability = prob
    with atomic_file(out / "predictions.csv") as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(p.row() for p in results)
    return results


__all__ = ["CSV_COLUMNS", "DEFAULT_MODEL", "Prediction", "load_segmenter", "model_settings", "predict_files"]

"""Scoring ``predict``'s masks against known ones, at each image's original size, and the
protocol's patient split (the seed and fractions are the config schema's ``data`` defaults)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ggo.config import defaults
from ggo.ship.predict.files import IMAGE_SUFFIXES
from ggo.ship.predict.segment import Prediction

_SPLIT = defaults("data")
_THRESHOLD = defaults("eval")["threshold"]


def truth_from_folder(folder: str | Path, problems: list[str] | None = None) -> dict[str, np.ndarray]:
    """``{stem: mask}`` from a folder of mask images (``<stem>.png`` or ``<stem>_mask.png``).

    A mask that cannot be read (empty, truncated, not an image) is left out, so its image is not
    scored; why goes into ``problems`` when given.
    """
    import cv2

    from ggo.data.imagefile import ImageFileError, read_image_file

    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"--truth {folder}: no such folder of masks")
    masks: dict[str, np.ndarray] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        try:
            mask = read_image_file(path, flags=cv2.IMREAD_GRAYSCALE, max_pixels=None)
        except ImageFileError as exc:
            if problems is not None:
                problems.append(f"{exc}: not used as a true mask")
            continue
        stem = path.stem[: -len("_mask")] if path.stem.endswith("_mask") else path.stem
        masks[stem] = mask > 0
    return masks


def truth_from_dataset(root: str | Path, patients: dict[str, str] | None = None) -> dict[str, np.ndarray]:
    """``{stem: GGO mask}`` for every GGO-annotated image of a dataset in the GGO layout; fills
    ``patients`` (image name -> patient id) when given. GGO-free films are left out, as the
    evaluation protocol's GGO metrics leave them out (their figure is ``ggo_free_area``), so the
    seeded split of these patients is the one training used (:func:`split_members`)."""
    from ggo.data import iter_records

    truth = {}
    for record in iter_records(root):
        if record.ggo_free:
            continue
        truth[Path(record.name).stem] = record.mask
        if patients is not None:
            patients[record.name] = record.patient_id
    return truth


def split_members(
    patients: dict[str, str],
    split: str,
    *,
    seed: int = _SPLIT["seed"],
    test_fraction: float = _SPLIT["test_fraction"],
    folds: int = _SPLIT["folds"],
) -> set[str]:
    """Names of the images in ``split`` (``test`` or ``fold<k>``) of the evaluation protocol's
    seeded patient split: the split a run with the same data config trained and tested on."""
    from ggo.data import split_patients

    assignment = split_patients(patients, seed=seed, test_fraction=test_fraction, folds=folds)
    valid = sorted(set(assignment.values()))
    if split not in valid:
        raise ValueError(f"--split {split!r}: not a split of this protocol; valid: {', '.join(valid)}")
    return {name for name, where in assignment.items() if where == split}


def score(
    results: Sequence[Prediction],
    truth: dict[str, np.ndarray],
    threshold: float = _THRESHOLD,
    *,
    resolution: int | None = None,
    fit: str = "pad",
) -> dict[str, Any]:
    """The evaluation protocol's metrics over the predictions that have a true mask of the same size.

    ``dice`` is the mean over images (resolution-independent). The pooled metrics (``dice_pooled``,
    ``iou``, ``precision``, ``recall``, ``specificity``) sum pixel counts over the set; with
    ``resolution`` (the model's, and its ``fit``) each image's counts are weighted as the model's
    grid weighs them (every image the same size, padding counted as true negatives), so the numbers
    match a run's ``test/*``. Without it, every original pixel counts once, and large films dominate.
    (:func:`ggo.evaluation.evaluate.score_original_size` computes them.)
    """
    from ggo.evaluation.evaluate import score_original_size

    pairs, scored, unmatched = [], [], []
    for pred in results:
        if pred.status != "ok" or pred.probability is None:
            continue
        true = truth.get(Path(pred.file).stem)
        if true is None or true.shape != pred.probability.shape:
            unmatched.append(pred.file)
            continue
        pairs.append((true, pred.probability))
        scored.append(pred.file)
    values = score_original_size(pairs, threshold, resolution=resolution, fit=fit)
    return {
        "n_scored": len(scored), "metrics": values, "threshold": threshold, "unmatched": unmatched,
        "pooled_on": f"the model's {resolution} px grid ({fit})" if resolution else "original pixels",
    }  # fmt: skip


__all__ = ["score", "split_members", "truth_from_dataset", "truth_from_folder"]

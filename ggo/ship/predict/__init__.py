"""GGO masks for new X-rays: ``python -m ggo.predict <images or folders>``.

For every image (folders are searched recursively for .png, .jpg, .jpeg, .tif, .tiff, .bmp and
.webp files) it writes, under ``--out`` (default ``predictions/``):

- ``<stem>_mask.png``: the GGO mask at the image's original size, 0 (background) or 255 (GGO);
- ``<stem>_overlay.png``: the X-ray with GGO tinted red and outlined; where the true mask is known
  (``--truth`` or ``--score``), TP (GGO found) yellow, FP (false alarm) orange and FN (GGO missed)
  sky blue, each tinted and outlined, under a band with the file name and its dice and above the
  colour key;
- one row in ``predictions.csv``: file, ggo_present (1 when the film shows GGO at all: its mask
  is empty otherwise), ggo_probability (how sure the model is; empty for a model without a
  film-level answer, :mod:`ggo.evaluation.film`), ggo_fraction (share of the image's pixels that
  are GGO), height, width, status (``ok`` or ``error``), error, the paths of the two PNGs, and dice
  (against the true mask; empty without one).

Two inputs with the same stem get ``-2``, ``-3``... appended. An input that cannot be used (missing,
empty, corrupt, truncated, not an image, smaller than 2 x 2, larger than 100 megapixels) gets a
row with its error and the others go on; the exit status is 0 only when every input succeeded.

The model is the registry's champion by default (``python -m ggo.promote`` sets it); any MLflow
model URI of a ggo segmenter works (``runs:/<run id>/model``, ``models:/ggo-segmenter/3``).

With ``--truth <folder of masks>`` (files named like the image, ``<stem>.png`` or
``<stem>_mask.png``, any non-zero pixel is GGO) or ``--score <dataset root>`` (the GGO dataset
layout, masks built from its crops) the predictions are also scored with the evaluation
protocol's metrics, at each image's original size, and written to ``scores.json``.

Examples::

    python -m ggo.predict scans/                          # every image under scans/
    python -m ggo.predict a.png b.jpg --out results/ --threshold 0.4
    python -m ggo.predict scans/ --model runs:/<run id>/model
    python -m ggo.predict data/covid-19-chest-xray-segmentations-dataset/images --score data/covid-19-chest-xray-segmentations-dataset
"""

from __future__ import annotations

from ggo.ship.predict.cli import build_parser, main
from ggo.ship.predict.files import IMAGE_SUFFIXES, MAX_PIXELS, collect_inputs, load_image, outcome_overlay, overlay
from ggo.ship.predict.scoring import score, split_members, truth_from_dataset, truth_from_folder
from ggo.ship.predict.segment import CSV_COLUMNS, DEFAULT_MODEL, Prediction, load_segmenter, model_settings, predict_files

__all__ = [
    "CSV_COLUMNS",
    "DEFAULT_MODEL",
    "IMAGE_SUFFIXES",
    "MAX_PIXELS",
    "Prediction",
    "build_parser",
    "collect_inputs",
    "load_image",
    "load_segmenter",
    "main",
    "model_settings",
    "outcome_overlay",
    "overlay",
    "predict_files",
    "score",
    "split_members",
    "truth_from_dataset",
    "truth_from_folder",
]

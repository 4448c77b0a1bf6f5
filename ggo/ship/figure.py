"""A picture of a model on held-out films: per film, where its mask meets the truth.

Each film of the split (``--split test``, ``fold0`` .. ``fold4``, or ``all``; the seeded patient
split of the evaluation protocol, as ``python -m ggo predict --split`` takes it) is predicted at its
original size as ``python -m ggo predict`` does (the model's threshold and post-processing), and
drawn with TP (GGO found) yellow, FP (false alarm) orange and FN (GGO missed) sky blue, under its
file name and its dice. ``--n`` films go into a grid with the colour key below: ``--pick spread``
(default) takes them evenly along the dice ranking, best to worst, so the picture is not a choice
of the best; ``--pick name`` takes the first ``--n`` by file name. Each film's name and dice are
printed too.

``--model`` is any MLflow model URI of a ggo segmenter (``models:/ggo-segmenter@champion``,
``runs:/<run id>/model``) or a bare run id: a training run, or a cross-validation parent, whose
logged model is the fold ensemble.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ggo.data.atomic import atomic_file
from ggo.ship.predict import load_image, load_segmenter, model_settings, split_members
from ggo.ship.predict.cli import add_protocol_arguments

PROG = "python -m ggo figure"

EXAMPLES = f"""examples:
  {PROG} --split test --n 6 --out docs/champion-test-overlays.jpg
  {PROG} --model runs:/<run id>/model --split fold0 --n 9 --columns 3 --out fold0.png
  {PROG} --model <CV parent run id> --split all --pick name --n 4 --size 480 --out first4.jpg
"""


@dataclass
class Film:
    """One film's picture inputs: the X-ray (RGB), its true and predicted masks, and its dice."""

    name: str
    rgb: np.ndarray
    truth: np.ndarray
    pred: np.ndarray
    dice: float


def model_uri(ref: str) -> str:
    """``ref`` as an MLflow model URI: a bare run id becomes ``runs:/<id>/model``."""
    return ref if ":/" in ref else f"runs:/{ref}/model"


def predict_films(segmenter: Any, records: Sequence[Any], threshold: float) -> list[Film]:
    """Each record's film read as ``ggo.ship.predict`` reads it, its mask at the original size, its dice."""
    import cv2

    from ggo.data import to_grayscale_uint8
    from ggo.evaluation.viz import film_dice

    films = []
    for record in records:
        image = load_image(record.source)
        pred = segmenter.probabilities([image])[0] > threshold
        rgb = cv2.cvtColor(to_grayscale_uint8(image), cv2.COLOR_GRAY2RGB)
        films.append(Film(record.name, rgb, record.mask, pred, film_dice(record.mask, pred)))
    return films


def pick(films: Sequence[Film], n: int, how: str = "spread") -> list[Film]:
    """``n`` films: evenly along the dice ranking (best first) for ``spread``, else the first by name."""
    if how == "name":
        return sorted(films, key=lambda f: f.name)[:n]
    ranked = sorted(films, key=lambda f: (-f.dice, f.name))
    if n >= len(ranked):
        return ranked
    return [ranked[i] for i in np.unique(np.round(np.linspace(0, len(ranked) - 1, n)).astype(int))]


def split_records(root: Path, split: str, *, seed: int, test_fraction: float, folds: int) -> list[Any]:
    """The dataset's GGO-annotated records of ``split`` (``all``: every one), sorted by name.
    GGO-free films are left out (no dice to show), so the split is the one training used."""
    from ggo.data import iter_records

    records = [r for r in iter_records(root) if not r.ggo_free]
    if split == "all":
        return records
    members = split_members({r.name: r.patient_id for r in records}, split, seed=seed, test_fraction=test_fraction, folds=folds)
    return [r for r in records if r.name in members]


def compose(films: Sequence[Film], columns: int, size: int) -> np.ndarray:
    """The RGB grid of ``films`` (:func:`ggo.evaluation.viz.outcome_figure`), each titled with its dice."""
    from ggo.evaluation.viz import outcome_figure

    return outcome_figure([(f.rgb, f.truth, f.pred, f"{f.name}  dice {f.dice:.3f}") for f in films], columns, size)


def write_picture(picture: np.ndarray, out: Path) -> None:
    """Write an RGB picture as .jpg (quality 92) or .png; an OSError says when it cannot."""
    import cv2

    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(out) as tmp:  # whole, or not at all
        try:
            written = cv2.imwrite(str(tmp), cv2.cvtColor(picture, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])
        except cv2.error:  # an extension OpenCV has no writer for
            written = False
        if not written:
            raise OSError(f"could not write {out}: give a .jpg or .png path in a writable folder")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__, epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="models:/ggo-segmenter@champion",
                        help="model URI, or a run id / CV parent id (default: %(default)s)")
    parser.add_argument("--tracking-uri", default=None, help="MLflow store (default: $MLFLOW_TRACKING_URI or the project store)")
    parser.add_argument("--data", default=None, help="dataset root in the GGO layout (default: $GGO_DATA or the project's copy)")
    parser.add_argument("--n", type=int, default=6, help="films in the picture (default: %(default)s)")
    parser.add_argument("--columns", type=int, default=3, help="films per row (default: %(default)s)")
    parser.add_argument("--size", type=int, default=360, help="each film fitted into a square this many px wide (default: %(default)s)")
    parser.add_argument("--pick", choices=("spread", "name"), default="spread",
                        help="spread: evenly along the dice ranking, best to worst; name: the first by file name")
    parser.add_argument("--out", default="overlays.jpg", help="picture to write, .jpg or .png (default: %(default)s)")
    add_protocol_arguments(parser, "which films", "the split of the evaluation protocol's seeded patient split")
    parser.set_defaults(split="test")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; 2 when the model, the data or the output cannot be used."""
    from ggo.paths import default_data_root

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.n < 1 or args.columns < 1 or args.size < 32:
        parser.error("--n and --columns must be >= 1 and --size >= 32")
    root = Path(args.data) if args.data else default_data_root()
    try:
        records = split_records(root, args.split, seed=args.split_seed, test_fraction=args.test_fraction, folds=args.folds)
        if not records:
            raise ValueError(f"split {args.split!r} of {root} has no annotated films")
        segmenter = load_segmenter(model_uri(args.model), args.tracking_uri)
        films = pick(predict_films(segmenter, records, model_settings(segmenter).threshold), args.n, args.pick)
        write_picture(compose(films, args.columns, args.size), Path(args.out))
    except (RuntimeError, OSError, ValueError) as exc:
        print(f"[ggo] figure: {exc}", file=sys.stderr)
        return 2
    for f in films:
        print(f"{f.name}: dice {f.dice:.3f}")
    print(f"[ggo] {len(films)} of {len(records)} {args.split} film(s) of {root} -> {args.out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""GGO masks for new X-rays: ``python -m ggo.predict <images or folders>``.

For every image (folders are searched recursively for .png, .jpg, .jpeg, .tif, .tiff, .bmp and
.webp files) it writes, under ``--out`` (default ``predictions/``):

- ``<stem>_mask.png``: the GGO mask at the image's original size, 0 (background) or 255 (GGO);
- ``<stem>_overlay.png``: the X-ray with GGO tinted red and outlined;
- one row in ``predictions.csv``: file, ggo_fraction (share of the image's pixels that are
  GGO), height, width, status (``ok`` or ``error``), error, and the paths of the two PNGs.

Two inputs with the same stem get ``-2``, ``-3``... appended. An input that cannot be used (missing,
empty, corrupt, not an image, smaller than 2 x 2, larger than 100 megapixels) gets a row with its
error and the others go on; the exit status is 0 only when every input succeeded.

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

import argparse
import csv
import json
import math
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")
MAX_PIXELS = 100_000_000  # larger inputs are refused: decoding one takes gigabytes
DEFAULT_MODEL = "models:/ggo-segmenter@champion"
CSV_COLUMNS = ("file", "ggo_fraction", "height", "width", "status", "error", "mask", "overlay")
RED_BGR = (0, 0, 255)


@dataclass
class Prediction:
    """The outcome for one input: ``status`` ``ok`` with the mask's figures, or ``error`` with why."""

    file: str
    status: str = "ok"
    error: str = ""
    ggo_fraction: float = float("nan")
    height: int | None = None
    width: int | None = None
    mask: str = ""
    overlay: str = ""
    probability: np.ndarray | None = field(default=None, repr=False)

    def row(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "ggo_fraction": "" if math.isnan(self.ggo_fraction) else f"{self.ggo_fraction:.6f}",
            "height": "" if self.height is None else self.height,
            "width": "" if self.width is None else self.width,
            "status": self.status,
            "error": self.error,
            "mask": self.mask,
            "overlay": self.overlay,
        }


def collect_inputs(paths: Iterable[str | Path]) -> list[tuple[Path, str | None]]:
    """``(path, problem)`` per input: folders expand to their image files (sorted, recursive).

    A file named explicitly is kept whatever its suffix (reading it decides); a missing path or a
    folder without images comes back with a problem instead of being dropped silently.
    """
    out: list[tuple[Path, str | None]] = []
    seen: set[Path] = set()
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(
                p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
            )
            if not found:
                out.append((path, f"{path}: folder has no images ({', '.join(IMAGE_SUFFIXES)})"))
            for p in found:
                if p.resolve() not in seen:
                    seen.add(p.resolve())
                    out.append((p, None))
        elif path.is_file():
            if path.resolve() not in seen:
                seen.add(path.resolve())
                out.append((path, None))
        else:
            out.append((path, f"{path}: no such file or folder"))
    return out


def header_size(path: Path) -> tuple[int, int] | None:
    """(height, width) from the file's header without decoding the pixels; None if Pillow cannot tell."""
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - Pillow comes with matplotlib
        return None
    limit = Image.MAX_IMAGE_PIXELS
    try:
        # Pillow's own decompression-bomb check would hide the size; we only read the header here
        # and apply our limit in check_size.
        Image.MAX_IMAGE_PIXELS = None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as im:
                return int(im.height), int(im.width)
    except Exception:  # noqa: BLE001 - not readable by Pillow: OpenCV decides
        return None
    finally:
        Image.MAX_IMAGE_PIXELS = limit


def check_size(path: Path, height: int, width: int) -> None:
    if height * width > MAX_PIXELS:
        raise ValueError(
            f"{path}: {width} x {height} pixels ({height * width / 1e6:.0f} megapixels) is over the "
            f"{MAX_PIXELS // 1_000_000} megapixel limit: downscale it first (X-rays need no more than ~4k x 4k)"
        )


def load_image(path: Path) -> np.ndarray:
    """Read one input for the model, refusing very large images before decoding them."""
    from ggo.serving import read_image

    if path.is_file() and path.stat().st_size > 0:
        size = header_size(path)
        if size is not None:
            check_size(path, *size)
    image = read_image(path)
    check_size(path, image.shape[0], image.shape[1])
    return image


def overlay(image: np.ndarray, mask: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """The X-ray in gray (BGR) with ``mask`` tinted red and its contour drawn in red."""
    import cv2

    from ggo.data import to_grayscale_uint8

    gray = to_grayscale_uint8(image)
    bgr = cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)
    on = mask.astype(bool)
    tinted = bgr.astype(np.float32)
    tinted[on] = (1 - alpha) * tinted[on] + alpha * np.array(RED_BGR, np.float32)
    out = np.clip(np.rint(tinted), 0, 255).astype(np.uint8)
    contours, _ = cv2.findContours(on.astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    thickness = max(1, round(max(mask.shape) / 400))
    cv2.drawContours(out, contours, -1, RED_BGR, thickness)
    return out


def _unique_stem(stem: str, used: set[str]) -> str:
    candidate, n = stem, 1
    while candidate in used:
        n += 1
        candidate = f"{stem}-{n}"
    used.add(candidate)
    return candidate


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
            f"logged by ggo.train (runs:/<run id>/model) or registered by ggo.promote"
        )
    return segmenter


def predict_files(
    segmenter: Any,
    inputs: Sequence[str | Path],
    out_dir: str | Path,
    *,
    threshold: float | None = None,
    keep_probabilities: bool = False,
    log: Any = None,
) -> list[Prediction]:
    """Masks, overlays and ``predictions.csv`` under ``out_dir`` for ``inputs`` (files or folders).

    Each input is handled on its own: a failure is recorded in its row and the rest go on.
    ``threshold`` defaults to the model's (0.5). Returns one :class:`Prediction` per input.
    """
    import cv2

    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if threshold is None:
        threshold = float(getattr(segmenter, "config", {}).get("threshold", 0.5))
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
            prob = segmenter.probabilities([image])[0]  # (H, W) float32 at the original size
            mask = prob > threshold
            stem = _unique_stem(path.stem, used)
            mask_path, overlay_path = out / f"{stem}_mask.png", out / f"{stem}_overlay.png"
            if not cv2.imwrite(str(mask_path), mask.astype(np.uint8) * 255):
                raise OSError(f"could not write {mask_path}: check that {out} is writable")
            if not cv2.imwrite(str(overlay_path), overlay(image, mask)):
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
    with open(out / "predictions.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(p.row() for p in results)
    return results


# --- scoring against known masks ----------------------------------------------------------------


def truth_from_folder(folder: str | Path) -> dict[str, np.ndarray]:
    """``{stem: mask}`` from a folder of mask images (``<stem>.png`` or ``<stem>_mask.png``)."""
    import cv2

    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"--truth {folder}: no such folder of masks")
    masks: dict[str, np.ndarray] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if mask is None:
            continue
        stem = path.stem[: -len("_mask")] if path.stem.endswith("_mask") else path.stem
        masks[stem] = mask > 0
    return masks


def truth_from_dataset(root: str | Path, patients: dict[str, str] | None = None) -> dict[str, np.ndarray]:
    """``{stem: GGO mask}`` for every annotated image of a dataset in the GGO layout; fills
    ``patients`` (image name -> patient id) when given."""
    from ggo.data import iter_records

    truth = {}
    for record in iter_records(root):
        truth[Path(record.name).stem] = record.mask
        if patients is not None:
            patients[record.name] = record.patient_id
    return truth


def split_members(patients: dict[str, str], split: str, *, seed: int = 0, test_fraction: float = 0.2, folds: int = 5) -> set[str]:
    """Names of the images in ``split`` (``test`` or ``fold<k>``) of the evaluation protocol's
    seeded patient split: the split a run with the same data config trained and tested on."""
    from ggo.data import split_patients

    assignment = split_patients(patients, seed=seed, test_fraction=test_fraction, folds=folds)
    valid = sorted(set(assignment.values()))
    if split not in valid:
        raise ValueError(f"--split {split!r}: not a split of this protocol; valid: {', '.join(valid)}")
    return {name for name, where in assignment.items() if where == split}


def grid_weight(height: int, width: int, resolution: int | None, fit: str = "pad") -> tuple[float, float]:
    """How many model-grid pixels one original pixel stands for, and the padding pixels the
    grid adds (always true negatives): ``(weight, pad)``. ``resolution=None``: ``(1, 0)``."""
    if not resolution:
        return 1.0, 0.0
    if fit == "pad":
        weight = (resolution / max(height, width)) ** 2
        return weight, resolution * resolution - weight * height * width
    return resolution * resolution / (height * width), 0.0


def score(
    results: Sequence[Prediction],
    truth: dict[str, np.ndarray],
    threshold: float = 0.5,
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
    """
    from ggo.metrics import METRIC_NAMES, dice_from_counts, pooled_from_counts

    counts = np.zeros(4)
    dices, scored, unmatched = [], [], []
    for pred in results:
        if pred.status != "ok" or pred.probability is None:
            continue
        true = truth.get(Path(pred.file).stem)
        if true is None or true.shape != pred.probability.shape:
            unmatched.append(pred.file)
            continue
        g, p = np.asarray(true) > 0.5, np.asarray(pred.probability) > threshold
        tp, fp, fn = float(np.sum(p & g)), float(np.sum(p & ~g)), float(np.sum(~p & g))
        tn = float(g.size) - tp - fp - fn
        dices.append(float(dice_from_counts(np.float32(tp), np.float32(fp), np.float32(fn))))
        weight, pad = grid_weight(*g.shape, resolution, fit)
        counts += weight * np.array([tp, fp, fn, tn]) + np.array([0.0, 0.0, 0.0, pad])
        scored.append(pred.file)
    values: dict[str, float] = {}
    if scored:
        pooled = pooled_from_counts(*(np.float32(c) for c in counts))
        values = {"dice": float(np.mean(dices)), **{k: float(v) for k, v in pooled.items()}}
        values = {k: values[k] for k in METRIC_NAMES}
    return {
        "n_scored": len(scored), "metrics": values, "threshold": threshold, "unmatched": unmatched,
        "pooled_on": f"the model's {resolution} px grid ({fit})" if resolution else "original pixels",
    }  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ggo.predict",
        description=(
            "Segment GGO on chest X-rays with a trained ggo model. Per image, under --out:\n"
            "<stem>_mask.png (0/255, original size), <stem>_overlay.png (GGO in red) and a row in\n"
            "predictions.csv (file, ggo_fraction, height, width, status, error). Unusable inputs\n"
            "get a row with their error; the exit status is 0 only if every input succeeded."
        ),
        epilog=(
            "examples:\n"
            "  python -m ggo.predict scans/\n"
            "  python -m ggo.predict a.png b.jpg --out results/ --threshold 0.4\n"
            "  python -m ggo.predict scans/ --model runs:/<run id>/model\n"
            "  python -m ggo.predict scans/ --truth scans_masks/\n"
            "  python -m ggo.predict $GGO_DATA/images --score $GGO_DATA --split test   # the protocol's test patients\n"
            "the same model over HTTP: mlflow models serve -m models:/ggo-segmenter@champion --env-manager local\n"
            '  POST /invocations {"dataframe_split": {"columns": ["image_b64"], "data": [["<base64 PNG>"]]}}\n'
            "  -> mask_png_b64, ggo_fraction, height, width per image"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("inputs", nargs="+", metavar="IMAGE_OR_FOLDER",
                        help=f"image files, or folders searched recursively for {' '.join(IMAGE_SUFFIXES)}")
    parser.add_argument("--model", default=DEFAULT_MODEL,
                        help="MLflow model URI (default: %(default)s, set by 'python -m ggo.promote')")
    parser.add_argument("--out", default="predictions", help="output folder (default: %(default)s/)")
    parser.add_argument("--threshold", type=float, default=None,
                        help="probability above which a pixel is GGO (default: the model's, 0.5)")
    parser.add_argument("--tracking-uri", default=None,
                        help="MLflow store holding the model (default: $MLFLOW_TRACKING_URI or the project store)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--truth", metavar="FOLDER", default=None,
                       help="folder of true masks (<stem>.png or <stem>_mask.png): also score the predictions")
    group.add_argument("--score", metavar="DATASET_ROOT", default=None,
                       help="a dataset in the GGO layout: score the predictions against its GGO masks")
    protocol = parser.add_argument_group(
        "evaluation protocol (with --score)",
        "predict and score only one split of the seeded patient split that training used "
        "(defaults as in conf/data), e.g. the held-out test patients: --split test",
    )
    protocol.add_argument("--split", default=None, metavar="NAME", help="test, or fold0 .. fold<folds-1>")
    protocol.add_argument("--split-seed", type=int, default=0, help="data.seed of the runs (default: %(default)s)")
    protocol.add_argument("--test-fraction", type=float, default=0.2, help="data.test_fraction (default: %(default)s)")
    protocol.add_argument("--folds", type=int, default=5, help="data.folds (default: %(default)s)")
    protocol.add_argument("--pooled-on-original-pixels", action="store_true",
                          help="pool precision, recall, IoU over original pixels (large films weigh more) instead "
                          "of weighting each image as the model's grid does (the protocol, what a run's test/* reports)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; returns the exit status (0 only if every input succeeded)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.threshold is not None and not 0.0 < args.threshold < 1.0:
        parser.error(f"--threshold must be between 0 and 1 (exclusive), got {args.threshold}")
    if args.split and not args.score:
        parser.error("--split needs --score DATASET_ROOT (the split is computed from its patients)")
    truth = None
    inputs: list = list(args.inputs)
    try:
        if args.truth or args.score:
            patients: dict[str, str] = {}
            truth = truth_from_folder(args.truth) if args.truth else truth_from_dataset(args.score, patients)
            if args.split:
                members = split_members(
                    patients, args.split, seed=args.split_seed, test_fraction=args.test_fraction, folds=args.folds
                )
                inputs = [p for p, problem in collect_inputs(args.inputs) if problem is None and p.name in members]
                if not inputs:
                    raise FileNotFoundError(f"none of the inputs is an image of split {args.split!r} ({len(members)} images)")
                print(f"[ggo] --split {args.split}: {len(inputs)} of the inputs belong to it", flush=True)
        segmenter = load_segmenter(args.model, args.tracking_uri)
    except (RuntimeError, FileNotFoundError, ValueError) as exc:
        print(f"[ggo] predict: {exc}", file=sys.stderr)
        return 2
    results = predict_files(
        segmenter, inputs, args.out, threshold=args.threshold, keep_probabilities=truth is not None
    )
    ok = sum(p.status == "ok" for p in results)
    out = Path(args.out)
    print(f"[ggo] {len(results)} input(s): {ok} ok, {len(results) - ok} failed -> {out / 'predictions.csv'}", flush=True)
    if truth is not None:
        threshold = args.threshold or float(getattr(segmenter, "config", {}).get("threshold", 0.5))
        config = getattr(segmenter, "config", {})
        grid = None if args.pooled_on_original_pixels else config.get("resolution")
        scores = score(results, truth, threshold, resolution=grid, fit=config.get("fit", "pad"))
        (out / "scores.json").write_text(json.dumps(scores, indent=2))
        shown = ", ".join(f"{k} {v:.4f}" for k, v in scores["metrics"].items())
        print(f"[ggo] scored {scores['n_scored']} image(s) against {args.truth or args.score}: {shown or 'none matched'}"
              f" ({len(scores['unmatched'])} without a true mask; pooled on {scores['pooled_on']}) -> {out / 'scores.json'}",
              flush=True)
    return 0 if results and ok == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())

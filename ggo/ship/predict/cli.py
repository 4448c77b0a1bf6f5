"""``python -m ggo.predict``: the command line (see :mod:`ggo.ship.predict` for what it writes)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

from ggo.config import PreprocessConfig, defaults, section
from ggo.data.atomic import write_text
from ggo.ship.predict.files import IMAGE_SUFFIXES, collect_inputs
from ggo.ship.predict.scoring import score, split_members, truth_from_dataset, truth_from_folder
from ggo.ship.predict.segment import DEFAULT_MODEL, load_segmenter, model_settings, predict_files

_SPLIT = defaults("data")
_THRESHOLD = defaults("eval")["threshold"]


def add_protocol_arguments(parser: argparse.ArgumentParser, title: str, description: str) -> argparse._ArgumentGroup:
    """``--split``, ``--split-seed``, ``--test-fraction`` and ``--folds``: which films of the
    evaluation protocol's seeded patient split (:func:`ggo.ship.predict.split_members`)."""
    protocol = parser.add_argument_group(title, description)
    protocol.add_argument("--split", default=None, metavar="NAME", help="test, or fold0 .. fold<folds-1>")
    protocol.add_argument("--split-seed", type=int, default=_SPLIT["seed"], help="data.seed of the runs (default: %(default)s)")
    protocol.add_argument("--test-fraction", type=float, default=_SPLIT["test_fraction"],
                          help="data.test_fraction (default: %(default)s)")
    protocol.add_argument("--folds", type=int, default=_SPLIT["folds"], help="data.folds (default: %(default)s)")
    return protocol


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ggo.predict",
        description=(
            "Segment GGO on chest X-rays with a trained ggo model. Per image, under --out:\n"
            "<stem>_mask.png (0/255, original size), <stem>_overlay.png (GGO in red; with --truth or\n"
            "--score: TP yellow, FP orange, FN blue, under the file name and its dice) and a row in\n"
            "predictions.csv (file, ggo_present, ggo_probability, ggo_fraction, height, width, status, error, dice). Unusable inputs\n"
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
            '  POST /invocations {"dataframe_split": {"columns": ["image_b64"], "data": [["<base64 of the file>"]]}}\n'
            "  -> per image: status (ok or error), error, ggo_present, ggo_probability, mask_png_b64, ggo_fraction, height, width"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("inputs", nargs="+", metavar="IMAGE_OR_FOLDER",
                        help=f"image files, or folders searched recursively for {' '.join(IMAGE_SUFFIXES)}")
    parser.add_argument("--model", default=DEFAULT_MODEL,
                        help="MLflow model URI (default: %(default)s, set by 'python -m ggo.promote')")
    parser.add_argument("--out", default="predictions", help="output folder (default: %(default)s/)")
    parser.add_argument("--threshold", type=float, default=None,
                        help=f"probability above which a pixel is GGO (default: the model's, {_THRESHOLD} unless it says)")
    parser.add_argument("--tracking-uri", default=None,
                        help="MLflow store holding the model (default: $MLFLOW_TRACKING_URI or the project store)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--truth", metavar="FOLDER", default=None,
                       help="folder of true masks (<stem>.png or <stem>_mask.png): also score the predictions")
    group.add_argument("--score", metavar="DATASET_ROOT", default=None,
                       help="a dataset in the GGO layout: score the predictions against its GGO masks")
    protocol = add_protocol_arguments(
        parser, "evaluation protocol (with --score)",
        "predict and score only one split of the seeded patient split that training used "
        "(defaults as in the config schema's data section), e.g. the held-out test patients: --split test",
    )
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
            truth_problems: list[str] = []
            truth = truth_from_folder(args.truth, truth_problems) if args.truth else truth_from_dataset(args.score, patients)
            for problem in truth_problems:
                print(f"[ggo] --truth: {problem}", file=sys.stderr, flush=True)
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
        segmenter, inputs, args.out, threshold=args.threshold, keep_probabilities=truth is not None, truth=truth
    )
    ok = sum(p.status == "ok" for p in results)
    out = Path(args.out)
    print(f"[ggo] {len(results)} input(s): {ok} ok, {len(results) - ok} failed -> {out / 'predictions.csv'}", flush=True)
    if truth is not None:
        threshold = args.threshold or model_settings(segmenter).threshold
        config = getattr(segmenter, "config", {})
        grid = None if args.pooled_on_original_pixels else config.get("resolution")
        fit = str(section(PreprocessConfig, config, lenient=True).fit)  # the model's, else the schema's default
        scores = score(results, truth, threshold, resolution=grid, fit=fit)
        write_text(out / "scores.json", json.dumps(scores, indent=2))
        shown = ", ".join(f"{k} {v:.4f}" for k, v in scores["metrics"].items())
        print(f"[ggo] scored {scores['n_scored']} image(s) against {args.truth or args.score}: {shown or 'none matched'}"
              f" ({len(scores['unmatched'])} without a true mask; pooled on {scores['pooled_on']}) -> {out / 'scores.json'}",
              flush=True)
    return 0 if results and ok == len(results) else 1



__all__ = ["add_protocol_arguments", "build_parser", "main"]

"""The ablation table's floor rows: the lungs themselves taken as the GGO mask.

GGO here is often diffuse, so "mark both lungs" is a strong trivial model. This scores it with
the evaluation protocol: per-image dice and pooled precision and recall at the model's grid, on
the test films, out of fold (the non-test films: no training, so every validation film is out of
fold), and over all of them. No training, no tracking: it reads the data cache (built on first
use, as ``python -m ggo data prepare`` does).

With ``--lungs-from`` the lungs are *predicted*, by the lung head alone of a cross-validation
sweep trained with ``gen.lung_head=true`` (its fold runs' logged models, read from the store,
never written): every non-test film by the fold model that did not train on it (out of fold), the
test films by the mean of the fold models' lung probabilities, each thresholded at 0.5 (a fold
with several seeds: the mean of its seeds' maps). Scored at the models' resolution on their data
config's split (the first fold run's ``config.yaml``).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence

import numpy as np

from ggo.config import DataConfig, PreprocessConfig

PROG = "python -m ggo floor"

EXAMPLES = f"""examples:
  {PROG}                                   # annotated lungs at 128 px, the real data
  {PROG} --resolution 256
  {PROG} --lungs-from <CV parent with gen.lung_head=true> --tracking-uri sqlite:///mlruns/mlflow.db
"""

#: A pixel of a predicted lung map is lung above this probability.
LUNG_THRESHOLD = 0.5

Scores = dict[str, dict[str, float]]  # {"test" | "oof" | "all": metrics | {"n": films}}


def floor_scores(resolution: int, data: DataConfig | None = None) -> Scores:
    """Lungs-as-GGO on ``data`` (the schema's default data: the real dataset) at ``resolution``;
    films without lung annotation predict nothing (they count, as they would for a model that
    finds no lungs)."""
    from ggo.data import prepare_from_config

    cache = prepare_from_config(data or DataConfig(), PreprocessConfig(resolution=resolution), progress=False)
    parts = cache.split(0)
    oof = [cache.split(k)["val"] for k in range(cache.folds)]
    sets = {
        "test": (parts["test"].masks, parts["test"].lungs),
        "oof": (np.concatenate([v.masks for v in oof]), np.concatenate([v.lungs for v in oof])),
    }
    return scored({name: (masks, lungs.astype(np.float32)) for name, (masks, lungs) in sets.items()})


def scored(sets: dict[str, tuple[np.ndarray, np.ndarray]], threshold: float = LUNG_THRESHOLD) -> Scores:
    """``{name: metrics | {"n": films}}`` for ``sets`` of (GGO masks, lung maps), plus ``all`` (both)."""
    from ggo.evaluation.metrics import evaluate  # imports keras

    sets = dict(sets)
    sets["all"] = tuple(np.concatenate([sets["test"][i], sets["oof"][i]]) for i in (0, 1))
    return {name: evaluate(masks, lungs, threshold) | {"n": len(masks)} for name, (masks, lungs) in sets.items()}


def predicted_floor_scores(uri: str, parent_run_id: str) -> tuple[Scores, int]:
    """Scores of the lungs predicted by the fold models of CV parent ``parent_run_id`` taken as the
    GGO mask (``test``: fold ensemble, ``oof``: each fold on its own val films, ``all``), and the
    resolution they were scored at. A ValueError names a run that is not one CV configuration."""
    import keras

    from ggo.data import prepare_from_config
    from ggo.evaluation.inference import lung_probs
    from ggo.sweeps.folds import fold_generators, parent_configuration

    with tempfile.TemporaryDirectory(prefix="ggo-floor-") as tmp:
        try:
            runs, config = parent_configuration(uri, parent_run_id, tmp)
        except ValueError as exc:
            raise ValueError(f"{exc}: pass the parent of one '+sweeps=cv ... gen.lung_head=true' sweep") from None
        cache = prepare_from_config(config.data, config.preprocess, progress=False)
        test = cache.split(0)["test"]
        test_maps, oof_masks, oof_maps = [], [], []
        for fold, paths in fold_generators(uri, runs, tmp):
            generators = [keras.models.load_model(p, compile=False) for p in paths]
            val = cache.split(fold)["val"]
            test_maps.append(np.mean([lung_probs(g, test.images) for g in generators], axis=0))
            oof_masks.append(val.masks)
            oof_maps.append(np.mean([lung_probs(g, val.images) for g in generators], axis=0))
    sets = {"test": (test.masks, np.mean(test_maps, axis=0)), "oof": (np.concatenate(oof_masks), np.concatenate(oof_maps))}
    return scored(sets), config.preprocess.resolution


def rows(label: str, scores: Scores) -> list[str]:
    """The printed floor rows: a title, then one line per set of films."""
    return [label] + [
        f"{name:>4} ({m['n']} films): dice {m['dice']:.3f}, precision {m['precision']:.3f}, recall {m['recall']:.3f}, "
        f"pooled dice {m['dice_pooled']:.3f}"
        for name, m in scores.items()
    ]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__, epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--resolution", type=int, default=128, help="grid of the annotated-lungs floor (default: %(default)s)")
    parser.add_argument("--lungs-from", metavar="PARENT_RUN_ID", default=None,
                        help="score the lungs predicted by this CV parent's fold models (gen.lung_head=true) instead")  # fmt: skip
    parser.add_argument("--tracking-uri", default=None, help="MLflow store with --lungs-from (default: $MLFLOW_TRACKING_URI or the project store)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; 2 when the data or the run cannot be scored."""
    args = build_parser().parse_args(argv)
    try:
        if args.lungs_from is None:
            if args.resolution < 8:
                raise ValueError(f"--resolution {args.resolution}: give a grid of at least 8 px (e.g. 128)")
            print("\n".join(rows(f"annotated lungs as the GGO mask ({args.resolution} px)", floor_scores(args.resolution))))
            return 0
        from ggo import tracking

        scores, resolution = predicted_floor_scores(tracking.existing_store(args.tracking_uri), args.lungs_from)
    except (LookupError, FileNotFoundError, ValueError) as exc:
        print(f"[ggo] floor: {exc}", file=sys.stderr)
        return 2
    print("\n".join(rows(f"lungs predicted by the lung head of {args.lungs_from} as the GGO mask ({resolution} px)", scores)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

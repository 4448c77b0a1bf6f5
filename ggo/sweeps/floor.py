"""Print the ablation table's floor rows: the lungs themselves taken as the GGO mask.

    python scripts/floor_rows.py [--resolution 128]
    python scripts/floor_rows.py --lungs-from <CV parent run id> [--tracking-uri URI]

GGO here is often diffuse, so "mark both lungs" is a strong trivial model. This scores it with
the evaluation protocol (README "Evaluation protocol"): per-image dice and pooled precision and
recall at the model's grid, on the 18 test films, out of fold (the 75 non-test films: no training,
so every validation film is out of fold), and over all 93. No training, no tracking: it reads the
data cache (built on first use, as `python -m ggo.data prepare` does).

With ``--lungs-from`` the lungs are *predicted*, by the lung head alone of a cross-validation
sweep trained with ``gen.lung_head=true`` (its fold runs' logged models, read from the store,
never written): every non-test film by the fold model that did not train on it (out of fold), the
test films by the mean of the fold models' lung probabilities, each thresholded at 0.5. Scored at
the models' resolution on their data config's split (the first fold run's ``config.yaml``).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from ggo.config import defaults
from ggo.data import prepare_from_config
from ggo.evaluation.metrics import evaluate


def floor_scores(resolution: int) -> dict[str, dict[str, float]]:
    """``{"test" | "oof" | "all": metrics}`` of lungs-as-GGO; films without lung annotation
    predict nothing (they count, as they would for a model that finds no lungs)."""
    data, pre = defaults("data"), {**defaults("preprocess"), "resolution": resolution}
    cache = prepare_from_config(data, pre, progress=False)
    parts = cache.split(0)
    oof = [cache.split(k)["val"] for k in range(cache.folds)]
    sets = {
        "test": (parts["test"].masks, parts["test"].lungs),
        "oof": (np.concatenate([v.masks for v in oof]), np.concatenate([v.lungs for v in oof])),
    }
    return _scored({name: (masks, lungs.astype(np.float32)) for name, (masks, lungs) in sets.items()})


#: A pixel of a predicted lung map is lung above this probability.
LUNG_THRESHOLD = 0.5


def _scored(sets: dict[str, tuple[np.ndarray, np.ndarray]], threshold: float = LUNG_THRESHOLD) -> dict[str, dict[str, float]]:
    """``{name: metrics | {"n": films}}`` for ``sets`` of (GGO masks, lung maps), plus ``all`` (both)."""
    sets = dict(sets)
    sets["all"] = tuple(np.concatenate([sets["test"][i], sets["oof"][i]]) for i in (0, 1))
    return {name: evaluate(masks, lungs, threshold) | {"n": len(masks)} for name, (masks, lungs) in sets.items()}


def _fold_generator(uri: str, run: Any, workdir: Path) -> Any:
    """The generator of a fold run's logged model, loaded with Keras."""
    import keras

    from ggo import tracking

    local = tracking.download_model(uri, run.info.run_id, workdir / run.info.run_id)
    paths = sorted((local / "artifacts").glob("generator*.keras"))
    if len(paths) != 1:
        raise ValueError(f"run {run.info.run_id} logged {len(paths)} generators, not one: is it a fold run of a CV sweep?")
    return keras.models.load_model(paths[0], compile=False)


def predicted_floor_scores(uri: str, parent_run_id: str) -> tuple[dict[str, dict[str, float]], int]:
    """Scores of the lungs predicted by the fold models of CV parent ``parent_run_id`` taken as the
    GGO mask (``test``: fold ensemble, ``oof``: each fold on its own val films, ``all``), and the
    resolution they were scored at."""
    import yaml

    from ggo import tracking
    from ggo.sweeps.cv import cross_validation_groups
    from ggo.evaluation.inference import lung_probs

    groups = cross_validation_groups(tracking.child_runs(uri, parent_run_id))
    if len(groups) != 1:
        raise ValueError(
            f"run {parent_run_id} has {len(groups)} cross-validated configurations among its finished children, not one: "
            "pass the parent of one '+sweeps=cv ... gen.lung_head=true' sweep"
        )
    runs = groups[0]
    with tempfile.TemporaryDirectory(prefix="ggo-floor-") as tmp:
        cfg_path = tracking.download_artifact(uri, runs[0].info.run_id, "config.yaml", Path(tmp) / "config")
        config = yaml.safe_load(Path(cfg_path).read_text())
        cache = prepare_from_config(config["data"], config["preprocess"], progress=False)
        test = cache.split(0)["test"]
        test_maps, oof_masks, oof_maps = [], [], []
        for run in runs:
            generator = _fold_generator(uri, run, Path(tmp))
            val = cache.split(int(run.data.params["data.fold"]))["val"]
            test_maps.append(lung_probs(generator, test.images))
            oof_masks.append(val.masks)
            oof_maps.append(lung_probs(generator, val.images))
    sets = {"test": (test.masks, np.mean(test_maps, axis=0)), "oof": (np.concatenate(oof_masks), np.concatenate(oof_maps))}
    return _scored(sets), int(config["preprocess"]["resolution"])


def print_rows(label: str, scores: dict[str, dict[str, float]]) -> None:
    print(label)
    for name, m in scores.items():
        print(f"{name:>4} ({m['n']} films): dice {m['dice']:.3f}, precision {m['precision']:.3f}, recall {m['recall']:.3f}, pooled dice {m['dice_pooled']:.3f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--resolution", type=int, default=128, help="grid of the annotated-lungs floor (default: %(default)s)")
    parser.add_argument("--lungs-from", metavar="PARENT_RUN_ID", default=None,
                        help="score the lungs predicted by this CV parent's fold models (gen.lung_head=true) instead")
    parser.add_argument("--tracking-uri", default=None, help="MLflow store with --lungs-from (default: $MLFLOW_TRACKING_URI or the project store)")
    args = parser.parse_args()
    if args.lungs_from is None:
        print_rows(f"annotated lungs as the GGO mask ({args.resolution} px)", floor_scores(args.resolution))
        return 0
    from ggo import tracking

    uri = tracking.resolve_uri(args.tracking_uri)
    try:
        tracking.check_store_exists(uri)
        scores, resolution = predicted_floor_scores(uri, args.lungs_from)
    except (LookupError, FileNotFoundError, ValueError) as exc:
        print(f"[ggo] floor_rows: {exc}", file=sys.stderr)
        return 2
    print_rows(f"lungs predicted by the lung head of {args.lungs_from} as the GGO mask ({resolution} px)", scores)
    return 0


if __name__ == "__main__":
    sys.exit(main())

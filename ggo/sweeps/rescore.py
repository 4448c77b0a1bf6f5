"""Re-score a cross-validation parent's fold models under other ``eval`` settings, without training.

    python scripts/rescore_cv.py PARENT_RUN_ID [PARENT_RUN_ID ...] --set lung_gate=hard [--set tta_flip=true]
                                 [--tracking-uri URI]
    python scripts/rescore_cv.py PARENT_RUN_ID --with-seeds-of OTHER_PARENT_RUN_ID [...]

How the probability maps become masks (``eval.lung_gate``, ``eval.tta_flip``) is chosen on the
validation folds like any other choice of the protocol. This answers "would this CV row score
better with that setting?" from the models it logged: for each parent, under the children's own
``eval`` section (``as trained``) and under it with ``--set`` applied, the protocol's numbers:

- ``val/dice``: each fold model on its own val films at the children's threshold (0.5 unless
  they set another), mean +- std over the folds (the ablation table's val/dice column);
- the threshold and minimum component size chosen on the validation folds (as the CV parent
  does), then ``oof/dice`` (every out-of-fold film by the fold model that did not train on it)
  and the fold ensemble's ``test`` dice, precision and recall;
- the GGO-free films' mean predicted area, out of fold;
- the paired difference (``--set`` minus as trained) on the out-of-fold films and on the test
  films, patients resampled (``ggo.evaluation.stats.paired_difference``, as ``python -m ggo.compare``).

``--with-seeds-of`` answers "what would more ensemble members give?" from rows already trained:
the fold models of other CV parents of the same recipe, trained with another ``train.seed``, join
each fold's (:func:`ggo.sweeps.cv.join_seeds`: every fold model becomes the mean of its seeds, as one
``train.seed=0,1`` sweep's would), scored beside the parent's own with the same protocol. Here
val/dice is the seed-averaged fold model's (the CV parent's ``oof/dice`` counterpart), not the
mean of single models. Training on a CPU repeated itself for a seed here (README, ``train.seed``),
so a row already trained with seed 0 need not be trained again to join a new seed-1 row.

Read only: nothing is logged. The data cache is built on first use, as ``python -m ggo.data
prepare`` does. A parent with several seeds per fold scores each fold as the mean of its seeds.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from ggo import tracking
from ggo.sweeps.cv import fold_generators, join_seeds, parent_configuration
from ggo.evaluation.evaluate import EvalSettings, choose_postprocess, masks_of, predict, score
from ggo.evaluation.ggo_free import area_metrics, score_ggo_free
from ggo.evaluation.scores import per_image_table
from ggo.evaluation.stats import paired_difference

#: The ``eval`` keys ``--set`` may change: how maps are made, not how they are post-processed
#: (the threshold and component size are chosen on the validation folds for each setting).
SETTABLE = {"lung_gate": str, "tta_flip": lambda v: str(v).lower() in ("1", "true", "yes")}


def parse_sets(pairs: list[str]) -> dict[str, Any]:
    """``["lung_gate=hard"]`` -> ``{"lung_gate": "hard"}``; an unknown key or a missing ``=`` raises."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.removeprefix("eval.")
        if not sep or key not in SETTABLE:
            raise SystemExit(f"--set {pair!r}: write KEY=VALUE with KEY one of {', '.join(SETTABLE)}")
        out[key] = SETTABLE[key](value)
    return out


def load_parent(uri: str, parent_run_id: str, workdir: str, join: Sequence[str] = ()) -> tuple[dict[str, Any], Any, list[tuple[int, list[Any]]]]:
    """The children's config, the data cache, and ``(fold, [generator, ...])`` per fold; with
    ``join``, the fold models of those parents (other seeds of the recipe) join each fold's."""
    import keras

    from ggo.data import prepare_from_config

    try:
        if join:
            runs, config, one_sided = join_seeds(uri, [parent_run_id, *join], workdir)
            if one_sided:
                print(f"  (params only some of the joined parents logged, not compared: {', '.join(one_sided)})")
        else:
            runs, config = parent_configuration(uri, parent_run_id, workdir)
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
    cache = prepare_from_config(config["data"], config["preprocess"], progress=False)
    folds = [(fold, [keras.models.load_model(p, compile=False) for p in paths]) for fold, paths in fold_generators(uri, runs, workdir)]
    return config, cache, folds


def rescore(config: dict[str, Any], cache: Any, folds: list[tuple[int, list[Any]]], settings: EvalSettings) -> dict[str, Any]:
    """The protocol's numbers of these fold models under ``settings`` (see the module's docstring)."""
    val_dice, val_folds, test_maps = [], [], []
    test = cache.split(0)["test"]
    for fold, generators in folds:
        val = cache.split(fold)["val"]
        probs = predict(generators, val.images, settings)
        val_dice.append(score(val.masks, probs, settings)["dice"])
        val_folds.append((val, probs))
        test_maps.append(predict(generators, test.images, settings))
    t, size, _ = choose_postprocess([(v.masks, p) for v, p in val_folds], int(config["preprocess"]["resolution"]))
    chosen = dataclasses.replace(settings, threshold=t, min_component_px=size)
    mean = np.mean(test_maps, axis=0)
    oof = pd.concat([per_image_table(v.names, v.patients, "oof", v.masks, masks_of(p, chosen)) for v, p in val_folds])
    test_rows = per_image_table(test.names, test.patients, "test", test.masks, masks_of(mean, chosen))
    free = pd.concat([score_ggo_free(g, {"oof": cache.ggo_free_split(fold)["val"]}, chosen) for fold, g in folds])
    return {
        "val": (float(np.mean(val_dice)), float(np.std(val_dice))),
        "chosen": (t, size),
        "oof": oof.reset_index(drop=True),
        "test": score(test.masks, mean, chosen),
        "test_rows": test_rows,
        "ggo_free": area_metrics(free).get("oof/ggo_free_area", float("nan")) if len(free) else float("nan"),
    }


def describe(label: str, r: dict[str, Any]) -> str:
    m = r["test"]
    return (
        f"  {label:<12} val/dice {r['val'][0]:.3f} +- {r['val'][1]:.3f}  oof/dice {r['oof']['dice'].mean():.3f}  "
        f"test dice {m['dice']:.3f} precision {m['precision']:.3f} recall {m['recall']:.3f}  "
        f"(threshold {r['chosen'][0]:g}, min px {r['chosen'][1]})  GGO-free area oof {r['ggo_free']:.3f}"
    )


def paired(a: pd.DataFrame, b: pd.DataFrame, split: str) -> str:
    both = a.merge(b, on=["image", "patient"], suffixes=("_a", "_b"))
    d = paired_difference(both["dice_a"], both["dice_b"], both["patient"], split=split)
    return f"  {split}: {d.delta_dice:+.3f} dice, 95% CI [{d.ci_low:+.3f}, {d.ci_high:+.3f}], Wilcoxon p = {d.p_value:.3g} ({d.n_images} films of {d.n_patients} patients)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("parents", nargs="+", metavar="PARENT_RUN_ID")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                        help=f"an eval setting to score with ({', '.join(SETTABLE)}); repeat for several")  # fmt: skip
    parser.add_argument("--with-seeds-of", dest="join", action="append", default=[], metavar="PARENT_RUN_ID",
                        help="a CV parent of the same recipe trained with another train.seed: its fold models "
                             "join each fold's as more ensemble members; repeat for several")  # fmt: skip
    parser.add_argument("--tracking-uri", default=None)
    args = parser.parse_args()
    sets = parse_sets(args.sets)
    if not sets and not args.join:
        parser.error("give --set KEY=VALUE (e.g. --set lung_gate=hard) or --with-seeds-of PARENT_RUN_ID")
    uri = tracking.resolve_uri(args.tracking_uri)
    label = " ".join(f"{k}={v}" for k, v in sets.items())
    for run_id in args.parents:
        print(f"{run_id}:")
        results = {}
        with tempfile.TemporaryDirectory(prefix="ggo-rescore-") as tmp:
            config, cache, folds = load_parent(uri, run_id, tmp)
            base = EvalSettings.from_config(config.get("eval"))
            results["as trained"] = rescore(config, cache, folds, base)
            if sets:
                results[label] = rescore(config, cache, folds, dataclasses.replace(base, **sets))
        if args.join:
            with tempfile.TemporaryDirectory(prefix="ggo-rescore-") as tmp:
                config, cache, folds = load_parent(uri, run_id, tmp, args.join)
                seeds = sorted({len(members) for _, members in folds})
                results[f"+ seeds ({'/'.join(map(str, seeds))} per fold)"] = rescore(config, cache, folds, base)
        for name, r in results.items():
            print(describe(name, r))
        a = results["as trained"]
        for name, b in list(results.items())[1:]:
            print(f"  {name} minus as trained:")
            print(paired(a["oof"], b["oof"], "oof"))
            print(paired(a["test_rows"], b["test_rows"], "test"), flush=True)


if __name__ == "__main__":
    main()

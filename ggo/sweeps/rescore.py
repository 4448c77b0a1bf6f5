"""Re-score a cross-validation row's fold models under other ``eval`` settings, without training.

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
  films, patients resampled (``ggo.evaluation.stats.paired_difference``, as ``python -m ggo compare``).

``--with-seeds-of`` answers "what would more ensemble members give?" from rows already trained:
the fold models of other CV parents of the same recipe, trained with another ``train.seed``, join
each fold's (:func:`ggo.sweeps.folds.join_seeds`: every fold model becomes the mean of its seeds, as one
``train.seed=0,1`` sweep's would), scored beside the parent's own with the same protocol. Here
val/dice is the seed-averaged fold model's (the CV parent's ``oof/dice`` counterpart), not the
mean of single models. A row already trained with seed 0 need not be trained again to join a new
seed-1 row.

Read only: nothing is logged. The data cache is built on first use, as ``python -m ggo data
prepare`` does. A parent with several seeds per fold scores each fold as the mean of its seeds.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ggo import tracking
from ggo.config import Config, ConfigError, EvalConfig, plain, section
from ggo.sweeps.folds import fold_generators, join_seeds, parent_configuration

if TYPE_CHECKING:
    import pandas as pd

    from ggo.evaluation.evaluate import EvalSettings  # imports keras: only inside functions here

PROG = "python -m ggo rescore"

#: The ``eval`` keys ``--set`` may change: how maps are made. The threshold and the minimum
#: component size are not among them: the validation folds choose those for each setting.
SETTABLE = ("lung_gate", "tta_flip")

EXAMPLES = f"""examples:
  {PROG} <CV parent> --set eval.lung_gate=hard
  {PROG} <CV parent> --set eval.lung_gate=hard --set eval.tta_flip=true --tracking-uri sqlite:///mlruns/mlflow.db
  {PROG} <seed-0 parent> --with-seeds-of <seed-1 parent>
"""


def with_sets(base: EvalConfig, pairs: Sequence[str]) -> EvalConfig:
    """``base`` with ``["eval.lung_gate=hard", ...]`` applied (``dataclasses.replace``), each value
    typed as the schema's :class:`~ggo.config.EvalConfig` types it. A key the eval section lacks,
    one the validation folds choose, a missing ``=`` or a wrong value raises ConfigError saying
    what is allowed."""
    import yaml

    keys = [f.name for f in dataclasses.fields(EvalConfig)]
    changes: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key = key.strip().removeprefix("eval.")
        if not sep or key not in keys:
            raise ConfigError(f"--set {pair!r}: write eval.KEY=VALUE with KEY one of the eval section's keys: {', '.join(keys)}")
        if key not in SETTABLE:
            raise ConfigError(
                f"--set {pair!r}: eval.{key} is chosen on the validation folds for every setting; "
                f"--set takes {', '.join(f'eval.{k}' for k in SETTABLE)}"
            )
        value = yaml.safe_load(text) if text.strip() else text
        if isinstance(getattr(base, key), bool) and not isinstance(value, bool):
            raise ConfigError(f"--set {pair!r}: eval.{key} is true or false")
        changes[key] = value
    typed_changes = section(EvalConfig, {**plain(base), **changes}, where="eval")  # enums: ConfigError names the choices
    return dataclasses.replace(base, **{k: getattr(typed_changes, k) for k in changes})


@dataclass
class Parent:
    """A CV row ready to score: its children's config, its data cache, and each fold's generators."""

    config: Config
    cache: Any
    folds: list[tuple[int, list[Any]]]
    one_sided: list[str]  # with joined seeds: params only some of the parents logged (not compared)


@dataclass
class Scores:
    """The protocol's numbers of a row's fold models under one :class:`EvalSettings`."""

    val_dice: tuple[float, float]  # mean, std over folds at the settings' own threshold
    threshold: float  # chosen on the validation folds
    min_component_px: int
    oof: pd.DataFrame  # per-image rows, out of fold, after the chosen post-processing
    test: dict[str, float]  # the fold ensemble on the test films
    test_rows: pd.DataFrame
    ggo_free_area: float  # out of fold; NaN without GGO-free films


def load_parent(uri: str, parent_run_id: str, workdir: str | Path, join: Sequence[str] = ()) -> Parent:
    """The row ``parent_run_id`` with its fold models loaded; with ``join``, the fold models of
    those parents (other seeds of the recipe) join each fold's. Raises ValueError or LookupError
    naming the run when it is not one CV configuration (or the parents are not one recipe)."""
    import keras

    from ggo.data import prepare_from_config

    one_sided: list[str] = []
    if join:
        runs, config, one_sided = join_seeds(uri, [parent_run_id, *join], workdir)
    else:
        runs, config = parent_configuration(uri, parent_run_id, workdir)
    cache = prepare_from_config(config.data, config.preprocess, progress=False)
    folds = [(fold, [keras.models.load_model(p, compile=False) for p in paths]) for fold, paths in fold_generators(uri, runs, workdir)]
    return Parent(config, cache, folds, one_sided)


def rescore(parent: Parent, settings: EvalSettings) -> Scores:
    """The protocol's numbers of ``parent``'s fold models under ``settings`` (see the module's docstring)."""
    import numpy as np
    import pandas as pd

    from ggo.evaluation.evaluate import choose_postprocess, masks_of, predict, score
    from ggo.evaluation.ggo_free import area_metrics, score_ggo_free
    from ggo.evaluation.scores import per_image_table

    cache = parent.cache
    val_dice, val_folds, test_maps = [], [], []
    test = cache.split(0)["test"]
    for fold, generators in parent.folds:
        val = cache.split(fold)["val"]
        probs = predict(generators, val.images, settings)
        val_dice.append(score(val.masks, probs, settings)["dice"])
        val_folds.append((val, probs))
        test_maps.append(predict(generators, test.images, settings))
    t, size, _ = choose_postprocess([(v.masks, p) for v, p in val_folds], parent.config.preprocess.resolution)
    chosen = dataclasses.replace(settings, threshold=t, min_component_px=size)
    mean = np.mean(test_maps, axis=0)
    oof = pd.concat([per_image_table(v.names, v.patients, "oof", v.masks, masks_of(p, chosen)) for v, p in val_folds])
    free = pd.concat([score_ggo_free(g, {"oof": cache.ggo_free_split(fold)["val"]}, chosen) for fold, g in parent.folds])
    return Scores(
        val_dice=(float(np.mean(val_dice)), float(np.std(val_dice))),
        threshold=t,
        min_component_px=size,
        oof=oof.reset_index(drop=True),
        test=score(test.masks, mean, chosen),
        test_rows=per_image_table(test.names, test.patients, "test", test.masks, masks_of(mean, chosen)),
        ggo_free_area=area_metrics(free).get("oof/ggo_free_area", float("nan")) if len(free) else float("nan"),
    )


def describe(label: str, r: Scores) -> str:
    """One line of a row's numbers under one setting."""
    m = r.test
    return (
        f"  {label:<12} val/dice {r.val_dice[0]:.3f} +- {r.val_dice[1]:.3f}  oof/dice {r.oof['dice'].mean():.3f}  "
        f"test dice {m['dice']:.3f} precision {m['precision']:.3f} recall {m['recall']:.3f}  "
        f"(threshold {r.threshold:g}, min px {r.min_component_px})  GGO-free area oof {r.ggo_free_area:.3f}"
    )


def paired(a: pd.DataFrame, b: pd.DataFrame, split: str) -> str:
    """The paired dice difference ``b - a`` on the films both scored, with its interval over patients."""
    from ggo.evaluation.stats import paired_difference

    both = a.merge(b, on=["image", "patient"], suffixes=("_a", "_b"))
    d = paired_difference(both["dice_a"], both["dice_b"], both["patient"], split=split)
    return f"  {split}: {d.delta_dice:+.3f} dice, 95% CI [{d.ci_low:+.3f}, {d.ci_high:+.3f}], Wilcoxon p = {d.p_value:.3g} ({d.n_images} films of {d.n_patients} patients)"


def label_of(base: EvalConfig, changed: EvalConfig) -> str:
    """``lung_gate=hard tta_flip=true``: the settable keys ``changed`` sets otherwise than ``base``."""
    differ = [k for k in SETTABLE if getattr(changed, k) != getattr(base, k)]
    return " ".join(f"{k}={str(plain(getattr(changed, k))).lower()}" for k in differ) or "same settings"


def rescore_row(uri: str, run_id: str, sets: Sequence[str], join: Sequence[str]) -> dict[str, Scores]:
    """``{"as trained": ..., "<sets>": ..., "+ seeds (...)": ...}`` for the row ``run_id``."""
    from ggo.evaluation.evaluate import EvalSettings

    results: dict[str, Scores] = {}
    with tempfile.TemporaryDirectory(prefix="ggo-rescore-") as tmp:
        parent = load_parent(uri, run_id, tmp)
        results["as trained"] = rescore(parent, EvalSettings.from_config(parent.config.eval))
        if sets:
            changed = with_sets(parent.config.eval, sets)
            results[label_of(parent.config.eval, changed)] = rescore(parent, EvalSettings.from_config(changed))
    if join:
        with tempfile.TemporaryDirectory(prefix="ggo-rescore-") as tmp:
            parent = load_parent(uri, run_id, tmp, join)
            if parent.one_sided:
                print(f"  (params only some of the joined parents logged, not compared: {', '.join(parent.one_sided)})")
            seeds = sorted({len(members) for _, members in parent.folds})
            results[f"+ seeds ({'/'.join(map(str, seeds))} per fold)"] = rescore(parent, EvalSettings.from_config(parent.config.eval))
    return results


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__, epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("parents", nargs="+", metavar="PARENT_RUN_ID", help="CV parent runs (or python -m ggo join runs) to score")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="eval.KEY=VALUE",
                        help=f"an eval setting to score with ({', '.join(f'eval.{k}' for k in SETTABLE)}); repeat for several")  # fmt: skip
    parser.add_argument("--with-seeds-of", dest="join", action="append", default=[], metavar="PARENT_RUN_ID",
                        help="a CV parent of the same recipe trained with another train.seed: its fold models "
                             "join each fold's as more ensemble members; repeat for several")  # fmt: skip
    parser.add_argument("--tracking-uri", default=None, help="MLflow store (default: $MLFLOW_TRACKING_URI or the project store)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; 2 for a wrong --set or a run that is not a CV row."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.sets and not args.join:
        parser.error("give --set eval.KEY=VALUE (e.g. --set eval.lung_gate=hard) or --with-seeds-of PARENT_RUN_ID")
    try:
        with_sets(EvalConfig(), args.sets)  # a wrong --set fails before any model loads
    except ConfigError as exc:
        parser.error(str(exc))
    for run_id in args.parents:
        print(f"{run_id}:")
        try:
            results = rescore_row(tracking.existing_store(args.tracking_uri), run_id, args.sets, args.join)
        except (ValueError, LookupError, FileNotFoundError) as exc:
            print(f"[ggo] rescore: {exc}", file=sys.stderr)
            return 2
        for name, r in results.items():
            print(describe(name, r))
        base = results["as trained"]
        for name, other in list(results.items())[1:]:
            print(f"  {name} minus as trained:")
            print(paired(base.oof, other.oof, "oof"))
            print(paired(base.test_rows, other.test_rows, "test"), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

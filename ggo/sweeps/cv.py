"""Cross-validation sweeps: fold statistics, the fold ensemble, out-of-fold scores, the CV summary.

A sweep over ``data.fold`` (``+sweeps=cv``, the champion preset) ends here (:func:`summarize_cv`,
called by :func:`ggo.sweeps.summary.summarize`). For each configuration: mean and std over folds of every
``val/*`` and ``test/*`` metric; the fold ensemble (mean of the folds' probability maps) scored on
the test patients after the threshold and small-component size chosen on the validation folds
only; and the **out-of-fold** per-image scores, every non-test film scored by the fold model that
did not train on it, with the same chosen post-processing. GGO-free films are scored the same way
for predicted GGO area (``oof/ggo_free_area``, ``test/ggo_free_area``: :mod:`ggo.evaluation.ggo_free`).

Several seeds per fold (``data.fold=0,1,2,3,4 train.seed=0,1``) make one configuration with more
ensemble members: every fold's model is then the mean of its seed models' probability maps (for
the out-of-fold scores and the post-processing choice), the test ensemble is the mean of those
fold models (every fold weighs the same), and the shipped ensemble holds every member. The
``*_fold_mean``/``*_fold_std`` statistics take each fold's seed-mean first (a single model's
score, comparable with a one-seed sweep's), then mean and std over the folds.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ggo import tracking
from ggo.config import Config, EvalConfig, section
from ggo.sweeps.folds import MEMBER_PARAMS, by_fold, fold_generators, run_config, seed_of
from ggo.sweeps.tables import to_markdown

if TYPE_CHECKING:
    from ggo.evaluation.evaluate import EvalSettings  # imports keras: only inside functions here


def fold_statistics(runs: list[Any]) -> dict[str, float]:
    """Mean and std over folds of every ``val/*`` and ``test/*`` metric of ``runs``; a fold with
    several seeds counts once, with the mean of its seeds' values."""
    stats: dict[str, float] = {}
    folds = by_fold(runs).values()
    for name in tracking.iter_metric_names(runs):
        seed_means = [[r.data.metrics[name] for r in fold if name in r.data.metrics] for fold in folds]
        values = [float(np.mean(v)) for v in seed_means if v]
        if values:
            stats[f"{name}_fold_mean"] = float(np.mean(values))
            stats[f"{name}_fold_std"] = float(np.std(values))
    return stats


@dataclass
class Ensemble:
    """A configuration's fold ensemble: ``metrics`` on test, the run ``config`` (its ``eval``
    section set to the chosen post-processing), the mean val dice of every candidate
    ``"<threshold>/<size>"``, and the per-image scores (``test`` rows: the ensemble; ``oof``
    rows: each fold's val films by that fold's model, the mean of its seeds' maps)."""

    metrics: dict[str, float]
    config: Config
    choice_scores: dict[str, float]
    per_image: Any
    film: Any = None  # the film-level answer chosen out of fold (ggo.evaluation.film.FilmChoice), if any
    film_metrics: dict[str, float] = dataclasses.field(default_factory=dict)

    @property
    def settings(self) -> EvalSettings:
        """The chosen post-processing, as the shipped ensemble applies it."""
        from ggo.evaluation.evaluate import EvalSettings

        return EvalSettings.from_config(self.config.eval)


def _fold_maps(uri: str, runs: list[Any], cache: Any, workdir: str) -> tuple[list[np.ndarray], list[tuple[Any, np.ndarray]], list[str]]:
    """Each fold's test maps, its (val split, val maps) where they match the cache, the test
    names; a fold with several seed runs gets the mean of their maps."""
    test_probs, val_folds, names = [], [], None
    for fold, members in by_fold(runs).items():
        val = cache.split(fold)["val"]
        tests, vals = [], []
        for run in members:
            path = tracking.download_artifact(uri, run.info.run_id, "predictions/probabilities.npz", Path(workdir) / run.info.run_id)
            with np.load(path) as npz:
                run_names = [str(n) for n in npz["test_names"]]
                if names is not None and run_names != names:
                    raise ValueError(f"run {run.info.run_id} scored different test images: the folds do not share a split")
                names = run_names
                tests.append(npz["test_probs"].astype(np.float32))
                if [str(n) for n in npz["val_names"]] == list(val.names):
                    vals.append(npz["val_probs"].astype(np.float32))
        test_probs.append(np.mean(tests, axis=0))
        if len(vals) == len(members):  # every seed scored this fold's val films
            val_folds.append((val, np.mean(vals, axis=0)))
    return test_probs, val_folds, names or []


def ensemble_scores(uri: str, runs: list[Any], workdir: str) -> Ensemble:
    """Score the fold ensemble on the test patients, and every fold on its own val films.

    The threshold and the minimum predicted-component size are chosen on the validation folds
    only (each fold's val probability maps against its own val masks), then applied to the mean
    of the folds' test probability maps and to the out-of-fold maps. With several seeds per fold
    a fold's maps are the mean of its seeds' (see the module's docstring).
    """
    import pandas as pd

    from ggo.data import prepare_from_config
    from ggo.evaluation.evaluate import EvalSettings, choose_postprocess, masks_of, score
    from ggo.evaluation.film import shares
    from ggo.sweeps.film_choice import choose_film_call, film_metrics
    from ggo.evaluation.scores import per_image_table

    config = run_config(uri, runs[0].info.run_id, workdir)
    cache = prepare_from_config(config.data, config.preprocess, progress=False)
    test_probs, val_folds, names = _fold_maps(uri, runs, cache, workdir)
    test = cache.split(0)["test"]
    if list(test.names) != names:
        raise ValueError("the cached test split differs from the one the folds were scored on; was the cache rebuilt?")
    settings, choice = EvalSettings.from_config(config.eval), {}
    if val_folds:
        folds = [(val.masks, probs) for val, probs in val_folds]
        threshold, size, choice = choose_postprocess(folds, config.preprocess.resolution)
        settings = dataclasses.replace(settings, threshold=threshold, min_component_px=size)
    mean = np.mean(test_probs, axis=0)
    film = choose_film_call(fold_generators(uri, runs, workdir), cache, val_folds, settings) if val_folds else None
    film_metrics_ = film_metrics(film, shares(masks_of(mean, settings)))
    if film is not None and film.call.fitted:
        settings = dataclasses.replace(settings, film_a=film.call.a, film_b=film.call.b, film_cut=film.call.cut)
    rows = [per_image_table(test.names, test.patients, "test", test.masks, masks_of(mean, settings))]
    rows += [per_image_table(val.names, val.patients, "oof", val.masks, masks_of(p, settings)) for val, p in val_folds]
    config = dataclasses.replace(config, eval=section(EvalConfig, settings.as_config()))
    return Ensemble(score(test.masks, mean, settings), config, choice, pd.concat(rows, ignore_index=True), film, film_metrics_)



def _row(objective: str, runs: list[Any], stats: dict[str, float], ens: Ensemble) -> dict[str, Any]:
    first = runs[0].data.tags
    member = tuple(f"{p}=" for p in ("data.fold", *MEMBER_PARAMS))
    folds = by_fold(runs)
    return {
        "config": " ".join(o for o in first.get("ggo.overrides", "").split() if not o.startswith(member)) or "defaults",
        "folds": len(folds),
        "seeds": "/".join(str(n) for n in sorted({len(m) for m in folds.values()})),  # per fold; "1/2": a seed run failed
        f"{objective} mean": stats.get(f"{objective}_fold_mean", float("nan")),
        f"{objective} std": stats.get(f"{objective}_fold_std", float("nan")),
        "ensemble test/dice": ens.metrics.get("dice", float("nan")),
        "ensemble test/precision": ens.metrics.get("precision", float("nan")),
        "ensemble test/recall": ens.metrics.get("recall", float("nan")),
        "test/dice fold mean": stats.get("test/dice_fold_mean", float("nan")),
        "threshold (chosen on val)": ens.config.eval.threshold,
        "min component px (chosen on val)": ens.config.eval.min_component_px,
        "minutes": sum(((r.info.end_time or 0) - (r.info.start_time or 0)) / 60000 for r in runs),
    }


def with_uncertainty(table: Any, per_image: dict[str, Any], sort_by: str) -> Any:
    """``table`` (one row per configuration, column ``config``) sorted by ``sort_by``, with the
    out-of-fold 95% CI of each row's dice and whether it can be told apart from the top row."""
    from ggo.evaluation.scores import ranking_uncertainty, uncertainty_columns

    table = table.sort_values(sort_by, ascending=False, na_position="last").reset_index(drop=True)
    keys = list(table["config"])
    for name, values in uncertainty_columns(keys, ranking_uncertainty(per_image, keys, "oof")).items():
        table[f"oof {name}"] = values
    return table


def summarize_cv(uri: str, parent_run_id: str, groups: list[list[Any]], *, objective: str = "val/dice") -> None:
    """Cross-validation report on the parent run (``cv_summary.csv``/``.md``).

    When the sweep is one configuration over its folds (``+sweeps=cv``), the parent also gets
    ``val/*`` = fold means (so it ranks and promotes like a run), ``test/*`` = the ensemble's,
    the per-image scores (``test`` and ``oof``) and the ensemble itself as its ``model``.
    """
    import tempfile

    import pandas as pd

    rows, per_image = [], {}
    with tempfile.TemporaryDirectory(prefix="ggo-cv-") as tmp:
        for runs in groups:
            stats = fold_statistics(runs)
            ens = ensemble_scores(uri, runs, tmp)
            rows.append(_row(objective, runs, stats, ens))
            per_image[rows[-1]["config"]] = ens.per_image
            if len(groups) == 1:
                _log_cv_parent(uri, parent_run_id, runs, stats, ens, tmp)
    table = with_uncertainty(pd.DataFrame(rows), per_image, f"{objective} mean")
    parent = tracking.MlflowTracker.resume(uri, parent_run_id)
    parent.log_text(table.to_csv(index=False), "cv_summary.csv")
    parent.log_text(to_markdown(table), "cv_summary.md")
    parent.detach()
    print("\n[ggo] cross-validation (mean +- std over folds, a fold's seeds averaged first; ensemble = mean of the "
          "fold probability maps on test)\n%s\n" % to_markdown(table), flush=True)  # fmt: skip


def _parent_metrics(stats: dict[str, float], ens: Ensemble) -> dict[str, float]:
    metrics = dict(stats)
    for name, value in stats.items():
        if name.startswith("val/") and name.endswith("_fold_mean"):
            metrics[name[: -len("_fold_mean")]] = value
        if name.startswith("val/") and name.endswith("_fold_std"):
            metrics[name[: -len("_fold_std")] + "_std"] = value
    metrics.update({f"test/{k}": v for k, v in ens.metrics.items()})
    metrics.update(ens.film_metrics)
    oof = ens.per_image[ens.per_image["split"] == "oof"]
    if len(oof):
        metrics["oof/dice"] = float(oof["dice"].mean())
    return metrics



def ggo_free_scores(folds: list[tuple[int, list[Path]]], cache: Any, settings: Any) -> Any:
    """The GGO-free films' rows (:mod:`ggo.evaluation.ggo_free`): ``oof``, each fold's val GGO-free films by
    that fold's model (the one that did not train on them); ``test``, the test patients' GGO-free
    films by the ensemble of all folds. ``folds``: :func:`fold_generators`. No GGO-free film in the
    cache: an empty table, and no model is loaded."""
    import keras

    from ggo.evaluation.ggo_free import combine, score_ggo_free

    if not cache.ggo_free.any():
        return combine([])
    tables, everyone = [], []
    for fold, paths in folds:
        generators = [keras.models.load_model(p, compile=False) for p in paths]
        everyone.extend(generators)
        tables.append(score_ggo_free(generators, {"oof": cache.ggo_free_split(fold)["val"]}, settings))
    tables.append(score_ggo_free(everyone, {"test": cache.ggo_free_split(0)["test"]}, settings))
    return combine(tables)


def _log_cv_parent(uri: str, parent_run_id: str, runs: list[Any], stats: dict[str, float], ens: Ensemble, tmp: str) -> None:
    """A one-configuration CV sweep: the parent run becomes the fold ensemble, metrics and model."""
    from ggo.data import prepare_from_config
    from ggo.evaluation.ggo_free import area_metrics, log_ggo_free
    from ggo.evaluation.scores import log_per_image
    from ggo.serving.model import log_segmenter, serving_config

    first = runs[0].data.tags
    tags = {k: first[k] for k in ("gen", "disc", "loss", "resolution", "data") if k in first}
    tags.update(
        {
            "fold": "ensemble",
            "ggo.cv_folds": ",".join(str(f) for f in by_fold(runs)),
            "ggo.cv_seeds": ",".join(str(s) for s in sorted({seed_of(r) for r in runs})),
            "ggo.min_component_px": ens.config.eval.min_component_px,
            "ggo.threshold": ens.config.eval.threshold,
        }
    )
    folds = fold_generators(uri, runs, tmp)
    generators = [path for _, paths in folds for path in paths]
    cache = prepare_from_config(ens.config.data, ens.config.preprocess, progress=False)
    free = ggo_free_scores(folds, cache, ens.settings)
    parent = tracking.MlflowTracker.resume(uri, parent_run_id)
    parent.log_metrics({**_parent_metrics(stats, ens), **area_metrics(free)})  # + oof/, test/ggo_free_area
    log_ggo_free(parent, free)
    parent.set_tags(tags)
    parent.log_dict(
        {
            "chosen_threshold": tags["ggo.threshold"],
            "chosen_min_component_px": tags["ggo.min_component_px"],
            "mean_val_dice_by_threshold_and_min_component_px": ens.choice_scores,
        },
        "postprocess_choice.json",
    )
    if ens.film is not None:
        parent.log_dict(ens.film.as_dict(), "film_choice.json")
        film = ens.config.eval
        parent.set_tags({"ggo.film_a": film.film_a, "ggo.film_b": film.film_b, "ggo.film_cut": film.film_cut})
    log_per_image(parent, ens.per_image)
    log_segmenter(parent, generators, serving_config(ens.config), Path(tmp) / "ensemble")
    parent.detach()

"""A cross-validation's film-level answer (:mod:`ggo.evaluation.film`), chosen out of fold.

The GGO films' shares and dice come from each fold's own val maps; the GGO-free films', from each
fold model on its own val fold's GGO-free films (the model that did not train on them). The test
films never take part: they only report what the call does to them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from ggo.evaluation.evaluate import EvalSettings
    from ggo.evaluation.film import FilmChoice


def choose_film_call(
    folds: list[tuple[int, list[Path]]], cache: Any, val_folds: list[tuple[Any, np.ndarray]], settings: EvalSettings
) -> FilmChoice | None:
    """The film-level model of a row under ``settings`` (the post-processing chosen on val): its
    fold models (``folds``: :func:`ggo.sweeps.folds.fold_generators`) and each fold's (val split, val
    maps). None when the cache has no GGO-free film (nothing to learn "no GGO" from)."""
    if not cache.ggo_free.any():
        return None
    import keras

    from ggo.evaluation.evaluate import masks_of, predict
    from ggo.evaluation.film import choose_call, shares
    from ggo.evaluation.scores import per_image_table

    free_shares: list[float] = []
    for fold, paths in folds:
        free = cache.ggo_free_split(fold)["val"]
        if len(free):
            generators = [keras.models.load_model(p, compile=False) for p in paths]
            free_shares.extend(shares(masks_of(predict(generators, free.images, settings), settings)).tolist())
    ggo_shares, ggo_dice = [], []
    for val, probs in val_folds:
        masks = masks_of(probs, settings)
        ggo_shares.extend(shares(masks).tolist())
        ggo_dice.extend(per_image_table(val.names, val.patients, "oof", val.masks, masks)["dice"].tolist())
    return choose_call(ggo_shares, ggo_dice, free_shares)


def film_metrics(choice: FilmChoice | None, test_shares: np.ndarray) -> dict[str, float]:
    """The parent's film-level metrics: out of fold, the specificity on the GGO-free films and the
    sensitivity on the GGO films with their exact 95% intervals, the GGO-free area before the call;
    on test (GGO films only), the sensitivity."""
    from ggo.evaluation.film import exact_interval

    if choice is None or not choice.call.fitted:
        return {}
    metrics = {"oof/ggo_free_area_without_film_call": choice.area_before, "oof/film_dice_cost": choice.dice_cost}
    for name, (k, n) in (("specificity", choice.specificity), ("sensitivity", choice.sensitivity)):
        low, high = exact_interval(k, n)
        metrics.update({f"oof/film_{name}": k / n, f"oof/film_{name}_low": low, f"oof/film_{name}_high": high})
    present = choice.call.present(test_shares)
    if len(present):
        low, high = exact_interval(int(present.sum()), len(present))
        metrics.update({"test/film_sensitivity": float(present.mean()), "test/film_sensitivity_low": low, "test/film_sensitivity_high": high})
    return metrics

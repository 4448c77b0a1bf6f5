"""The top run's films: its best, median and worst scored films as TP / FP / FN overlays.

Nothing is predicted again: a run logged its probability maps (``predictions/probabilities.npz``)
and its per-image scores, and its data cache (tag ``ggo.cache``) holds the films and their masks.
The maps become masks with the run's own post-processing (``eval.threshold``,
``eval.min_component_px``; a cross-validation parent's are the ones it chose on the folds), as
every score of the run was made. A cache that is gone (another machine, cleaned) leaves the
report without overlays and says how to get them back.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ggo.sweeps.report.collect import Child, Sweep, download

PREDICTIONS = "predictions/probabilities.npz"


@dataclass
class Films:
    """The overlay picture (RGB uint8) or why there is none."""

    picture: np.ndarray | None
    note: str


def open_run_cache(children: Sequence[Child]) -> tuple[Any, str]:
    """The data cache the runs trained on (None, and why, when it is not on this machine)."""
    from ggo.data import IncompleteCacheError, open_cache

    path = next((c.tags["ggo.cache"] for c in children if c.tags.get("ggo.cache")), "")
    if not path:
        return None, "the runs recorded no data cache (tag ggo.cache)"
    try:
        return open_cache(path), ""
    except (FileNotFoundError, IncompleteCacheError, OSError) as exc:
        return None, (f"the data cache is not on this machine ({exc}); build it again with the sweep's data and "
                      "preprocess settings to see the films")


def picks(rows: pd.DataFrame) -> list[tuple[str, pd.Series]]:
    """The best, median and worst film of ``rows`` by dice (fewer when there are fewer films)."""
    ranked = rows.sort_values(["dice", "image"], ascending=[False, True]).reset_index(drop=True)
    positions = {"best": 0, "median": (len(ranked) - 1) // 2, "worst": len(ranked) - 1}
    seen: set[int] = set()
    out = []
    for label, at in positions.items():
        if at not in seen:
            seen.add(at)
            out.append((label, ranked.iloc[at]))
    return out


def _settings(source: dict[str, str], threshold_key: str, size_key: str) -> tuple[float, int]:
    from ggo.config import defaults

    eval_defaults = defaults("eval")
    threshold = float(source.get(threshold_key, eval_defaults["threshold"]))
    size = int(float(source.get(size_key, eval_defaults["min_component_px"])))
    return threshold, size


def _masks(probs: np.ndarray, threshold: float, min_px: int) -> np.ndarray:
    """The run's binary masks: small predicted components dropped, then ``> threshold``
    (what :func:`ggo.evaluation.evaluate.masks_of` does, without loading Keras)."""
    from ggo.evaluation.postprocess import postprocess_probs

    return postprocess_probs(probs.astype(np.float32), min_px, threshold) > threshold


def _val_maps(sweep: Sweep, runs: Sequence[Child], workdir: Path) -> dict[str, list[np.ndarray]]:
    """``{film name: [val probability map of each run that scored it]}``."""
    maps: dict[str, list[np.ndarray]] = {}
    for run in runs:
        path = download(sweep.uri, run.run_id, PREDICTIONS, workdir)
        if path is None:
            continue
        with np.load(path) as npz:
            for name, prob in zip(npz["val_names"], npz["val_probs"]):
                maps.setdefault(str(name), []).append(prob.astype(np.float32))
    return maps


def _index(cache: Any, folds: Sequence[int]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{film name: (image, GGO mask)}`` over the val films of ``folds``."""
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for fold in folds:
        val = cache.split(fold)["val"]
        for name, image, mask in zip(val.names, val.images, val.masks):
            out[str(name)] = (image, mask)
    return out


def overlays(sweep: Sweep, runs: Sequence[Child], rows: pd.DataFrame | None, cache: Any, workdir: Path, *, cv: bool) -> Films:
    """Best, median and worst of ``rows`` (val or out-of-fold per-image scores), drawn from the
    maps ``runs`` logged. ``cv``: the films come from several folds, the post-processing from the
    parent's choice."""
    from ggo.evaluation.viz import outcome_figure, to_rgb_uint8

    if rows is None or not len(rows):
        return Films(None, "no per-image scores to choose the films by")
    if cache is None:
        return Films(None, "")
    folds = sorted({int(r.params.get("data.fold", 0)) for r in runs})
    films, maps = _index(cache, folds), _val_maps(sweep, runs, workdir)
    if cv and len(sweep.cv_groups) == 1:
        threshold, min_px = _settings(sweep.tags, "ggo.threshold", "ggo.min_component_px")
    else:
        threshold, min_px = _settings(runs[0].params, "eval.threshold", "eval.min_component_px")
    tiles = []
    for label, row in picks(rows):
        name = str(row["image"])
        if name not in films or name not in maps:
            continue
        image, mask = films[name]
        pred = _masks(np.mean(maps[name], axis=0)[None], threshold, min_px)[0]
        tiles.append((to_rgb_uint8(image), mask, pred, f"{label}: {name[:28]} dice {float(row['dice']):.3f}"))
    if not tiles:
        return Films(None, "the logged probability maps do not cover the scored films (were they logged by an older ggo?)")
    return Films(outcome_figure(tiles, columns=len(tiles), size=300), "")


def ggo_free_rows(table: pd.DataFrame | None, splits: Sequence[str]) -> pd.DataFrame | None:
    """The GGO-free films' rows of ``splits`` (None when there are none)."""
    if table is None:
        return None
    rows = table[table["split"].isin(splits)]
    return rows if len(rows) else None


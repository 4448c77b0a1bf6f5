"""Evaluation: the one predict -> postprocess -> score path.

Every number ggo reports about its masks comes from here: a run's final ``val/*`` and ``test/*``
and a resumed Hyperband trial's ``val/dice_resumed`` (:mod:`ggo.training.experiment`), a cross-validation
sweep's fold ensemble and the post-processing it chooses on the validation folds
(:mod:`ggo.sweeps.cv`), ``predict --score`` (:mod:`ggo.ship.predict`), and the shipped model's masks
(:mod:`ggo.serving.model`). The settings (:class:`EvalSettings`: threshold, minimum component size, flip
test-time augmentation) default to the config schema's ``eval`` section, the only place those
defaults are written.

    settings = EvalSettings.from_config(config.eval)
    metrics, probs = evaluate_splits(generator, {"val": val, "test": test}, settings)
    # metrics: {"val/dice": ..., "test/precision": ...}; probs: the raw maps, before postprocessing
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from ggo.config import EvalConfig, defaults, section
from ggo.evaluation.film import FilmCall, shares
from ggo.evaluation.inference import ensemble_probs, predict_probs
from ggo.evaluation.metrics import METRIC_NAMES, dice_from_counts, evaluate, pooled_from_counts
from ggo.evaluation.postprocess import MASK_LEVEL, THRESHOLDS, candidate_sizes, postprocess_probs

_DEFAULTS = defaults("eval")


def _value(choice: Any) -> str:
    """An enum config value (OmegaConf's) or its string, as the string."""
    return str(getattr(choice, "value", choice))


@dataclass(frozen=True)
class EvalSettings:
    """How probability maps become masks: ``prob > threshold``, then predicted components smaller
    than ``min_component_px`` (model pixels) dropped; ``tta_flip`` also predicts the mirrored image;
    ``lung_gate`` says how a lung head gates GGO (:func:`ggo.evaluation.inference.gated_probs`);
    ``film_*`` are the film-level answer (:mod:`ggo.evaluation.film`): a film it calls GGO-free
    gets an empty mask."""

    threshold: float = _DEFAULTS["threshold"]
    min_component_px: int = _DEFAULTS["min_component_px"]
    tta_flip: bool = _DEFAULTS["tta_flip"]
    lung_gate: str = _DEFAULTS["lung_gate"]
    film_a: float = _DEFAULTS["film_a"]
    film_b: float = _DEFAULTS["film_b"]
    film_cut: float = _DEFAULTS["film_cut"]

    @classmethod
    def from_config(cls, values: EvalConfig | Mapping[str, Any] | None) -> EvalSettings:
        """From a typed config's ``eval`` section, or a mapping of its keys (a shipped model's
        ``preprocess.json``, whose other keys are ignored); a missing key takes the schema's default."""
        ev = section(EvalConfig, values, lenient=True)
        return cls(
            threshold=float(ev.threshold),
            min_component_px=int(ev.min_component_px),
            tta_flip=bool(ev.tta_flip),
            lung_gate=_value(ev.lung_gate),
            film_a=float(ev.film_a),
            film_b=float(ev.film_b),
            film_cut=float(ev.film_cut),
        )

    def as_config(self) -> dict[str, Any]:
        """The ``eval`` section these settings stand for."""
        return {
            "tta_flip": self.tta_flip, "min_component_px": self.min_component_px, "threshold": self.threshold,
            "lung_gate": self.lung_gate, "film_a": self.film_a, "film_b": self.film_b, "film_cut": self.film_cut,
        }  # fmt: skip

    @property
    def film(self) -> FilmCall:
        """The film-level answer these settings ship (:class:`ggo.evaluation.film.FilmCall`)."""
        return FilmCall(self.film_a, self.film_b, self.film_cut)


def predict(generators: Any, images: np.ndarray, settings: EvalSettings, batch_size: int = 8) -> np.ndarray:
    """Raw GGO probability maps (N, R, R, 1) for preprocessed ``images``: one generator's, or the
    mean of a fold ensemble's (a list of generators); flipped too with ``settings.tta_flip``."""
    if isinstance(generators, (list, tuple)):
        return ensemble_probs(generators, images, batch_size, tta_flip=settings.tta_flip, lung_gate=settings.lung_gate)
    return predict_probs(generators, images, batch_size, tta_flip=settings.tta_flip, lung_gate=settings.lung_gate)


def postprocess(probs: np.ndarray, settings: EvalSettings) -> np.ndarray:
    """The maps with the pixels of predicted components under ``settings.min_component_px`` zeroed,
    and the whole map of a film the film-level answer calls GGO-free (``settings.film``)."""
    kept = postprocess_probs(probs, settings.min_component_px, settings.threshold)
    call = settings.film
    if call.fitted and call.cut > 0 and len(kept):
        absent = ~call.present(shares(kept > settings.threshold))
        kept = np.where(absent.reshape((-1,) + (1,) * (kept.ndim - 1)), np.zeros((), kept.dtype), kept)
    return kept


def film_probabilities(probs: np.ndarray, settings: EvalSettings) -> np.ndarray:
    """P(the film shows GGO) of each raw map (:mod:`ggo.evaluation.film`); NaN without a film-level model."""
    kept = postprocess_probs(probs, settings.min_component_px, settings.threshold)
    return settings.film.probability(shares(kept > settings.threshold))


def score(masks: np.ndarray, probs: np.ndarray, settings: EvalSettings) -> dict[str, float]:
    """The protocol's metrics (:data:`ggo.evaluation.metrics.METRIC_NAMES`) of raw ``probs`` against ``masks``,
    after :func:`postprocess`, at ``settings.threshold``."""
    return evaluate(masks, postprocess(probs, settings), settings.threshold)


def evaluate_splits(
    generators: Any, splits: Mapping[str, Any], settings: EvalSettings
) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Predict and score every split (``{"val": split, ...}``, each with ``images`` and ``masks``).

    Returns ``{"<split>/<metric>": value}`` (an empty split is predicted but not scored) and the raw
    probability maps per split (what ``predictions/probabilities.npz`` keeps)."""
    probs = {name: predict(generators, split.images, settings) for name, split in splits.items()}
    metrics: dict[str, float] = {}
    for name, split in splits.items():
        if len(split):
            metrics.update({f"{name}/{k}": float(v) for k, v in score(split.masks, probs[name], settings).items()})
    return metrics, probs


def per_image_scores(splits: Mapping[str, Any], probs: Mapping[str, np.ndarray], settings: EvalSettings) -> Any:
    """One row per film of every non-empty split (:mod:`ggo.evaluation.scores`): the masks :func:`score`
    scores, so each split's mean ``dice`` is its ``<split>/dice``. Each split needs ``names``,
    ``patients`` and ``masks``; ``probs`` are its raw maps."""
    import pandas as pd

    from ggo.evaluation.scores import COLUMNS, per_image_table

    tables = [
        per_image_table(split.names, split.patients, name, split.masks, masks_of(probs[name], settings))
        for name, split in splits.items()
        if len(split)
    ]
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=COLUMNS)


def masks_of(probs: np.ndarray, settings: EvalSettings) -> np.ndarray:
    """Binary float32 masks: :func:`postprocess`, then ``> settings.threshold``."""
    return (postprocess(probs, settings) > settings.threshold).astype(np.float32)


# --- choosing the post-processing on validation folds (never on test) ---------------------------


def choose_min_component(
    folds: Iterable[tuple[np.ndarray, np.ndarray]], resolution: int, metric: str = "dice"
) -> tuple[int, dict[int, float]]:
    """The size that maximises the mean ``metric`` over validation folds ``(masks, probs)``, at the
    default threshold. Returns the chosen size and the mean score of every candidate; ties keep
    the smaller size."""
    folds = list(folds)
    scores: dict[int, float] = {}
    for size in candidate_sizes(resolution):
        settings = EvalSettings(min_component_px=size)
        scores[size] = float(np.mean([score(masks, probs, settings)[metric] for masks, probs in folds]))
    best = max(scores, key=lambda s: (scores[s], -s))
    return best, scores


def choose_postprocess(
    folds: Iterable[tuple[np.ndarray, np.ndarray]],
    resolution: int,
    thresholds: Sequence[float] = THRESHOLDS,
    metric: str = "dice",
) -> tuple[float, int, dict[str, float]]:
    """The (threshold, minimum component size) that maximise the mean ``metric`` over
    validation folds ``(masks, probs)``.

    Returns the threshold, the size, and the mean score of every pair keyed ``"<t>/<px>"``. Ties
    keep the threshold nearest the default one, then the smaller size.
    """
    folds = list(folds)
    scores: dict[tuple[float, int], float] = {}
    for t in thresholds:
        for size in candidate_sizes(resolution):
            settings = EvalSettings(threshold=float(t), min_component_px=size)
            scores[(float(t), size)] = float(np.mean([score(masks, probs, settings)[metric] for masks, probs in folds]))
    default = EvalSettings().threshold
    t, size = max(scores, key=lambda k: (scores[k], -abs(k[0] - default), -k[1]))
    return t, size, {f"{k[0]:g}/{k[1]}": v for k, v in scores.items()}


# --- scoring at each image's original size (predict --score) ------------------------------------


def grid_weight(height: int, width: int, resolution: int | None, fit: str = "pad") -> tuple[float, float]:
    """How many model-grid pixels one original pixel stands for, and the padding pixels the
    grid adds (always true negatives): ``(weight, pad)``. ``resolution=None``: ``(1, 0)``."""
    if not resolution:
        return 1.0, 0.0
    if fit == "pad":
        weight = (resolution / max(height, width)) ** 2
        return weight, resolution * resolution - weight * height * width
    return resolution * resolution / (height * width), 0.0


def score_original_size(
    pairs: Iterable[tuple[np.ndarray, np.ndarray]],
    threshold: float = EvalSettings.threshold,
    *,
    resolution: int | None = None,
    fit: str = "pad",
) -> dict[str, float]:
    """The protocol's metrics of ``(true mask, probability map)`` pairs, each at its image's size.

    ``dice`` is the mean over images (resolution-independent). The pooled metrics sum pixel counts
    over the set; with ``resolution`` (the model's, and its ``fit``) each image's counts are
    weighted as the model's grid weighs them (padding counted as true negatives), so the numbers
    match a run's ``test/*``. Empty ``pairs``: ``{}``.
    """
    counts = np.zeros(4)
    dices = []
    for true, prob in pairs:
        g, p = np.asarray(true) > MASK_LEVEL, np.asarray(prob) > threshold
        tp, fp, fn = float(np.sum(p & g)), float(np.sum(p & ~g)), float(np.sum(~p & g))
        tn = float(g.size) - tp - fp - fn
        dices.append(float(dice_from_counts(np.float32(tp), np.float32(fp), np.float32(fn))))
        weight, pad = grid_weight(*g.shape, resolution, fit)
        counts += weight * np.array([tp, fp, fn, tn]) + np.array([0.0, 0.0, 0.0, pad])
    if not dices:
        return {}
    pooled = pooled_from_counts(*(np.float32(c) for c in counts))
    values = {"dice": float(np.mean(dices)), **{k: float(v) for k, v in pooled.items()}}
    return {k: values[k] for k in METRIC_NAMES}


__all__ = [
    "EvalSettings",
    "choose_min_component",
    "choose_postprocess",
    "evaluate_splits",
    "grid_weight",
    "masks_of",
    "per_image_scores",
    "postprocess",
    "predict",
    "score",
    "score_original_size",
]

"""The film-level answer: does this film show GGO at all, and how sure is the model?

A segmenter trained on GGO films marks some GGO on almost every film, normal ones too (about a
tenth of a GGO-free film here). The film-level answer turns the share of the film its mask marks
(after the threshold and the small-component removal, on the model's grid) into a probability,

    ggo_probability = sigmoid(a + b * log(share + EPS))

fitted by maximum likelihood on the out-of-fold films of a cross-validation (GGO films 1, GGO-free
films 0), and calls a film GGO-free when that probability is under ``cut``: its mask is then
empty. ``cut`` is chosen out of fold too (never on test): the one that leaves the least predicted
area on the GGO-free films while costing the GGO films at most ``budget`` mean dice (a GGO film
called GGO-free loses its whole mask). Both ship in the model (``eval.film_a``, ``eval.film_b``,
``eval.film_cut``); ``film_b = 0`` means no film-level model was fitted (no GGO-free films out of
fold): then ``ggo_probability`` is unknown and every film with a marked pixel is GGO.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

EPS = 1e-4  # the share a mask with no pixel counts as, so that its log is finite
BUDGET = 0.01  # mean dice the GGO films may lose to the film-level call, out of fold


@dataclass(frozen=True)
class FilmCall:
    """A fitted film-level model: ``probability(share)`` and the ``cut`` under which a film is GGO-free."""

    a: float = 0.0
    b: float = 0.0
    cut: float = 0.0

    @property
    def fitted(self) -> bool:
        return self.b != 0.0

    def probability(self, share: np.ndarray | float) -> np.ndarray:
        """P(the film shows GGO) for the share of it the mask marks; NaN when not fitted."""
        share = np.asarray(share, dtype=np.float64)
        if not self.fitted:
            return np.full(share.shape, np.nan)
        return 1.0 / (1.0 + np.exp(-(self.a + self.b * np.log(share + EPS))))

    def present(self, share: np.ndarray | float) -> np.ndarray:
        """Whether each film is called GGO: a marked pixel, and (fitted) a probability of at least ``cut``."""
        share = np.asarray(share, dtype=np.float64)
        if not self.fitted or self.cut <= 0:
            return share > 0
        return (share > 0) & (self.probability(share) >= self.cut)


def shares(masks: np.ndarray) -> np.ndarray:
    """The share of each film (N, R, R[, 1]) its binary mask marks."""
    masks = np.asarray(masks)
    return masks.reshape(len(masks), -1).astype(bool).mean(axis=1) if len(masks) else np.zeros(0)


def fit_probability(share: Sequence[float], label: Sequence[int]) -> tuple[float, float]:
    """``(a, b)`` of the logistic model by maximum likelihood, with a weak ridge on ``b`` so that
    perfectly separated films still give a finite slope. ``(0, 0)`` without both labels."""
    from scipy.optimize import minimize

    x = np.log(np.asarray(share, dtype=np.float64) + EPS)
    y = np.asarray(label, dtype=np.float64)
    if len(set(y.tolist())) < 2:
        return 0.0, 0.0

    def loss(params: np.ndarray) -> float:
        z = params[0] + params[1] * x
        return float(np.sum(np.logaddexp(0.0, z) - y * z) + 1e-3 * params[1] ** 2)

    a, b = minimize(loss, np.array([0.0, 1.0]), method="BFGS").x
    return float(a), float(b)


@dataclass(frozen=True)
class FilmChoice:
    """What the out-of-fold films say about one film-level model: the call, and what it costs."""

    call: FilmCall
    negatives: int  # GGO-free films out of fold
    positives: int  # GGO films out of fold
    area_before: float  # mean share marked on the GGO-free films, without the call
    area_after: float
    dice_cost: float  # mean dice the GGO films lose to it
    specificity: tuple[int, int]  # GGO-free films called GGO-free, of all
    sensitivity: tuple[int, int]  # GGO films called GGO, of all

    def as_dict(self) -> dict[str, float]:
        return {
            "film_a": self.call.a, "film_b": self.call.b, "film_cut": self.call.cut,
            "negatives": self.negatives, "positives": self.positives,
            "ggo_free_area_before": self.area_before, "ggo_free_area_after": self.area_after,
            "dice_cost": self.dice_cost,
            "specificity": self.specificity[0] / max(1, self.specificity[1]),
            "sensitivity": self.sensitivity[0] / max(1, self.sensitivity[1]),
        }  # fmt: skip


def choose_call(
    ggo_shares: Sequence[float], ggo_dice: Sequence[float], free_shares: Sequence[float], budget: float = BUDGET
) -> FilmChoice:
    """The film-level model of a cross-validation, from its out-of-fold films: the GGO films' shares
    and dice (after the chosen post-processing), and the GGO-free films' shares. The cut is the
    lowest probability that leaves the least GGO-free area within ``budget`` of dice (no cut when
    none helps)."""
    pos, dice, neg = (np.asarray(v, dtype=np.float64) for v in (ggo_shares, ggo_dice, free_shares))
    a, b = fit_probability(np.concatenate([pos, neg]), [1] * len(pos) + [0] * len(neg))
    best = FilmCall(a, b, 0.0)
    if best.fitted:
        best_area = float(neg.mean())
        for cut in sorted(set(FilmCall(a, b).probability(np.concatenate([pos, neg])).tolist())):
            call = FilmCall(a, b, cut)
            cost = _dice_cost(call, pos, dice)
            area = float(np.mean(np.where(call.present(neg), neg, 0.0)))
            if cost <= budget and area < best_area - 1e-12:
                best, best_area = call, area
    kept_neg = best.present(neg) if len(neg) else np.zeros(0, bool)
    kept_pos = best.present(pos) if len(pos) else np.zeros(0, bool)
    return FilmChoice(
        call=best, negatives=len(neg), positives=len(pos),
        area_before=float(neg.mean()) if len(neg) else float("nan"),
        area_after=float(np.mean(np.where(kept_neg, neg, 0.0))) if len(neg) else float("nan"),
        dice_cost=_dice_cost(best, pos, dice),
        specificity=(int((~kept_neg).sum()), len(neg)), sensitivity=(int(kept_pos.sum()), len(pos)),
    )  # fmt: skip


def _dice_cost(call: FilmCall, share: np.ndarray, dice: np.ndarray) -> float:
    """Mean dice the GGO films lose to ``call``: the dice of each film whose marked pixels it
    empties (a film whose mask is already empty loses nothing)."""
    emptied = (share > 0) & ~call.present(share)
    return float(np.sum(np.where(emptied, dice, 0.0)) / max(1, len(share)))


def exact_interval(successes: int, trials: int) -> tuple[float, float]:
    """The exact (Clopper-Pearson) 95% interval of a proportion; (nan, nan) without trials."""
    from scipy.stats import binomtest

    if trials == 0:
        return float("nan"), float("nan")
    ci = binomtest(successes, trials).proportion_ci(confidence_level=0.95, method="exact")
    return float(ci.low), float(ci.high)


__all__ = ["BUDGET", "EPS", "FilmCall", "FilmChoice", "choose_call", "exact_interval", "fit_probability", "shares"]

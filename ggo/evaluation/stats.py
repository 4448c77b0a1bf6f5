"""Uncertainty for per-image scores: patient-level bootstrap intervals and paired tests.

Films of one patient are not independent (follow-up films look alike and score alike), so every
interval here resamples **patients**, each with all of its films, and the paired test works on
per-patient mean differences. The bootstrap itself is :func:`scipy.stats.bootstrap` (percentile
method, fixed seed); the test is :func:`scipy.stats.wilcoxon`.

What an interval means: the 95% percentile-bootstrap interval of the mean per-image dice over
the films scored, under resampling of the patients they come from. It speaks for *this* set of
patients' distribution; with 13 test patients it is wide, and the out-of-fold set (every non-test
film, scored by the fold model that did not train on it) is the larger, better-powered one.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np

N_RESAMPLES = 10_000
SEED = 0
CONFIDENCE = 0.95


def _patient_sums(values: Sequence[float], patients: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Per-patient (sum of values, number of films), in order of first appearance."""
    values = np.asarray(values, dtype=np.float64)
    patients = np.asarray(patients, dtype=object)
    if values.ndim != 1 or len(values) != len(patients):
        raise ValueError(f"values ({values.shape}) and patients ({len(patients)}) must be 1-D and of one length")
    if len(values) == 0:
        raise ValueError("no films to score: the per-image table is empty")
    _, first, inverse = np.unique(patients.astype(str), return_index=True, return_inverse=True)
    order = np.argsort(first)  # keep first-appearance order (stable, readable in debugging)
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    groups = rank[inverse]
    sums = np.bincount(groups, weights=values, minlength=len(order))
    counts = np.bincount(groups, minlength=len(order)).astype(np.float64)
    return sums, counts


def _film_mean(sums: np.ndarray, counts: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.sum(sums, axis=axis) / np.sum(counts, axis=axis)


def patient_bootstrap_ci(
    values: Sequence[float],
    patients: Sequence[str],
    *,
    n_resamples: int = N_RESAMPLES,
    seed: int = SEED,
    confidence: float = CONFIDENCE,
) -> tuple[float, float, float]:
    """(mean over films, CI low, CI high): the percentile bootstrap of the per-film mean,
    resampling patients with replacement (each drawn patient brings all of its films)."""
    from scipy.stats import bootstrap

    sums, counts = _patient_sums(values, patients)
    mean = float(_film_mean(sums, counts))
    if len(sums) == 1 or np.allclose(sums / counts, sums[0] / counts[0]):
        return mean, mean, mean  # one patient, or all alike: resampling cannot move the mean
    result = bootstrap(
        (sums, counts),
        _film_mean,
        paired=True,
        vectorized=True,
        n_resamples=int(n_resamples),
        confidence_level=float(confidence),
        method="percentile",
        rng=np.random.default_rng(int(seed)),
    )
    return mean, float(result.confidence_interval.low), float(result.confidence_interval.high)


def wilcoxon_patients(delta: Sequence[float], patients: Sequence[str]) -> float:
    """Two-sided Wilcoxon signed-rank p-value on the per-patient mean differences.

    Patients whose mean difference is 0 are dropped (Wilcoxon's own rule); when every patient
    is at 0 the runs agree and the p-value is 1."""
    from scipy.stats import wilcoxon

    sums, counts = _patient_sums(delta, patients)
    per_patient = sums / counts
    if np.all(np.isclose(per_patient, 0.0, atol=1e-12)):
        return 1.0
    return float(wilcoxon(per_patient, zero_method="wilcox", alternative="two-sided").pvalue)


@dataclass(frozen=True)
class Paired:
    """One paired comparison of run ``b`` against run ``a`` on the films both scored."""

    a: str
    b: str
    split: str
    n_images: int
    n_patients: int
    dice_a: float
    dice_b: float
    delta_dice: float  # mean over films of dice_b - dice_a
    ci_low: float
    ci_high: float
    p_value: float

    @property
    def distinguishable(self) -> bool:
        """The 95% interval of the difference excludes 0."""
        return self.ci_low > 0 or self.ci_high < 0

    def as_dict(self) -> dict:
        return asdict(self)


def paired_difference(
    dice_a: Sequence[float],
    dice_b: Sequence[float],
    patients: Sequence[str],
    *,
    a: str = "a",
    b: str = "b",
    split: str = "",
    n_resamples: int = N_RESAMPLES,
    seed: int = SEED,
) -> Paired:
    """Compare two runs' per-image dice on the same films (aligned arrays, one patient id each)."""
    dice_a = np.asarray(dice_a, dtype=np.float64)
    dice_b = np.asarray(dice_b, dtype=np.float64)
    if dice_a.shape != dice_b.shape:
        raise ValueError(f"paired scores must align: {dice_a.shape} vs {dice_b.shape}")
    delta = dice_b - dice_a
    mean, low, high = patient_bootstrap_ci(delta, patients, n_resamples=n_resamples, seed=seed)
    return Paired(
        a=a, b=b, split=split, n_images=len(delta), n_patients=len(set(map(str, patients))),
        dice_a=float(dice_a.mean()), dice_b=float(dice_b.mean()), delta_dice=mean,
        ci_low=low, ci_high=high, p_value=wilcoxon_patients(delta, patients),
    )  # fmt: skip


__all__ = ["CONFIDENCE", "N_RESAMPLES", "Paired", "paired_difference", "patient_bootstrap_ci", "wilcoxon_patients"]

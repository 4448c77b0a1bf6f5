"""The patient-grouped, seeded split of the evaluation protocol (docs/evaluation.md).

About ``test_fraction`` of the patients form the held-out test set; the rest are dealt into
``folds`` cross-validation folds. All images of one patient land in the same split, so follow-up
studies never leak between train, val and test.

GGO-free films (negatives) are placed after the GGO films by :func:`split_with_ggo_free`, so adding
them never moves a GGO film: each follows its patient, and a patient seen only on GGO-free films
goes to a cross-validation fold, never to test.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

TEST = "test"


def fold_name(k: int) -> str:
    """The split label of fold ``k``: ``fold0``, ``fold1``, ..."""
    return f"fold{k}"


def _pairs(records: Iterable[Any] | Mapping[str, str]) -> list[tuple[str, str]]:
    if isinstance(records, Mapping):
        return [(str(n), str(p)) for n, p in records.items()]
    return [(str(r.name), str(r.patient_id)) for r in records]


def check_split_args(*, seed: int, test_fraction: float, folds: int) -> None:
    """ValueError naming the bad value when a split config cannot work, whatever the data."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if isinstance(folds, bool) or not isinstance(folds, (int, np.integer)) or folds < 2:
        raise ValueError(f"folds must be an integer >= 2 (one fold is val, the others train), got {folds!r}")
    if isinstance(test_fraction, bool) or not isinstance(test_fraction, (int, float, np.number)):
        raise ValueError(f"test_fraction must be a number in [0, 1), got {test_fraction!r}")
    if not 0.0 <= float(test_fraction) < 1.0:
        raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction!r}")


def split_patients(
    records: Iterable[Any] | Mapping[str, str],
    seed: int = 0,
    test_fraction: float = 0.2,
    folds: int = 5,
) -> dict[str, str]:
    """Image name -> ``"test"`` or ``"fold0"`` .. ``"fold{folds-1}"``, grouped by patient.

    ``records`` are objects with ``name`` and ``patient_id`` (e.g. :class:`~ggo.data.Record`) or a
    mapping name -> patient id. Patient ids are sorted, then permuted by
    ``numpy.random.default_rng(seed)``; the first ``round(test_fraction * n_patients)`` patients
    (at least one when ``test_fraction > 0``) form the test set, and the others are dealt in
    permuted order to the fold with the fewest images so far, which balances image counts.
    The same inputs and seed always give the same split.
    """
    check_split_args(seed=seed, test_fraction=test_fraction, folds=folds)
    pairs = _pairs(records)
    images_of: dict[str, list[str]] = {}
    seen: dict[str, str] = {}
    for name, patient in pairs:
        if name in seen:
            raise ValueError(f"image {name!r} appears twice (patients {seen[name]!r} and {patient!r})")
        seen[name] = patient
        images_of.setdefault(patient, []).append(name)

    patients = sorted(images_of)
    n = len(patients)
    n_test = round(float(test_fraction) * n)
    if test_fraction > 0:
        n_test = max(1, n_test)
    if n - n_test < folds:
        raise ValueError(
            f"{n} patients are too few for a test set of {n_test} and {folds} non-empty folds: "
            f"need at least {folds + (1 if test_fraction > 0 else 0)} patients; lower data.folds or "
            "data.test_fraction, or add images"
        )

    order = [patients[i] for i in np.random.default_rng(int(seed)).permutation(n)]
    assignment: dict[str, str] = {}
    for patient in order[:n_test]:
        for name in images_of[patient]:
            assignment[name] = TEST
    fold_images = [0] * folds
    fold_patients = [0] * folds
    for patient in order[n_test:]:
        # Fewest images first; an empty fold always wins, so every fold gets a patient.
        k = min(range(folds), key=lambda j: (fold_images[j], fold_patients[j], j))
        fold_images[k] += len(images_of[patient])
        fold_patients[k] += 1
        for name in images_of[patient]:
            assignment[name] = fold_name(k)
    return assignment


def split_with_ggo_free(
    ggo: Iterable[Any] | Mapping[str, str],
    ggo_free: Iterable[Any] | Mapping[str, str],
    seed: int = 0,
    test_fraction: float = 0.2,
    folds: int = 5,
) -> dict[str, str]:
    """Image name -> split label for GGO films and GGO-free films together.

    The GGO films are split by :func:`split_patients` exactly as without GGO-free films (so every
    score on them stays comparable). A GGO-free film of a patient with GGO films follows that
    patient (a test patient's GGO-free film is a test film, never trained on). The patients seen
    on GGO-free films only are sorted, permuted by ``numpy.random.default_rng([seed, 1])`` and
    dealt to the fold with the fewest GGO-free films so far: never to test.
    """
    ggo_pairs, free_pairs = _pairs(ggo), _pairs(ggo_free)
    assignment = split_patients(dict(ggo_pairs), seed=seed, test_fraction=test_fraction, folds=folds)
    label_of_patient = {patient: assignment[name] for name, patient in ggo_pairs}
    images_of: dict[str, list[str]] = {}
    for name, patient in free_pairs:
        if name in assignment:
            raise ValueError(f"image {name!r} is listed both as a GGO film and as a GGO-free film")
        if patient in label_of_patient:
            assignment[name] = label_of_patient[patient]
        else:
            images_of.setdefault(patient, []).append(name)
    new = sorted(images_of)
    fold_films = [0] * folds
    for i in np.random.default_rng([int(seed), 1]).permutation(len(new)):
        patient = new[i]
        k = min(range(folds), key=lambda j: (fold_films[j], j))
        fold_films[k] += len(images_of[patient])
        for name in images_of[patient]:
            assignment[name] = fold_name(k)
    return assignment

"""The patient-grouped, seeded split."""

from __future__ import annotations

from collections import Counter

import pytest

from ggo.data import split_patients
from ggo.data.split import split_with_ggo_free


def _images(n_patients: int = 30, seed: int = 0) -> dict[str, str]:
    """name -> patient, with 1..3 images per patient."""
    out = {}
    for p in range(n_patients):
        for k in range(1 + (p * 7 + seed) % 3):
            out[f"p{p:02d}-{k}.png"] = f"patient-{p}"
    return out


def test_no_patient_is_in_two_splits() -> None:
    images = _images()
    assignment = split_patients(images, seed=0)
    split_of_patient: dict[str, set[str]] = {}
    for name, split in assignment.items():
        split_of_patient.setdefault(images[name], set()).add(split)
    assert all(len(splits) == 1 for splits in split_of_patient.values())
    assert set(assignment) == set(images)


def test_split_is_deterministic_for_a_seed() -> None:
    assert split_patients(_images(), seed=3) == split_patients(_images(), seed=3)
    reordered = dict(reversed(list(_images().items())))
    assert split_patients(reordered, seed=3) == split_patients(_images(), seed=3)


def test_different_seed_gives_different_split() -> None:
    assert split_patients(_images(), seed=0) != split_patients(_images(), seed=1)


def test_every_split_is_non_empty_and_test_holds_a_fifth_of_patients() -> None:
    images = _images(n_patients=30)
    assignment = split_patients(images, seed=0, test_fraction=0.2, folds=5)
    assert set(assignment.values()) == {"test", "fold0", "fold1", "fold2", "fold3", "fold4"}
    test_patients = {images[n] for n, s in assignment.items() if s == "test"}
    assert len(test_patients) == 6


def test_folds_are_balanced_by_image_count() -> None:
    counts = Counter(s for s in split_patients(_images(n_patients=60), seed=0).values() if s != "test")
    assert max(counts.values()) - min(counts.values()) <= 3  # at most one patient's worth


def test_split_accepts_records_with_name_and_patient_id(synthetic_root) -> None:
    from ggo.data import load_records

    records = load_records(synthetic_root)
    assignment = split_patients(records, seed=0, test_fraction=0.2, folds=2)
    assert set(assignment) == {r.name for r in records}


def test_too_few_patients_raise_a_clear_error() -> None:
    with pytest.raises(ValueError, match="3 patients are too few"):
        split_patients({"a": "1", "b": "2", "c": "3"}, folds=5)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"folds": 1}, "folds must be"), ({"test_fraction": 1.0}, "test_fraction"), ({"seed": -1}, "seed")],
)
def test_bad_split_arguments_are_named(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        split_patients(_images(), **kwargs)


def test_ggo_free_films_leave_the_ggo_split_unchanged_and_follow_their_patient() -> None:
    images = _images()
    alone = split_patients(images, seed=3)
    free = {f"free-{p}.png": f"patient-{p}" for p in range(30)}  # one GGO-free follow-up per patient
    both = split_with_ggo_free(images, free, seed=3)
    assert {n: both[n] for n in images} == alone  # the GGO films' split is untouched
    for name, patient in free.items():
        ggo_film = next(n for n, p in images.items() if p == patient)
        assert both[name] == alone[ggo_film]  # a test patient's GGO-free film is a test film
    assert any(both[n] == "test" for n in free)


def test_ggo_free_films_of_new_patients_go_to_folds_never_to_test_and_the_seed_fixes_them() -> None:
    images = _images()
    free = {f"new-{k}.png": f"new-patient-{k // 2}" for k in range(20)}  # 10 new patients, 2 films each
    both = split_with_ggo_free(images, free, seed=0, folds=5)
    labels = [both[n] for n in free]
    assert "test" not in labels and Counter(labels) == {f"fold{k}": 4 for k in range(5)}  # dealt evenly
    assert all(both[f"new-{2 * k}.png"] == both[f"new-{2 * k + 1}.png"] for k in range(10))  # patients kept together
    assert split_with_ggo_free(images, free, seed=0, folds=5) == both
    assert any(split_with_ggo_free(images, free, seed=s, folds=5)[n] != both[n] for s in (1, 2) for n in free)
    with pytest.raises(ValueError, match="both as a GGO film and as a GGO-free film"):
        split_with_ggo_free(images, {"p00-0.png": "patient-0"})

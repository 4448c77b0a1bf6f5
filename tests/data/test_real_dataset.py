"""The real GeneralBlockchain copy (``GGO_DATA``): counts, patients, splits, annotation sanity."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from ggo.data import LoadReport, Record, load_records, split_patients
from ggo.data.split import split_with_ggo_free


@pytest.fixture(scope="module")
def real_root() -> Path:
    root = os.environ.get("GGO_DATA")
    if not root:
        if os.environ.get("CI"):
            pytest.fail("GGO_DATA must point at the dataset copy in CI")
        pytest.skip("set GGO_DATA to the covid-19-chest-xray-segmentations-dataset copy to run real-data tests")
    return Path(root)


@pytest.fixture(scope="module")
def loaded(real_root: Path) -> tuple[list[Record], LoadReport]:
    """All records, read once for the module (about 10 s, 0.7 GB)."""
    report = LoadReport()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        records = load_records(real_root, report=report)
    return records, report


def test_real_dataset_has_93_ggo_records_of_67_patients_and_7_ggo_free_films(loaded) -> None:
    records, report = loaded
    ggo = [r for r in records if not r.ggo_free]
    assert len(ggo) == 93 and len(records) == 100
    assert len({r.patient_id for r in ggo}) == 67
    assert report.ggo_free == sorted(r.name for r in records if r.ggo_free) and len(report.ggo_free) == 7
    assert all(not r.mask.any() for r in records if r.ggo_free)
    assert report.n_skipped == 0 and report.n_clipped == 0 and report.own_patient == []


def test_real_masks_match_their_images(loaded) -> None:
    records, _ = loaded
    for r in records:
        assert r.mask.shape == r.image.shape and (r.mask.any() or r.ggo_free), r.name
        if not r.ggo_free:
            assert r.lungs is not None and r.lungs.shape == r.image.shape, r.name


def test_real_ggo_split_is_the_same_with_and_without_the_ggo_free_films(loaded) -> None:
    """Every score on the 93 GGO films stays comparable: 18 test films of 13 patients, same folds."""
    records, _ = loaded
    ggo = [r for r in records if not r.ggo_free]
    free = [r for r in records if r.ggo_free]
    alone = split_patients(ggo, seed=0, test_fraction=0.2, folds=5)
    both = split_with_ggo_free(ggo, free, seed=0, test_fraction=0.2, folds=5)
    assert {r.name: both[r.name] for r in ggo} == alone
    test = [r for r in ggo if alone[r.name] == "test"]
    assert len(test) == 18 and len({r.patient_id for r in test}) == 13
    test_patients = {r.patient_id for r in test}
    for r in free:  # a test patient's GGO-free film is a test film; a new patient's never is
        assert (both[r.name] == "test") == (r.patient_id in test_patients), r.name


def test_real_split_keeps_patients_together_and_fills_every_split(loaded) -> None:
    records, _ = loaded
    records = [r for r in records if not r.ggo_free]
    assignment = split_patients(records, seed=0, test_fraction=0.2, folds=5)
    splits_of: dict[str, set[str]] = {}
    for r in records:
        splits_of.setdefault(r.patient_id, set()).add(assignment[r.name])
    assert all(len(s) == 1 for s in splits_of.values())
    assert set(assignment.values()) == {"test", "fold0", "fold1", "fold2", "fold3", "fold4"}
    assert sum(1 for s in splits_of.values() if s == {"test"}) == round(0.2 * 67)


def test_real_ggo_masks_lie_inside_the_annotated_lungs(loaded) -> None:
    records, _ = loaded
    inside = [float((r.mask & r.lungs).sum()) / r.mask.sum() for r in records if r.lungs is not None and not r.ggo_free]
    assert np.median(inside) > 0.8
    assert np.mean(np.array(inside) > 0.5) > 0.95


def test_real_films_that_train_each_auxiliary_head(loaded) -> None:
    """gen.aux_heads on the real data: how many of the 93 films teach each head (a known target)
    and how many of those show the class. Only 91 films have both lungs; every film has its heart
    and at least one lung annotated, so a missing consolidation or device is a real negative."""
    from ggo.heads import AUX_HEADS, anatomy_annotated, head_known

    records = [r for r in loaded[0] if not r.ggo_free]  # the 93 GGO films (GGO-free films train no head unless asked)
    known = {h: 0 for h in AUX_HEADS}
    shown = {h: 0 for h in AUX_HEADS}
    for r in records:
        for h in AUX_HEADS:
            known[h] += head_known(h, r.classes, r.lung_sides, r.unmasked)
            shown[h] += bool(r.lungs is not None if h == "lungs" else h in r.classes and r.classes[h].any())
    assert sum(anatomy_annotated(r.classes, r.lung_sides) for r in records) == 93
    # 13 films mark Monitoring Probes without a mask: their devices are unknown (2 have no other device).
    assert sum("devices" in r.unmasked for r in records) == 13
    assert known == {"lungs": 91, "heart": 93, "airways": 92, "consolidation": 93, "devices": 80}
    assert shown == {"lungs": 93, "heart": 93, "airways": 92, "consolidation": 30, "devices": 28}


def test_predict_split_test_is_the_test_set_training_scores(real_root: Path, loaded) -> None:
    """`python -m ggo.predict ... --score $GGO_DATA --split test` must pick the 18 GGO films a run's
    test/* scored, although the dataset now also holds 7 GGO-free films (other patients)."""
    from ggo.ship.predict import split_members, truth_from_dataset

    patients: dict[str, str] = {}
    truth = truth_from_dataset(real_root, patients)
    assert len(truth) == 93 and len(patients) == 93  # GGO-free films hold no GGO truth
    records, _ = loaded
    ggo = {r.name: r.patient_id for r in records if not r.ggo_free}
    free = {r.name: r.patient_id for r in records if r.ggo_free}
    training = {n for n, s in split_with_ggo_free(ggo, free).items() if s == "test" and n in ggo}
    assert split_members(patients, "test") == training and len(training) == 18


_READ_AFTER_TENSORFLOW = """
import json, sys
from pathlib import Path
import tensorflow  # loaded first, as in a training job that builds its cache
from ggo.data.patients import read_patient_ids
ids = read_patient_ids(Path(sys.argv[1]))
try:
    read_patient_ids(Path(sys.argv[2]))
    error = None
except ValueError as exc:
    error = str(exc)
print(json.dumps({"ids": ids, "error": error, "torchvision": "torchvision" in sys.modules}))
"""


def test_patients_read_in_a_process_holding_tensorflow_match_the_in_process_read_without_loading_torchvision(
    real_root: Path, tmp_path: Path
) -> None:
    from ggo.data.patients import read_patient_ids

    bad = tmp_path / "bad"
    (bad / "images").mkdir(parents=True)
    (bad / "metadata.csv").write_text("name,patient\nx.png,1\n")
    proc = subprocess.run(
        [sys.executable, "-c", _READ_AFTER_TENSORFLOW, str(real_root), str(bad)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    answer = json.loads(proc.stdout.strip().splitlines()[-1])
    assert not answer["torchvision"], "the TensorFlow process loaded torchvision (it segfaults there)"
    assert answer["ids"] == read_patient_ids(real_root)  # this worker holds torchvision: the in-process read
    assert len(set(answer["ids"].values())) >= 67
    assert answer["error"] and str(bad / "metadata.csv") in answer["error"] and "ieee8023" in answer["error"]

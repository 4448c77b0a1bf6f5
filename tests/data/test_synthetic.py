"""The generated dataset: same layout as the real one, deterministic, learnable."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ggo.data import load_records, make_synthetic_dataset
from ggo.data.synthetic import STRUCTURE_HEADER


def test_synthetic_dataset_has_the_real_layout(synthetic_root: Path) -> None:
    structure = pd.read_csv(synthetic_root / "structure.csv")
    assert list(structure.columns) == STRUCTURE_HEADER
    assert (structure["Template Name"] == "Ground Glass Opacities").sum() == 10
    assert all((synthetic_root / m).is_file() for m in structure["Mask"])
    suffixes = {p.suffix for p in (synthetic_root / "images").iterdir()}
    assert suffixes == {".png", ".jpg"}
    metadata = pd.read_csv(synthetic_root / "metadata.csv")
    assert {"patientid", "filename", "view", "modality", "finding"} <= set(metadata.columns)
    records = load_records(synthetic_root)  # metadata goes through torchxrayvision's COVID19_Dataset
    assert len(records) == 10
    assert len({r.patient_id for r in records}) == 7
    assert not any(r.patient_id.startswith("image:") for r in records)
    assert len({r.image.shape for r in records}) > 1  # sizes vary around image_size


def test_synthetic_dataset_is_deterministic_per_seed(tmp_path: Path) -> None:
    a = make_synthetic_dataset(tmp_path / "a", n_images=4, n_patients=3, image_size=32, seed=5)
    b = make_synthetic_dataset(tmp_path / "b", n_images=4, n_patients=3, image_size=32, seed=5)
    c = make_synthetic_dataset(tmp_path / "c", n_images=4, n_patients=3, image_size=32, seed=6)
    assert (a / "structure.csv").read_bytes() == (b / "structure.csv").read_bytes()
    for path in sorted((a / "images").iterdir()):
        assert path.read_bytes() == (b / "images" / path.name).read_bytes()
    assert (a / "structure.csv").read_bytes() != (c / "structure.csv").read_bytes()


def test_synthetic_ggo_is_brighter_than_the_lung_around_it(synthetic_root: Path) -> None:
    for record in load_records(synthetic_root):
        assert record.lungs is not None
        lung_only = record.lungs & ~record.mask
        assert record.image[record.mask].mean() > record.image[lung_only].mean() + 60
        assert record.image[record.mask].mean() > np.median(record.image) + 30

"""Fixtures for ggo.data: a small synthetic dataset, and a builder for hand-made datasets."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from ggo.data import make_synthetic_dataset
from ggo.data.synthetic import METADATA_HEADER, STRUCTURE_HEADER

GGO = "Ground Glass Opacities"


class DatasetBuilder:
    """Writes a dataset in the real layout from images and crops given by hand."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "images").mkdir(parents=True)
        (root / "masks").mkdir()
        self.structure: list[dict[str, object]] = []
        self.metadata: list[dict[str, object]] = []

    def add_image(self, name: str, image: np.ndarray, patient: str | None = "1", finding: str = "COVID-19") -> None:
        """Write ``image`` as images/``name``; ``patient=None`` leaves it out of metadata.csv."""
        assert cv2.imwrite(str(self.root / "images" / name), image)
        if patient is not None:
            self.metadata.append(
                {"patientid": patient, "finding": finding, "view": "PA", "modality": "X-ray", "filename": name}
            )

    def add_crop(
        self, name: str, template: str, top: int, left: int, crop: np.ndarray, resolution: str | None = None
    ) -> str:
        """Write a bool ``crop`` as an RGBA mask PNG placed at (top, left) of image ``name``."""
        rgba = np.zeros((*crop.shape, 4), np.uint8)
        rgba[..., 3] = 255
        rgba[crop.astype(bool), 2] = 255  # red in BGRA
        mask_rel = f"masks/m{len(self.structure):03d}.png"
        assert cv2.imwrite(str(self.root / mask_rel), rgba)
        if resolution is None:
            image = cv2.imread(str(self.root / "images" / name), cv2.IMREAD_UNCHANGED)
            resolution = f"{image.shape[1]}x{image.shape[0]}" if image is not None else "0x0"
        self.structure.append(
            {
                "#": len(self.structure) + 1, "Class": f"COVID-19 {template}", "Template Name": template,
                "Filename": name, "Image": "images/doesnotexist.jpg", "Mask": mask_rel,
                "Resolution": resolution, "Top": top, "Left": left,
                "Width": crop.shape[1], "Height": crop.shape[0],
            }
        )  # fmt: skip
        return mask_rel

    def write(self) -> Path:
        pd.DataFrame(self.structure, columns=STRUCTURE_HEADER).to_csv(self.root / "structure.csv", index=False)
        pd.DataFrame(self.metadata, columns=METADATA_HEADER).to_csv(self.root / "metadata.csv", index=False)
        return self.root


@pytest.fixture()
def builder(tmp_path: Path) -> DatasetBuilder:
    return DatasetBuilder(tmp_path / "dataset")


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic dataset shared by the session: read it, never modify it."""
    root = tmp_path_factory.mktemp("synthetic") / "ds"
    return make_synthetic_dataset(root, n_images=10, n_patients=7, image_size=48, seed=0)


@pytest.fixture()
def synthetic_copy(synthetic_root: Path, tmp_path: Path) -> Path:
    """A private copy of the synthetic dataset (file times kept) that a test may change."""
    return Path(shutil.copytree(synthetic_root, tmp_path / "copy"))

"""``python -m ggo.data export --format folder``: the bundled data in the folder layout, read back the same."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ggo.data import prepare_cache
from ggo.data.export import export_folder
from helpers import real_data_root, tiny_overrides

SYNTHETIC = ["data=synthetic", "data.n_images=10", "data.n_patients=7", "data.image_size=48", "data.folds=2"]
ARRAYS = ("images", "masks", "lungs", "has_lungs")
SAME_COLUMNS = ["name", "patient_id", "split", "height", "width", "lung_sides", "has_lungs", "flags", "ggo_free"]


def _run(module: str, args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module, *args], capture_output=True, text=True, cwd=cwd,
        env={**os.environ, **env}, timeout=600,
    )  # fmt: skip


def assert_same_cache(native, folder) -> None:
    """Bit for bit on every array; the same names, patients, splits, lung sides and flags."""
    assert native.path != folder.path
    for name in ARRAYS:
        a, b = np.load(native.path / f"{name}.npy"), np.load(folder.path / f"{name}.npy")
        assert a.dtype == b.dtype and a.shape == b.shape, name
        assert a.tobytes() == b.tobytes(), name
    pd.testing.assert_frame_equal(native.manifest[SAME_COLUMNS], folder.manifest[SAME_COLUMNS])


def test_synthetic_export_reads_back_as_the_same_cache(synthetic_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "exported"
    done = export_folder(synthetic_root, out)
    assert done["images"] == 10 and done["patients"] == 7
    assert sorted(p.name for p in out.iterdir()) == ["README.txt", "images", "lungs", "masks", "patients.csv"]
    patients = pd.read_csv(out / "patients.csv", dtype=str, keep_default_na=False)
    assert patients.set_index("image").loc["synthetic-002.jpg", "lung_sides"] == "right"  # one side, kept
    small = {"resolution": 32, "folds": 2, "cache_dir": tmp_path / "cache", "progress": False}
    assert_same_cache(prepare_cache(synthetic_root, **small), prepare_cache(out, layout="folder", **small))
    with pytest.raises(FileExistsError, match="not empty"):
        export_folder(synthetic_root, out)


def test_real_dataset_round_trip_gives_the_same_cache_bit_for_bit(tmp_path: Path) -> None:
    root = real_data_root()
    out = tmp_path / "ggo-folder"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        done = export_folder(root, out)
        assert done["images"] == 100 and done["skipped"] == []  # 93 GGO films and 7 GGO-free films
        small = {"resolution": 64, "cache_dir": tmp_path / "cache", "progress": False}
        native = prepare_cache(root, **small)
        folder = prepare_cache(out, layout="folder", **small)
    assert_same_cache(native, folder)
    assert done["patients"] == native.manifest["patient_id"].nunique()
    assert set(folder.manifest["split"]) == {"test", "fold0", "fold1", "fold2", "fold3", "fold4"}
    assert folder.summary["notes"] == [] and len(folder.summary["ggo_free_images"]) == 7  # exported without a mask
    assert folder.summary["ggo_free_images"] == native.summary["ggo_free_images"]


def test_export_then_prepare_from_the_command_line_prints_the_audit(tmp_path: Path) -> None:
    out = tmp_path / "ggo-folder"
    exported = _run("ggo.data", ["export", "--format", "folder", "--out", str(out), *SYNTHETIC], tmp_path)
    assert exported.returncode == 0, exported.stderr
    assert "exported 10 images of 7 patients" in exported.stdout and "data=folder data.root=" in exported.stdout
    prepared = _run("ggo.data", ["prepare", "data=folder", f"data.root={out}", "preprocess.resolution=32", "data.folds=2"], tmp_path)
    assert prepared.returncode == 0, prepared.stderr
    assert "10 images, 7 patients" in prepared.stdout and "suspicious annotations: 1" in prepared.stdout

    (out / "masks" / "orphan.png").write_bytes((out / "masks" / "synthetic-000.png").read_bytes())
    broken = _run("ggo.data", ["prepare", "data=folder", f"data.root={out}", "preprocess.resolution=32", "data.folds=2"], tmp_path)
    assert broken.returncode == 1 and "masks/orphan.png" in broken.stderr

    again = _run("ggo.data", ["export", "--out", str(out), *SYNTHETIC], tmp_path)
    assert again.returncode == 1 and "not empty" in again.stderr
    missing = _run("ggo.data", ["export", *SYNTHETIC], tmp_path)
    assert missing.returncode == 2 and "--out DIR" in missing.stderr
    no_root = _run("ggo.data", ["prepare", "data=folder"], tmp_path)
    assert no_root.returncode == 1 and "data.root is not set" in no_root.stderr


@pytest.mark.slow
def test_quick_training_run_on_an_exported_folder(synthetic_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "ggo-folder"
    export_folder(synthetic_root, out)
    overrides = [o for o in tiny_overrides(tmp_path) if o != "data=synthetic"]
    proc = _run("ggo.train", ["data=folder", f"data.root={out}", "data.folds=2", *overrides], tmp_path, HYDRA_FULL_ERROR="1")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "[ggo] best epoch" in proc.stdout and "val/dice" in proc.stdout, proc.stdout[-3000:]
    assert "[ggo] data: " in proc.stdout and "test images at 64 px" in proc.stdout


def test_export_writes_plain_file_names_only_and_nothing_outside_out(builder, tmp_path: Path) -> None:
    """structure.csv may name a film in a subfolder of images/ (the reader allows it, inside the
    dataset); export writes images/<name>, so a name that is a path is refused and nothing appears."""
    import cv2

    from ggo.data.inside import OutsideFolderError

    (builder.root / "images" / "sub").mkdir()
    builder.add_image("sub/a.png", np.full((20, 30), 90, np.uint8))
    builder.add_crop("sub/a.png", "Ground Glass Opacities", top=1, left=1, crop=np.ones((3, 3), bool))
    root = builder.write()
    out = tmp_path / "out"
    with pytest.raises(OutsideFolderError, match=r"image 'sub/a\.png': export writes plain file names into .*images, not paths"):
        export_folder(root, out)
    assert not out.exists() and not list(tmp_path.glob(".out.tmp-*")), "an interrupted export leaves nothing"
    assert cv2.imread(str(root / "images" / "sub" / "a.png")) is not None


def test_atomic_file_replaces_the_target_whole_or_leaves_it_alone(tmp_path: Path) -> None:
    from ggo.data.atomic import atomic_file, write_text

    target = tmp_path / "predictions.csv"
    write_text(target, "old\n")
    with pytest.raises(RuntimeError):
        with atomic_file(target) as tmp:
            tmp.write_text("half a fi")
            raise RuntimeError("the writer died")
    assert target.read_text() == "old\n"
    with atomic_file(target) as tmp:
        assert tmp.parent == target.parent and tmp.suffix == ".csv"  # same folder: os.replace is one step
        tmp.write_text("new\n")
    assert target.read_text() == "new\n" and sorted(p.name for p in tmp_path.iterdir()) == ["predictions.csv"]

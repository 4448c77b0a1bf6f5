"""``data=folder``: the user's own images/, masks/, lungs/ and patients.csv, read into the shared records."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from ggo.config import compose, to_dict, validate
from ggo.data import (
    FolderDataError,
    LoadReport,
    format_summary,
    iter_records,
    load_records,
    prepare_cache,
    prepare_from_config,
)

SMALL = {"resolution": 32, "folds": 2, "test_fraction": 0.25, "progress": False}
GRAY = np.random.default_rng(0).integers(0, 256, (20, 30)).astype(np.uint8)


def _square(top: int, left: int, side: int = 8) -> np.ndarray:
    mask = np.zeros(GRAY.shape, bool)
    mask[top : top + side, left : left + side] = True
    return mask


def write(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), array), path


def make_folder(root: Path) -> Path:
    """Five films: 8-bit gray, 16-bit TIFF, RGBA, a GGO-free JPEG and one with an anti-aliased mask.

    a and b are one patient; lungs are drawn for a only; e's mask has soft edges."""
    write(root / "images" / "a.png", GRAY)
    write(root / "images" / "b.tif", GRAY.astype(np.uint16) * 257)
    write(root / "images" / "c.png", np.dstack([GRAY, GRAY, GRAY, np.full_like(GRAY, 255)]))
    write(root / "images" / "d.jpg", GRAY)
    write(root / "images" / "e.png", GRAY)
    write(root / "masks" / "a.png", _square(2, 2).astype(np.uint8) * 255)
    write(root / "masks" / "b.png", _square(4, 10).astype(np.uint8))  # 0/1 values: still binary
    colour = np.zeros((*GRAY.shape, 3), np.uint8)
    colour[_square(6, 18)] = (0, 0, 200)  # a red mask in BGR
    write(root / "masks" / "c.png", colour)
    soft = _square(8, 8).astype(np.uint8) * 255
    soft[7, 8:16] = 60  # an anti-aliased edge row, below half the maximum
    soft[16, 8:16] = 200  # one above it
    write(root / "masks" / "e.png", soft)
    write(root / "lungs" / "a.png", _square(0, 0, 16).astype(np.uint8) * 255)
    (root / "patients.csv").write_text("image,patient\na.png,p1\nb,p1\nc.png,p2\n")
    return root


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    return make_folder(tmp_path / "mine")


def test_folder_records_match_images_masks_and_patients(folder: Path) -> None:
    report = LoadReport()
    records = {r.name: r for r in load_records(folder, report, layout="folder")}
    assert list(records) == ["a.png", "b.tif", "c.png", "d.jpg", "e.png"]
    for name in ("a.png", "b.tif", "c.png", "e.png"):  # 16-bit and RGBA read as the same gray
        np.testing.assert_array_equal(records[name].image, GRAY)
    np.testing.assert_array_equal(records["a.png"].mask, _square(2, 2))
    np.testing.assert_array_equal(records["b.tif"].mask, _square(4, 10))
    np.testing.assert_array_equal(records["c.png"].mask, _square(6, 18))
    expected_e = _square(8, 8)
    expected_e[16, 8:16] = True  # 200 > 255 / 2 stays, 60 goes
    np.testing.assert_array_equal(records["e.png"].mask, expected_e)
    assert not records["d.jpg"].mask.any() and records["d.jpg"].mask.shape == GRAY.shape
    assert records["a.png"].patient_id == records["b.tif"].patient_id == "p1"
    assert records["c.png"].patient_id == "p2" and records["d.jpg"].patient_id == "image:d.jpg"
    assert records["a.png"].lung_sides == ("left", "right") and records["b.tif"].lungs is None
    assert report.ggo_free == ["d.jpg"] and report.thresholded == ["masks/e.png"]
    assert report.own_patient == ["d.jpg", "e.png"]


def test_layout_is_detected_so_predict_score_reads_a_folder_too(folder: Path) -> None:
    names = [r.name for r in iter_records(folder)]  # no layout given: images/ without structure.csv
    assert names == ["a.png", "b.tif", "c.png", "d.jpg", "e.png"]


def test_folder_cache_audit_names_ggo_free_films_thresholded_masks_and_patients(folder: Path, tmp_path: Path) -> None:
    cache = prepare_cache(folder, cache_dir=tmp_path / "cache", layout="folder", **SMALL)
    assert len(cache) == 5 and cache.summary["patients"] == 4
    splits = dict(zip(cache.manifest["name"], cache.manifest["split"]))
    assert splits["a.png"] == splits["b.tif"]  # one patient, one split
    flags = dict(zip(cache.manifest["name"], cache.manifest["flags"]))
    assert "empty_ggo" not in flags["d.jpg"]  # a GGO-free film is not a suspicious annotation
    assert "missing_lung_side" in flags["b.tif"]  # lungs/ exists, so a missing lung mask is noticed
    text = format_summary(cache.summary)
    assert "1 images without a GGO mask: GGO-free films" in text and "d.jpg" in text
    assert "thresholded at half their maximum: masks/e.png" in text
    assert "2 image(s) missing from patients.csv" in text


def test_without_patients_csv_every_image_is_its_own_patient_said_in_one_line(folder: Path, tmp_path: Path) -> None:
    (folder / "patients.csv").unlink()
    shutil.rmtree(folder / "lungs")
    cache = prepare_cache(folder, cache_dir=tmp_path / "cache", layout="folder", **SMALL)
    assert cache.summary["patients"] == 5
    notes = [line for line in format_summary(cache.summary).splitlines() if "patients.csv" in line]
    assert len(notes) == 1 and "each of the 5 images is its own patient" in notes[0]
    assert not any("missing_lung_side" in f for f in cache.manifest["flags"])  # no lungs/ at all: no anomaly


def _mask_size_differs(root: Path) -> str:
    write(root / "masks" / "a.png", np.zeros((10, 12), np.uint8))
    return r"masks/a\.png is 12x10 but its image .*a\.png is 30x20"


def _same_stem(root: Path) -> str:
    write(root / "images" / "a.jpg", GRAY)
    return r"share the stem 'a' \(images/a\.jpg, images/a\.png\)"


def _unreadable_image(root: Path) -> str:
    (root / "images" / "c.png").write_bytes(b"not a png")
    return r"images/c\.png: unreadable image"


def _unreadable_mask(root: Path) -> str:
    (root / "masks" / "b.png").write_bytes(b"")
    return r"masks/b\.png: unreadable mask"


def _truncated_image(root: Path) -> str:
    noisy = np.random.default_rng(1).integers(0, 256, GRAY.shape).astype(np.uint8)
    write(root / "images" / "d.jpg", noisy)
    data = (root / "images" / "d.jpg").read_bytes()
    (root / "images" / "d.jpg").write_bytes(data[: len(data) // 3])  # OpenCV alone would decode it, two thirds grey
    return r"images/d\.jpg: unreadable image \(truncated or corrupt JPEG"


def _truncated_mask(root: Path) -> str:
    data = (root / "masks" / "e.png").read_bytes()
    (root / "masks" / "e.png").write_bytes(data[: len(data) // 2])
    return r"masks/e\.png: unreadable mask \(truncated or corrupt PNG"


def _mask_without_image(root: Path) -> str:
    write(root / "masks" / "zz.png", np.zeros(GRAY.shape, np.uint8))
    return r"in masks/ have no image of the same stem in images/: masks/zz\.png"


def _unknown_patient_image(root: Path) -> str:
    (root / "patients.csv").write_text("image,patient\na.png,p1\nnope.png,p3\n")
    return r"patients\.csv names images that are not in images/: nope\.png"


def _patients_lacks_column(root: Path) -> str:
    (root / "patients.csv").write_text("image,subject\na.png,p1\n")
    return r"patients\.csv lacks the column\(s\) patient; found \['image', 'subject'\]"


def _linked_outside(root: Path) -> str:
    write(root.parent / "elsewhere.png", GRAY)  # a file the reader must not open through a link
    (root / "images" / "f.png").symlink_to(root.parent / "elsewhere.png")
    return r"1 file\(s\) are links that lead outside their folder \(copy the files in instead\): images/f\.png"


def _empty_folder(root: Path) -> str:
    for path in (root / "images").iterdir():
        path.unlink()
    return r"images holds no images"


@pytest.mark.parametrize(
    "breaks",
    [_mask_size_differs, _same_stem, _unreadable_image, _unreadable_mask, _truncated_image, _truncated_mask,
     _mask_without_image, _unknown_patient_image, _patients_lacks_column, _linked_outside, _empty_folder],
)  # fmt: skip
def test_bad_folder_is_an_error_naming_the_file_and_nothing_is_cached(folder: Path, tmp_path: Path, breaks) -> None:
    pattern = breaks(folder)
    cache_dir = tmp_path / "cache"
    with pytest.raises(FolderDataError, match=pattern):
        prepare_cache(folder, cache_dir=cache_dir, layout="folder", **SMALL)
    # no cache; the files' content hashes may be kept (file-hashes/): a retry after a fix reads only what changed
    assert not cache_dir.exists() or [p.name for p in cache_dir.iterdir()] in ([], ["file-hashes"])


def test_every_problem_is_listed_at_once(folder: Path, tmp_path: Path) -> None:
    _mask_size_differs(folder)
    _unreadable_image(folder)
    with pytest.raises(FolderDataError) as caught:
        prepare_cache(folder, cache_dir=tmp_path / "cache", layout="folder", **SMALL)
    assert "masks/a.png is 12x10" in str(caught.value) and "c.png: unreadable image" in str(caught.value)


def test_missing_folder_and_missing_images_say_what_the_layout_is(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"no folder .*nowhere: data=folder needs data.root=DIR holding images/"):
        prepare_cache(tmp_path / "nowhere", cache_dir=tmp_path / "cache", layout="folder", **SMALL)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"no images/ folder in .*empty.*export --format folder"):
        prepare_cache(tmp_path / "empty", cache_dir=tmp_path / "cache", layout="folder", **SMALL)


def test_an_edited_mask_rebuilds_the_cache_even_with_its_old_modification_time(folder: Path, tmp_path: Path) -> None:
    before = prepare_cache(folder, cache_dir=tmp_path / "cache", layout="folder", **SMALL)
    mask = folder / "masks" / "a.png"
    stat = mask.stat()
    write(mask, _square(10, 20).astype(np.uint8) * 255)  # same size on disk is likely; content differs
    os.utime(mask, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    after = prepare_cache(folder, cache_dir=tmp_path / "cache", layout="folder", **SMALL)
    assert after.path != before.path
    assert not np.array_equal(np.load(after.path / "masks.npy"), np.load(before.path / "masks.npy"))
    again = prepare_cache(folder, cache_dir=tmp_path / "cache", layout="folder", **SMALL)
    assert again.path == after.path  # unchanged content: reused


def test_data_folder_config_needs_a_root_and_composes_with_one(folder: Path, tmp_path: Path) -> None:
    validate(to_dict(compose(["data=folder"])))  # composes; the missing root fails before any data is read:
    with pytest.raises(ValueError, match=r"data\.root is not set: data=folder needs data\.root=DIR"):
        prepare_from_config(to_dict(compose(["data=folder"]))["data"], {"resolution": 32}, progress=False)
    cfg = to_dict(compose(["data=folder", f"data.root={folder}", "data.folds=2", "data.test_fraction=0.25",
                           "preprocess.resolution=32", f"data.cache_dir={tmp_path / 'cache'}"]))  # fmt: skip
    validate(cfg)
    assert cfg["data"]["name"] == "folder"
    cache = prepare_from_config(cfg["data"], cfg["preprocess"], progress=False)
    assert len(cache) == 5 and cache.summary["root"] == str(folder.resolve())
    with pytest.raises(ValueError, match="data.root is not set"):
        prepare_from_config({**cfg["data"], "root": None}, cfg["preprocess"], progress=False)


def test_a_folder_read_as_generalblockchain_points_at_data_folder(folder: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="holds images/ without structure.csv: .*use data=folder"):
        prepare_cache(folder, cache_dir=tmp_path / "cache", layout="generalblockchain", **SMALL)

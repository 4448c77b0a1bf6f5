"""Reading records: mask placement, lungs, patients, and what happens with bad input."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from ggo.data import DataWarning, LoadReport, load_records

GGO = "Ground Glass Opacities"


def _image(h: int = 40, w: int = 60, value: int = 100) -> np.ndarray:
    return np.full((h, w), value, np.uint8)


def test_mask_is_placed_at_bounding_box_offset(builder) -> None:
    crop = np.zeros((3, 4), bool)  # an asymmetric L: a transposed or flipped paste would show
    crop[:, 0] = True
    crop[2, :] = True
    builder.add_image("a.png", _image())
    builder.add_crop("a.png", GGO, top=5, left=7, crop=crop)
    records = load_records(builder.write())

    assert len(records) == 1
    mask = records[0].mask
    assert mask.shape == (40, 60) and mask.dtype == bool
    expected = np.zeros((40, 60), bool)
    expected[5:8, 7:11] = crop
    np.testing.assert_array_equal(mask, expected)
    assert mask[5, 7] and mask[7, 10] and not mask[5, 8]


def test_overlapping_ggo_crops_are_combined(builder) -> None:
    builder.add_image("a.png", _image())
    builder.add_crop("a.png", GGO, top=0, left=0, crop=np.ones((4, 4), bool))
    builder.add_crop("a.png", GGO, top=2, left=2, crop=np.ones((4, 4), bool))
    (record,) = load_records(builder.write())
    assert record.mask.sum() == 16 + 16 - 4
    assert record.mask[0, 0] and record.mask[5, 5] and not record.mask[0, 5]


def test_lung_crops_are_pasted_and_sides_recorded(builder) -> None:
    builder.add_image("a.png", _image())
    builder.add_crop("a.png", GGO, top=10, left=10, crop=np.ones((2, 2), bool))
    builder.add_crop("a.png", "Left Lung", top=1, left=40, crop=np.ones((30, 15), bool))
    builder.add_crop("a.png", "Right Lung", top=2, left=3, crop=np.ones((30, 15), bool))
    builder.add_crop("a.png", "Cardiomediastinum", top=0, left=0, crop=np.ones((40, 60), bool))
    (record,) = load_records(builder.write())
    assert record.lung_sides == ("left", "right")
    assert record.lungs is not None and record.lungs.sum() == 2 * 30 * 15
    assert record.lungs[1, 40] and record.lungs[2, 3] and not record.lungs[0, 0]


def test_lungs_are_none_without_lung_annotation(builder) -> None:
    builder.add_image("a.png", _image())
    builder.add_crop("a.png", GGO, top=0, left=0, crop=np.ones((2, 2), bool))
    (record,) = load_records(builder.write())
    assert record.lungs is None and record.lung_sides == ()


def test_annotated_images_are_records_sorted_by_name_and_unannotated_ones_are_not(builder) -> None:
    for name in ("c.png", "a.png", "b.png", "d.png"):
        builder.add_image(name, _image())
    builder.add_crop("c.png", GGO, top=0, left=0, crop=np.ones((2, 2), bool))
    builder.add_crop("a.png", GGO, top=0, left=0, crop=np.ones((2, 2), bool))
    builder.add_crop("b.png", "Left Lung", top=0, left=0, crop=np.ones((2, 2), bool))
    records = load_records(builder.write())  # d.png: in images/ but not in structure.csv
    assert [r.name for r in records] == ["a.png", "b.png", "c.png"]
    assert [r.ggo_free for r in records] == [False, True, False]


def test_film_annotated_without_ggo_is_a_ggo_free_record_with_its_lungs(builder) -> None:
    builder.add_image("a.png", _image())
    builder.add_crop("a.png", GGO, top=0, left=0, crop=np.ones((2, 2), bool))
    builder.add_image("b.png", _image(), patient="2")
    builder.add_crop("b.png", "Left Lung", top=1, left=40, crop=np.ones((30, 15), bool))
    builder.add_crop("b.png", "Right Lung", top=2, left=3, crop=np.ones((30, 15), bool))
    builder.add_crop("b.png", "Cardiomediastinum", top=0, left=0, crop=np.ones((4, 4), bool))
    report = LoadReport()
    free = load_records(builder.write(), report=report)[1]
    assert free.name == "b.png" and free.ggo_free and free.patient_id == "2"
    assert free.mask.shape == (40, 60) and not free.mask.any()
    assert free.lung_sides == ("left", "right") and free.lungs.sum() == 2 * 30 * 15
    assert report.ggo_free == ["b.png"] and report.n_skipped == 0


def test_crop_overflowing_the_image_is_clipped_with_warning(builder) -> None:
    builder.add_image("a.png", _image())
    crop = np.ones((10, 10), bool)
    crop[0, 0] = False
    builder.add_crop("a.png", GGO, top=35, left=55, crop=crop)
    report = LoadReport()
    with pytest.warns(DataWarning, match=r"overflows the 60x40 image a\.png"):
        (record,) = load_records(builder.write(), report=report)
    expected = np.zeros((40, 60), bool)
    expected[35:, 55:] = crop[:5, :5]
    np.testing.assert_array_equal(record.mask, expected)
    assert report.n_clipped == 1 and report.n_skipped == 0


def test_corrupt_image_is_skipped_with_warning_naming_it_and_counted(builder) -> None:
    builder.add_image("good.png", _image())
    builder.add_image("bad.png", _image())
    for name in ("good.png", "bad.png"):
        builder.add_crop(name, GGO, top=0, left=0, crop=np.ones((2, 2), bool))
    root = builder.write()
    (root / "images" / "bad.png").write_bytes(b"not a png at all")
    report = LoadReport()
    with pytest.warns(DataWarning, match="bad.png"):
        records = load_records(root, report=report)
    assert [r.name for r in records] == ["good.png"]
    assert report.n_skipped == 1 and "bad.png" in report.skipped[0][0]


def test_unreadable_ggo_mask_skips_its_image_and_is_counted(builder) -> None:
    builder.add_image("a.png", _image())
    builder.add_image("b.png", _image())
    mask_rel = builder.add_crop("a.png", GGO, top=0, left=0, crop=np.ones((2, 2), bool))
    builder.add_crop("b.png", GGO, top=0, left=0, crop=np.ones((2, 2), bool))
    root = builder.write()
    (root / mask_rel).write_bytes(b"\x89PNG broken")
    report = LoadReport()
    with pytest.warns(DataWarning) as caught:
        records = load_records(root, report=report)
    messages = [str(w.message) for w in caught]
    assert any(Path(mask_rel).name in m for m in messages) and any("a.png" in m for m in messages)
    assert [r.name for r in records] == ["b.png"]
    assert report.n_skipped == 2  # the mask, and the image it belonged to


def _cut(path: Path, fraction: float = 1 / 3) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])


def test_truncated_jpeg_film_and_png_mask_are_skipped_and_listed_in_the_audit(builder, tmp_path: Path) -> None:
    from ggo.data import format_summary, prepare_cache

    rng = np.random.default_rng(0)
    good = [f"good{k}.jpg" for k in range(4)]
    for k, name in enumerate([*good, "cut.jpg", "cutmask.png"]):
        builder.add_image(name, rng.integers(0, 256, (60, 80)).astype(np.uint8), patient=str(k))  # noisy: many bytes
    for name in [*good, "cut.jpg"]:
        builder.add_crop(name, GGO, top=0, left=0, crop=np.ones((4, 4), bool))
    mask_rel = builder.add_crop("cutmask.png", GGO, top=0, left=0, crop=rng.random((30, 40)) > 0.5)
    root = builder.write()
    _cut(root / "images" / "cut.jpg")  # OpenCV alone would decode it, two thirds grey
    _cut(root / mask_rel, 0.5)
    with pytest.warns(DataWarning) as caught:
        cache = prepare_cache(root, cache_dir=tmp_path / "cache", resolution=32, folds=2, test_fraction=0.3, progress=False)
    assert {"cut.jpg", Path(mask_rel).name} <= {Path(str(w.message).split(":")[0].split()[-1]).name for w in caught}
    assert sorted(cache.manifest["name"]) == good, "nothing half-decoded reaches the cache"
    audit = format_summary(cache.summary)
    assert "skipped images/cut.jpg: unreadable image (truncated or corrupt JPEG" in audit
    assert f"skipped {mask_rel}: unreadable mask (truncated or corrupt PNG" in audit
    assert "skipped images/cutmask.png: its GGO mask is unreadable" in audit


def test_image_without_metadata_becomes_its_own_patient_with_warning(builder) -> None:
    builder.add_image("known.png", _image(), patient="7")
    builder.add_image("orphan.png", _image(), patient=None)
    for name in ("known.png", "orphan.png"):
        builder.add_crop(name, GGO, top=0, left=0, crop=np.ones((2, 2), bool))
    report = LoadReport()
    with pytest.warns(DataWarning, match="orphan.png"):
        records = load_records(builder.write(), report=report)
    patients = {r.name: r.patient_id for r in records}
    assert patients == {"known.png": "7", "orphan.png": "image:orphan.png"}
    assert report.own_patient == ["orphan.png"]


def test_patient_is_kept_for_rows_torchxrayvision_filters_out(builder) -> None:
    # COVID19_Dataset drops finding == "todo"; the patient id in that row is still the truth.
    builder.add_image("a.png", _image(), patient="42", finding="todo")
    builder.add_crop("a.png", GGO, top=0, left=0, crop=np.ones((2, 2), bool))
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        (record,) = load_records(builder.write())
    assert record.patient_id == "42"


def test_missing_root_error_names_path_and_both_remedies(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError) as info:
        load_records(missing)
    message = str(info.value)
    assert str(missing) in message
    assert "python -m ggo.data fetch" in message and "GGO_DATA" in message


def test_16_bit_and_colour_images_load_as_the_same_grayscale(builder) -> None:
    gray = np.random.default_rng(0).integers(0, 256, (20, 30)).astype(np.uint8)
    builder.add_image("a8.png", gray)
    builder.add_image("b16.png", gray.astype(np.uint16) * 257)
    builder.add_image("c_bgra.png", np.dstack([gray, gray, gray, np.full_like(gray, 255)]))
    for name in ("a8.png", "b16.png", "c_bgra.png"):
        builder.add_crop(name, GGO, top=0, left=0, crop=np.ones((2, 2), bool))
    records = load_records(builder.write())
    for record in records:
        assert record.image.dtype == np.uint8 and record.image.shape == (20, 30)
        np.testing.assert_array_equal(record.image, gray)


def test_loading_leaves_numpy_global_random_state_alone(synthetic_root: Path) -> None:
    np.random.seed(123)
    expected = np.random.random()
    np.random.seed(123)
    load_records(synthetic_root)
    assert np.random.random() == expected


def test_structure_paths_that_leave_the_dataset_are_refused_before_any_file_is_read(builder, tmp_path: Path) -> None:
    from ggo.data.inside import OutsideFolderError

    builder.add_image("a.png", _image())
    builder.add_crop("a.png", GGO, top=0, left=0, crop=np.ones((3, 3), bool))
    builder.add_image("b.png", _image())
    linked = builder.add_crop("b.png", GGO, top=0, left=0, crop=np.ones((3, 3), bool))
    outside = tmp_path / "outside.png"
    outside.write_bytes((builder.root / linked).read_bytes())
    (builder.root / linked).unlink()
    (builder.root / linked).symlink_to(outside)  # masks/m001.png -> a file outside the dataset
    builder.structure[0]["Filename"] = "../../outside.png"
    builder.structure.append({**builder.structure[0], "Filename": "a.png", "Mask": str(outside)})
    root = builder.write()
    with pytest.raises(OutsideFolderError) as caught:
        load_records(root)
    message = str(caught.value)
    assert message.startswith(f"{root / 'structure.csv'} names files outside the dataset, refused:")
    assert "line 2, Filename: '../../outside.png' points outside" in message
    assert f"line 4, Mask: '{outside}' points outside" in message
    assert "line 3, Mask: 'masks/m001.png' is a link that leads outside" in message


def test_a_linked_images_folder_is_read_where_it_points(builder, tmp_path: Path) -> None:
    """The top folders may be links (to another disk): files are checked against where they lead."""
    builder.add_image("a.png", _image())
    builder.add_crop("a.png", GGO, top=1, left=2, crop=np.ones((3, 3), bool))
    root = builder.write()
    (root / "images").rename(tmp_path / "disk-images")
    (root / "images").symlink_to(tmp_path / "disk-images")
    (record,) = load_records(root)
    assert record.name == "a.png" and record.mask.sum() == 9

"""The preprocessed cache: contents, reuse, invalidation, interrupted builds, config entry point."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import ggo.data.cache_build as build_module
from ggo.data import (
    IncompleteCacheError,
    format_summary,
    make_synthetic_dataset,
    open_cache,
    prepare_cache,
    prepare_from_config,
    resolve_data_root,
)

SMALL = {"resolution": 32, "folds": 2, "test_fraction": 0.2, "progress": False}


def test_cache_holds_arrays_manifest_and_summary(synthetic_root: Path, tmp_path: Path) -> None:
    cache = prepare_cache(synthetic_root, cache_dir=tmp_path, **SMALL)
    n = 10
    assert cache.path.parent == tmp_path and (cache.path / "COMPLETE").is_file()
    assert np.load(cache.path / "images.npy").shape == (n, 32, 32, 1)
    assert list(cache.manifest.columns[:3]) == ["name", "patient_id", "split"]
    assert {"height", "width", "ggo_fraction", "lung_sides", "flags"} <= set(cache.manifest.columns)
    assert cache.summary["images"] == n and cache.summary["patients"] == 7
    assert set(cache.summary["splits"]) == {"test", "fold0", "fold1"}
    assert sum(s["images"] for s in cache.summary["splits"].values()) == n

    splits = cache.split(0)
    assert set(splits) == {"train", "val", "test"}
    assert sum(len(s) for s in splits.values()) == n
    assert all(len(s) > 0 for s in splits.values())
    train, val, test = splits["train"], splits["val"], splits["test"]
    assert not (set(train.patients) & set(val.patients)) and not (set(train.patients) & set(test.patients))
    assert train.images.dtype == np.float32 and train.images.shape[1:] == (32, 32, 1)
    assert -1.0 <= train.images.min() and train.images.max() <= 1.0
    assert train.masks.dtype == np.float32 and set(np.unique(train.masks)) <= {0.0, 1.0}
    assert train.masks.sum() > 0 and train.lungs.shape == train.masks.shape
    assert train.has_lungs.dtype == bool and train.has_lungs.all()
    assert set(cache.split(1)["val"].names) == set(train.names) - set(cache.split(1)["train"].names)


def test_summary_reports_a_missing_lung_side(synthetic_root: Path, tmp_path: Path) -> None:
    cache = prepare_cache(synthetic_root, cache_dir=tmp_path, **SMALL)
    flagged = {item["name"]: item["reasons"] for item in cache.summary["suspicious"]}
    assert "no left lung annotation" in flagged["synthetic-002.jpg"]
    row = cache.manifest.set_index("name").loc["synthetic-002.jpg"]
    assert "missing_lung_side" in row["flags"] and row["lung_sides"] == "right"
    text = format_summary(cache.summary)
    assert "10 images, 7 patients" in text and "synthetic-002.jpg" in text


def test_lung_head_targets_weight_only_images_with_both_lungs_annotated(synthetic_root: Path, tmp_path: Path) -> None:
    cache = prepare_cache(synthetic_root, cache_dir=tmp_path, **SMALL)
    everything = {}
    for fold in (0, 1):
        for split in cache.split(fold).values():
            targets = split.targets(lung_head=True)
            assert targets.shape == (*split.masks.shape[:3], 3)
            np.testing.assert_array_equal(targets[..., :1], split.masks)
            np.testing.assert_array_equal(targets[..., 1:2], split.lungs)
            assert split.targets() is split.masks  # no lung head: the GGO masks alone
            for name, image_targets in zip(split.names, targets):
                weights = np.unique(image_targets[..., 2])
                assert len(weights) == 1  # one weight per image
                everything[name] = float(weights[0])
    assert everything.pop("synthetic-002.jpg") == 0.0  # its left lung is not annotated
    assert set(everything.values()) == {1.0}


def test_summary_flags_tiny_vanishing_and_outside_lung_masks(builder, tmp_path: Path) -> None:
    image = np.full((200, 200), 90, np.uint8)
    for k in range(3):
        builder.add_image(f"i{k}.png", image, patient=str(k))
        builder.add_crop(f"i{k}.png", "Left Lung", top=20, left=110, crop=np.ones((150, 70), bool))
        builder.add_crop(f"i{k}.png", "Right Lung", top=20, left=20, crop=np.ones((150, 70), bool))
    builder.add_crop("i0.png", "Ground Glass Opacities", top=0, left=0, crop=np.ones((2, 2), bool))
    builder.add_crop("i1.png", "Ground Glass Opacities", top=50, left=30, crop=np.ones((40, 40), bool))
    builder.add_crop("i2.png", "Ground Glass Opacities", top=60, left=120, crop=np.ones((40, 40), bool))
    cache = prepare_cache(builder.write(), cache_dir=tmp_path, resolution=32, folds=2, test_fraction=0.3, progress=False)
    flags = dict(zip(cache.manifest["name"], cache.manifest["flags"]))
    assert set(flags["i0.png"].split(";")) == {"tiny_ggo", "ggo_outside_lungs", "ggo_vanished"}
    assert flags["i1.png"] == "" and flags["i2.png"] == ""


def test_same_config_reuses_the_cache(synthetic_root: Path, tmp_path: Path, monkeypatch) -> None:
    first = prepare_cache(synthetic_root, cache_dir=tmp_path, **SMALL)

    def no_rebuild(*args, **kwargs):
        raise AssertionError("the cache was rebuilt although nothing changed")

    monkeypatch.setattr(build_module, "build", no_rebuild)
    second = prepare_cache(synthetic_root, cache_dir=tmp_path, **SMALL)
    assert second.path == first.path


@pytest.mark.parametrize(
    "change",
    [{"resolution": 24}, {"fit": "stretch"}, {"clahe": True}, {"seed": 1}, {"folds": 3}],
)
def test_changed_preprocess_or_split_config_gives_a_new_cache(synthetic_root: Path, tmp_path: Path, change) -> None:
    base = prepare_cache(synthetic_root, cache_dir=tmp_path, **SMALL)
    changed = prepare_cache(synthetic_root, cache_dir=tmp_path, **{**SMALL, **change})
    assert changed.path != base.path
    assert (base.path / "COMPLETE").is_file()


def test_changed_dataset_file_gives_a_new_cache(synthetic_copy: Path, tmp_path: Path) -> None:
    before = prepare_cache(synthetic_copy, cache_dir=tmp_path / "cache", **SMALL)
    image = synthetic_copy / "images" / "synthetic-000.png"
    stat = image.stat()
    os.utime(image, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))  # as if rewritten
    after_touch = prepare_cache(synthetic_copy, cache_dir=tmp_path / "cache", **SMALL)
    assert after_touch.path != before.path
    structure = synthetic_copy / "structure.csv"
    structure.write_text(structure.read_text().replace("undefined", "edited", 1))
    after_edit = prepare_cache(synthetic_copy, cache_dir=tmp_path / "cache", **SMALL)
    assert after_edit.path not in (before.path, after_touch.path)


def test_interrupted_build_leaves_nothing_that_reads_as_complete(
    synthetic_root: Path, tmp_path: Path, monkeypatch
) -> None:
    calls = {"n": 0}
    real = build_module.preprocess

    def failing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # the user pressed Ctrl-C mid-build
        return real(*args, **kwargs)

    monkeypatch.setattr(build_module, "preprocess", failing)
    with pytest.raises(KeyboardInterrupt):
        prepare_cache(synthetic_root, cache_dir=tmp_path, **SMALL)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()

    # A directory at the final path without COMPLETE (e.g. copied half-way) is not a cache ...
    good = prepare_cache(synthetic_root, cache_dir=tmp_path / "elsewhere", **SMALL)
    partial = tmp_path / good.path.name
    partial.mkdir()
    (partial / "images.npy").write_bytes((good.path / "images.npy").read_bytes())
    with pytest.raises(IncompleteCacheError, match="incomplete"):
        open_cache(partial)
    # ... and prepare_cache rebuilds it instead of reading it.
    rebuilt = prepare_cache(synthetic_root, cache_dir=tmp_path, **SMALL)
    assert rebuilt.path == partial and (partial / "COMPLETE").is_file() and len(rebuilt) == 10


def test_split_rejects_a_fold_outside_the_cache(synthetic_root: Path, tmp_path: Path) -> None:
    cache = prepare_cache(synthetic_root, cache_dir=tmp_path, **SMALL)
    with pytest.raises(ValueError, match=r"0\.\.1.*got 2"):
        cache.split(2)


def test_prepare_from_config_takes_plain_dicts_and_ignores_other_keys(tmp_path: Path) -> None:
    data = {
        "name": "synthetic", "root": None, "cache_dir": str(tmp_path), "seed": 0, "test_fraction": 0.2,
        "folds": 2, "fold": 1, "n_images": 8, "n_patients": 6, "image_size": 40, "something_else": "x",
    }  # fmt: skip
    preprocess = {"resolution": 32, "fit": "pad", "clahe": False, "clahe_clip": 2.0, "extra": 1}
    cache = prepare_from_config(data, preprocess, progress=False)
    assert len(cache) == 8 and cache.resolution == 32
    generated = tmp_path / "synthetic-0-8-6-40"
    assert (generated / "structure.csv").is_file()
    mtime = (generated / "structure.csv").stat().st_mtime_ns
    again = prepare_from_config(data, preprocess, progress=False)
    assert again.path == cache.path and (generated / "structure.csv").stat().st_mtime_ns == mtime


def test_resolve_data_root_prefers_explicit_root_then_ggo_data(tmp_path: Path, monkeypatch) -> None:
    assert resolve_data_root("synthetic", root=str(tmp_path)) == tmp_path.resolve()
    monkeypatch.setenv("GGO_DATA", str(tmp_path / "real"))
    assert resolve_data_root("generalblockchain", None, None) == (tmp_path / "real").resolve()
    with pytest.raises(TypeError, match="n_imgs"):
        resolve_data_root("synthetic", None, tmp_path, n_imgs=3)


def test_open_cache_on_a_missing_directory_says_how_to_build_one(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="python -m ggo.data prepare"):
        open_cache(tmp_path / "nope")


def test_ggo_free_films_are_cached_flagged_and_kept_out_of_the_ggo_splits(tmp_path: Path) -> None:
    plain = prepare_cache(make_synthetic_dataset(tmp_path / "plain", n_images=10, n_patients=7, image_size=48), cache_dir=tmp_path / "c", **SMALL)
    root = make_synthetic_dataset(tmp_path / "free", n_images=10, n_patients=7, image_size=48, n_ggo_free=4)
    cache = prepare_cache(root, cache_dir=tmp_path / "c", **SMALL)
    m = cache.manifest.set_index("name")
    free = [f"synthetic-free-{i:03d}.png" for i in range(4)]
    assert len(cache) == 14 and cache.ggo_free.sum() == 4 and set(m.index[cache.ggo_free]) == set(free)
    assert (m.loc[free, "ggo_fraction"] == 0).all() and (m.loc[free, "has_lungs"]).all()
    assert all("empty_ggo" not in f for f in m.loc[free, "flags"])
    before = plain.manifest.set_index("name")
    assert (m.loc[before.index, "split"] == before["split"]).all()  # the GGO films' split is unchanged
    assert m.loc["synthetic-free-000.png", "split"] == m.loc["synthetic-000.png", "split"]  # follows its patient
    assert "test" not in set(m.loc[["synthetic-free-001.png", "synthetic-free-003.png"], "split"])  # new patients
    for fold in (0, 1):
        splits, negatives = cache.split(fold), cache.ggo_free_split(fold)
        assert all(set(splits[k].names) == set(plain.split(fold)[k].names) for k in ("train", "val", "test"))
        np.testing.assert_array_equal(splits["train"].masks, plain.split(fold)["train"].masks)
        labels = {"val": f"fold{fold}", "test": "test"}
        for key, label in labels.items():
            assert negatives[key].names == [n for n in free if m.loc[n, "split"] == label]
            assert not negatives[key].masks.any()
        trained = set(cache.split(fold, train_ggo_free=True)["train"].names) - set(splits["train"].names)
        assert trained == {n for n in free if m.loc[n, "split"] not in labels.values()}
    assert "4 images without a GGO mask: GGO-free films" in format_summary(cache.summary)

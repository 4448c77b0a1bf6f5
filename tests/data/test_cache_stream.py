"""The streamed cache build: the same cache bit for bit as the list-and-stack build it replaced,
with any number of worker processes, in memory that does not grow with the dataset."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ggo.data import DataWarning, FolderDataError, load_records, prepare_cache, preprocess, preprocess_mask
from ggo.data.cache_build import worker_count
from ggo.data.export import export_folder
from ggo.data.synthetic import make_synthetic_dataset, make_synthetic_folder
from ggo.heads import CLASS_HEADS

REAL_ROOT = Path(os.environ.get("GGO_DATA", "data/covid-19-chest-xray-segmentations-dataset"))
SMALL = {"resolution": 32, "folds": 2, "test_fraction": 0.25, "progress": False}

#: The bundled dataset's cache at 64 px (defaults otherwise), as the list-and-stack build of
#: main before the streamed build (commit 771775a) wrote it: SHA-256 of each array's dtype, shape
#: and bytes, of manifest.csv, and of summary.json without the fields that name paths.
BUNDLED_64PX = {
    "class_airways.npy": "ed3fe10fcc2856324f575ab78b6180086097555125b15c659b447a99142b1ba8",
    "class_consolidation.npy": "0dbbd2aeb06ab9c82109b6074eb1e8329fb2f2e27f97fb8c1dc191952c68afa4",
    "class_devices.npy": "1bef46f260877e6151c41cb3cf47e9057692ee64db5e969851923db8d78db765",
    "class_heart.npy": "b7b28017cdd0d2e762d08f0cf2fc7f90797997a967c7da0c94b90b551c895ea1",
    "has_lungs.npy": "c8fd5c59e328435cc7f580f68e637d3299a168bf14776e25da78d6e398fbc009",
    "images.npy": "f1568e63f0f0ecd16d7fc46f60412485da5370d00759cd93a18618cc474498b6",
    "lungs.npy": "545d71c255ad8c00f62979c5ebd77d052a6f793b91f3b6f2e9b93f6c378a1562",
    "masks.npy": "27a1024407541377cd409fd189bf7b420ba99c56aed0bca0edee38737d9a7ede",
    "manifest.csv": "72d9535bc7c2efae3d15a541f573f33ca60d2acb5854815155b8aca1cca38d10",
    "summary": "bd489d9de9d11826f1b821a922a1cf24ec8a3596326080e9d25d42bcffa6df4a",
}


def cache_digests(path: Path) -> dict[str, str]:
    out = {}
    for file in sorted(path.glob("*.npy")):
        array = np.load(file)
        digest = hashlib.sha256(f"{array.dtype.str}{array.shape}".encode())
        digest.update(np.ascontiguousarray(array).tobytes())
        out[file.name] = digest.hexdigest()
    out["manifest.csv"] = hashlib.sha256((path / "manifest.csv").read_bytes()).hexdigest()
    summary = json.loads((path / "summary.json").read_text())
    kept = {k: v for k, v in summary.items() if k not in ("root", "path", "key")}
    out["summary"] = hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).hexdigest()
    return out


def stacked_arrays(root: Path, resolution: int, layout: str | None = None) -> dict[str, np.ndarray]:
    """The arrays as the build before streaming made them: every record preprocessed, then stacked."""
    records = load_records(root, layout=layout)
    zeros = np.zeros((resolution, resolution), np.uint8)

    def planes(get):
        return np.stack([get(r) for r in records])[..., None]

    arrays = {
        "images": planes(lambda r: preprocess(r.image, resolution)),
        "masks": planes(lambda r: preprocess_mask(r.mask, resolution).astype(np.uint8)),
        "lungs": planes(lambda r: preprocess_mask(r.lungs, resolution).astype(np.uint8) if r.lungs is not None else zeros),
    }
    for head in CLASS_HEADS:
        arrays[f"class_{head}"] = planes(
            lambda r: preprocess_mask(r.classes[head], resolution).astype(np.uint8) if head in r.classes else zeros
        )
    return arrays


@pytest.mark.slow
@pytest.mark.skipif(not (REAL_ROOT / "structure.csv").is_file(), reason="the bundled dataset is not here (GGO_DATA)")
def test_bundled_set_cache_at_64px_is_bit_identical_to_the_list_and_stack_build(tmp_path: Path) -> None:
    cache = prepare_cache(REAL_ROOT, resolution=64, cache_dir=tmp_path, progress=False, workers=2)
    assert cache_digests(cache.path) == BUNDLED_64PX


@pytest.fixture(scope="module")
def mixed_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A GeneralBlockchain set with GGO-free films and one unreadable image (skipped: its rows go)."""
    root = make_synthetic_dataset(tmp_path_factory.mktemp("mixed") / "ds", n_images=14, n_patients=8, image_size=64, seed=4, n_ggo_free=3)
    (root / "images" / "synthetic-004.png").write_bytes(b"not a png")
    return root


@pytest.mark.parametrize("workers", [1, 2])
def test_streamed_build_equals_the_stacked_arrays_with_any_number_of_workers(mixed_root: Path, tmp_path: Path, workers: int) -> None:
    with pytest.warns(DataWarning, match="synthetic-004.png"):  # the skipped film's warning comes back from its worker
        cache = prepare_cache(mixed_root, cache_dir=tmp_path, workers=workers, **SMALL)
    expected = stacked_arrays(mixed_root, SMALL["resolution"])
    assert len(cache) == 16 and "synthetic-004.png" not in set(cache.manifest["name"])
    for name, array in expected.items():
        got = np.load(cache.path / f"{name}.npy")
        assert got.dtype == array.dtype and np.array_equal(got, array), name
    assert cache.summary["skipped"] == 1


def test_one_and_two_workers_write_the_same_cache_files(mixed_root: Path, tmp_path: Path) -> None:
    one = prepare_cache(mixed_root, cache_dir=tmp_path / "one", workers=1, **SMALL)
    two = prepare_cache(mixed_root, cache_dir=tmp_path / "two", workers=2, **SMALL)
    assert cache_digests(one.path) == cache_digests(two.path)
    pd.testing.assert_frame_equal(one.manifest, two.manifest)


def test_a_folder_built_by_two_workers_equals_its_stacked_arrays(mixed_root: Path, tmp_path: Path) -> None:
    folder = Path(export_folder(mixed_root, tmp_path / "folder")["out"])
    cache = prepare_cache(folder, cache_dir=tmp_path / "cache", layout="folder", workers=2, **SMALL)
    for name, array in stacked_arrays(folder, SMALL["resolution"], layout="folder").items():
        assert np.array_equal(np.load(cache.path / f"{name}.npy"), array), name


def test_a_bad_folder_read_by_a_pool_is_an_error_and_nothing_is_cached(mixed_root: Path, tmp_path: Path) -> None:
    folder = Path(export_folder(mixed_root, tmp_path / "folder")["out"])
    (folder / "masks" / "synthetic-003.png").write_bytes(b"")
    with pytest.raises(FolderDataError, match=r"synthetic-003\.png: unreadable mask"):
        prepare_cache(folder, cache_dir=tmp_path / "cache", layout="folder", workers=2, **SMALL)
    assert [p.name for p in (tmp_path / "cache").iterdir()] == ["file-hashes"]


def test_worker_count_is_one_per_core_and_never_more_than_the_films() -> None:
    from joblib import cpu_count

    assert worker_count(0, 10_000) == cpu_count()
    assert worker_count(0, 24) == 1  # a small set builds in this process: starting a pool costs more
    assert worker_count(3, 2) == 2 and worker_count(1, 500) == 1
    with pytest.raises(ValueError, match="workers must be an integer >= 0"):
        worker_count(-1, 10)


def _build_peak(root: Path, cache_dir: Path) -> int:
    tracemalloc.start()
    try:
        prepare_cache(root, resolution=128, cache_dir=cache_dir, progress=False, workers=1, layout="folder")
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_build_memory_does_not_grow_with_the_number_of_films(tmp_path: Path) -> None:
    """Python's allocations at their peak during a build of 32 and of 128 films of 256 px into a
    128 px cache: the stacked build grew by every film's arrays (160 KB a film here), the streamed
    one by its manifest row."""
    roots = {n: make_synthetic_folder(tmp_path / f"f{n}", n, 256, distinct=8) for n in (32, 128)}
    _build_peak(roots[32], tmp_path / "warm")  # first-use allocations (imports, caches) out of the way
    small, large = (_build_peak(roots[n], tmp_path / f"cache{n}") for n in (32, 128))
    film_bytes = 128 * 128 * (4 + 6)  # a film's rows: float32 image, six uint8 masks
    assert (large - small) / (128 - 32) < 0.25 * film_bytes, (small, large)

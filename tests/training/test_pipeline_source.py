"""Training reads the cache a batch at a time: both input pipelines (tf.data and the numpy one the
JAX backend trains from) give from ``Split.source()`` exactly the batches they give from the
split's arrays, and an epoch's memory does not grow with the films."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from ggo.data import make_synthetic_dataset, prepare_cache
from ggo.data.synthetic import make_synthetic_folder
from ggo.training import numpy_pipeline, pipeline
from ggo.training.augment import AugmentConfig

PIPELINES = {"tf.data": pipeline.make_dataset, "numpy": numpy_pipeline.make_dataset}


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory):
    root = make_synthetic_dataset(tmp_path_factory.mktemp("ds") / "ds", n_images=24, n_patients=12, image_size=64, seed=2)
    return prepare_cache(root, resolution=32, folds=2, test_fraction=0.25, progress=False, cache_dir=tmp_path_factory.mktemp("cache"))


def epochs(ds, n: int) -> list[list[tuple[np.ndarray, np.ndarray]]]:
    """``n`` epochs of batches as numpy arrays (the numpy pipeline moves to its next epoch as fit does)."""
    out = []
    for _ in range(n):
        if isinstance(ds, numpy_pipeline.ArrayDataset):
            out.append([ds[i] for i in range(len(ds))])
            ds.on_epoch_end()
        else:
            out.append([(np.asarray(x), np.asarray(y)) for x, y in ds])
    return out


def run_epoch(ds) -> int:
    """Iterate one epoch, keeping nothing; the images seen."""
    batches = (ds[i] for i in range(len(ds))) if isinstance(ds, numpy_pipeline.ArrayDataset) else iter(ds)
    return sum(int(np.asarray(x).shape[0]) for x, _ in batches)


def test_a_source_reads_the_targets_the_split_holds(cache) -> None:
    split = cache.split(0, aux_heads=["lungs", "heart"])["train"]
    source = split.source(aux_heads=["lungs", "heart"])
    positions = np.array([5, 0, 3, 3, len(split) - 1])
    images, targets = source.read(positions)
    assert images.dtype == targets.dtype == np.float32
    assert np.array_equal(images, split.images[positions])
    assert np.array_equal(targets, split.targets(aux_heads=["lungs", "heart"])[positions])
    assert targets.shape[-1] == 5 and source.shapes == ((32, 32, 1), (32, 32, 5))


@pytest.mark.parametrize("name", list(PIPELINES))
@pytest.mark.parametrize("heads", [(), ("lungs",)])
def test_batches_from_the_cache_equal_batches_from_the_arrays(cache, name: str, heads: tuple[str, ...]) -> None:
    split = cache.split(0, aux_heads=heads)["train"]
    make = PIPELINES[name]
    options = {"batch_size": 4, "shuffle": True, "augment": AugmentConfig(), "seed": 7}
    from_arrays = epochs(make(split.images, split.targets(aux_heads=heads), **options), 2)
    from_cache = epochs(make(split.source(aux_heads=heads), **options), 2)
    assert len(from_cache[0]) == len(from_arrays[0]) == -(-len(split) // 4)
    for epoch_a, epoch_c in zip(from_arrays, from_cache):
        for (xa, ya), (xc, yc) in zip(epoch_a, epoch_c):
            np.testing.assert_array_equal(xc, xa)
            np.testing.assert_array_equal(yc, ya)
    assert not np.array_equal(from_cache[0][0][0], from_cache[1][0][0])  # a new order and new transforms each epoch


def test_a_split_reads_its_arrays_only_when_asked(cache) -> None:
    split = cache.split(0)["train"]
    assert split._loaded == {}
    split.source().read(np.arange(3))
    split.first(2)
    assert split._loaded == {}  # a training epoch never loads the split
    assert split.images.shape == (len(split), 32, 32, 1) and set(split._loaded) == {"images"}


def test_make_dataset_refuses_something_that_is_neither_arrays_nor_a_source() -> None:
    with pytest.raises(TypeError, match=r"images and masks arrays, or one source with read\(positions\)"):
        numpy_pipeline.make_dataset(np.zeros((4, 8, 8, 1), np.float32), batch_size=2)


def _epoch_peak(root: Path, cache_dir: Path, name: str) -> int:
    """Python's allocations at their peak while a split is opened and an epoch of it iterated."""
    cache = prepare_cache(root, resolution=128, cache_dir=cache_dir, progress=False, layout="folder", workers=1)
    tracemalloc.start()
    try:
        train = cache.split(0)["train"]
        seen = run_epoch(PIPELINES[name](train.source(), batch_size=8, shuffle=True, augment=AugmentConfig(), seed=0))
        assert seen == len(train)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("name", list(PIPELINES))
def test_a_training_epoch_does_not_hold_the_split_in_memory(tmp_path: Path, name: str) -> None:
    """An epoch of 32 films and of 160: reading the split into memory first (as training did)
    grows by every film's image and mask (128 KB a film at 128 px), reading batches does not."""
    roots = {n: make_synthetic_folder(tmp_path / f"f{n}", n, 128, distinct=8) for n in (32, 160)}
    _epoch_peak(roots[32], tmp_path / "cache", name)  # first-use allocations out of the way
    small, large = (_epoch_peak(roots[n], tmp_path / "cache", name) for n in (32, 160))
    trained = {n: len(prepare_cache(roots[n], resolution=128, cache_dir=tmp_path / "cache", progress=False,
                                    layout="folder").split(0)["train"]) for n in (32, 160)}  # fmt: skip
    film_bytes = 128 * 128 * 4 * 2  # float32 image and GGO target
    assert (large - small) / (trained[160] - trained[32]) < 0.25 * film_bytes, (small, large)

"""The cache for a dataset and config: checked, then built on first use (:mod:`ggo.data.cache_build`)
and opened after (:mod:`ggo.data.cache`)."""

from __future__ import annotations

from pathlib import Path

from ggo.data.cache import Cache, cache_config, cache_key, is_complete, open_cache
from ggo.data.cache_build import build
from ggo.data.filehash import STORE_DIR
from ggo.data.folder import index_folder
from ggo.data.records import FOLDER, check_root, dataset_layout
from ggo.paths import default_cache_dir


def check_dataset(root: str | Path, layout: str | None = None) -> tuple[Path, str]:
    """``(root, layout)`` once the dataset's structure is checked: a missing GeneralBlockchain
    copy says how to get it; a folder dataset is indexed (:func:`ggo.data.folder.index_folder`),
    so a bad layout fails before any pixel is read."""
    layout = dataset_layout(root, layout)
    if layout == FOLDER:
        return index_folder(root).root, layout
    return check_root(root), layout


def prepare_cache(
    root: str | Path,
    *,
    resolution: int,
    fit: str = "pad",
    clahe: bool = False,
    clahe_clip: float = 2.0,
    seed: int = 0,
    test_fraction: float = 0.2,
    folds: int = 5,
    cache_dir: str | Path | None = None,
    progress: bool = True,
    layout: str | None = None,
    workers: int = 0,
) -> Cache:
    """The cache for this dataset and config, built on first use and reused after.

    ``root`` is the dataset (see :func:`~ggo.data.load_records`); ``resolution``, ``fit``,
    ``clahe``, ``clahe_clip`` are :func:`~ggo.data.preprocess`'s; ``seed``, ``test_fraction``,
    ``folds`` are :func:`~ggo.data.split_patients`'s. ``cache_dir`` defaults to ``$GGO_CACHE``,
    else ``<project>/data/cache``. ``progress`` shows a tqdm bar while building. ``layout``:
    ``generalblockchain`` or ``folder`` (None: detected, see :func:`~ggo.data.records.dataset_layout`).
    ``workers``: processes decoding and preprocessing the films of a build (0: one per core, see
    :func:`~ggo.data.cache_build.worker_count`); the cache is the same with any number.
    A folder dataset's files are hashed once and then only when their size or times change
    (the hashes are kept in ``<cache_dir>/file-hashes/``).
    """
    root, layout = check_dataset(root, layout)
    base = Path(cache_dir).expanduser() if cache_dir not in (None, "") else default_cache_dir()
    config = cache_config(
        root, resolution=resolution, fit=fit, clahe=clahe, clahe_clip=clahe_clip,
        seed=seed, test_fraction=test_fraction, folds=folds, layout=layout, hash_store=base / STORE_DIR,
    )  # fmt: skip
    path = base / cache_key(config)
    if is_complete(path):
        return open_cache(path)
    return build(root, config, path, progress, layout, workers=workers)

"""Which dataset a ``data`` config means, and its cache: the entry point training and the CLI use.

``data.name`` picks the reader: ``generalblockchain`` (``$GGO_DATA`` or the fetched copy),
``synthetic`` (generated once under the cache dir) or ``folder`` (the user's own ``data.root``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ggo.data.atomic import atomic_directory
from ggo.data.cache import Cache
from ggo.data.prepare import prepare_cache
from ggo.data.records import FOLDER, GENERALBLOCKCHAIN
from ggo.config import DataConfig, PreprocessConfig, defaults, section
from ggo.paths import default_cache_dir, default_data_root

SYNTHETIC_OPTS = ("n_images", "n_patients", "image_size", "seed", "n_ggo_free")


def resolve_data_root(
    name: str | None,
    root: str | Path | None = None,
    cache_dir: str | Path | None = None,
    **synthetic_opts: Any,
) -> Path:
    """The dataset folder a data config means.

    An explicit ``root`` wins. ``name="synthetic"`` without a root means a generated dataset
    under the cache dir, ``<cache_dir>/synthetic-<seed>-<n_images>-<n_patients>-<image_size>``,
    made once (``synthetic_opts``: ``n_images``, ``n_patients``, ``image_size``, ``seed``,
    ``n_ggo_free`` (a ``-free<n>`` suffix when > 0), as in :func:`~ggo.data.make_synthetic_dataset`). ``name="folder"`` needs a root. Otherwise
    ``$GGO_DATA``, else ``<project>/data/covid-19-chest-xray-segmentations-dataset``.
    """
    if root not in (None, ""):
        return Path(root).expanduser().resolve()
    if name == FOLDER:
        from ggo.data.folder import LAYOUT_HELP

        raise ValueError(f"data.root is not set: {LAYOUT_HELP}")
    if name != "synthetic":
        return default_data_root()

    from ggo.data.synthetic import make_synthetic_dataset

    unknown = sorted(set(synthetic_opts) - set(SYNTHETIC_OPTS))
    if unknown:
        raise TypeError(f"unknown synthetic dataset options {unknown}; known: {list(SYNTHETIC_OPTS)}")
    opts = {k: v for k, v in defaults("data").items() if k in SYNTHETIC_OPTS}
    opts.update({k: int(v) for k, v in synthetic_opts.items() if v is not None})
    base = Path(cache_dir).expanduser() if cache_dir not in (None, "") else default_cache_dir()
    free = f"-free{opts['n_ggo_free']}" if opts.get("n_ggo_free") else ""
    target = base / f"synthetic-{opts['seed']}-{opts['n_images']}-{opts['n_patients']}-{opts['image_size']}{free}"
    if (target / "structure.csv").is_file():
        return target.resolve()
    with atomic_directory(target, is_done=lambda done: (done / "structure.csv").is_file()) as tmp:
        make_synthetic_dataset(tmp, **opts)
    return target.resolve()


def prepare_from_config(
    data: DataConfig | Mapping[str, Any], preprocess: PreprocessConfig | Mapping[str, Any], progress: bool = True
) -> Cache:
    """:func:`prepare_cache` from the ``data`` and ``preprocess`` config sections: the typed ones
    of a run, or mappings of their keys (a logged ``config.yaml``; keys left out take the schema's
    defaults, keys that do not concern the cache are ignored)."""
    if isinstance(preprocess, Mapping) and "resolution" not in preprocess:
        raise ValueError(f"the preprocess config needs a 'resolution'; got keys {sorted(preprocess)}")
    data, pre = section(DataConfig, data, lenient=True), section(PreprocessConfig, preprocess, lenient=True)
    synthetic = {k: getattr(data, k) for k in SYNTHETIC_OPTS} if data.name == "synthetic" else {}
    root = resolve_data_root(str(data.name), data.root, data.cache_dir, **synthetic)
    return prepare_cache(
        root,
        resolution=pre.resolution,
        fit=str(pre.fit),
        clahe=pre.clahe,
        clahe_clip=pre.clahe_clip,
        seed=data.seed,
        test_fraction=data.test_fraction,
        folds=data.folds,
        cache_dir=data.cache_dir,
        progress=progress,
        layout=FOLDER if data.name == FOLDER else GENERALBLOCKCHAIN,
        workers=data.workers,
    )

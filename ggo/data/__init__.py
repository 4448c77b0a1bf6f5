"""Dataset reading, mask placement, preprocessing, patient splits and the training cache.

Typical use::

    from ggo.data import prepare_cache, load_records, preprocess, restore_mask

    cache = prepare_cache(root, resolution=256)           # built once, reused after
    splits = cache.split(fold=0)                          # {"train", "val", "test"} -> Split
    cache = prepare_cache("my-xrays/", resolution=256)    # your own folder (ggo.data.folder)
    x = preprocess(image, 256)                            # the same function at predict time
    probs = restore_mask(model_output, image.shape[:2])   # back to the original image size

The command line is ``python -m ggo.data fetch|prepare|show|export`` (``--help`` for details). This layer
uses numpy, OpenCV and pandas (torchxrayvision for metadata and normalisation, imported lazily).
"""

from ggo.data.cache import (
    Cache,
    IncompleteCacheError,
    Split,
    cache_config,
    cache_key,
    dataset_digest,
    open_cache,
)
from ggo.data.prepare import check_dataset, prepare_cache
from ggo.data.audit import format_summary
from ggo.data.folder import FolderDataError, index_folder, iter_folder_records
from ggo.data.preprocess import (
    FITS,
    Geometry,
    preprocess,
    preprocess_mask,
    restore_mask,
    square_geometry,
    to_grayscale_uint8,
)
from ggo.data.records import LAYOUTS, DataWarning, LoadReport, Record, dataset_layout, iter_records, load_records
from ggo.data.sources import prepare_from_config, resolve_data_root
from ggo.data.split import split_patients
from ggo.data.synthetic import make_synthetic_dataset

__all__ = [
    "FITS",
    "Cache",
    "DataWarning",
    "FolderDataError",
    "Geometry",
    "IncompleteCacheError",
    "LAYOUTS",
    "LoadReport",
    "Record",
    "Split",
    "cache_config",
    "cache_key",
    "check_dataset",
    "dataset_digest",
    "dataset_layout",
    "format_summary",
    "index_folder",
    "iter_folder_records",
    "iter_records",
    "load_records",
    "make_synthetic_dataset",
    "open_cache",
    "prepare_cache",
    "prepare_from_config",
    "preprocess",
    "preprocess_mask",
    "resolve_data_root",
    "restore_mask",
    "split_patients",
    "square_geometry",
    "to_grayscale_uint8",
]

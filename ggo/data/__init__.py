"""Dataset reading, mask placement, preprocessing, patient splits and the training cache.

Typical use::

    from ggo.data import prepare_cache, load_records, preprocess, restore_mask

    cache = prepare_cache(root, resolution=256)           # built once, reused after
    splits = cache.split(fold=0)                          # {"train", "val", "test"} -> Split
    x = preprocess(image, 256)                            # the same function at predict time
    probs = restore_mask(model_output, image.shape[:2])   # back to the original image size

The command line is ``python -m ggo.data fetch|prepare|show`` (``--help`` for details). This layer
uses numpy, OpenCV and pandas (torchxrayvision for metadata and normalisation, imported lazily).
"""

from ggo.data.cache import (
    Cache,
    IncompleteCacheError,
    Split,
    cache_config,
    cache_key,
    dataset_digest,
    format_summary,
    open_cache,
    prepare_cache,
    prepare_from_config,
    resolve_data_root,
)
from ggo.data.preprocess import (
    FITS,
    Geometry,
    preprocess,
    preprocess_mask,
    restore_mask,
    square_geometry,
    to_grayscale_uint8,
)
from ggo.data.records import DataWarning, LoadReport, Record, iter_records, load_records
from ggo.data.split import split_patients
from ggo.data.synthetic import make_synthetic_dataset

__all__ = [
    "FITS",
    "Cache",
    "DataWarning",
    "Geometry",
    "IncompleteCacheError",
    "LoadReport",
    "Record",
    "Split",
    "cache_config",
    "cache_key",
    "dataset_digest",
    "format_summary",
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

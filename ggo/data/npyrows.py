"""The cache's arrays on disk, a row (one film) at a time.

A cache array is a plain ``.npy`` file, made to its full size before the first film is read
(``numpy.lib.format.open_memmap``: a sparse file, zeros until written) and then written and read
through memory maps that live for one call. A process so holds only the rows it is touching: the
pages of a map that stays open count toward the process's resident memory until it is closed,
so one map kept open over a whole epoch would grow with the dataset.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.lib.format import open_memmap

COPY_ROWS = 256  # rows moved per map when a build drops the rows of skipped films


def create(path: Path, rows: int, row_shape: tuple[int, ...], dtype: np.dtype | type) -> None:
    """An ``.npy`` file of ``rows`` rows of ``row_shape``, all zeros, taking no disk space yet."""
    array = open_memmap(path, mode="w+", dtype=np.dtype(dtype), shape=(rows, *row_shape))
    del array  # closes the map; the header and the file's size are written


def write_row(path: Path, index: int, value: np.ndarray) -> None:
    """Write row ``index`` of the ``.npy`` file at ``path`` (made by :func:`create`).

    A row of zeros is not written at all: the new file already reads as zeros there, and an
    unwritten row takes no disk space (the auxiliary heads' masks of a film without them)."""
    if not value.any():
        return
    array = open_memmap(path, mode="r+")
    array[index] = value
    del array


def read_rows(path: Path, index: np.ndarray | Sequence[int] | slice) -> np.ndarray:
    """Rows ``index`` of the ``.npy`` file at ``path`` as a new in-memory array (the map is closed)."""
    array = np.load(path, mmap_mode="r")
    rows = np.array(array[index])
    del array
    return rows


def shape_of(path: Path) -> tuple[tuple[int, ...], np.dtype]:
    """``(shape, dtype)`` of the ``.npy`` file at ``path``, from its header."""
    array = np.load(path, mmap_mode="r")
    shape, dtype = array.shape, array.dtype
    del array
    return shape, dtype


def keep_rows(path: Path, kept: Sequence[int]) -> None:
    """Rewrite the ``.npy`` file at ``path`` with only the rows ``kept``, in that order
    (a build drops the rows of the films it skipped); ``COPY_ROWS`` rows per map."""
    kept = np.asarray(kept, dtype=np.int64)
    shape, dtype = shape_of(path)
    partial = path.with_name(path.stem + ".keep.npy")
    create(partial, len(kept), shape[1:], dtype)
    for start in range(0, len(kept), COPY_ROWS):
        chunk = read_rows(path, kept[start : start + COPY_ROWS])
        out = open_memmap(partial, mode="r+")
        out[start : start + len(chunk)] = chunk
        del out
    os.replace(partial, path)

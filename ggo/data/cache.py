"""The preprocessed cache that training runs read: arrays at one resolution, a manifest, a summary.

A cache lives in ``<cache_dir>/<key>/`` where the key hashes the dataset digest (structure.csv,
metadata.csv, and the names, sizes and modification times of images/ and masks/; for a folder
dataset the content of every file, each read again only when its size or times changed:
:mod:`ggo.data.filehash`), the preprocessing config and the split config. So a changed dataset or
config gets a new directory and a stale cache is never reused. A cache is built in a temporary
directory (streamed, film by film: :mod:`ggo.data.cache_build`), finished with a ``COMPLETE``
marker and renamed into place in one step: an interrupted build is never read.

Files: ``images.npy`` (N, R, R, 1) float32 in [-1, 1], ``masks.npy`` and ``lungs.npy``
(N, R, R, 1) uint8 in {0, 1}, ``has_lungs.npy`` (N,) bool, ``class_<head>.npy`` (N, R, R, 1) uint8
for each auxiliary head but the lungs (heart, airways, consolidation, devices; all zeros where the
film has no such annotation), ``manifest.csv`` (name, patient_id, split, height, width,
ggo_fraction, ggo_inside_lungs, lung_sides, has_lungs, flags, ggo_free, classes, unmasked: one row
per array index; ``classes`` lists the heads annotated on the film, joined by ``+``; ``unmasked``
those with a class marked without a mask), ``config.json``, ``summary.json`` and ``COMPLETE``.

GGO-free films (``ggo_free`` True, an all-zero mask) are in the cache and in the split
(:func:`~ggo.data.split.split_with_ggo_free`: the GGO films' split is the one without them), but
:meth:`Cache.split` keeps them out of ``val`` and ``test`` (the GGO metrics) and out of ``train``
unless asked; :meth:`Cache.ggo_free_split` gives those of val and test patients.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ggo.data.audit import format_summary  # noqa: F401  re-exported
from ggo.data.cache_split import Split, SplitSource  # noqa: F401  re-exported
from ggo.data.preprocess import check_fit, check_resolution
from ggo.data.folder import folder_digest
from ggo.data.records import FOLDER, LUNG_SIDES, check_root, dataset_layout
from ggo.data.split import TEST, check_split_args, fold_name
from ggo.heads import CLASS_HEADS, LUNGS, head_known, resolve_heads  # noqa: F401  CLASS_HEADS: re-exported

CACHE_VERSION = 3  # 2: GGO-free films (ggo_free column); 3: class_<head>.npy, classes/unmasked columns. Bump when the cache's content changes for the same inputs
COMPLETE = "COMPLETE"
MANIFEST_COLUMNS = [
    "name", "patient_id", "split", "height", "width", "ggo_fraction", "ggo_inside_lungs",
    "lung_sides", "has_lungs", "flags", "ggo_free", "classes", "unmasked",
]  # fmt: skip


class IncompleteCacheError(RuntimeError):
    """A cache directory without its COMPLETE marker (an interrupted or foreign build)."""


@dataclass
class Cache:
    """A complete cache directory: ``path``, ``manifest`` (DataFrame, one row per array index),
    ``summary`` (dict, see :func:`format_summary`) and ``config`` (what the key hashes)."""

    path: Path
    manifest: pd.DataFrame
    summary: dict[str, Any]
    config: dict[str, Any]

    def __len__(self) -> int:
        return len(self.manifest)

    @property
    def resolution(self) -> int:
        return int(self.config["preprocess"]["resolution"])

    @property
    def folds(self) -> int:
        return int(self.config["split"]["folds"])

    def _array(self, name: str) -> np.ndarray:
        return np.load(self.path / f"{name}.npy", mmap_mode="r")

    @property
    def ggo_free(self) -> np.ndarray:
        """(N,) bool: the GGO-free films (False for all in a cache built before they were read)."""
        if "ggo_free" not in self.manifest.columns:
            return np.zeros(len(self.manifest), dtype=bool)
        return self.manifest["ggo_free"].astype(str).str.lower().isin(["true", "1"]).to_numpy()

    def split(self, fold: int, train_ggo_free: bool = False, aux_heads: tuple[str, ...] | list[str] = ()) -> dict[str, Split]:
        """``{"train", "val", "test"}`` for cross-validation fold ``fold``: val is that fold, train
        the other folds, test the held-out patients (the same for every fold); GGO films only.
        ``train_ggo_free``: train also holds the other folds' GGO-free films (empty GGO targets).
        The GGO-free films of val and test patients are :meth:`ggo_free_split`'s.
        ``aux_heads``: the auxiliary heads whose masks to load (only those are read)."""
        labels, free = self._labels(fold), self.ggo_free
        in_val, in_test = labels == fold_name(int(fold)), labels == TEST
        train = ~in_val & ~in_test & (~free | bool(train_ggo_free))
        return self._splits({"train": train, "val": in_val & ~free, "test": in_test & ~free}, aux_heads)

    def ggo_free_split(self, fold: int, aux_heads: tuple[str, ...] | list[str] = ()) -> dict[str, Split]:
        """``{"val", "test"}``: the GGO-free films of fold ``fold``'s val patients and of the test
        patients (scored for predicted GGO area, :mod:`ggo.evaluation.ggo_free`; never for dice)."""
        labels, free = self._labels(fold), self.ggo_free
        return self._splits({"val": (labels == fold_name(int(fold))) & free, "test": (labels == TEST) & free}, aux_heads)

    def _labels(self, fold: int) -> np.ndarray:
        if isinstance(fold, bool) or not isinstance(fold, (int, np.integer)) or not 0 <= fold < self.folds:
            raise ValueError(f"fold must be an integer in 0..{self.folds - 1} for this cache ({self.path}), got {fold!r}")
        return self.manifest["split"].to_numpy(dtype=str)

    def _splits(self, selects: Mapping[str, np.ndarray], aux_heads: tuple[str, ...] | list[str] = ()) -> dict[str, Split]:
        names = self.manifest["name"].tolist()
        patients = self.manifest["patient_id"].tolist()
        has_lungs = self._array("has_lungs")
        sides = self.manifest["lung_sides"].fillna("").astype(str).str.split("+")
        complete = np.array([all(side in s for side in LUNG_SIDES) for s in sides], dtype=bool)
        wanted = [h for h in resolve_heads(False, aux_heads) if h != LUNGS]
        annotated = self.manifest["classes"].fillna("").astype(str).str.split("+")
        unmasked = self.manifest["unmasked"].fillna("").astype(str).str.split("+")
        known = {h: np.array([head_known(h, *film) for film in zip(annotated, sides, unmasked)], bool) for h in wanted}
        out: dict[str, Split] = {}
        for key, select in selects.items():
            idx = np.flatnonzero(select)
            out[key] = Split(
                names=[names[i] for i in idx],
                patients=[patients[i] for i in idx],
                has_lungs=np.asarray(has_lungs[idx], dtype=bool),
                folder=self.path,
                index=idx,
                complete_lungs=complete[idx],
                aux_known={h: known[h][idx] for h in wanted},
            )
        return out


def dataset_digest(root: str | Path, layout: str | None = None, hash_store: Path | None = None) -> str:
    """A fingerprint of a dataset. GeneralBlockchain layout (cheap): the bytes of structure.csv and
    metadata.csv, and the relative path, size and modification time of every file under images/
    and masks/. Folder layout: the content of every file (:func:`ggo.data.folder.folder_digest`;
    ``hash_store`` keeps each file's hash, so only changed files are read again)."""
    if dataset_layout(root, layout) == FOLDER:
        return folder_digest(root, hash_store)
    root = check_root(root)
    digest = hashlib.sha256()
    for name in ("structure.csv", "metadata.csv"):
        digest.update(name.encode() + b"\0" + (root / name).read_bytes() + b"\0")
    for sub in ("images", "masks"):
        folder = root / sub
        files = sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []
        for path in files:
            stat = path.stat()
            digest.update(f"{path.relative_to(root).as_posix()}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def cache_config(
    root: str | Path,
    *,
    resolution: int,
    fit: str = "pad",
    clahe: bool = False,
    clahe_clip: float = 2.0,
    seed: int = 0,
    test_fraction: float = 0.2,
    folds: int = 5,
    layout: str | None = None,
    hash_store: Path | None = None,
) -> dict[str, Any]:
    """What a cache key hashes: the format version, the dataset digest, preprocess and split.
    ``hash_store``: see :func:`dataset_digest`."""
    check_split_args(seed=seed, test_fraction=test_fraction, folds=folds)
    return {
        "version": CACHE_VERSION,
        "dataset": dataset_digest(root, layout, hash_store),
        "preprocess": {
            "resolution": check_resolution(resolution),
            "fit": check_fit(fit),
            "clahe": bool(clahe),
            "clahe_clip": float(clahe_clip) if clahe else None,  # irrelevant without CLAHE
        },
        "split": {"seed": int(seed), "test_fraction": float(test_fraction), "folds": int(folds)},
    }


def cache_key(config: Mapping[str, Any]) -> str:
    """The directory name of a cache: 16 hex digits of the config's SHA-256."""
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]


def is_complete(path: str | Path) -> bool:
    """True when ``path`` is a cache directory whose build finished."""
    return (Path(path) / COMPLETE).is_file()


def open_cache(path: str | Path) -> Cache:
    """Open a complete cache directory; IncompleteCacheError if its build never finished."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(
            f"no cache at {path}: build one with ggo.data.prepare_cache(...) or 'python -m ggo.data prepare'"
        )
    if not is_complete(path):
        raise IncompleteCacheError(
            f"the cache at {path} is incomplete (no {COMPLETE} marker: its build was interrupted); "
            "delete it and run 'python -m ggo.data prepare' again"
        )
    manifest = pd.read_csv(
        path / "manifest.csv",
        dtype={"name": str, "patient_id": str, "split": str, "lung_sides": str, "flags": str, "classes": str, "unmasked": str},
        keep_default_na=False,
        na_values={"ggo_inside_lungs": [""]},
    )
    summary = json.loads((path / "summary.json").read_text())
    config = json.loads((path / "config.json").read_text())
    return Cache(path=path, manifest=manifest, summary=summary, config=config)

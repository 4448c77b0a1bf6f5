"""The preprocessed cache that training runs read: arrays at one resolution, a manifest, a summary.

A cache lives in ``<cache_dir>/<key>/`` where the key hashes the dataset digest (structure.csv,
metadata.csv, and the names, sizes and modification times of images/ and masks/), the
preprocessing config and the split config. So a changed dataset or config gets a new directory
and a stale cache is never reused. A cache is built in a temporary directory, finished with a
``COMPLETE`` marker and renamed into place in one step: an interrupted build is never read.

Files: ``images.npy`` (N, R, R, 1) float32 in [-1, 1], ``masks.npy`` and ``lungs.npy``
(N, R, R, 1) uint8 in {0, 1}, ``has_lungs.npy`` (N,) bool, ``manifest.csv`` (name, patient_id,
split, height, width, ggo_fraction, ggo_inside_lungs, lung_sides, has_lungs, flags: one row per
array index), ``config.json``, ``summary.json`` and ``COMPLETE``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ggo.data.preprocess import check_fit, check_resolution, preprocess, preprocess_mask
from ggo.data.records import LUNG_SIDES, LoadReport, annotated_names, check_root, iter_records
from ggo.data.split import TEST, check_split_args, fold_name, split_patients
from ggo.paths import default_cache_dir, default_data_root

CACHE_VERSION = 1  # bump when the cache's content changes for the same inputs
COMPLETE = "COMPLETE"
TINY_FRACTION = 0.001  # GGO under 0.1% of the image is suspicious ...
TINY_PIXELS = 50  # ... and so is a handful of pixels
MANIFEST_COLUMNS = [
    "name", "patient_id", "split", "height", "width", "ggo_fraction", "ggo_inside_lungs",
    "lung_sides", "has_lungs", "flags",
]  # fmt: skip
SYNTHETIC_OPTS = ("n_images", "n_patients", "image_size", "seed")


class IncompleteCacheError(RuntimeError):
    """A cache directory without its COMPLETE marker (an interrupted or foreign build)."""


@dataclass
class Split:
    """The arrays of one split: ``images`` (N, R, R, 1) float32 in [-1, 1], ``masks`` and
    ``lungs`` (N, R, R, 1) float32 in {0, 1}, ``has_lungs`` (N,) bool (False: ``lungs`` is all
    zeros because the image has no lung annotation), and the ``names`` and ``patients`` per row.
    ``complete_lungs`` (N,) bool: both lungs are annotated (a lung head learns only from those:
    a missing side would teach it that lung is background)."""

    images: np.ndarray
    masks: np.ndarray
    lungs: np.ndarray
    has_lungs: np.ndarray
    names: list[str]
    patients: list[str]
    complete_lungs: np.ndarray | None = None

    def targets(self, lung_head: bool = False) -> np.ndarray:
        """Training targets: ``masks`` (N, R, R, 1); with ``lung_head``, (N, R, R, 3) = GGO,
        lungs, lung weight (1 on images whose lungs are completely annotated, else 0)."""
        if not lung_head:
            return self.masks
        complete = self.has_lungs if self.complete_lungs is None else self.complete_lungs & self.has_lungs
        weight = np.broadcast_to(complete.astype(np.float32)[:, None, None, None], self.masks.shape)
        return np.concatenate([self.masks, self.lungs, weight], axis=-1)

    def __len__(self) -> int:
        return len(self.names)


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

    def split(self, fold: int) -> dict[str, Split]:
        """``{"train", "val", "test"}`` for cross-validation fold ``fold``: val is that fold,
        train the other folds, test the held-out patients (the same for every fold)."""
        if isinstance(fold, bool) or not isinstance(fold, (int, np.integer)) or not 0 <= fold < self.folds:
            raise ValueError(f"fold must be an integer in 0..{self.folds - 1} for this cache ({self.path}), got {fold!r}")
        labels = self.manifest["split"].to_numpy(dtype=str)
        val = labels == fold_name(int(fold))
        test = labels == TEST
        train = ~val & ~test
        arrays = {name: self._array(name) for name in ("images", "masks", "lungs", "has_lungs")}
        names = self.manifest["name"].tolist()
        patients = self.manifest["patient_id"].tolist()
        sides = self.manifest["lung_sides"].fillna("").astype(str).str.split("+")
        complete = np.array([all(side in s for side in LUNG_SIDES) for s in sides], dtype=bool)
        out: dict[str, Split] = {}
        for key, select in (("train", train), ("val", val), ("test", test)):
            idx = np.flatnonzero(select)
            out[key] = Split(
                images=np.asarray(arrays["images"][idx], dtype=np.float32),
                masks=np.asarray(arrays["masks"][idx], dtype=np.float32),
                lungs=np.asarray(arrays["lungs"][idx], dtype=np.float32),
                has_lungs=np.asarray(arrays["has_lungs"][idx], dtype=bool),
                names=[names[i] for i in idx],
                patients=[patients[i] for i in idx],
                complete_lungs=complete[idx],
            )
        return out


def dataset_digest(root: str | Path) -> str:
    """A cheap fingerprint of a dataset: the bytes of structure.csv and metadata.csv, and the
    relative path, size and modification time of every file under images/ and masks/."""
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
) -> dict[str, Any]:
    """What a cache key hashes: the format version, the dataset digest, preprocess and split."""
    check_split_args(seed=seed, test_fraction=test_fraction, folds=folds)
    return {
        "version": CACHE_VERSION,
        "dataset": dataset_digest(root),
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
        dtype={"name": str, "patient_id": str, "split": str, "lung_sides": str, "flags": str},
        keep_default_na=False,
        na_values={"ggo_inside_lungs": [""]},
    )
    summary = json.loads((path / "summary.json").read_text())
    config = json.loads((path / "config.json").read_text())
    return Cache(path=path, manifest=manifest, summary=summary, config=config)


def _flags(record: Any, mask_small: np.ndarray, report: LoadReport, resolution: int) -> tuple[list[str], list[str]]:
    """(codes, human reasons) for what looks wrong with one record's annotation."""
    codes: list[str] = []
    reasons: list[str] = []
    pixels = int(record.mask.sum())
    fraction = pixels / record.mask.size
    if pixels == 0:
        codes.append("empty_ggo")
        reasons.append("the GGO mask is empty")
    elif fraction < TINY_FRACTION or pixels < TINY_PIXELS:
        codes.append("tiny_ggo")
        reasons.append(f"tiny GGO mask: {pixels} px, {100 * fraction:.3f}% of the image")
    if record.lungs is not None and pixels:
        outside = 1.0 - float((record.mask & record.lungs).sum()) / pixels
        if outside > 0.5:
            codes.append("ggo_outside_lungs")
            reasons.append(f"{100 * outside:.0f}% of the GGO mask lies outside the annotated lungs")
    missing = [side for side in LUNG_SIDES if side not in record.lung_sides]
    if missing:
        codes.append("missing_lung_side")
        reasons.append(f"no {' or '.join(missing)} lung annotation")
    if pixels and not mask_small.any():
        codes.append("ggo_vanished")
        reasons.append(f"the GGO mask vanished when resized to {resolution} px")
    if record.name in report.clipped_images:
        codes.append("clipped_crop")
        reasons.append("a mask crop overflowed the image and was clipped")
    return codes, reasons


def _build(root: Path, config: dict[str, Any], path: Path, progress: bool) -> Cache:
    from tqdm.auto import tqdm

    pre = config["preprocess"]
    res, fit = pre["resolution"], pre["fit"]
    clip = pre["clahe_clip"] if pre["clahe"] else 2.0
    report = LoadReport()
    rows: list[dict[str, Any]] = []
    images: list[np.ndarray] = []
    masks: list[np.ndarray] = []
    lungs: list[np.ndarray] = []
    suspicious: list[dict[str, Any]] = []
    total = len(annotated_names(root))
    bar = tqdm(iter_records(root, report), total=total, desc=f"ggo cache {res}px", unit="img", disable=not progress)
    for record in bar:
        image = preprocess(record.image, res, fit=fit, clahe=pre["clahe"], clahe_clip=clip)
        mask = preprocess_mask(record.mask, res, fit=fit)
        has_lungs = record.lungs is not None
        lung = preprocess_mask(record.lungs, res, fit=fit) if has_lungs else np.zeros((res, res), np.float32)
        pixels = int(record.mask.sum())
        inside = float((record.mask & record.lungs).sum()) / pixels if has_lungs and pixels else float("nan")
        codes, reasons = _flags(record, mask, report, res)
        rows.append({
            "name": record.name, "patient_id": record.patient_id, "height": record.shape[0],
            "width": record.shape[1], "ggo_fraction": pixels / record.mask.size, "ggo_inside_lungs": inside,
            "lung_sides": "+".join(record.lung_sides), "has_lungs": has_lungs, "flags": ";".join(codes),
        })  # fmt: skip
        if reasons:
            suspicious.append({"name": record.name, "patient_id": record.patient_id, "reasons": reasons})
        images.append(image)
        masks.append(mask.astype(np.uint8))
        lungs.append(lung.astype(np.uint8))
    bar.close()
    if not rows:
        raise ValueError(
            f"no usable GGO-annotated image under {root} ({report.n_skipped} files skipped): "
            "check structure.csv and images/, or run 'python -m ggo.data fetch' for a fresh copy"
        )

    split_cfg = config["split"]
    assignment = split_patients(
        {r["name"]: r["patient_id"] for r in rows},
        seed=split_cfg["seed"],
        test_fraction=split_cfg["test_fraction"],
        folds=split_cfg["folds"],
    )
    for row in rows:
        row["split"] = assignment[row["name"]]
    for item in suspicious:
        item["split"] = assignment[item["name"]]
    manifest = pd.DataFrame(rows, columns=MANIFEST_COLUMNS)

    split_names = [TEST] + [fold_name(k) for k in range(split_cfg["folds"])]
    fractions = manifest["ggo_fraction"].to_numpy(float)
    inside = manifest["ggo_inside_lungs"].to_numpy(float)
    summary: dict[str, Any] = {
        "root": str(root),
        "path": str(path),
        "key": path.name,
        "preprocess": pre,
        "split_config": split_cfg,
        "images": len(manifest),
        "patients": int(manifest["patient_id"].nunique()),
        "skipped": report.n_skipped,
        "skipped_files": [{"file": f, "reason": r} for f, r in report.skipped],
        "clipped": report.n_clipped,
        "clipped_crops": [{"mask": f, "detail": d} for f, d in report.clipped],
        "own_patient_images": list(report.own_patient),
        "load_warnings": [{"image": n, "message": m} for n, m in report.warnings],
        "ggo_fraction_mean": float(fractions.mean()),
        "ggo_fraction_median": float(np.median(fractions)),
        "images_with_lungs": int(manifest["has_lungs"].sum()),
        "ggo_inside_lungs_median": float(np.nanmedian(inside)) if np.isfinite(inside).any() else None,
        "splits": {
            s: {
                "images": int((manifest["split"] == s).sum()),
                "patients": int(manifest.loc[manifest["split"] == s, "patient_id"].nunique()),
            }
            for s in split_names
        },
        "suspicious": suspicious,
    }

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    try:
        np.save(tmp / "images.npy", np.stack(images)[..., None])  # (N, R, R, 1) float32
        np.save(tmp / "masks.npy", np.stack(masks)[..., None])  # (N, R, R, 1) uint8
        np.save(tmp / "lungs.npy", np.stack(lungs)[..., None])  # (N, R, R, 1) uint8
        np.save(tmp / "has_lungs.npy", manifest["has_lungs"].to_numpy(bool))
        manifest.to_csv(tmp / "manifest.csv", index=False)
        (tmp / "config.json").write_text(json.dumps({**config, "root": str(root)}, indent=2) + "\n")
        (tmp / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        (tmp / COMPLETE).write_text(time.strftime("%Y-%m-%dT%H:%M:%S%z") + "\n")  # last: the build is whole
        _move_into_place(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return open_cache(path)


def _move_into_place(tmp: Path, path: Path) -> None:
    try:
        os.rename(tmp, path)  # atomic on one filesystem: readers see nothing or everything
    except OSError:
        if is_complete(path):
            return  # another process finished the same build first; ours is dropped
        # An incomplete directory at the final path (not made by this code): set it aside.
        stale = path.with_name(f".{path.name}.stale-{os.getpid()}-{time.time_ns()}")
        os.rename(path, stale)
        shutil.rmtree(stale, ignore_errors=True)
        os.rename(tmp, path)


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
) -> Cache:
    """The cache for this dataset and config, built on first use and reused after.

    ``root`` is the dataset (see :func:`~ggo.data.load_records`); ``resolution``, ``fit``,
    ``clahe``, ``clahe_clip`` are :func:`~ggo.data.preprocess`'s; ``seed``, ``test_fraction``,
    ``folds`` are :func:`~ggo.data.split_patients`'s. ``cache_dir`` defaults to ``$GGO_CACHE``,
    else ``<project>/data/cache``. ``progress`` shows a tqdm bar while building.
    """
    root = check_root(root)
    config = cache_config(
        root, resolution=resolution, fit=fit, clahe=clahe, clahe_clip=clahe_clip,
        seed=seed, test_fraction=test_fraction, folds=folds,
    )  # fmt: skip
    base = Path(cache_dir).expanduser() if cache_dir not in (None, "") else default_cache_dir()
    path = base / cache_key(config)
    if is_complete(path):
        return open_cache(path)
    return _build(root, config, path, progress)


def resolve_data_root(
    name: str | None,
    root: str | Path | None = None,
    cache_dir: str | Path | None = None,
    **synthetic_opts: Any,
) -> Path:
    """The dataset folder a data config means.

    An explicit ``root`` wins. ``name="synthetic"`` without a root means a generated dataset
    under the cache dir, ``<cache_dir>/synthetic-<seed>-<n_images>-<n_patients>-<image_size>``,
    made once (``synthetic_opts``: ``n_images``, ``n_patients``, ``image_size``, ``seed``, as in
    :func:`~ggo.data.make_synthetic_dataset`). Otherwise ``$GGO_DATA``, else
    ``<project>/data/covid-19-chest-xray-segmentations-dataset``.
    """
    if root not in (None, ""):
        return Path(root).expanduser().resolve()
    if name != "synthetic":
        return default_data_root()

    from ggo.data.synthetic import make_synthetic_dataset

    unknown = sorted(set(synthetic_opts) - set(SYNTHETIC_OPTS))
    if unknown:
        raise TypeError(f"unknown synthetic dataset options {unknown}; known: {list(SYNTHETIC_OPTS)}")
    opts = {"n_images": 24, "n_patients": 16, "image_size": 96, "seed": 0}
    opts.update({k: int(v) for k, v in synthetic_opts.items() if v is not None})
    base = Path(cache_dir).expanduser() if cache_dir not in (None, "") else default_cache_dir()
    target = base / f"synthetic-{opts['seed']}-{opts['n_images']}-{opts['n_patients']}-{opts['image_size']}"
    if (target / "structure.csv").is_file():
        return target.resolve()
    base.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=base))
    try:
        make_synthetic_dataset(tmp, **opts)
        try:
            os.rename(tmp, target)
        except OSError:
            if not (target / "structure.csv").is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target.resolve()


def prepare_from_config(data: Mapping[str, Any], preprocess: Mapping[str, Any], progress: bool = True) -> Cache:
    """:func:`prepare_cache` from the ``data`` and ``preprocess`` config groups, as plain dicts.

    Keys that do not concern the cache (``fold``, ``name`` for a real root, ...) are ignored, so
    ``prepare_from_config(OmegaConf.to_container(cfg.data), OmegaConf.to_container(cfg.preprocess))``
    works for any data option.
    """
    if "resolution" not in preprocess:
        raise ValueError(f"the preprocess config needs a 'resolution'; got keys {sorted(preprocess)}")
    synthetic = {k: data[k] for k in SYNTHETIC_OPTS if k in data and data[k] is not None}
    root = resolve_data_root(data.get("name"), data.get("root"), data.get("cache_dir"), **synthetic)
    return prepare_cache(
        root,
        resolution=preprocess["resolution"],
        fit=preprocess.get("fit", "pad"),
        clahe=bool(preprocess.get("clahe", False)),
        clahe_clip=float(preprocess.get("clahe_clip", 2.0)),
        seed=int(data.get("seed", 0)),
        test_fraction=float(data.get("test_fraction", 0.2)),
        folds=int(data.get("folds", 5)),
        cache_dir=data.get("cache_dir"),
        progress=progress,
    )


def format_summary(summary: Mapping[str, Any]) -> str:
    """The summary of a cache as readable text, for the terminal."""
    pre = summary.get("preprocess", {})
    lines = [
        f"GGO dataset {summary.get('root', '?')}",
        f"  {summary['images']} images, {summary['patients']} patients; "
        f"{summary['skipped']} files skipped, {summary['clipped']} crops clipped, "
        f"{len(summary.get('own_patient_images', []))} images without metadata (own patient)",
        f"  cache {summary.get('path', '?')}: {pre.get('resolution')} px, fit={pre.get('fit')}, "
        f"clahe={'on (clip ' + str(pre.get('clahe_clip')) + ')' if pre.get('clahe') else 'off'}",
        f"  GGO pixel fraction at native size: mean {100 * summary['ggo_fraction_mean']:.1f}%, "
        f"median {100 * summary['ggo_fraction_median']:.1f}%",
    ]
    if summary.get("ggo_inside_lungs_median") is not None:
        lines.append(
            f"  lungs annotated on {summary['images_with_lungs']} images; median share of the GGO mask "
            f"inside them {100 * summary['ggo_inside_lungs_median']:.1f}%"
        )
    lines.append(f"  {'split':<8}{'images':>8}{'patients':>10}")
    for name, counts in summary["splits"].items():
        lines.append(f"  {name:<8}{counts['images']:>8}{counts['patients']:>10}")
    for item in summary.get("skipped_files", []):
        lines.append(f"  skipped {item['file']}: {item['reason']}")
    for item in summary.get("clipped_crops", []):
        lines.append(f"  clipped {item['mask']}: {item['detail']}")
    suspicious = summary.get("suspicious", [])
    lines.append(f"  suspicious annotations: {len(suspicious)}")
    for item in suspicious:
        lines.append(f"    {item['name']} (patient {item['patient_id']}, {item.get('split', '?')}): {'; '.join(item['reasons'])}")
    return "\n".join(lines)

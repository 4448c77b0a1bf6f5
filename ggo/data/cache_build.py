"""Building a data cache (:mod:`ggo.data.cache`): read every record, bring it to the cache's grid,
audit it, split the patients, write the arrays and manifest atomically.

:func:`build` is what :func:`ggo.data.prepare.prepare_cache` calls when no complete cache matches the
config; everything else here is its steps.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ggo.data.atomic import atomic_directory
from ggo.data.audit import build_summary, flags
from ggo.data.cache import COMPLETE, MANIFEST_COLUMNS, Cache, is_complete, open_cache
from ggo.data.preprocess import preprocess, preprocess_mask
from ggo.data.records import FOLDER, GENERALBLOCKCHAIN, LoadReport, Record, annotated_names, iter_records
from ggo.data.split import TEST, fold_name, split_with_ggo_free
from ggo.heads import CLASS_HEADS


@dataclass
class _Built:
    """What the preprocessing pass produces: arrays, manifest rows and the suspicious list."""

    images: list[np.ndarray] = field(default_factory=list)
    masks: list[np.ndarray] = field(default_factory=list)
    lungs: list[np.ndarray] = field(default_factory=list)
    classes: dict[str, list[np.ndarray]] = field(default_factory=lambda: {h: [] for h in CLASS_HEADS})
    rows: list[dict[str, Any]] = field(default_factory=list)
    suspicious: list[dict[str, Any]] = field(default_factory=list)


def _record_count(root: Path, layout: str) -> int:
    """How many records the reader will yield (for the progress bar)."""
    if layout == FOLDER:
        from ggo.data.folder import index_folder

        return len(index_folder(root).images)
    return len(annotated_names(root, ggo_free=True))


def _add_record(built: _Built, record: Record, pre: Mapping[str, Any], report: LoadReport) -> None:
    """One record brought to the cache's grid and audited: its arrays and its manifest row."""
    res, fit = pre["resolution"], pre["fit"]
    clip = pre["clahe_clip"] if pre["clahe"] else 2.0
    image = preprocess(record.image, res, fit=fit, clahe=pre["clahe"], clahe_clip=clip)
    mask = preprocess_mask(record.mask, res, fit=fit)
    has_lungs = record.lungs is not None
    lung = preprocess_mask(record.lungs, res, fit=fit) if has_lungs else np.zeros((res, res), np.float32)
    pixels = int(record.mask.sum())
    inside = float((record.mask & record.lungs).sum()) / pixels if has_lungs and pixels else float("nan")
    codes, reasons = flags(record, mask, report, res)
    built.rows.append({
        "name": record.name, "patient_id": record.patient_id, "height": record.shape[0],
        "width": record.shape[1], "ggo_fraction": pixels / record.mask.size, "ggo_inside_lungs": inside,
        "lung_sides": "+".join(record.lung_sides), "has_lungs": has_lungs, "flags": ";".join(codes),
        "ggo_free": bool(record.ggo_free),
        "classes": "+".join(h for h in CLASS_HEADS if h in record.classes),
        "unmasked": "+".join(h for h in CLASS_HEADS if h in record.unmasked),
    })  # fmt: skip
    if reasons:
        built.suspicious.append({"name": record.name, "patient_id": record.patient_id, "reasons": reasons})
    built.images.append(image)
    built.masks.append(mask.astype(np.uint8))
    built.lungs.append(lung.astype(np.uint8))
    for head, masks in built.classes.items():
        plane = record.classes.get(head)
        masks.append((preprocess_mask(plane, res, fit=fit) if plane is not None else np.zeros((res, res))).astype(np.uint8))


def _preprocess_records(root: Path, layout: str, pre: Mapping[str, Any], report: LoadReport, progress: bool) -> _Built:
    """Read every record, bring it to the cache's grid and audit it; a manifest row per record."""
    from tqdm.auto import tqdm

    built = _Built()
    total = _record_count(root, layout)
    desc = f"ggo cache {pre['resolution']}px"
    with tqdm(iter_records(root, report, layout), total=total, desc=desc, unit="img", disable=not progress) as bar:
        for record in bar:  # a folder dataset raises here, after its last record, if any file is unusable
            _add_record(built, record, pre, report)
    if all(row["ggo_free"] for row in built.rows):
        raise ValueError(
            f"no usable GGO-annotated image under {root} ({report.n_skipped} files skipped, "
            f"{len(report.ggo_free)} GGO-free films): "
            "check structure.csv and images/, or run 'python -m ggo.data fetch' for a fresh copy"
        )
    return built


def _assign_splits(built: _Built, split_cfg: Mapping[str, Any]) -> None:
    """Label every manifest row and suspicious item with its patient-grouped split (the GGO films
    split as without GGO-free films; those follow, :func:`~ggo.data.split.split_with_ggo_free`)."""
    assignment = split_with_ggo_free(
        {r["name"]: r["patient_id"] for r in built.rows if not r["ggo_free"]},
        {r["name"]: r["patient_id"] for r in built.rows if r["ggo_free"]},
        seed=split_cfg["seed"],
        test_fraction=split_cfg["test_fraction"],
        folds=split_cfg["folds"],
    )
    for item in (*built.rows, *built.suspicious):
        item["split"] = assignment[item["name"]]


def _write_cache(
    path: Path, built: _Built, manifest: pd.DataFrame, config: Mapping[str, Any], summary: Mapping[str, Any], root: Path
) -> None:
    """Write the cache's files into a temporary directory and rename it to ``path`` in one step."""
    with atomic_directory(path, is_done=is_complete) as tmp:
        np.save(tmp / "images.npy", np.stack(built.images)[..., None])  # (N, R, R, 1) float32
        np.save(tmp / "masks.npy", np.stack(built.masks)[..., None])  # (N, R, R, 1) uint8
        np.save(tmp / "lungs.npy", np.stack(built.lungs)[..., None])  # (N, R, R, 1) uint8
        np.save(tmp / "has_lungs.npy", manifest["has_lungs"].to_numpy(bool))
        for head, masks in built.classes.items():
            np.save(tmp / f"class_{head}.npy", np.stack(masks)[..., None])  # (N, R, R, 1) uint8
        manifest.to_csv(tmp / "manifest.csv", index=False)
        (tmp / "config.json").write_text(json.dumps({**config, "root": str(root)}, indent=2) + "\n")
        (tmp / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        (tmp / COMPLETE).write_text(time.strftime("%Y-%m-%dT%H:%M:%S%z") + "\n")  # last: the build is whole


def build(root: Path, config: dict[str, Any], path: Path, progress: bool, layout: str = GENERALBLOCKCHAIN) -> Cache:
    """Preprocess, audit, split, summarise and write the cache at ``path``; open it."""
    report = LoadReport()
    built = _preprocess_records(root, layout, config["preprocess"], report, progress)
    _assign_splits(built, config["split"])
    manifest = pd.DataFrame(built.rows, columns=MANIFEST_COLUMNS)
    split_names = [TEST] + [fold_name(k) for k in range(config["split"]["folds"])]
    summary = build_summary(
        manifest, report, built.suspicious, root=root, path=path, config=config, split_names=split_names
    )
    _write_cache(path, built, manifest, config, summary, root)
    return open_cache(path)

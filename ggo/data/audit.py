"""The dataset audit: what looks wrong with each annotation, and the summary a cache carries.

:func:`flags` judges one record; :func:`build_summary` gathers the counts, the splits, the load
report and the suspicious annotations into ``summary.json``; :func:`format_summary` prints it
(``python -m ggo.data prepare``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ggo.data.records import LUNG_SIDES, LoadReport, Record

TINY_FRACTION = 0.001  # GGO under 0.1% of the image is suspicious ...
TINY_PIXELS = 50  # ... and so is a handful of pixels
LISTED = 10  # file names printed per audit line before "and N more"


def flags(record: Record, mask_small: np.ndarray, report: LoadReport, resolution: int) -> tuple[list[str], list[str]]:
    """(codes, human reasons) for what looks wrong with one record's annotation. A GGO-free film
    (``Record.ggo_free``) is not suspicious for having no GGO."""
    codes: list[str] = []
    reasons: list[str] = []
    pixels = int(record.mask.sum())
    fraction = pixels / record.mask.size
    if pixels == 0 and not record.ggo_free and record.name not in report.ggo_free:
        codes.append("empty_ggo")
        reasons.append("the GGO mask is empty")
    elif pixels and (fraction < TINY_FRACTION or pixels < TINY_PIXELS):
        codes.append("tiny_ggo")
        reasons.append(f"tiny GGO mask: {pixels} px, {100 * fraction:.3f}% of the image")
    if record.lungs is not None and pixels:
        outside = 1.0 - float((record.mask & record.lungs).sum()) / pixels
        if outside > 0.5:
            codes.append("ggo_outside_lungs")
            reasons.append(f"{100 * outside:.0f}% of the GGO mask lies outside the annotated lungs")
    missing = [side for side in LUNG_SIDES if side not in record.lung_sides]
    if missing and report.lungs_expected:
        codes.append("missing_lung_side")
        reasons.append(f"no {' or '.join(missing)} lung annotation")
    if pixels and not mask_small.any():
        codes.append("ggo_vanished")
        reasons.append(f"the GGO mask vanished when resized to {resolution} px")
    if record.name in report.clipped_images:
        codes.append("clipped_crop")
        reasons.append("a mask crop overflowed the image and was clipped")
    return codes, reasons


def _split_counts(manifest: pd.DataFrame, split_names: list[str]) -> dict[str, dict[str, int]]:
    return {
        s: {
            "images": int((manifest["split"] == s).sum()),
            "patients": int(manifest.loc[manifest["split"] == s, "patient_id"].nunique()),
        }
        for s in split_names
    }


def build_summary(
    manifest: pd.DataFrame,
    report: LoadReport,
    suspicious: list[dict[str, Any]],
    *,
    root: Path,
    path: Path,
    config: Mapping[str, Any],
    split_names: list[str],
) -> dict[str, Any]:
    """The ``summary.json`` of a cache: counts, what loading worked around, the audit."""
    ggo = ~manifest["ggo_free"].astype(bool) if "ggo_free" in manifest.columns else np.ones(len(manifest), bool)
    fractions = manifest.loc[ggo, "ggo_fraction"].to_numpy(float)  # over the GGO films: a GGO-free film's 0 says nothing
    inside = manifest["ggo_inside_lungs"].to_numpy(float)
    return {
        "root": str(root),
        "path": str(path),
        "key": path.name,
        "preprocess": config["preprocess"],
        "split_config": config["split"],
        "images": len(manifest),
        "patients": int(manifest["patient_id"].nunique()),
        "skipped": report.n_skipped,
        "skipped_files": [{"file": f, "reason": r} for f, r in report.skipped],
        "clipped": report.n_clipped,
        "clipped_crops": [{"mask": f, "detail": d} for f, d in report.clipped],
        "own_patient_images": list(report.own_patient),
        "load_warnings": [{"image": n, "message": m} for n, m in report.warnings],
        "notes": list(report.notes),
        "ggo_free_images": list(report.ggo_free),
        "thresholded_masks": list(report.thresholded),
        "ignored_files": list(report.ignored),
        "ggo_fraction_mean": float(fractions.mean()),
        "ggo_fraction_median": float(np.median(fractions)),
        "images_with_lungs": int(manifest["has_lungs"].sum()),
        "ggo_inside_lungs_median": float(np.nanmedian(inside)) if np.isfinite(inside).any() else None,
        "splits": _split_counts(manifest, split_names),
        "suspicious": suspicious,
    }


def _listed(names: list[str]) -> str:
    more = f" and {len(names) - LISTED} more" if len(names) > LISTED else ""
    return ", ".join(names[:LISTED]) + more


def _folder_lines(summary: Mapping[str, Any]) -> list[str]:
    """The audit lines of notes, GGO-free films and odd files (absent keys: an older cache)."""
    lines = [f"  note: {note}" for note in summary.get("notes", [])]
    free = summary.get("ggo_free_images", [])
    if free:
        lines.append(
            f"  {len(free)} images without a GGO mask: GGO-free films (negatives: scored for predicted GGO "
            f"area, trained on with data.train_ggo_free=true): {_listed(free)}"
        )
    cut = summary.get("thresholded_masks", [])
    if cut:
        lines.append(
            f"  {len(cut)} masks not binary (several grey levels, e.g. anti-aliased edges), "
            f"thresholded at half their maximum: {_listed(cut)}"
        )
    ignored = summary.get("ignored_files", [])
    if ignored:
        lines.append(f"  ignored {len(ignored)} files that are not images: {_listed(ignored)}")
    return lines


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
    lines.extend(_folder_lines(summary))
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

"""The numbers the report shows: rankings with intervals, paired patients, folds, the floor.

Every interval comes from :mod:`ggo.evaluation.scores` and :mod:`ggo.evaluation.stats` (the
patient bootstrap and the paired difference that ``python -m ggo.compare`` prints); nothing here
computes a statistic of its own. A difference to the top is *real* when its 95% interval excludes
0, *noise* when it does not, as ``ggo.compare`` says it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ggo.evaluation.scores import per_image_table, ranking_uncertainty
from ggo.sweeps.report.collect import Child, Sweep

#: The reference to beat: a TensorFlow pix2pix-style GAN's test dice on a 90/10 split by image.
SEED_TEST_DICE = 0.501
FLOOR = "lungs as GGO (floor)"
VERDICTS = {"top": "top", "worse": "real", "better": "real", "noise": "noise", "n/a": "n/a"}


@dataclass
class Entry:
    """One row of a ranking: a run, a configuration or a reference (the lungs-as-GGO floor)."""

    key: str
    label: str
    value: float  # what the ranking sorts by
    rows: pd.DataFrame | None  # its per-image rows on the ranking's split
    ci: tuple[float, float] | None = None  # 95% interval of its mean dice (patients resampled)
    delta: tuple[float, float, float] | None = None  # paired difference to the top, with its interval
    verdict: str = "n/a"  # "top", "real", "noise" or "n/a"
    reference: bool = False

    @property
    def mean_dice(self) -> float:
        return float(self.rows["dice"].mean()) if self.rows is not None and len(self.rows) else float("nan")


@dataclass
class Ranking:
    """Entries best first, scored on ``split`` (``val`` for runs, ``oof`` for CV configurations)."""

    split: str
    value_label: str
    entries: list[Entry]

    @property
    def top(self) -> Entry | None:
        return self.entries[0] if self.entries else None

    @property
    def runner_up(self) -> Entry | None:
        scored = [e for e in self.entries[1:] if e.rows is not None]
        return scored[0] if scored else None


def with_intervals(entries: list[Entry], split: str) -> list[Entry]:
    """Fill in each entry's interval and its paired difference to ``entries[0]``."""
    tables = {e.key: e.rows for e in entries}
    extra = ranking_uncertainty(tables, [e.key for e in entries], split)
    for e in entries:
        row = extra.loc[e.key] if e.key in extra.index else None
        if row is None:
            continue
        if "ci_low" in row and _finite(row["ci_low"]):
            e.ci = (float(row["ci_low"]), float(row["ci_high"]))
        if "delta_vs_top" in row and _finite(row["delta_vs_top"]):
            e.delta = (float(row["delta_vs_top"]), float(row["delta_ci_low"]), float(row["delta_ci_high"]))
        e.verdict = VERDICTS.get(str(row["vs_top"]), "n/a")
    return entries


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def run_ranking(sweep: Sweep) -> Ranking:
    """The finished children by the objective, each with its val interval and its paired
    difference to the top (the films both scored)."""
    entries = [
        Entry(c.run_id, c.label, c.value, _split_rows(c.per_image, "val"))
        for c in sweep.finished
    ]
    return Ranking("val", sweep.objective, with_intervals(entries, "val"))


def _split_rows(table: pd.DataFrame | None, split: str) -> pd.DataFrame | None:
    if table is None:
        return None
    rows = table[table["split"] == split]
    return rows.reset_index(drop=True) if len(rows) else None


# --- cross-validation -----------------------------------------------------------------------


def config_label(group: Sequence[Child]) -> str:
    """A CV configuration's key: its overrides without the fold and seed ones."""
    return " ".join(_config_words(group)) or "defaults"


def _config_words(group: Sequence[Child]) -> list[str]:
    words = group[0].tags.get("ggo.overrides", "").split()
    return [w for w in words if not w.startswith(("data.fold=", "train.seed="))]


def short_labels(groups: Sequence[Sequence[Child]]) -> dict[str, str]:
    """``{config_label: what sets it apart}``: the overrides the configurations do not share
    (one configuration: ``this configuration, N folds``)."""
    words = [_config_words(g) for g in groups]
    shared = set.intersection(*(set(w) for w in words)) if words else set()
    out = {}
    for group, own in zip(groups, words):
        folds = len({c.params.get("data.fold") for c in group})
        differs = " ".join(w for w in own if w not in shared)
        out[config_label(group)] = f"{differs or 'this configuration'} ({folds} folds)"
    return out


def out_of_fold(sweep: Sweep, group: Sequence[Child]) -> pd.DataFrame | None:
    """A configuration's out-of-fold rows: the parent's ``oof`` rows for a one-configuration CV
    (scored with the post-processing chosen on the folds), else each fold run's val rows (a film's
    seeds averaged), scored as each run was."""
    if len(sweep.cv_groups) == 1 and sweep.per_image is not None:
        rows = _split_rows(sweep.per_image, "oof")
        if rows is not None:
            return rows
    tables = [c.per_image[c.per_image["split"] == "val"] for c in group if c.per_image is not None]
    if not tables:
        return None
    rows = pd.concat(tables, ignore_index=True)
    rows = rows.groupby(["image", "patient"], as_index=False, sort=False)["dice"].mean()
    return rows.assign(split="oof")


def cv_ranking(sweep: Sweep, floor: pd.DataFrame | None) -> Ranking:
    """Configurations by out-of-fold mean dice, then the lungs-as-GGO floor on the same films."""
    entries = []
    labels = short_labels(sweep.cv_groups)
    for group in sweep.cv_groups:
        rows = out_of_fold(sweep, group)
        value = float(rows["dice"].mean()) if rows is not None else float("nan")
        entries.append(Entry(config_label(group), labels[config_label(group)], value, rows))
    entries.sort(key=lambda e: -e.value if math.isfinite(e.value) else math.inf)
    if floor is not None and entries:
        scored = set().union(*(set(e.rows["image"]) for e in entries if e.rows is not None))
        rows = floor[(floor["split"] == "oof") & floor["image"].isin(scored)].reset_index(drop=True)
        if len(rows):
            entries.append(Entry(FLOOR, FLOOR, float(rows["dice"].mean()), rows, reference=True))
    return Ranking("oof", "out-of-fold dice", with_intervals(entries, "oof"))


def floor_table(cache: Any, folds: Sequence[int]) -> pd.DataFrame | None:
    """Per-image dice of the annotated lungs taken as the GGO mask: ``oof`` rows (the val films
    of ``folds``) and ``test`` rows; films without lung annotation predict nothing."""
    if cache is None:
        return None
    parts = [per_image_table(s.names, s.patients, "oof", s.masks, s.lungs) for s in (cache.split(f)["val"] for f in folds)]
    test = cache.split(0)["test"]
    parts.append(per_image_table(test.names, test.patients, "test", test.masks, test.lungs))
    return pd.concat([p for p in parts if len(p)], ignore_index=True) if parts else None


def fold_values(group: Sequence[Child], metric: str) -> dict[int, float]:
    """``{fold: metric}`` of a configuration, a fold's seeds averaged."""
    by_fold: dict[int, list[float]] = {}
    for c in group:
        value = c.metrics.get(metric)
        if value is not None and math.isfinite(value):
            by_fold.setdefault(int(c.params.get("data.fold", 0)), []).append(float(value))
    return {f: float(np.mean(v)) for f, v in sorted(by_fold.items())}


@dataclass
class HeldOut:
    """A mean test dice with its 95% interval (None where it has no per-image rows)."""

    label: str
    dice: float
    ci: tuple[float, float] | None


def held_out_scores(sweep: Sweep, floor: pd.DataFrame | None) -> tuple[list[HeldOut], Any]:
    """The fold ensembles' test dice (with intervals where the parent logged per-image rows),
    the floor's on the same films, and the ensemble-minus-floor paired difference (or None)."""
    from ggo.evaluation.stats import paired_difference, patient_bootstrap_ci

    out: list[HeldOut] = []
    ensemble = _split_rows(sweep.per_image, "test") if len(sweep.cv_groups) == 1 else None
    if ensemble is not None:
        mean, lo, hi = patient_bootstrap_ci(ensemble["dice"], ensemble["patient"])
        out.append(HeldOut("fold ensemble", mean, (lo, hi)))
    elif sweep.cv_summary is not None and "ensemble test/dice" in sweep.cv_summary:
        labels = short_labels(sweep.cv_groups)
        for _, row in sweep.cv_summary.iterrows():
            out.append(HeldOut(f"fold ensemble: {labels.get(row['config'], row['config'])}", float(row["ensemble test/dice"]), None))
    paired = None
    test_floor = _split_rows(floor, "test")
    if test_floor is not None:
        mean, lo, hi = patient_bootstrap_ci(test_floor["dice"], test_floor["patient"])
        out.append(HeldOut(FLOOR, mean, (lo, hi)))
        if ensemble is not None:
            both = test_floor[["image", "patient", "dice"]].merge(ensemble[["image", "dice"]], on="image", suffixes=("_floor", ""))
            if len(both):
                paired = paired_difference(both["dice_floor"], both["dice"], both["patient"], a=FLOOR, b="fold ensemble", split="test")
    return out, paired


__all__ = [
    "Entry", "FLOOR", "HeldOut", "Ranking", "SEED_TEST_DICE", "config_label", "cv_ranking", "floor_table", "short_labels",
    "fold_values", "out_of_fold", "run_ranking", "held_out_scores", "with_intervals",
]  # fmt: skip

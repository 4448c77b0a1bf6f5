"""The top run (a cross-validation parent: the top configuration) up close: patient by patient
against the runner-up, its best, median and worst films, and its GGO-free area."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from ggo.sweeps.report import figures
from ggo.sweeps.report.collect import Child, Sweep
from ggo.sweeps.report.films import ggo_free_rows, overlays
from ggo.sweeps.report.page import Picture, Section
from ggo.sweeps.report.ranking import Ranking, config_label
from ggo.sweeps.report.sections import chart


def top_runs(sweep: Sweep, ranking: Ranking) -> Sequence[Child]:
    """The runs behind the top entry: the top child, or the fold runs of the top configuration."""
    top = ranking.top
    if top is None:
        return []
    if ranking.split == "oof":
        return next((g for g in sweep.cv_groups if config_label(g) == top.key), [])
    return [c for c in sweep.children if c.run_id == top.key]


def top_section(sweep: Sweep, ranking: Ranking, cache: Any, cache_note: str, workdir: Path) -> Section | None:
    top, runner = ranking.top, ranking.runner_up
    runs = top_runs(sweep, ranking)
    if top is None or not runs:
        return None
    cv = ranking.split == "oof"
    section = Section("top", f"The top {'configuration' if cv else 'run'}: {top.label}")
    if runner is not None and top.rows is not None and runner.rows is not None:
        section.pictures.append(chart(
            figures.paired_patients(top.rows, runner.rows, top.label, runner.label, ranking.split),
            "per-patient paired dice, top against runner-up",
            f"Each line is one patient: its mean {ranking.split} dice under the runner-up (left) and the top (right), "
            "on the films both scored. The interval in the ranking resamples these patients.",
        ))  # fmt: skip
    films = overlays(sweep, runs, top.rows, cache, workdir, cv=cv)
    if films.picture is not None:
        where = "out-of-fold films (each by the fold model that did not train on it)" if cv else "validation films"
        section.pictures.append(Picture(figures.png(films.picture), "image/png", "best, median and worst films of the top run",
                                        f"Its best, median and worst {where}, with the post-processing it was scored with. "
                                        "Yellow: GGO found (TP); orange: false alarm (FP); blue: GGO missed (FN)."))  # fmt: skip
    for note in (films.note, cache_note):
        if note:
            section.notes.append(f"No film overlays: {note}.")
    _ggo_free(section, sweep, runs, cv)
    section.lead = _lead(top, runner)
    return section


def _lead(top: Any, runner: Any) -> str:
    if runner is None or top.rows is None or runner.rows is None:
        return "Its films below."
    both = top.rows[["image", "patient", "dice"]].merge(runner.rows[["image", "dice"]], on="image", suffixes=("", "_b"))
    per = both.groupby("patient")[["dice", "dice_b"]].mean()
    better = int((per["dice"] > per["dice_b"]).sum())
    return f"Against {runner.label}: better for {better} of {len(per)} patients."


def _ggo_free(section: Section, sweep: Sweep, runs: Sequence[Child], cv: bool) -> None:
    """The top's predicted GGO area on the GGO-free films (a CV parent's: out of fold and test)."""
    if cv and len(sweep.cv_groups) == 1:
        rows, metrics = ggo_free_rows(sweep.ggo_free, ("oof", "test")), sweep.metrics
    else:
        run = runs[0]
        rows, metrics = ggo_free_rows(run.ggo_free, ("val", "test")), run.metrics
    if rows is None:
        section.notes.append("GGO-free area: no GGO-free film among these runs' validation or test films "
                             "(the dataset has none, or the split put none there).")  # fmt: skip
        return
    values = {k: v for k, v in metrics.items() if k.endswith("/ggo_free_area")}
    title = "predicted GGO on the GGO-free films: " + ", ".join(f"{k} {v:.3f}" for k, v in sorted(values.items()))
    section.pictures.append(chart(figures.ggo_free(pd.DataFrame(rows), title), "GGO-free area",
                                  "Dice cannot score a film without GGO; this is how much of each such film the model "
                                  "marks as GGO (after the same threshold and post-processing). Lower is better."))  # fmt: skip

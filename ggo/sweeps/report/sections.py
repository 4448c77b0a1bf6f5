"""The sections every report has: the ranking, the runs, the curves, how to reproduce it."""

from __future__ import annotations

import math
from typing import Sequence

from ggo.sweeps.report import figures
from ggo.sweeps.report.collect import Child, Sweep, provenance
from ggo.sweeps.report.page import Cell, Picture, Section, Table, cell, interval, minutes
from ggo.sweeps.report.ranking import Entry, Ranking

_STATUS_CSS = {"FAILED": "failed", "KILLED": "killed", "RUNNING": "running", "SCHEDULED": "running"}


def chart(fig: object, alt: str, caption: str = "") -> Picture:
    return Picture(figures.svg(fig), "image/svg+xml", alt, caption)


def verdict_line(ranking: Ranking) -> str:
    """One sentence: who is on top, by what, and whether the runner-up differs for real."""
    top, runner = ranking.top, ranking.runner_up
    if top is None:
        return "No run finished: there is nothing to rank."
    value = f"{ranking.value_label} {top.value:.3f}" + (f" {interval(top.ci)}" if top.ci else "")
    line = f"Top: {top.label} ({value})."
    if runner is not None and runner.delta is not None:
        what = "a real difference" if runner.verdict == "real" else "inside the noise"
        if runner.reference:
            return line + (f" The {runner.label} scores {runner.delta[0]:+.3f} {interval(runner.delta[1:], signed=True)} "
                           f"against it, {what}.")  # fmt: skip
        line += (f" Next, {runner.label}: {runner.delta[0]:+.3f} {interval(runner.delta[1:], signed=True)} "
                 f"paired on the films both scored, {what}.")  # fmt: skip
    elif runner is not None:
        line += f" Next, {runner.label}: no paired comparison (a run without per-image scores)."
    return line


def ranking_section(sweep: Sweep, ranking: Ranking) -> Section:
    cv = ranking.split == "oof"
    section = Section("ranking", "Ranking", verdict_line(ranking))
    if not ranking.entries:
        return section
    title = f"on the validation films, ranked by {sweep.objective}"
    if cv:
        title = "out of fold: every non-test film scored by the fold model that did not train on it"
    caption = ("Dots: mean dice; bars: 95% interval, patients resampled. Right: the paired difference to the top on "
               "the films both scored; real (red) when its interval excludes 0, noise (blue) when not.")  # fmt: skip
    section.pictures.append(chart(figures.forest(ranking, title), "forest plot of the ranking", caption))
    rows = [_ranking_row(i, e, ranking) for i, e in enumerate(ranking.entries, 1)]
    name = "configuration" if cv else "run"
    columns = [
        "rank", name, ranking.value_label, "mean dice", "95% interval", "vs top (paired)", "95% interval of the difference", "verdict",
    ]  # fmt: skip
    section.tables.append(Table(columns, rows, "ranking"))
    if not cv and sweep.objective != "val/dice":
        section.notes.append(f"Ranked by {sweep.objective}; the intervals are those of the per-image val dice (the scores a run logs).")
    if any(e.rows is None for e in ranking.entries):
        section.notes.append("A run without per-image scores (scores/per_image.csv, which older ggo versions did not log) has no interval.")
    if cv and any(e.reference for e in ranking.entries):
        section.notes.append("The floor is no model: the annotated lungs taken as the GGO mask, scored on the same films. "
                             "A configuration worth keeping beats it for real.")  # fmt: skip
    return section


def _ranking_row(rank: int, e: Entry, ranking: Ranking) -> list[Cell]:
    css = "reference" if e.reference else ("top" if e.verdict == "top" else "")
    delta = e.delta
    return [
        cell("-" if e.reference else rank), Cell(e.label, css, e.key), cell(e.value), cell(e.mean_dice),
        Cell(interval(e.ci)), Cell(f"{delta[0]:+.3f}" if delta else ""), Cell(interval(delta[1:], signed=True) if delta else ""),
        Cell(e.verdict if e.verdict != "n/a" else "", e.verdict if e.verdict in ("real", "noise") else ""),
    ]  # fmt: skip


def varying_keys(children: Sequence[Child]) -> list[str]:
    """The params whose values differ between the children that logged params (a run that failed
    before logging any does not make every param look different)."""
    logged = [c for c in children if c.params]
    keys = sorted({k for c in logged for k in c.params})
    return [k for k in keys if len({c.params.get(k) for c in logged}) > 1]


def runs_section(sweep: Sweep, pruned: dict[str, str]) -> Section:
    """Every child: status, objective, wall time, epochs, and the params that vary."""
    keys = varying_keys(sweep.children)
    lead = ("What differs: " + ", ".join(keys) + ".") if keys else "The children share every param."
    section = Section("runs", "Runs: what differs, wall time, status", lead)
    free = any("val/ggo_free_area" in c.metrics for c in sweep.children)
    columns = ["#", "run", "status", sweep.objective, "wall time", "epochs", "best epoch"]
    columns += ["val GGO-free area"] * free + keys
    rows = []
    for i, c in enumerate(sweep.children, 1):
        status = Cell(c.status, _STATUS_CSS.get(c.status, ""))
        if c.run_id in pruned:
            status = Cell(f"{c.status}, pruned", "pruned", pruned[c.run_id])
        row = [cell(i), Cell(c.label, "", f"{c.name} [{c.run_id}]"), status, cell(c.value), Cell(minutes(c.minutes)),
               cell(_int(c.metrics.get("train/epochs_run"))), cell(c.best_epoch)]  # fmt: skip
        if free:
            row.append(cell(c.metrics.get("val/ggo_free_area")))
        row += [_value_cell(c.params.get(k)) for k in keys]
        rows.append(row)
    section.tables.append(Table(columns, rows, "runs"))
    total = sum(c.minutes for c in sweep.children if math.isfinite(c.minutes))
    section.notes.append(f"{len(sweep.children)} runs, {minutes(total)} of job time in all; the sweep took {minutes(sweep.minutes)}.")
    broken = [c for c in sweep.children if c.error]
    if broken:
        rows = [[Cell(c.label, "", f"{c.name} [{c.run_id}]"), Cell(c.status, _STATUS_CSS.get(c.status, "")), Cell(c.error, "wrap")]
                for c in broken]  # fmt: skip
        section.tables.append(Table(["run", "status", "error"], rows, "errors"))
        section.notes.append("Each failed run keeps its traceback as error.txt in its artifacts.")
    return section


def _int(value: float | None) -> int | None:
    return int(value) if value is not None and math.isfinite(value) else None


def _value_cell(value: str | None) -> Cell:
    if value is None:
        return Cell("-")
    return Cell(value if len(value) <= 40 else value[:37] + "...", "", value if len(value) > 40 else "")


def curves_section(sweep: Sweep) -> Section | None:
    drawn = [c for c in sweep.children if c.curve]
    if not drawn:
        return None
    best = max((c for c in drawn if c.finished), key=lambda c: c.value if math.isfinite(c.value) else -math.inf, default=None)
    lead = f"{sweep.objective} of every run by epoch."
    if best is not None and best.best_epoch:
        lead += f" {best.label} peaked at epoch {best.best_epoch}."
    section = Section("curves", "Curves", lead)
    section.pictures.append(chart(figures.curves(drawn, sweep.objective), f"{sweep.objective} curves of every run"))
    return section


def provenance_section(sweep: Sweep, ui_page: str) -> Section:
    p = provenance(sweep)
    section = Section("reproduce", "Reproduce", "The command, the code and the data of this sweep.")
    how = "" if p.exact else " (from the parent's ggo.overrides tag: hydra/... overrides are not in it)"
    section.code.append((f"Run the sweep again{how}:", p.command))
    commit = p.git_commit + (" (with uncommitted changes)" if p.git_dirty else "") if p.git_commit else "not recorded"
    digest = p.dataset_digest or "not readable here (the cache is not on this machine)"
    rows = [
        ["git commit", commit], ["data", p.data or "-"], ["data cache", p.cache or "-"],
        ["cache key (hashes the data digest, preprocess and split)", p.cache_key or "-"], ["dataset digest", digest],
        ["tracking store", sweep.uri], ["parent run", sweep.run_id], ["in the MLflow UI", ui_page or "-"],
    ]  # fmt: skip
    section.tables.append(Table(["what", "value"], [[Cell(k), Cell(v, "wrap")] for k, v in rows], "provenance"))
    section.code.append(("This page again (from the store):", f"python -m ggo.report {sweep.run_id} --tracking-uri {sweep.uri}"))
    return section

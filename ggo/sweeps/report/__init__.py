"""The sweep report: one self-contained HTML page per sweep, cross-validation or Keras Tuner parent.

What won, by how much, is it real, and what do its masks look like: the ranking as a forest plot
with paired intervals (:mod:`ggo.evaluation.scores`, the statistics ``python -m ggo.compare``
prints), what differs between the runs, their wall time and status, every curve, the top run's
patients against the runner-up and its best, median and worst films, its GGO-free area; a
cross-validation's folds and held-out test beside the lungs-as-GGO floor; a search's trials; and
the command, commit and data that reproduce it.

:func:`log_report` writes it to the parent run as ``report.html`` when a sweep ends
(:func:`ggo.sweeps.summary.summarize`); ``python -m ggo.report PARENT`` writes it anywhere.
Modules: :mod:`~.collect` (MLflow -> dataclasses), :mod:`~.ranking` (the numbers), :mod:`~.films`
(overlays), :mod:`~.figures` (charts), :mod:`~.sections`, :mod:`~.top` and :mod:`~.kinds` (the
page's parts), :mod:`~.html` (the file), :mod:`~.cli` (the command).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from ggo import tracking
from ggo.sweeps.report.collect import ReportError, Sweep, gather, resolve_parent
from ggo.sweeps.report.page import Page
from ggo.tracking.ui import REPORT_ARTIFACT, ui_page

TITLES = {"sweep": "Sweep report", "cv": "Cross-validation report", "search": "Keras Tuner search report"}


def build_page(sweep: Sweep, workdir: Path) -> Page:
    """Every section of ``sweep``'s page (what applies to its kind)."""
    from ggo.sweeps.report import kinds, sections, top
    from ggo.sweeps.report.films import open_run_cache
    from ggo.sweeps.report.ranking import cv_ranking, floor_table, run_ranking

    cache, cache_note = open_run_cache(sweep.children)
    floor = None
    if sweep.kind == "cv":
        folds = sorted({int(c.params.get("data.fold", 0)) for g in sweep.cv_groups for c in g})
        floor = floor_table(cache, folds)
        ranking = cv_ranking(sweep, floor)
    else:
        ranking = run_ranking(sweep)
    pruned = kinds.pruned_runs(sweep) if sweep.kind == "search" else {}
    parts = [
        sections.ranking_section(sweep, ranking),
        top.top_section(sweep, ranking, cache, cache_note, workdir),
        kinds.cv_section(sweep, floor) if sweep.kind == "cv" else None,
        kinds.search_section(sweep) if sweep.kind == "search" else None,
        sections.runs_section(sweep, pruned),
        sections.curves_section(sweep),
        sections.provenance_section(sweep, _ui(sweep)),
    ]
    return Page(f"{TITLES[sweep.kind]}: {sweep.swept}", _facts(sweep), [p for p in parts if p is not None])


def _ui(sweep: Sweep) -> str:
    try:
        return ui_page(sweep.uri, sweep.run_id, parent=True, objective=sweep.objective)
    except Exception:  # noqa: BLE001 - a link is a convenience
        return ""


def _facts(sweep: Sweep) -> list[tuple[str, str]]:
    from ggo.sweeps.report.page import minutes

    counts: dict[str, int] = {}
    for c in sweep.children:
        counts[c.status] = counts.get(c.status, 0) + 1
    jobs = ", ".join(f"{n} {status.lower()}" for status, n in sorted(counts.items()))
    started = time.strftime("%Y-%m-%d %H:%M", time.localtime(sweep.started)) if sweep.started else "?"
    return [
        ("parent run", f"{sweep.run_id} ({sweep.status.lower()})"), ("run name", sweep.name), ("objective", sweep.objective),
        ("jobs", jobs), ("started", f"{started}, took {minutes(sweep.minutes) or '?'}"),
        ("store", sweep.uri), ("written", time.strftime("%Y-%m-%d %H:%M")),
    ]  # fmt: skip


def render(uri: str, run_id: str) -> str:
    """The report of parent ``run_id`` as one HTML document."""
    from ggo.sweeps.report.html import to_html

    with tempfile.TemporaryDirectory(prefix="ggo-report-") as tmp:
        sweep = gather(uri, run_id, tmp)
        page = build_page(sweep, Path(tmp))
    return to_html(page)


def log_report(uri: str, run_id: str) -> str:
    """Write the report to parent ``run_id`` as ``report.html``; returns the HTML."""
    html = render(uri, run_id)
    parent = tracking.MlflowTracker.resume(uri, run_id)
    parent.log_text(html, REPORT_ARTIFACT)
    parent.detach()
    return html


__all__ = ["REPORT_ARTIFACT", "ReportError", "build_page", "gather", "log_report", "render", "resolve_parent"]

"""What only some parents have: a cross-validation's folds and held-out test, a search's trials."""

from __future__ import annotations

from typing import Any

import pandas as pd

from ggo.sweeps.report import figures
from ggo.sweeps.report.collect import Sweep
from ggo.sweeps.report.page import Cell, Section, Table, cell, interval
from ggo.sweeps.report.ranking import FLOOR, SEED_TEST_DICE, config_label, fold_values, held_out_scores, short_labels
from ggo.sweeps.report.sections import chart


def cv_section(sweep: Sweep, floor: pd.DataFrame | None) -> Section:
    """Per-fold bars, then the fold ensemble's test dice beside the floor and the reference."""
    labels = short_labels(sweep.cv_groups)
    folds = {labels[config_label(g)]: fold_values(g, sweep.objective) for g in sweep.cv_groups}
    tests = fold_values(sweep.cv_groups[0], "test/dice") if len(sweep.cv_groups) == 1 else None
    spread = [f"{label}: {pd.Series(v).mean():.3f} +- {pd.Series(v).std(ddof=0):.3f} over {len(v)} folds" for label, v in folds.items()]
    section = Section("cv", "Cross-validation: folds and the held-out test", f"{sweep.objective}, mean +- std: " + "; ".join(spread) + ".")
    section.pictures.append(chart(figures.fold_bars(folds, sweep.objective, tests), "per-fold bars",
                                  "Each fold's model on its own validation films (a fold's seeds averaged)."))  # fmt: skip
    scores, paired = held_out_scores(sweep, floor)
    if scores:
        section.pictures.append(chart(figures.held_out(scores), "test dice of the fold ensemble, the floor and the reference",
                                      f"The test patients, never used for training or any choice. Dotted: {SEED_TEST_DICE}, the test "
                                      "dice a TensorFlow pix2pix-style GAN reported on a 90/10 split by image (its test "
                                      "patients likely also trained it)."))  # fmt: skip
        section.tables.append(Table(["", "test dice", "95% interval"], [[Cell(s.label, "reference" if s.label == FLOOR else ""),
                                    cell(s.dice), Cell(interval(s.ci))] for s in scores]))  # fmt: skip
    if paired is not None:
        what = "a real difference" if paired.distinguishable else "inside the noise"
        section.notes.append(f"Fold ensemble minus the floor on the {paired.n_images} test films of {paired.n_patients} patients: "
                             f"{paired.delta_dice:+.3f} {interval((paired.ci_low, paired.ci_high), signed=True)}, "
                             f"Wilcoxon p = {paired.p_value:.3g}: {what}.")  # fmt: skip
    if floor is None:
        section.notes.append("No lungs-as-GGO floor: the data cache is not on this machine.")
    if len(sweep.cv_groups) > 1:
        section.notes.append("Several configurations: each one's fold ensemble is in cv_summary.csv; the parent run holds none of them.")
    return section


# --- Keras Tuner searches -------------------------------------------------------------------


def trial_rows(sweep: Sweep) -> list[dict[str, Any]]:
    """The search's trials in the order they were created, each with ``pruned`` (Hyperband ran it
    for fewer than the most epochs and no later trial continued it) and its MLflow ``run_id``."""
    rows = [dict(r) for r in (sweep.search or {}).get("trials") or []]
    rows.sort(key=lambda r: (len(str(r.get("trial_id"))), str(r.get("trial_id"))))
    continued = {str(r["continues"]) for r in rows if r.get("continues") is not None}
    most = max((int(r["epochs"]) for r in rows if r.get("epochs") is not None), default=None)
    runs = {c.trial_id: c.run_id for c in sweep.children if c.trial_id is not None}
    for r in rows:
        done = r.get("value") is not None
        r["pruned"] = bool(done and most is not None and r.get("epochs") is not None and int(r["epochs"]) < most
                           and str(r["trial_id"]) not in continued)  # fmt: skip
        r["run_id"] = runs.get(str(r.get("trial_id")))
    return rows


def pruned_runs(sweep: Sweep) -> dict[str, str]:
    """``{run id: why}`` of the pruned trials' runs."""
    return {r["run_id"]: f"Hyperband stopped it after {r['epochs']} epochs" for r in trial_rows(sweep) if r["pruned"] and r["run_id"]}


def search_section(sweep: Sweep) -> Section | None:
    rows = trial_rows(sweep)
    if not rows:
        return None
    search = sweep.search or {}
    objective = str(search.get("objective") or sweep.objective)
    done = [r for r in rows if r.get("value") is not None]
    best = max(done, key=lambda r: r["value"], default=None)
    pruned = sum(r["pruned"] for r in rows)
    counts = f"{len(rows)} trials: {len(done)} finished ({pruned} of them pruned), {len(rows) - len(done)} without a score"
    lead = counts + (f". Best: trial {best['trial_id']}, {objective} {best['value']:.3f}." if best else ".")
    section = Section("search", f"Keras Tuner search ({search.get('oracle', '?')}, {search.get('direction', 'max')} {objective})", lead)
    section.pictures.append(chart(figures.trials(rows, objective), "objective by trial"))
    table = []
    for r in rows:
        status = Cell("pruned", "pruned") if r["pruned"] else Cell(str(r.get("status")), "failed" if r.get("value") is None else "")
        params = " ".join(f"{k}={v}" for k, v in (r.get("params") or {}).items())
        table.append([Cell(str(r.get("trial_id"))), status, cell(r.get("value")), cell(r.get("epochs")), cell(r.get("continues")),
                      Cell(params, "wrap"), Cell(str(r.get("error") or ""), "wrap")])  # fmt: skip
    section.tables.append(Table(["trial", "status", objective, "epochs", "continues", "params", "error"], table, "trials"))
    if search.get("directory"):
        section.notes.append(f"The search's state: {search['directory']} (rerun the same command to resume it or to add trials).")
    return section

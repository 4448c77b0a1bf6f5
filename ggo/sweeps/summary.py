"""A sweep's ranked summary: its children by the objective, with intervals, logged to the parent.

:func:`summarize` writes ``summary.csv``, ``summary.md`` and ``val_dice_curves.png`` to the parent
run, prints the ranking and, for cross-validation rows among the children, hands them to
:func:`ggo.sweeps.cv.summarize_cv`; last, the sweep's page, ``report.html`` (:mod:`ggo.sweeps.report`).
"""

from __future__ import annotations

from typing import Any

from ggo import tracking
from ggo.sweeps.tables import to_markdown

SUMMARY_COLUMNS = ("val/dice", "val/precision", "val/recall", "test/dice", "test/precision", "test/recall")


def summarize(uri: str, parent_run_id: str, *, objective: str = "val/dice") -> int:
    """Rank the children of ``parent_run_id`` by ``objective``; log the table and the curves.

    Returns the number of children that did not finish (FAILED, KILLED or still RUNNING).
    """
    import pandas as pd

    from ggo.evaluation.viz import sweep_figure

    children = tracking.child_runs(uri, parent_run_id)
    rows = []
    curves = []
    for run in children:
        m, tags = run.data.metrics, run.data.tags
        duration = ((run.info.end_time or 0) - (run.info.start_time or 0)) / 1000 if run.info.end_time else float("nan")
        row = {
            "run": run.info.run_name,
            "status": run.info.status,
            objective: m.get(objective, float("nan")),
            **{k: m.get(k, float("nan")) for k in SUMMARY_COLUMNS if k != objective},
            "gen": tags.get("gen", ""),
            "disc": tags.get("disc", ""),
            "loss": tags.get("loss", ""),
            "resolution": tags.get("resolution", ""),
            "fold": tags.get("fold", ""),
            "epochs": m.get("train/epochs_run", float("nan")),
            "minutes": duration / 60,
            "error": tags.get(tracking.ERROR_TAG, ""),
            "run_id": run.info.run_id,
        }
        rows.append(row)
        curves.append((run.info.run_name, tracking.metric_history(uri, run.info.run_id, "val/dice")))
    table = pd.DataFrame(rows)
    failed = 0
    if len(table):
        table = table.sort_values(objective, ascending=False, na_position="last").reset_index(drop=True)
        table.insert(0, "rank", range(1, len(table) + 1))
        failed = int((table["status"] != "FINISHED").sum())
        table = with_uncertainty(uri, table, objective)
    # The curves plot skips the extra final point (the best checkpoint's re-evaluation).
    curves = [(name, values[:-1] if len(values) > 1 else values) for name, values in curves]

    parent = tracking.MlflowTracker.resume(uri, parent_run_id)
    parent.log_text(table.to_csv(index=False), "summary.csv")
    parent.log_text(to_markdown(table), "summary.md")
    if curves:
        parent.log_figure(sweep_figure(curves, metric="val/dice"), "val_dice_curves.png")
    finished = table[table["status"] == "FINISHED"] if len(table) else table
    if len(finished):
        best = finished.iloc[0]
        parent.log_metrics({f"best/{objective}": float(best[objective])})
        parent.set_tags({"ggo.best_run_id": best["run_id"], "ggo.best_run": best["run"]})
    parent.set_tags({"ggo.jobs": str(len(table)), "ggo.failed_jobs": str(failed)})
    parent.detach()
    from ggo.sweeps.cv import summarize_cv
    from ggo.sweeps.folds import cross_validation_groups

    cv_groups = cross_validation_groups(children)
    if cv_groups:
        summarize_cv(uri, parent_run_id, cv_groups, objective=objective)
    tracking.set_status(uri, parent_run_id, "FINISHED" if failed == 0 else "FAILED")
    print("\n[ggo] sweep summary (sorted by %s)\n%s\n" % (objective, to_markdown(table)), flush=True)
    if failed:
        print(f"[ggo] {failed} of {len(table)} jobs did not finish; see the 'error' column and each run's error.txt", flush=True)
    write_report(uri, parent_run_id)
    return failed


def write_report(uri: str, parent_run_id: str) -> None:
    """Log the sweep's report page to its parent run; a failure is only a warning (the summary
    and the runs are what the sweep promised)."""
    try:
        from ggo.sweeps.report import log_report

        log_report(uri, parent_run_id)
    except Exception as exc:  # noqa: BLE001 - a report must never fail the sweep
        print(f"[ggo] warning: the sweep's report.html was not written ({type(exc).__name__}: {exc}); "
              f"`python -m ggo.report {parent_run_id} --log` tries again", flush=True)  # fmt: skip


def with_uncertainty(uri: str, table: Any, objective: str) -> Any:
    """Add the 95% CI of each run's ``val/dice`` (patients resampled) and whether it can be told
    apart from the top FINISHED run (paired, on the val films both scored). Only for the
    ``val/dice`` objective: it is the mean of the per-image scores these intervals resample."""
    if objective != "val/dice" or not len(table):
        return table
    from ggo.evaluation.scores import ranking_uncertainty, uncertainty_columns

    finished = table[table["status"] == "FINISHED"]
    per_image = {run_id: _per_image(uri, run_id) for run_id in finished["run_id"]}
    keys = list(table["run_id"])
    ranked = ranking_uncertainty(per_image, list(finished["run_id"]), "val")
    columns = uncertainty_columns(keys, ranked)
    at = table.columns.get_loc(objective) + 1
    table.insert(at, "vs top (paired 95% CI)", columns["vs top (paired 95% CI)"])
    table.insert(at, "val/dice 95% CI", columns["dice 95% CI"])
    return table


def _per_image(uri: str, run_id: str) -> Any:
    """A run's per-image scores, or None when it logged none (runs of older ggo versions)."""
    import tempfile

    from ggo.evaluation.scores import ARTIFACT, read_table

    try:
        return read_table(str(tracking.download_artifact(uri, run_id, ARTIFACT, tempfile.mkdtemp(prefix="ggo-scores-"))))
    except Exception:  # noqa: BLE001 - a missing artifact: the row gets no interval
        return None

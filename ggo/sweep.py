"""Sweeps in MLflow: a parent run per multirun, a ranked summary when it ends.

:class:`MlflowSweepCallback` is a Hydra callback (``conf/config.yaml`` installs it). In the
process that drives a multirun it creates the parent run before any job starts (which also
creates and migrates the store once, so parallel jobs never race on a new SQLite schema) and
hands its id to the jobs through ``GGO_PARENT_RUN_ID``; each job becomes a child run. When the
sweep ends it writes ``summary.csv``, ``summary.md`` and ``val_dice_curves.png`` to the parent,
prints the ranking, and records the failures so ``python -m ggo.train`` exits non-zero.
"""

from __future__ import annotations

import math
import os
import time
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from ggo import tracking

#: Failed or killed jobs of the last sweep driven by this process (read by ``ggo.train.main``).
LAST_SWEEP: dict[str, Any] = {"failed": 0, "parent_run_id": None}

SUMMARY_COLUMNS = ("val/dice", "val/precision", "val/recall", "test/dice", "test/precision", "test/recall")


class MlflowSweepCallback(Callback):
    """Parent run and summary for Hydra multiruns (a no-op when ``tracking.enabled`` is false)."""

    def __init__(self) -> None:
        self.parent_run_id: str | None = None
        self.uri: str | None = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        LAST_SWEEP.update(failed=0, parent_run_id=None)
        if not config.tracking.enabled:
            return
        import mlflow

        self.uri = tracking.ensure_store(config.tracking.uri)
        exp_id = tracking.experiment_id(self.uri, config.tracking.experiment)
        overrides = list(config.hydra.overrides.task)
        sweep_id = time.strftime("%Y%m%d-%H%M%S") + f"-{os.getpid()}"
        run = mlflow.MlflowClient(self.uri).create_run(
            exp_id,
            run_name="sweep " + (" ".join(overrides) or "defaults"),
            tags={
                tracking.ROLE_TAG: "parent",
                tracking.SWEEP_TAG: sweep_id,
                "ggo.overrides": " ".join(overrides),
                "ggo.objective": config.objective,
                "ggo.sweep_dir": str(config.hydra.sweep.dir),
                **tracking.git_state(),
            },
        )
        self.parent_run_id = run.info.run_id
        LAST_SWEEP["parent_run_id"] = self.parent_run_id
        os.environ[tracking.PARENT_ENV] = self.parent_run_id
        os.environ[tracking.SWEEP_ENV] = sweep_id
        os.environ[tracking.SWEEP_OVERRIDES_ENV] = "\n".join(overrides)
        os.environ["MLFLOW_TRACKING_URI"] = self.uri
        print(f"[ggo] sweep {sweep_id}: parent MLflow run {self.parent_run_id}", flush=True)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if not self.parent_run_id or not self.uri:
            return
        try:
            failed = summarize(self.uri, self.parent_run_id, objective=config.objective)
            LAST_SWEEP["failed"] = failed
        finally:
            for key in (tracking.PARENT_ENV, tracking.SWEEP_ENV, tracking.SWEEP_OVERRIDES_ENV):
                os.environ.pop(key, None)
        print_ui_hint(self.uri, self.parent_run_id)


def print_ui_hint(uri: str, run_id: str | None = None) -> None:
    """Tell the user how to look at what was recorded."""
    import mlflow

    where = ""
    if run_id:
        run = mlflow.MlflowClient(uri).get_run(run_id)
        where = f"  then open http://127.0.0.1:5000/#/experiments/{run.info.experiment_id}/runs/{run_id}"
    if uri.startswith(("http://", "https://")):
        print(f"[ggo] browse the runs at {uri}" + (f"/#/experiments/{run.info.experiment_id}/runs/{run_id}" if run_id else ""))
    else:
        print(f"[ggo] browse the runs:  mlflow ui --backend-store-uri {uri} --host 127.0.0.1 --port 5000")
        if where:
            print(f"[ggo] {where.strip()}")


def summarize(uri: str, parent_run_id: str, *, objective: str = "val/dice") -> int:
    """Rank the children of ``parent_run_id`` by ``objective``; log the table and the curves.

    Returns the number of children that did not finish (FAILED, KILLED or still RUNNING).
    """
    import mlflow
    import pandas as pd

    from ggo.viz import sweep_figure

    client = mlflow.MlflowClient(uri)
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
    # The curves plot skips the extra final point (the best checkpoint's re-evaluation).
    curves = [(name, values[:-1] if len(values) > 1 else values) for name, values in curves]

    mlflow.set_tracking_uri(uri)
    with mlflow.start_run(run_id=parent_run_id):
        mlflow.log_text(table.to_csv(index=False), "summary.csv")
        mlflow.log_text(to_markdown(table), "summary.md")
        if curves:
            fig = sweep_figure(curves, metric="val/dice")
            mlflow.log_figure(fig, "val_dice_curves.png")
            import matplotlib.pyplot as plt

            plt.close(fig)
        finished = table[table["status"] == "FINISHED"] if len(table) else table
        if len(finished):
            best = finished.iloc[0]
            mlflow.log_metrics({f"best/{objective}": float(best[objective])})
            mlflow.set_tags({"ggo.best_run_id": best["run_id"], "ggo.best_run": best["run"]})
        mlflow.set_tags({"ggo.jobs": str(len(table)), "ggo.failed_jobs": str(failed)})
        mlflow.end_run(status="FINISHED" if failed == 0 else "FAILED")
    del client
    print("\n[ggo] sweep summary (sorted by %s)\n%s\n" % (objective, to_markdown(table)), flush=True)
    if failed:
        print(f"[ggo] {failed} of {len(table)} jobs did not finish; see the 'error' column and each run's error.txt", flush=True)
    return failed


def to_markdown(table: Any) -> str:
    """A GitHub-markdown table (floats to 4 places) without extra dependencies."""
    if table is None or len(table) == 0:
        return "(no runs)"
    cols = [c for c in table.columns if c != "run_id"]

    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return "" if math.isnan(v) else f"{v:.4f}"
        return str(v).replace("|", "\\|").replace("\n", " ")[:120]

    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for _, row in table.iterrows():
        lines.append("| " + " | ".join(fmt(row[c]) for c in cols) + " |")
    return "\n".join(lines)

"""Sweeps in MLflow: a parent run per multirun, a ranked summary when it ends.

:class:`MlflowSweepCallback` is a Hydra callback (``conf/config.yaml`` installs it). In the
process that drives a multirun it creates the parent run before any job starts (which also
creates and migrates the store once, so parallel jobs never race on a new SQLite schema) and
hands its id to the jobs through ``GGO_PARENT_RUN_ID``; each job becomes a child run. When the
sweep ends it writes ``summary.csv``, ``summary.md`` and ``val_dice_curves.png`` to the parent,
prints the ranking, and records the failures so ``python -m ggo.train`` exits non-zero. A sweeper
that ranks its own trials (``hydra/sweeper=keras_tuner``) leaves ``search_results.yaml`` in the
sweep dir; the callback attaches it to the parent run too.
"""

from __future__ import annotations

import math
import os
import sys
import time
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from ggo import tracking
from ggo.tracking.liveness import process_tags

#: Failed or killed jobs of the last sweep driven by this process (read by ``ggo.train.main``).
LAST_SWEEP: dict[str, Any] = {"failed": 0, "parent_run_id": None}

SUMMARY_COLUMNS = ("val/dice", "val/precision", "val/recall", "test/dice", "test/precision", "test/recall")


class MlflowSweepCallback(Callback):
    """Parent run and summary for Hydra multiruns (a no-op when ``tracking.enabled`` is false)."""

    def __init__(self) -> None:
        self.parent_run_id: str | None = None
        self.uri: str | None = None
        self.job_env: dict[str, str] = {}
        self.started = 0.0

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        LAST_SWEEP.update(failed=0, parent_run_id=None)
        self.started = time.time()
        if not config.tracking.enabled:
            return
        self.uri = tracking.ensure_store(config.tracking.uri)
        overrides = list(config.hydra.overrides.task)
        sweep_id = time.strftime("%Y%m%d-%H%M%S") + f"-{os.getpid()}"
        self.parent_run_id = tracking.create_run(
            self.uri,
            config.tracking.experiment,
            run_name="sweep " + (" ".join(overrides) or "defaults"),
            tags={
                tracking.ROLE_TAG: "parent",
                tracking.SWEEP_TAG: sweep_id,
                "ggo.overrides": " ".join(overrides),
                "ggo.objective": config.objective,
                "ggo.sweep_dir": str(config.hydra.sweep.dir),
                **tracking.git_state(),
                **process_tags(),  # so `python -m ggo.runs clean` can end it if this driver dies unannounced
            },
        )
        LAST_SWEEP.update(parent_run_id=self.parent_run_id, uri=self.uri, ended=False, objective=config.objective)
        self.job_env = {
            tracking.PARENT_ENV: self.parent_run_id,
            tracking.SWEEP_ENV: sweep_id,
            tracking.SWEEP_OVERRIDES_ENV: "\n".join(overrides),
            "MLFLOW_TRACKING_URI": self.uri,
        }
        os.environ.update(self.job_env)
        print(f"[ggo] sweep {sweep_id}: parent MLflow run {self.parent_run_id}", flush=True)

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        """Give the job the sweep's parent run id (and sweep id, overrides, tracking URI).

        Jobs in this process or its children (basic and joblib launchers, a Ray instance this
        sweep starts) inherit them from ``os.environ``; a job on a Ray cluster that was running
        before the sweep (``hydra.launcher.ray.init.address=...``) does not, and would become an
        orphan run. Hydra pickles this callback with the job, so its ids travel to the worker.
        """
        if self.job_env:
            os.environ.update(self.job_env)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if not self.parent_run_id or not self.uri:
            return
        try:
            self.attach_search_results(config)
            failed = summarize(self.uri, self.parent_run_id, objective=config.objective)
            LAST_SWEEP.update(failed=failed, ended=True)
        except tracking.TrackingServerUnavailable as exc:
            LAST_SWEEP.update(failed=max(1, int(LAST_SWEEP.get("failed") or 0)), ended=True)  # exit non-zero
            _unrecorded_note(self.parent_run_id, exc)
            return
        finally:
            for key in (tracking.PARENT_ENV, tracking.SWEEP_ENV, tracking.SWEEP_OVERRIDES_ENV):
                os.environ.pop(key, None)
            self.job_env = {}
        print_ui_hint(self.uri, self.parent_run_id, parent=True, objective=config.objective)

    def attach_search_results(self, config: DictConfig) -> None:
        """Give the parent run the sweeper's ranking of the whole search, if this multirun wrote one
        (a fixed ``hydra.sweep.dir`` may hold an older file). A failure here is only a warning."""
        from pathlib import Path

        import yaml

        from hydra_plugins.ggo_keras_tuner_sweeper.config import RESULTS_FILE

        path = Path(str(config.hydra.sweep.dir)) / RESULTS_FILE
        if not path.is_file() or path.stat().st_mtime < self.started - 2:  # 2 s: coarse file-system clocks
            return
        try:
            text = path.read_text()
            results = yaml.safe_load(text) or {}
            run = tracking.MlflowTracker.resume(self.uri, self.parent_run_id)
            try:
                run.set_tags({"ggo.sweeper": str(results.get("name")), "ggo.search_dir": str(results.get("directory"))})
                run.log_text(text, RESULTS_FILE)
            finally:
                run.detach()
        except Exception as exc:  # noqa: BLE001 - tracking must never fail the search
            print(f"[ggo] could not attach {path} to the sweep's MLflow run: {exc}", flush=True)


def mark_interrupted() -> None:
    """An interrupted sweep's parent run ends KILLED, with its summary of the jobs that ended
    (its finished children stay as they are)."""
    end_unended("KILLED")


def end_unended(status: str) -> None:
    """End the parent run of a sweep that stopped before Hydra's ``on_multirun_end`` (an interrupt:
    KILLED; a job's error that Hydra raises after the batch: FAILED), with its summary of the jobs
    that ended. A no-op when no sweep of this process is open."""
    if LAST_SWEEP.get("parent_run_id") and not LAST_SWEEP.get("ended"):
        uri, parent = LAST_SWEEP["uri"], LAST_SWEEP["parent_run_id"]
        LAST_SWEEP["ended"] = True
        try:
            summarize(uri, parent, objective=LAST_SWEEP.get("objective", "val/dice"))
        except tracking.TrackingServerUnavailable as exc:
            _unrecorded_note(parent, exc)
            return
        except Exception as exc:  # noqa: BLE001 - the status below matters more than the summary
            print(f"[ggo] could not summarize the sweep: {type(exc).__name__}: {exc}", flush=True)
        try:
            tracking.set_status(uri, parent, status)
        except tracking.TrackingServerUnavailable as exc:
            _unrecorded_note(parent, exc)


def _unrecorded_note(parent_run_id: str, exc: Exception) -> None:
    print(
        f"[ggo] the sweep's summary was not written: {exc}\n[ggo] its parent run {parent_run_id} stays "
        f"RUNNING; what its jobs recorded is in the store",
        file=sys.stderr, flush=True,
    )  # fmt: skip


def ui_page(uri: str, run_id: str | None = None, *, parent: bool = False, objective: str = "val/dice") -> str:
    """The MLflow UI page (hash route) to open: a sweep's runs in the Model training view, ranked
    by ``objective`` (``parent=True``), or one run's page. MLflow 3 opens an experiment in its
    GenAI view unless ``workflowType=machine_learning`` is given."""
    from urllib.parse import urlencode

    if not run_id:
        return ""
    experiment = tracking.experiment_of(uri, run_id)
    if not parent:
        return f"/#/experiments/{experiment}/runs/{run_id}"
    query = {
        "workflowType": "machine_learning",
        "searchFilter": f"tags.mlflow.parentRunId = '{run_id}'",
        "orderByKey": f"metrics.`{objective}`",
        "orderByAsc": "false",
    }
    return f"/#/experiments/{experiment}/runs?" + urlencode(query)


def print_ui_hint(uri: str, run_id: str | None = None, *, parent: bool = False, objective: str = "val/dice") -> None:
    """Tell the user how to look at what was recorded."""
    page = ui_page(uri, run_id, parent=parent, objective=objective)
    if uri.startswith(("http://", "https://")):
        print(f"[ggo] browse the runs at {uri.rstrip('/')}{page}")
    else:
        print(f"[ggo] browse the runs:  mlflow ui --backend-store-uri {uri} --host 127.0.0.1 --port 5000")
        if page:
            print(f"[ggo] then open http://127.0.0.1:5000{page}")


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
    from ggo.sweeps.cv import cross_validation_groups, summarize_cv

    cv_groups = cross_validation_groups(children)
    if cv_groups:
        summarize_cv(uri, parent_run_id, cv_groups, objective=objective)
    tracking.set_status(uri, parent_run_id, "FINISHED" if failed == 0 else "FAILED")
    print("\n[ggo] sweep summary (sorted by %s)\n%s\n" % (objective, to_markdown(table)), flush=True)
    if failed:
        print(f"[ggo] {failed} of {len(table)} jobs did not finish; see the 'error' column and each run's error.txt", flush=True)
    return failed


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

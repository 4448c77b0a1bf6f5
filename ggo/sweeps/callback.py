"""Sweeps in MLflow: a parent run per multirun, a ranked summary when it ends.

:class:`MlflowSweepCallback` is a Hydra callback (``conf/config.yaml`` installs it). In the
process that drives a multirun it creates the parent run before any job starts (which also
creates and migrates the store once, so parallel jobs never race on a new SQLite schema) and
hands its id to the jobs through ``GGO_PARENT_RUN_ID``; each job becomes a child run. A thread
renews the parent's heartbeat until the sweep ends (also for a sweeper that drives its own
search, such as ``hydra/sweeper=keras_tuner``), so ``python -m ggo.runs clean`` never ends a live
sweep. When the
sweep ends it writes ``summary.csv``, ``summary.md`` and ``val_dice_curves.png`` to the parent,
prints the ranking, and records the failures so ``python -m ggo.train`` exits non-zero. A sweeper
that ranks its own trials (``hydra/sweeper=keras_tuner``) leaves ``search_results.yaml`` in the
sweep dir; the callback attaches it to the parent run too.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from ggo import tracking
from ggo.config import Config
from ggo.sweeps.summary import summarize
from ggo.tracking.liveness import heartbeat_seconds, process_tags
from ggo.tracking.ui import print_ui_hint

#: Failed or killed jobs of the last sweep driven by this process (read by ``ggo.train.main``), and
#: the parent run's heartbeat thread (here, not on the callback: Hydra pickles the callback for jobs).
LAST_SWEEP: dict[str, Any] = {"failed": 0, "parent_run_id": None, "objective": Config.objective, "heartbeat": None}


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
        interval = heartbeat_seconds()  # a bad GGO_HEARTBEAT_SECONDS fails the sweep before its parent run exists
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
        _stop_heartbeat()
        LAST_SWEEP["heartbeat"] = tracking.keep_alive(self.uri, self.parent_run_id, interval)  # the driver's whole life
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
            _stop_heartbeat()
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
        _stop_heartbeat()
        try:
            summarize(uri, parent, objective=LAST_SWEEP["objective"])
        except tracking.TrackingServerUnavailable as exc:
            _unrecorded_note(parent, exc)
            return
        except Exception as exc:  # noqa: BLE001 - the status below matters more than the summary
            print(f"[ggo] could not summarize the sweep: {type(exc).__name__}: {exc}", flush=True)
        try:
            tracking.set_status(uri, parent, status)
        except tracking.TrackingServerUnavailable as exc:
            _unrecorded_note(parent, exc)


def _stop_heartbeat() -> None:
    heartbeat = LAST_SWEEP.get("heartbeat")
    LAST_SWEEP["heartbeat"] = None
    if heartbeat is not None:
        heartbeat.stop()


def _unrecorded_note(parent_run_id: str, exc: Exception) -> None:
    print(
        f"[ggo] the sweep's summary was not written: {exc}\n[ggo] its parent run {parent_run_id} stays "
        f"RUNNING; what its jobs recorded is in the store",
        file=sys.stderr, flush=True,
    )  # fmt: skip

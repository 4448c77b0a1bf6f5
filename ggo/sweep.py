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
            },
        )
        LAST_SWEEP.update(parent_run_id=self.parent_run_id, uri=self.uri, ended=False)
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
        finally:
            for key in (tracking.PARENT_ENV, tracking.SWEEP_ENV, tracking.SWEEP_OVERRIDES_ENV):
                os.environ.pop(key, None)
            self.job_env = {}
        print_ui_hint(self.uri, self.parent_run_id)

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
    """An interrupted sweep's parent run ends KILLED (its finished children stay as they are)."""
    if LAST_SWEEP.get("parent_run_id") and not LAST_SWEEP.get("ended"):
        tracking.set_status(LAST_SWEEP["uri"], LAST_SWEEP["parent_run_id"], "KILLED")
        LAST_SWEEP["ended"] = True


def print_ui_hint(uri: str, run_id: str | None = None) -> None:
    """Tell the user how to look at what was recorded."""
    page = f"/#/experiments/{tracking.experiment_of(uri, run_id)}/runs/{run_id}" if run_id else ""
    where = f"then open http://127.0.0.1:5000{page}" if page else ""
    if uri.startswith(("http://", "https://")):
        print(f"[ggo] browse the runs at {uri}{page}")
    else:
        print(f"[ggo] browse the runs:  mlflow ui --backend-store-uri {uri} --host 127.0.0.1 --port 5000")
        if where:
            print(f"[ggo] {where}")


def summarize(uri: str, parent_run_id: str, *, objective: str = "val/dice") -> int:
    """Rank the children of ``parent_run_id`` by ``objective``; log the table and the curves.

    Returns the number of children that did not finish (FAILED, KILLED or still RUNNING).
    """
    import pandas as pd

    from ggo.viz import sweep_figure

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
    cv_groups = cross_validation_groups(children)
    if cv_groups:
        summarize_cv(uri, parent_run_id, cv_groups, objective=objective)
    tracking.set_status(uri, parent_run_id, "FINISHED" if failed == 0 else "FAILED")
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


# --- cross-validation -------------------------------------------------------------------------

#: Params that differ between the folds of one configuration (everything else must match).
FOLD_PARAMS = ("data.fold", "data.n_train", "data.n_val", "data.n_test", "trial_id")


def cross_validation_groups(children: list[Any]) -> list[list[Any]]:
    """FINISHED children grouped by config without ``data.fold``; groups that cover >= 2 folds.

    A ``data.fold=0,1,2,3,4`` sweep gives one group; crossing it with ``gen=unet,attention_unet``
    gives two.
    """
    groups: dict[tuple, list[Any]] = {}
    for run in children:
        if run.info.status != "FINISHED":
            continue
        key = tuple(sorted((k, v) for k, v in run.data.params.items() if k not in FOLD_PARAMS))
        groups.setdefault(key, []).append(run)
    return [
        sorted(runs, key=lambda r: int(r.data.params.get("data.fold", 0)))
        for runs in groups.values()
        if len({r.data.params.get("data.fold") for r in runs}) >= 2
    ]


def fold_statistics(runs: list[Any]) -> dict[str, float]:
    """Mean and std over folds of every ``val/*`` and ``test/*`` metric of ``runs``."""
    import numpy as np

    stats: dict[str, float] = {}
    for name in tracking.iter_metric_names(runs):
        values = [r.data.metrics[name] for r in runs if name in r.data.metrics]
        if values:
            stats[f"{name}_fold_mean"] = float(np.mean(values))
            stats[f"{name}_fold_std"] = float(np.std(values))
    return stats


def ensemble_test_metrics(
    uri: str, runs: list[Any], workdir: str
) -> tuple[dict[str, float], dict[str, Any], tuple[float, int], dict[str, float]]:
    """Score the fold ensemble on the test patients.

    The threshold and the minimum predicted-component size are chosen on the validation folds
    only (each fold's val probability maps against its own val masks), then applied to the mean
    of the folds' test probability maps. Returns (test metrics, the run config, the chosen
    (threshold, size), mean val dice per ``"<threshold>/<size>"``).
    """
    from pathlib import Path

    import numpy as np
    import yaml

    from ggo.data import prepare_from_config
    from ggo.evaluation import EvalSettings, choose_postprocess, score

    cfg_path = tracking.download_artifact(uri, runs[0].info.run_id, "config.yaml", Path(workdir) / "config")
    config = yaml.safe_load(Path(cfg_path).read_text())
    cache = prepare_from_config(config["data"], config["preprocess"], progress=False)
    test_probs, val_folds, names = [], [], None
    for run in runs:
        path = tracking.download_artifact(uri, run.info.run_id, "predictions/probabilities.npz", Path(workdir) / run.info.run_id)
        val = cache.split(int(run.data.params["data.fold"]))["val"]
        with np.load(path) as npz:
            run_names = [str(n) for n in npz["test_names"]]
            if names is not None and run_names != names:
                raise ValueError(f"run {run.info.run_id} scored different test images: the folds do not share a split")
            names = run_names
            test_probs.append(npz["test_probs"].astype(np.float32))
            if [str(n) for n in npz["val_names"]] == list(val.names):
                val_folds.append((val.masks, npz["val_probs"].astype(np.float32)))
    test = cache.split(0)["test"]
    if list(test.names) != names:
        raise ValueError("the cached test split differs from the one the folds were scored on; was the cache rebuilt?")
    settings, scores = EvalSettings.from_config(config.get("eval")), {}
    if val_folds:
        threshold, size, scores = choose_postprocess(val_folds, int(config["preprocess"]["resolution"]))
        settings = EvalSettings(threshold=threshold, min_component_px=size, tta_flip=settings.tta_flip)
    metrics = score(test.masks, np.mean(test_probs, axis=0), settings)
    return metrics, config, (settings.threshold, settings.min_component_px), scores


def summarize_cv(uri: str, parent_run_id: str, groups: list[list[Any]], *, objective: str = "val/dice") -> None:
    """Cross-validation report on the parent run.

    For each configuration: mean and std over folds of every ``val/*`` and ``test/*`` metric, and
    the test metrics of the fold ensemble (mean of the folds' probability maps), in
    ``cv_summary.csv``/``.md``. When the sweep is one configuration over its folds (``+sweeps=cv``),
    the parent also gets ``val/*`` = fold means (so it ranks and promotes like a run), ``test/*``
    = the ensemble's, and the ensemble itself as its ``model``.
    """
    import tempfile

    import pandas as pd

    rows = []
    single = len(groups) == 1
    with tempfile.TemporaryDirectory(prefix="ggo-cv-") as tmp:
        for runs in groups:
            stats = fold_statistics(runs)
            ensemble, config, (threshold, min_px), pp_scores = ensemble_test_metrics(uri, runs, tmp)
            config.setdefault("eval", {}).update({"min_component_px": min_px, "threshold": threshold})
            first = runs[0].data.tags
            rows.append(
                {
                    "config": " ".join(o for o in first.get("ggo.overrides", "").split() if not o.startswith("data.fold=")) or "defaults",
                    "folds": len(runs),
                    f"{objective} mean": stats.get(f"{objective}_fold_mean", float("nan")),
                    f"{objective} std": stats.get(f"{objective}_fold_std", float("nan")),
                    "ensemble test/dice": ensemble.get("dice", float("nan")),
                    "ensemble test/precision": ensemble.get("precision", float("nan")),
                    "ensemble test/recall": ensemble.get("recall", float("nan")),
                    "test/dice fold mean": stats.get("test/dice_fold_mean", float("nan")),
                    "threshold (chosen on val)": threshold,
                    "min component px (chosen on val)": min_px,
                    "minutes": sum(((r.info.end_time or 0) - (r.info.start_time or 0)) / 60000 for r in runs),
                }
            )
            if single:
                _log_cv_parent(uri, parent_run_id, runs, stats, ensemble, config, pp_scores, tmp)
    table = pd.DataFrame(rows).sort_values(f"{objective} mean", ascending=False, na_position="last")
    parent = tracking.MlflowTracker.resume(uri, parent_run_id)
    parent.log_text(table.to_csv(index=False), "cv_summary.csv")
    parent.log_text(to_markdown(table), "cv_summary.md")
    parent.detach()
    print("\n[ggo] cross-validation (mean +- std over folds; ensemble = mean of the fold probability maps on test)\n%s\n" % to_markdown(table), flush=True)


def _log_cv_parent(
    uri: str,
    parent_run_id: str,
    runs: list[Any],
    stats: dict[str, float],
    ensemble: dict[str, float],
    config: dict,
    pp_scores: dict[str, float],
    tmp: str,
) -> None:
    """A one-configuration CV sweep: the parent run becomes the fold ensemble, metrics and model."""
    from pathlib import Path

    from ggo.serving import log_segmenter, serving_config

    metrics = dict(stats)
    for name, value in stats.items():
        if name.startswith("val/") and name.endswith("_fold_mean"):
            metrics[name[: -len("_fold_mean")]] = value
        if name.startswith("val/") and name.endswith("_fold_std"):
            metrics[name[: -len("_fold_std")] + "_std"] = value
    metrics.update({f"test/{k}": v for k, v in ensemble.items()})
    first = runs[0].data.tags
    tags = {k: first[k] for k in ("gen", "disc", "loss", "resolution", "data") if k in first}
    tags.update(
        {
            "fold": "ensemble",
            "ggo.cv_folds": ",".join(r.data.params.get("data.fold", "?") for r in runs),
            "ggo.min_component_px": config["eval"]["min_component_px"],
            "ggo.threshold": config["eval"]["threshold"],
        }
    )
    generators = []
    for run in runs:
        local = tracking.download_model(uri, run.info.run_id, Path(tmp) / f"m-{run.info.run_id}")
        generators.extend(sorted((local / "artifacts").glob("generator*.keras")))
    parent = tracking.MlflowTracker.resume(uri, parent_run_id)
    parent.log_metrics(metrics)
    parent.set_tags(tags)
    parent.log_dict(
        {
            "chosen_threshold": tags["ggo.threshold"],
            "chosen_min_component_px": tags["ggo.min_component_px"],
            "mean_val_dice_by_threshold_and_min_component_px": pp_scores,
        },
        "postprocess_choice.json",
    )
    log_segmenter(parent, generators, serving_config(config), Path(tmp) / "ensemble")
    parent.detach()

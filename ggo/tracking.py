"""The only module that talks to MLflow.

A run's life goes through a :class:`Tracker`: :class:`MlflowTracker` for ``tracking=mlflow``,
the no-op :class:`Tracker` for ``tracking=none``. Metrics are named ``split/name``
(``train/g_loss``, ``val/dice``, ``test/recall``).

The default store is ``sqlite:///<project root>/mlruns/mlflow.db`` with artifacts under
``<project root>/mlruns/artifacts``, whatever directory Hydra runs a job in. Several processes
creating a new SQLite store at once race in its schema migration, so :func:`ensure_store` is
called once by the sweep's driver before any job starts.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from ggo.paths import default_tracking_uri, project_root

PARENT_ENV = "GGO_PARENT_RUN_ID"
SWEEP_ENV = "GGO_SWEEP_ID"
ROLE_TAG = "ggo.role"
SWEEP_TAG = "ggo.sweep_id"
ERROR_TAG = "ggo.error"


def resolve_uri(uri: str | None) -> str:
    """``None`` -> the project's SQLite store; anything else is used as given."""
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri()


def _artifact_root(uri: str) -> str | None:
    """Where a new experiment keeps artifacts: beside a local SQLite store, else the server decides."""
    if uri.startswith("sqlite:///"):
        return (Path(uri[len("sqlite:///"):]).parent / "artifacts").resolve().as_uri()
    return None


def ensure_store(uri: str | None = None) -> str:
    """Create (and migrate) the store if needed; return the resolved URI."""
    import mlflow

    uri = resolve_uri(uri)
    if uri.startswith("sqlite:///"):
        Path(uri[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    mlflow.MlflowClient(uri).search_experiments(max_results=1)
    return uri


def experiment_id(uri: str, name: str) -> str:
    """The id of experiment ``name``, created (race-safe) if missing."""
    import mlflow

    client = mlflow.MlflowClient(uri)
    for attempt in range(5):
        exp = client.get_experiment_by_name(name)
        if exp is not None:
            if exp.lifecycle_stage == "deleted":
                raise RuntimeError(
                    f"MLflow experiment {name!r} at {uri} is deleted: restore it in the UI "
                    f"(or `mlflow experiments restore`) or choose tracking.experiment=<another name>"
                )
            return exp.experiment_id
        try:
            return client.create_experiment(name, artifact_location=_artifact_root(uri))
        except Exception:  # another process created it first
            time.sleep(0.2 * (attempt + 1))
    raise RuntimeError(f"could not create or find MLflow experiment {name!r} at {uri}")


def git_state() -> dict[str, str]:
    """``ggo.git_commit`` and ``ggo.git_dirty`` of the project checkout (empty when not a checkout)."""
    root = project_root()
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root, capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return {}
    return {"ggo.git_commit": commit, "ggo.git_dirty": str(bool(dirty)).lower()}


class Tracker:
    """Records nothing: what ``tracking=none`` gets. Subclasses record for real."""

    run_id: str | None = None
    uri: str | None = None

    def log_params(self, params: Mapping[str, Any]) -> None: ...
    def set_tags(self, tags: Mapping[str, Any]) -> None: ...
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None: ...
    def log_image(self, image: np.ndarray, key: str, step: int) -> None: ...
    def log_figure(self, figure: Any, path: str) -> None: ...
    def log_dict(self, data: Mapping[str, Any], path: str) -> None: ...
    def log_text(self, text: str, path: str) -> None: ...
    def log_artifact(self, local_path: str | Path, artifact_path: str | None = None) -> None: ...
    def log_model(self, **kwargs: Any) -> None: ...
    def finish(self, status: str = "FINISHED") -> None: ...


class MlflowTracker(Tracker):
    """One MLflow run, made the active run of this process until :meth:`finish`."""

    def __init__(
        self,
        *,
        uri: str | None,
        experiment: str,
        run_name: str,
        tags: Mapping[str, Any] | None = None,
        parent_run_id: str | None = None,
    ) -> None:
        import mlflow

        self._mlflow = mlflow
        self.uri = ensure_store(uri)
        mlflow.set_tracking_uri(self.uri)
        exp_id = experiment_id(self.uri, experiment)
        all_tags = {**git_state(), **{k: str(v) for k, v in (tags or {}).items()}}
        if parent_run_id:
            all_tags["mlflow.parentRunId"] = parent_run_id
        while mlflow.active_run() is not None:  # a previous job in this process left one open
            mlflow.end_run()
        self.run = mlflow.start_run(experiment_id=exp_id, run_name=run_name, tags=all_tags)
        self.run_id = self.run.info.run_id
        self.experiment_id = exp_id

    def log_params(self, params: Mapping[str, Any]) -> None:
        items = [(k, "None" if v is None else str(v)[:6000]) for k, v in params.items()]
        for start in range(0, len(items), 100):
            self._mlflow.log_params(dict(items[start : start + 100]))

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        self._mlflow.set_tags({k: str(v)[:5000] for k, v in tags.items()})

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        clean = {k: float(v) for k, v in metrics.items() if v is not None and np.isfinite(float(v))}
        if clean:
            self._mlflow.log_metrics(clean, step=step)

    def log_image(self, image: np.ndarray, key: str, step: int) -> None:
        self._mlflow.log_image(np.ascontiguousarray(image), key=key, step=step)

    def log_figure(self, figure: Any, path: str) -> None:
        import matplotlib.pyplot as plt

        self._mlflow.log_figure(figure, path)
        plt.close(figure)

    def log_dict(self, data: Mapping[str, Any], path: str) -> None:
        self._mlflow.log_dict(dict(data), path)

    def log_text(self, text: str, path: str) -> None:
        self._mlflow.log_text(text, path)

    def log_artifact(self, local_path: str | Path, artifact_path: str | None = None) -> None:
        self._mlflow.log_artifact(str(local_path), artifact_path)

    def log_model(self, **kwargs: Any) -> None:
        """``mlflow.pyfunc.log_model`` into this run (``name="model"`` unless given)."""
        kwargs.setdefault("name", "model")
        self._mlflow.pyfunc.log_model(**kwargs)

    def finish(self, status: str = "FINISHED") -> None:
        if self._mlflow.active_run() is not None and self._mlflow.active_run().info.run_id == self.run_id:
            self._mlflow.end_run(status=status)
        else:
            self._mlflow.MlflowClient(self.uri).set_terminated(self.run_id, status=status)


def open_tracker(
    tracking: Mapping[str, Any], *, run_name: str, tags: Mapping[str, Any], parent_run_id: str | None = None
) -> Tracker:
    """The tracker that ``tracking`` (the config group as a dict) asks for."""
    if not tracking.get("enabled", True):
        return Tracker()
    return MlflowTracker(
        uri=tracking.get("uri"),
        experiment=tracking.get("experiment", "ggo"),
        run_name=run_name,
        tags=tags,
        parent_run_id=parent_run_id,
    )


def record_failure(tracker: Tracker, error: BaseException, trace: str, status: str) -> None:
    """Mark the run FAILED or KILLED with the error as a tag and the traceback as ``error.txt``."""
    try:
        tracker.set_tags({ERROR_TAG: f"{type(error).__name__}: {error}"})
        tracker.log_text(trace, "error.txt")
    finally:
        tracker.finish(status)


# --- reading runs back (sweep summaries, promotion) -------------------------------------------


def child_runs(uri: str, parent_run_id: str) -> list[Any]:
    """All runs whose parent is ``parent_run_id``, oldest first."""
    import mlflow

    client = mlflow.MlflowClient(uri)
    parent = client.get_run(parent_run_id)
    return list(
        reversed(
            client.search_runs(
                [parent.info.experiment_id],
                filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}'",
                max_results=5000,
            )
        )
    )


def metric_history(uri: str, run_id: str, key: str) -> list[float]:
    """The values of ``key`` ordered by step."""
    import mlflow

    hist = mlflow.MlflowClient(uri).get_metric_history(run_id, key)
    return [m.value for m in sorted(hist, key=lambda m: (m.step, m.timestamp))]


def download_artifact(uri: str, run_id: str, path: str, dst: str | Path | None = None) -> Path:
    """Fetch one artifact of a run to a local path."""
    import mlflow

    dst = dst or tempfile.mkdtemp(prefix="ggo-")
    return Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=path, dst_path=str(dst), tracking_uri=uri))


def iter_metric_names(runs: Iterable[Any], prefixes: tuple[str, ...] = ("val/", "test/")) -> list[str]:
    names: set[str] = set()
    for run in runs:
        names.update(k for k in run.data.metrics if k.startswith(prefixes))
    return sorted(names)

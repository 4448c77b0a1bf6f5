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
SWEEP_OVERRIDES_ENV = "GGO_SWEEP_OVERRIDES"
ROLE_TAG = "ggo.role"
SWEEP_TAG = "ggo.sweep_id"
ERROR_TAG = "ggo.error"


def client_for(uri: str) -> Any:
    """An MlflowClient whose tracking *and* registry point at ``uri``.

    MlflowClient(uri) alone takes its registry from the process-wide tracking URI, so after any
    ``mlflow.set_tracking_uri(other)`` in the same process, registry calls would go to ``other``.
    """
    import mlflow

    return mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)


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
    client_for(uri).search_experiments(max_results=1)
    return uri


def experiment_id(uri: str, name: str) -> str:
    """The id of experiment ``name``, created (race-safe) if missing."""
    import mlflow

    client = client_for(uri)
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

    @classmethod
    def resume(cls, uri: str, run_id: str) -> "MlflowTracker":
        """Log into an existing run (a sweep's parent) until :meth:`detach`."""
        import mlflow

        self = cls.__new__(cls)
        self._mlflow, self.uri, self.run_id = mlflow, uri, run_id
        mlflow.set_tracking_uri(uri)
        while mlflow.active_run() is not None:
            mlflow.end_run()
        self.run = mlflow.start_run(run_id=run_id)
        self.experiment_id = self.run.info.experiment_id
        return self

    def detach(self) -> None:
        """Stop logging into this run; its owner sets the final status (``set_terminated``)."""
        if self._mlflow.active_run() is not None and self._mlflow.active_run().info.run_id == self.run_id:
            self._mlflow.end_run()

    def finish(self, status: str = "FINISHED") -> None:
        if self._mlflow.active_run() is not None and self._mlflow.active_run().info.run_id == self.run_id:
            self._mlflow.end_run(status=status)
        else:
            client_for(self.uri).set_terminated(self.run_id, status=status)


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


def create_run(uri: str, experiment: str, *, run_name: str, tags: Mapping[str, Any]) -> str:
    """Create a run without making it active (a sweep's parent); returns its id."""
    import mlflow

    run = client_for(uri).create_run(experiment_id(uri, experiment), run_name=run_name, tags=dict(tags))
    return run.info.run_id


def set_status(uri: str, run_id: str, status: str) -> None:
    """End run ``run_id`` with ``status`` (FINISHED, FAILED, KILLED)."""
    import mlflow

    client_for(uri).set_terminated(run_id, status=status)


def experiment_of(uri: str, run_id: str) -> str:
    import mlflow

    return client_for(uri).get_run(run_id).info.experiment_id


# --- reading runs back (sweep summaries, promotion) -------------------------------------------


def child_runs(uri: str, parent_run_id: str) -> list[Any]:
    """All runs whose parent is ``parent_run_id``, oldest first."""
    import mlflow

    client = client_for(uri)
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

    hist = client_for(uri).get_metric_history(run_id, key)
    return [m.value for m in sorted(hist, key=lambda m: (m.step, m.timestamp))]


def download_artifact(uri: str, run_id: str, path: str, dst: str | Path | None = None) -> Path:
    """Fetch one artifact of a run to a local path."""
    import mlflow

    dst = dst or tempfile.mkdtemp(prefix="ggo-")
    return Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=path, dst_path=str(dst), tracking_uri=uri))


def download_model(uri: str, run_id: str, dst: str | Path) -> Path:
    """The files of run ``run_id``'s logged ``model`` (MLmodel, artifacts/generator_*.keras, ...)."""
    import mlflow

    # MLflow 3 resolves runs:/<id>/model through the process-wide tracking URI (its logged-model
    # lookup ignores tracking_uri=), so point it at this store for the call.
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        return Path(mlflow.artifacts.download_artifacts(artifact_uri=f"runs:/{run_id}/model", dst_path=str(dst), tracking_uri=uri))
    finally:
        mlflow.set_tracking_uri(previous)


def iter_metric_names(runs: Iterable[Any], prefixes: tuple[str, ...] = ("val/", "test/")) -> list[str]:
    names: set[str] = set()
    for run in runs:
        names.update(k for k in run.data.metrics if k.startswith(prefixes))
    return sorted(names)


# --- the model registry (promotion) and loading models (prediction) ---------------------------

MODEL_NAME = "model"  # what ggo.experiment logs each run's segmenter as
CHAMPION = "champion"  # the registry alias ggo.predict and serving load by default


def get_run(uri: str, run_id: str) -> Any:
    """The run ``run_id``, or a LookupError that says where it was looked for."""
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        return client_for(uri).get_run(run_id)
    except MlflowException as exc:
        raise LookupError(f"no MLflow run {run_id!r} in the store at {uri}: {exc.message}") from None


def find_experiment(uri: str, name: str) -> Any | None:
    """Experiment ``name`` (None when missing or deleted); unlike :func:`experiment_id` never creates it."""
    import mlflow

    exp = client_for(uri).get_experiment_by_name(name)
    return exp if exp is not None and exp.lifecycle_stage == "active" else None


def search_runs(uri: str, experiment_ids: list[str], filter_string: str = "") -> list[Any]:
    """Every active run of ``experiment_ids`` matching ``filter_string``, newest first (all pages)."""
    import mlflow

    client = client_for(uri)
    runs: list[Any] = []
    token = None
    while True:
        page = client.search_runs(experiment_ids, filter_string=filter_string, max_results=1000, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def runs_with_model(uri: str, experiment_ids: list[str], model_name: str = MODEL_NAME) -> dict[str, Any]:
    """``{run_id: LoggedModel}`` for runs that logged a READY model called ``model_name``.

    A model whose upload failed stays in the store with status FAILED; it is left out, so it can
    never be registered by mistake. When a run logged several, the newest counts.
    """
    import mlflow

    client = client_for(uri)
    found: dict[str, Any] = {}
    token = None
    while True:
        page = client.search_logged_models(
            experiment_ids, filter_string=f"name = '{model_name}'", max_results=1000, page_token=token
        )
        for model in page:
            status = str(getattr(model.status, "name", model.status))
            if model.source_run_id and status.upper().endswith("READY"):
                best = found.get(model.source_run_id)
                if best is None or model.creation_timestamp > best.creation_timestamp:
                    found[model.source_run_id] = model
        token = page.token
        if not token:
            return found


def model_version_by_alias(uri: str, name: str, alias: str = CHAMPION) -> Any | None:
    """The version of registered model ``name`` that ``alias`` points at (None if either is missing)."""
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        return client_for(uri).get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def model_versions_of_run(uri: str, name: str, run_id: str) -> list[Any]:
    """Versions of registered model ``name`` created from run ``run_id``, newest first."""
    import mlflow

    versions = client_for(uri).search_model_versions(f"name = '{name}' and run_id = '{run_id}'")
    return sorted(versions, key=lambda v: int(v.version), reverse=True)


def register_model(uri: str, model_uri: str, name: str) -> Any:
    """Register ``model_uri`` (``models:/<model id>`` or ``runs:/<run id>/model``) as a new version of ``name``.

    Registering a logged model by its id pins exactly that model; a ``runs:/`` URI lets MLflow
    pick the run's model by name. The registered model is created if needed.
    """
    import mlflow

    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return mlflow.register_model(model_uri, name, await_registration_for=60)


def set_model_version_tags(uri: str, name: str, version: str, tags: Mapping[str, Any]) -> None:
    """Tag one model version (values as strings)."""
    import mlflow

    client = client_for(uri)
    for key, value in tags.items():
        client.set_model_version_tag(name, str(version), key, str(value)[:5000])


def set_alias(uri: str, name: str, version: str, alias: str = CHAMPION) -> None:
    """Point ``alias`` of registered model ``name`` at ``version``."""
    import mlflow

    client_for(uri).set_registered_model_alias(name, alias, str(version))


def load_pyfunc(uri: str, model_uri: str) -> Any:
    """``mlflow.pyfunc.load_model(model_uri)`` with ``models:/`` and ``runs:/`` resolved against ``uri``.

    Raises a RuntimeError that names the model, the store and what to do when it cannot be loaded.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        return mlflow.pyfunc.load_model(model_uri)
    except (MlflowException, OSError) as exc:
        hint = (
            "promote a run first (python -m ggo.promote)"
            if model_uri.startswith("models:/")
            else "check the run id and that the run logged a model"
        )
        message = getattr(exc, "message", None) or str(exc)
        raise RuntimeError(
            f"cannot load model {model_uri} from the MLflow store at {uri}: {message.splitlines()[0] if message else exc}. "
            f"{hint.capitalize()}, or pass --model runs:/<run id>/model (or --tracking-uri for another store)."
        ) from None


def check_store_exists(uri: str) -> None:
    """Raise FileNotFoundError for a ``sqlite:///`` store whose file is missing.

    Opening one would silently create an empty store; commands that only read (promote, predict)
    call this first so a mistyped path says so instead.
    """
    if uri.startswith("sqlite:///"):
        path = Path(uri[len("sqlite:///"):])
        if not path.is_file():
            raise FileNotFoundError(
                f"no MLflow store at {path} (tracking URI {uri}): train first (python -m ggo.train), "
                f"or pass --tracking-uri / set MLFLOW_TRACKING_URI to the store you trained into"
            )

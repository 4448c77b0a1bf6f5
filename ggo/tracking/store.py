"""The store: which URI, the one client factory, experiments, and the one process-wide workaround.

Every MLflow call in ggo goes through :func:`client_for`, an ``MlflowClient`` bound to one store,
so two stores in one process never mix and MLflow's process-wide tracking URI is never set.
The only exception is :func:`fluent_scope`, for the few calls MLflow offers no client for. Both
run their calls under :func:`ggo.tracking.server.guard`: ggo's retry limits for a tracking
server, and a clear :class:`~ggo.tracking.server.TrackingServerUnavailable` when they run out.
Client calls to a SQLite store locked by another writer are run again
(:func:`ggo.tracking.sqlite.retry_locked`).
"""

from __future__ import annotations

import functools
import os
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from ggo.paths import default_tracking_uri
from ggo.tracking.server import TrackingServerUnavailable, guard
from ggo.tracking.sqlite import creating, retry_locked, sqlite_path

_URI_ENV = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
_FLUENT_LOCK = threading.RLock()
_OPEN_LOCK = threading.Lock()
_OPENED: set[str] = set()  # SQLite stores this process has opened (their schema made or checked)


def client_for(uri: str) -> Any:
    """An MlflowClient whose tracking *and* registry point at ``uri``, every call under :func:`guard`.

    MlflowClient(uri) alone takes its registry from the process-wide tracking URI, so after any
    ``mlflow.set_tracking_uri(other)`` in the same process, registry calls would go to ``other``.
    """
    import mlflow

    if uri not in _OPENED and sqlite_path(uri) is not None:
        # MLflow creates or migrates a SQLite schema when a process first opens the store (the
        # client's constructor does, for the tracking tables); another process doing the same at
        # that moment (a sweep creating it, `clean` reading it) would interleave the migrations.
        # The first opening in each process takes the store's file lock; MLflow keeps the store.
        with _OPEN_LOCK, creating(uri):
            if uri not in _OPENED:
                mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri).search_registered_models(max_results=1)
                _OPENED.add(uri)
    return _GuardedClient(mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri), uri)


class _GuardedClient:
    """Forwards to an MlflowClient, running each method call under ``guard(uri)``."""

    def __init__(self, client: Any, uri: str) -> None:
        self._client, self._uri = client, uri

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if not callable(attr):
            return attr

        @functools.wraps(attr)
        def call(*args: Any, **kwargs: Any) -> Any:
            with guard(self._uri):
                return retry_locked(self._uri, lambda: attr(*args, **kwargs), name)

        return call


def resolve_uri(uri: str | None) -> str:
    """``None`` -> the project's SQLite store; anything else is used as given."""
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri()


def _artifact_root(uri: str) -> str | None:
    """Where a new experiment keeps artifacts: beside a local SQLite store, else the server decides."""
    if uri.startswith("sqlite:///"):
        return (Path(uri[len("sqlite:///"):]).parent / "artifacts").resolve().as_uri()
    return None


def ensure_store(uri: str | None = None) -> str:
    """Create (and migrate) the store if needed; return the resolved URI. Processes opening one
    SQLite store at once take turns (:func:`client_for`)."""
    uri = resolve_uri(uri)
    client_for(uri).search_experiments(max_results=1)
    return uri


def existing_store(uri: str | None) -> str:
    """The store ``uri`` names (:func:`resolve_uri`: None is $MLFLOW_TRACKING_URI or the project
    store), for a command that only reads it: a missing ``sqlite:///`` file raises
    FileNotFoundError (:func:`check_store_exists`) instead of becoming an empty store."""
    resolved = resolve_uri(uri)
    check_store_exists(resolved)
    return resolved


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


def experiment_id(uri: str, name: str) -> str:
    """The id of experiment ``name``, created (race-safe) if missing."""
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
        except TrackingServerUnavailable:
            raise
        except Exception:  # another process created it first
            time.sleep(0.2 * (attempt + 1))
    raise RuntimeError(f"could not create or find MLflow experiment {name!r} at {uri}")


def find_experiment(uri: str, name: str) -> Any | None:
    """Experiment ``name`` (None when missing or deleted); unlike :func:`experiment_id` never creates it."""
    exp = client_for(uri).get_experiment_by_name(name)
    return exp if exp is not None and exp.lifecycle_stage == "active" else None


@contextmanager
def fluent_scope(uri: str, run_id: str | None = None) -> Iterator[Any]:
    """For the block: MLflow's process-wide tracking and registry URI are ``uri`` (and ``run_id``,
    if given, is the active run); afterwards both are exactly as they were. Yields ``mlflow``.

    The one place ggo touches MLflow's process-wide state, because MLflow 3.17 has no
    client-level call that works for four things:

    - ``mlflow.pyfunc.log_model`` creates its LoggedModel through the process-wide URI, in the
      active run's experiment, and links it to the active run (it takes no ``run_id``).
    - ``mlflow.pyfunc.load_model("runs:/..."/"models:/...")`` resolves the URI through the
      process-wide tracking and registry URIs.
    - ``download_artifacts("runs:/<id>/model", tracking_uri=...)``: its logged-model lookup ignores
      ``tracking_uri=``.
    - ``register_model("models:/<id>")``: the registry store looks the logged model up through the
      process-wide URI, whatever client called it (a TODO in MLflow's ``SqlAlchemyStore``).

    The run is pushed onto MLflow's active-run stack without ``start_run``/``end_run``, which would
    flip its status (RUNNING, then FINISHED with an end time) in the middle of a job; the owner of
    the run still sets its final status. A lock serialises scopes between threads, and the
    environment variables ``set_tracking_uri`` exports (and ``ggo.sweeps.callback`` hands to its jobs) are
    put back as they were. The block runs under :func:`guard`.
    """
    import mlflow
    from mlflow.tracking import fluent
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    with _FLUENT_LOCK, guard(uri):
        saved_env = {key: os.environ.get(key) for key in _URI_ENV}
        saved_tracking, saved_registry = tracking_utils._tracking_uri, registry_utils._registry_uri
        stack = fluent._active_run_stack.get()
        depth = len(stack)
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        try:
            if run_id is not None:
                stack.append(mlflow.ActiveRun(client_for(uri).get_run(run_id)))
            yield mlflow
        finally:
            del stack[depth:]
            mlflow.set_tracking_uri(saved_tracking)
            mlflow.set_registry_uri(saved_registry)
            for key, value in saved_env.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

"""The only package that talks to MLflow (``ggo.serving.model`` defines the logged model itself).

One module per job: :mod:`~ggo.tracking.store` (which store, the one client factory
:func:`client_for`, experiments, and :func:`fluent_scope`, the single workaround for the calls
MLflow has no client for), :mod:`~ggo.tracking.git` (the checkout's state), :mod:`~ggo.tracking.runs`
(the :class:`Tracker` a job logs through, a sweep's parent run), :mod:`~ggo.tracking.queries`
(reading runs back), :mod:`~ggo.tracking.registry` (promotion), :mod:`~ggo.tracking.models`
(downloading and loading logged models) and :mod:`~ggo.tracking.server` (retry limits for a
tracking server, and :class:`TrackingServerUnavailable` when they run out). Nothing here sets
MLflow's process-wide tracking URI for longer than one :func:`fluent_scope` block, so one process
can use several stores.

The default store is ``sqlite:///<project root>/mlruns/mlflow.db`` with artifacts under
``<project root>/mlruns/artifacts``, whatever directory Hydra runs a job in. Several processes
opening a new SQLite store at once would race in its schema migration, so the first opening in
each process takes the store's file lock (:mod:`~ggo.tracking.sqlite`), and :func:`ensure_store`
is called once by the sweep's driver before any job starts.
"""

from __future__ import annotations

from ggo.tracking.git import git_state
from ggo.tracking.models import download_model, load_pyfunc
from ggo.tracking.names import (
    CHAMPION,
    ERROR_TAG,
    MODEL_NAME,
    PARENT_ENV,
    ROLE_TAG,
    SWEEP_ENV,
    SWEEP_OVERRIDES_ENV,
    SWEEP_TAG,
)
from ggo.tracking.queries import (
    child_runs,
    download_artifact,
    experiment_ids,
    get_run,
    iter_metric_names,
    metric_history,
    runs_with_model,
    search_runs,
)
from ggo.tracking.registry import (
    model_version_by_alias,
    model_versions_of_run,
    register_model,
    set_alias,
    set_model_version_tags,
)
from ggo.tracking.runs import (
    MlflowTracker,
    Tracker,
    create_run,
    experiment_name_of,
    experiment_of,
    keep_alive,
    kept_alive,
    open_tracker,
    record_failure,
    set_run_tags,
    set_status,
)
from ggo.tracking.server import TrackingServerUnavailable
from ggo.tracking.store import (
    check_store_exists,
    client_for,
    ensure_store,
    existing_store,
    experiment_id,
    find_experiment,
    fluent_scope,
    resolve_uri,
)

__all__ = [
    "CHAMPION", "ERROR_TAG", "MODEL_NAME", "PARENT_ENV", "ROLE_TAG", "SWEEP_ENV", "SWEEP_OVERRIDES_ENV", "SWEEP_TAG",
    "MlflowTracker", "Tracker", "check_store_exists", "child_runs", "client_for", "create_run", "download_artifact",
    "download_model", "ensure_store", "existing_store", "experiment_id", "experiment_ids", "experiment_name_of", "experiment_of", "find_experiment", "fluent_scope", "get_run", "keep_alive", "kept_alive",
    "git_state", "iter_metric_names", "load_pyfunc", "metric_history", "model_version_by_alias",
    "model_versions_of_run", "open_tracker", "record_failure", "register_model", "resolve_uri", "runs_with_model",
    "search_runs", "set_alias", "set_model_version_tags", "set_run_tags", "set_status", "TrackingServerUnavailable",
]  # fmt: skip

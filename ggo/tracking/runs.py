"""Writing runs: the :class:`Tracker` a job logs through, and a sweep's parent run.

:class:`MlflowTracker` for ``tracking=mlflow``, the no-op :class:`Tracker` for ``tracking=none``.
Metrics are named ``split/name`` (``train/g_loss``, ``val/dice``, ``test/recall``). A run's heartbeat
is renewed by a thread (:func:`keep_alive`) from its start to its end. Every call goes
through a client bound to the run's store, so a tracker never becomes (or needs) MLflow's active
run and never sets the process-wide tracking URI. Every call is synchronous, even with
``MLFLOW_ENABLE_ASYNC_LOGGING`` set: a value the server did not take (after MLflow's retries, see
:mod:`ggo.tracking.server`) fails the job instead of vanishing from a background queue.
"""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np

from ggo.config import TrackingConfig, section
from ggo.tracking.git import git_state
from ggo.tracking.liveness import HEARTBEAT_TAG, Heartbeat, heartbeat_seconds, heartbeat_tag, process_tags
from ggo.tracking.names import ERROR_TAG
from ggo.tracking.server import TrackingServerUnavailable
from ggo.tracking.sqlite import retry_locked
from ggo.tracking.store import client_for, ensure_store, experiment_id, fluent_scope


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
    def log_table(self, table: Any, path: str) -> None: ...
    def heartbeat(self) -> None: ...
    def log_model(self, **kwargs: Any) -> None: ...
    def finish(self, status: str = "FINISHED") -> None: ...


class MlflowTracker(Tracker):
    """One MLflow run in the store at ``uri``, RUNNING until :meth:`finish`."""

    def __init__(
        self,
        *,
        uri: str | None,
        experiment: str,
        run_name: str,
        tags: Mapping[str, Any] | None = None,
        parent_run_id: str | None = None,
    ) -> None:
        from mlflow.tracking.context.registry import resolve_tags

        interval = heartbeat_seconds()  # a bad GGO_HEARTBEAT_SECONDS fails here, before a run exists
        self.uri = ensure_store(uri)
        self._client = client_for(self.uri)
        exp_id = experiment_id(self.uri, experiment)
        all_tags = {**git_state(), **process_tags(), **{k: str(v) for k, v in (tags or {}).items()}}
        if parent_run_id:
            all_tags["mlflow.parentRunId"] = parent_run_id
        # The tags mlflow.start_run adds (user, source name and type, run name), as before.
        all_tags = resolve_tags({**all_tags, "mlflow.runName": run_name})
        self.run = self._client.create_run(exp_id, run_name=run_name, tags=all_tags)
        self.run_id = self.run.info.run_id
        self.experiment_id = exp_id
        self._heartbeat: Heartbeat | None = keep_alive(self.uri, self.run_id, interval)

    def log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, "None" if v is None else str(v)[:6000]) for k, v in params.items()]
        for start in range(0, len(items), 100):
            self._client.log_batch(self.run_id, params=items[start : start + 100], synchronous=True)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        from mlflow.entities import RunTag

        self._client.log_batch(self.run_id, tags=[RunTag(k, str(v)[:5000]) for k, v in tags.items()], synchronous=True)

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        clean = [
            Metric(k, float(v), now, step or 0) for k, v in metrics.items() if v is not None and np.isfinite(float(v))
        ]
        if clean:
            self._client.log_batch(self.run_id, metrics=clean, synchronous=True)

    def log_image(self, image: np.ndarray, key: str, step: int) -> None:
        self._client.log_image(self.run_id, np.ascontiguousarray(image), key=key, step=step, synchronous=True)

    def log_figure(self, figure: Any, path: str) -> None:
        import matplotlib.pyplot as plt

        self._client.log_figure(self.run_id, figure, path)
        plt.close(figure)

    def log_dict(self, data: Mapping[str, Any], path: str) -> None:
        self._client.log_dict(self.run_id, dict(data), path)

    def log_text(self, text: str, path: str) -> None:
        self._client.log_text(self.run_id, text, path)

    def log_artifact(self, local_path: str | Path, artifact_path: str | None = None) -> None:
        self._client.log_artifact(self.run_id, str(local_path), artifact_path)

    def log_table(self, table: Any, path: str) -> None:
        """A DataFrame as an MLflow table (``path`` ends in .json): the UI shows it in Artifacts."""
        self._client.log_table(self.run_id, data=table, artifact_file=path)

    def heartbeat(self) -> None:
        """Renew the run's heartbeat tag (``python -m ggo.runs clean`` reads it)."""
        self.set_tags(heartbeat_tag())

    def log_model(self, **kwargs: Any) -> None:
        """``mlflow.pyfunc.log_model`` into this run (``name="model"`` unless given)."""
        kwargs.setdefault("name", "model")

        def log() -> None:
            with fluent_scope(self.uri, self.run_id) as mlflow:
                mlflow.pyfunc.log_model(**kwargs)

        retry_locked(self.uri, log, "logging the model")

    @classmethod
    def resume(cls, uri: str, run_id: str) -> "MlflowTracker":
        """Log into an existing run (a sweep's parent) until :meth:`detach`; its status is left alone."""
        self = cls.__new__(cls)
        self.uri, self.run_id, self._client, self._heartbeat = uri, run_id, client_for(uri), None
        self.run = self._client.get_run(run_id)
        self.experiment_id = self.run.info.experiment_id
        return self

    def detach(self) -> None:
        """Stop logging into this run; its owner sets the final status (``set_status``)."""

    def finish(self, status: str = "FINISHED") -> None:
        if self._heartbeat is not None:
            self._heartbeat.stop()
        self._client.set_terminated(self.run_id, status=status)


def open_tracker(
    tracking: TrackingConfig | Mapping[str, Any], *, run_name: str, tags: Mapping[str, Any], parent_run_id: str | None = None
) -> Tracker:
    """The tracker that ``tracking`` (the typed config section, or a mapping of its keys) asks for."""
    tracking = section(TrackingConfig, tracking)
    if not tracking.enabled:
        return Tracker()
    return MlflowTracker(
        uri=tracking.uri,
        experiment=tracking.experiment,
        run_name=run_name,
        tags=tags,
        parent_run_id=parent_run_id,
    )


def record_failure(tracker: Tracker, error: BaseException, trace: str, status: str) -> None:
    """Mark the run FAILED or KILLED with the error as a tag and the traceback as ``error.txt``.

    With its tracking server unavailable the run cannot be marked: it stays RUNNING, with all it
    recorded, and a note on stderr says how to end it once the server is back. The caller goes on
    with the original error.
    """
    try:
        try:
            tracker.set_tags({ERROR_TAG: f"{type(error).__name__}: {error}"})
            tracker.log_text(trace, "error.txt")
        finally:
            tracker.finish(status)
    except TrackingServerUnavailable as exc:
        print(
            f"[ggo] could not mark MLflow run {tracker.run_id} {status}: its server {exc.uri} is unavailable "
            f"({exc.reason}). The run stays RUNNING there with what it recorded; once the server is back, "
            f"`python -m ggo.runs clean --tracking-uri {exc.uri}` on this host marks it KILLED.",
            file=sys.stderr, flush=True,
        )  # fmt: skip


def keep_alive(uri: str, run_id: str, interval: float | None = None) -> Heartbeat:
    """Renew run ``run_id``'s heartbeat tag from a thread every ``interval`` seconds (default
    ``GGO_HEARTBEAT_SECONDS``) until the returned :class:`~ggo.tracking.liveness.Heartbeat` is
    stopped (or the process ends)."""
    client = client_for(uri)

    def beat() -> None:
        client.set_tag(run_id, HEARTBEAT_TAG, heartbeat_tag()[HEARTBEAT_TAG])

    return Heartbeat(beat, what=f"MLflow run {run_id}", interval=interval).start()


@contextmanager
def kept_alive(uri: str, run_id: str) -> Iterator[None]:
    """:func:`keep_alive` for the block."""
    heartbeat = keep_alive(uri, run_id)
    try:
        yield
    finally:
        heartbeat.stop()


def create_run(uri: str, experiment: str, *, run_name: str, tags: Mapping[str, Any]) -> str:
    """Create a run without making it active (a sweep's parent); returns its id."""
    run = client_for(uri).create_run(experiment_id(uri, experiment), run_name=run_name, tags=dict(tags))
    return run.info.run_id


def set_status(uri: str, run_id: str, status: str, end_time: int | None = None) -> None:
    """End run ``run_id`` with ``status`` (FINISHED, FAILED, KILLED), at ``end_time`` (ms; default now)."""
    client_for(uri).set_terminated(run_id, status=status, end_time=end_time)


def set_run_tags(uri: str, run_id: str, tags: Mapping[str, Any]) -> None:
    """Set tags on any run of the store (not necessarily one this process writes)."""
    for key, value in tags.items():
        client_for(uri).set_tag(run_id, key, str(value)[:5000])


def experiment_of(uri: str, run_id: str) -> str:
    return client_for(uri).get_run(run_id).info.experiment_id


def experiment_name_of(uri: str, run_id: str) -> str:
    """The name of the experiment that holds run ``run_id``."""
    client = client_for(uri)
    return client.get_experiment(client.get_run(run_id).info.experiment_id).name

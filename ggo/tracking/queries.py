"""Reading runs back: sweep summaries, promotion, benchmarks and scripts."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Iterable

from ggo.tracking.names import MODEL_NAME
from ggo.tracking.store import client_for


def get_run(uri: str, run_id: str) -> Any:
    """The run ``run_id``, or a LookupError that says where it was looked for."""
    from mlflow.exceptions import MlflowException

    try:
        return client_for(uri).get_run(run_id)
    except MlflowException as exc:
        raise LookupError(f"no MLflow run {run_id!r} in the store at {uri}: {exc.message}") from None


def child_runs(uri: str, parent_run_id: str) -> list[Any]:
    """All runs whose parent is ``parent_run_id``, oldest first."""
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


def search_runs(uri: str, experiment_ids: list[str], filter_string: str = "") -> list[Any]:
    """Every active run of ``experiment_ids`` matching ``filter_string``, newest first (all pages)."""
    client = client_for(uri)
    runs: list[Any] = []
    token = None
    while True:
        page = client.search_runs(experiment_ids, filter_string=filter_string, max_results=1000, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def experiment_ids(uri: str, names: Iterable[str] = ()) -> list[str]:
    """The ids of the active experiments called ``names`` (all active experiments when empty);
    a LookupError names an experiment that does not exist."""
    client = client_for(uri)
    names = list(names)
    if not names:
        return [e.experiment_id for e in client.search_experiments()]
    ids = []
    for name in names:
        exp = client.get_experiment_by_name(name)
        if exp is None or exp.lifecycle_stage != "active":
            raise LookupError(f"no experiment {name!r} in the MLflow store at {uri}")
        ids.append(exp.experiment_id)
    return ids


def metric_history(uri: str, run_id: str, key: str) -> list[float]:
    """The values of ``key`` ordered by step."""
    hist = client_for(uri).get_metric_history(run_id, key)
    return [m.value for m in sorted(hist, key=lambda m: (m.step, m.timestamp))]


def iter_metric_names(runs: Iterable[Any], prefixes: tuple[str, ...] = ("val/", "test/")) -> list[str]:
    names: set[str] = set()
    for run in runs:
        names.update(k for k in run.data.metrics if k.startswith(prefixes))
    return sorted(names)


def download_artifact(uri: str, run_id: str, path: str, dst: str | Path | None = None) -> Path:
    """Fetch one artifact of a run to a local path."""
    dst = dst or tempfile.mkdtemp(prefix="ggo-")
    Path(dst).mkdir(parents=True, exist_ok=True)
    return Path(client_for(uri).download_artifacts(run_id, path, str(dst)))


def runs_with_model(uri: str, experiment_ids: list[str], model_name: str = MODEL_NAME) -> dict[str, Any]:
    """``{run_id: LoggedModel}`` for runs that logged a READY model called ``model_name``.

    A model whose upload failed stays in the store with status FAILED; it is left out, so it can
    never be registered by mistake. When a run logged several, the newest counts.
    """
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

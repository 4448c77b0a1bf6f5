"""Links into the MLflow UI: the page that shows a run or a sweep, and the command that opens it."""

from __future__ import annotations

from ggo.tracking.runs import experiment_of

#: A sweep's report (:mod:`ggo.sweeps.report`), an artifact of its parent run.
REPORT_ARTIFACT = "report.html"
#: MLflow 3 opens a page in its GenAI view unless the link asks for the Model training view.
TRAINING_VIEW = {"workflowType": "machine_learning"}


def ui_page(uri: str, run_id: str | None = None, *, parent: bool = False, objective: str = "val/dice", tab: str = "") -> str:
    """The MLflow UI page (hash route) to open, always in the Model training view: a sweep's runs
    ranked by ``objective`` (``parent=True``), or one run's page (its ``tab``: ``artifacts``, or
    ``artifacts/<path>`` to open one artifact, ``model-metrics``...)."""
    from urllib.parse import urlencode

    if not run_id:
        return ""
    experiment = experiment_of(uri, run_id)
    if not parent:
        return f"/#/experiments/{experiment}/runs/{run_id}" + (f"/{tab}" if tab else "") + "?" + urlencode(TRAINING_VIEW)
    query = {
        **TRAINING_VIEW,
        "searchFilter": f"tags.mlflow.parentRunId = '{run_id}'",
        "orderByKey": f"metrics.`{objective}`",
        "orderByAsc": "false",
    }
    return f"/#/experiments/{experiment}/runs?" + urlencode(query)


def report_location(uri: str, run_id: str) -> str | None:
    """Where run ``run_id``'s ``report.html`` is: a local path for a local store, else its
    artifact URI; None when the run has no report."""
    from urllib.parse import urlparse

    from mlflow.utils.file_utils import local_file_uri_to_path

    from ggo.tracking.store import client_for

    client = client_for(uri)
    if REPORT_ARTIFACT not in {a.path for a in client.list_artifacts(run_id)}:
        return None
    root = client.get_run(run_id).info.artifact_uri.rstrip("/")
    if urlparse(root).scheme in ("", "file"):
        return f"{local_file_uri_to_path(root)}/{REPORT_ARTIFACT}"
    return f"{root}/{REPORT_ARTIFACT}"


def print_ui_hint(uri: str, run_id: str | None = None, *, parent: bool = False, objective: str = "val/dice") -> None:
    """Tell the user how to look at what was recorded (and, for a sweep, where its report is)."""
    page = ui_page(uri, run_id, parent=parent, objective=objective)
    base = uri.rstrip("/") if uri.startswith(("http://", "https://")) else "http://127.0.0.1:5000"
    if uri.startswith(("http://", "https://")):
        print(f"[ggo] browse the runs at {base}{page}")
    else:
        print(f"[ggo] browse the runs:  mlflow ui --backend-store-uri {uri} --host 127.0.0.1 --port 5000")
        if page:
            print(f"[ggo] then open {base}{page}")
    if parent and run_id:
        _print_report_hint(uri, run_id, base)


def _print_report_hint(uri: str, run_id: str, base: str) -> None:
    """Where the sweep's report is: its path (or artifact URI) and its page in the UI."""
    try:
        report = report_location(uri, run_id)
    except Exception:  # noqa: BLE001 - a hint; the links above are printed already
        return
    if report:
        print(f"[ggo] the sweep's report: {report}")
        print(f"[ggo]   in the UI: {base}{ui_page(uri, run_id, tab='artifacts/' + REPORT_ARTIFACT)}")

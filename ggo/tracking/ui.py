"""Links into the MLflow UI: the page that shows a run or a sweep, and the command that opens it."""

from __future__ import annotations

from ggo.tracking.runs import experiment_of


def ui_page(uri: str, run_id: str | None = None, *, parent: bool = False, objective: str = "val/dice") -> str:
    """The MLflow UI page (hash route) to open: a sweep's runs in the Model training view, ranked
    by ``objective`` (``parent=True``), or one run's page. MLflow 3 opens an experiment in its
    GenAI view unless ``workflowType=machine_learning`` is given."""
    from urllib.parse import urlencode

    if not run_id:
        return ""
    experiment = experiment_of(uri, run_id)
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

"""``ggo.tracking``: every call bound to one store, MLflow's process-wide URI left alone, mlflow kept inside."""

from __future__ import annotations

import ast
import os
from pathlib import Path

import mlflow
import numpy as np
import pytest

from ggo import tracking

ROOT = Path(__file__).resolve().parent.parent

# MLflow advises type hints on predict when it defines the test model; not what is tested here.
pytestmark = pytest.mark.filterwarnings("ignore:.*[Tt]ype hint:UserWarning")

# A models-from-code pyfunc: logging and loading it needs no Keras and no requirement inference.
MODEL_CODE = """
import mlflow.models
import mlflow.pyfunc


class Doubler(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        return [2 * x for x in model_input]


mlflow.models.set_model(Doubler())
"""


@pytest.fixture()
def model_code(tmp_path: Path) -> str:
    path = tmp_path / "doubler.py"
    path.write_text(MODEL_CODE)
    return str(path)


@pytest.fixture()
def process_uri_state():
    """MLflow's process-wide URIs and their environment variables, checked unchanged after the test."""
    before = (mlflow.get_tracking_uri(), mlflow.get_registry_uri(), os.environ.get("MLFLOW_TRACKING_URI"))
    yield before
    assert (mlflow.get_tracking_uri(), mlflow.get_registry_uri(), os.environ.get("MLFLOW_TRACKING_URI")) == before
    assert mlflow.active_run() is None


@pytest.fixture()
def foreign_process_uri(tmp_path: Path, process_uri_state):
    """MLflow's process-wide URI set to another store, as a user's code (or a test) may have done."""
    from mlflow.tracking._tracking_service import utils

    explicit, env = utils._tracking_uri, os.environ.get("MLFLOW_TRACKING_URI")
    elsewhere = store(tmp_path, "elsewhere")
    mlflow.set_tracking_uri(elsewhere)
    yield elsewhere
    mlflow.set_tracking_uri(explicit)
    if env is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = env


def store(tmp_path: Path, name: str) -> str:
    return f"sqlite:///{tmp_path / name / 'mlflow.db'}"


def only_run(uri: str, experiment: str):
    runs = tracking.search_runs(uri, [tracking.find_experiment(uri, experiment).experiment_id])
    assert len(runs) == 1, f"expected one run in {uri}, found {len(runs)}"
    return runs[0]


def test_two_trackers_in_one_process_each_write_only_to_their_own_store(
    tmp_path: Path, model_code: str, process_uri_state
) -> None:
    uri_a, uri_b = store(tmp_path, "a"), store(tmp_path, "b")
    a = tracking.MlflowTracker(uri=uri_a, experiment="exp-a", run_name="run-a", tags={"gen": "unet"})
    b = tracking.MlflowTracker(uri=uri_b, experiment="exp-b", run_name="run-b", tags={"gen": "resunet"})
    for step in range(3):  # interleaved: two trackers alive at once
        a.log_metrics({"val/dice": 0.1 * step, "val/nan": float("nan")}, step=step)
        b.log_metrics({"val/dice": 0.2 * step}, step=step)
    a.log_params({"train.lr": 2e-4, "none": None})
    b.log_params({f"p{i}": i for i in range(150)})  # more than one batch of 100
    a.set_tags({"fold": "0"})
    a.log_text("hello", "notes/a.txt")
    b.log_dict({"x": 1}, "b.json")
    a.log_image(np.zeros((8, 8, 3), np.uint8), key="val/overlay", step=1)
    a.log_model(python_model=model_code, pip_requirements=[])
    b.log_model(python_model=model_code, pip_requirements=[])

    assert tracking.get_run(uri_a, a.run_id).info.status == "RUNNING", "logging a model does not end the run"
    a.finish()
    b.finish("FAILED")

    run_a, run_b = only_run(uri_a, "exp-a"), only_run(uri_b, "exp-b")
    assert (run_a.info.run_id, run_b.info.run_id) == (a.run_id, b.run_id)
    assert (run_a.info.status, run_b.info.status) == ("FINISHED", "FAILED")
    assert run_a.info.run_name == "run-a" and run_a.data.tags["gen"] == "unet" and run_a.data.tags["fold"] == "0"
    assert "ggo.git_commit" in run_a.data.tags and "mlflow.user" in run_a.data.tags
    assert run_a.data.params == {"train.lr": "0.0002", "none": "None"}
    assert len(run_b.data.params) == 150
    assert tracking.metric_history(uri_a, a.run_id, "val/dice") == pytest.approx([0.0, 0.1, 0.2])
    assert "val/nan" not in run_a.data.metrics, "non-finite values are dropped"
    assert tracking.find_experiment(uri_a, "exp-b") is None and tracking.find_experiment(uri_b, "exp-a") is None
    assert (tmp_path / "a" / "artifacts").is_dir(), "artifacts live beside their SQLite store"
    assert tracking.download_artifact(uri_a, a.run_id, "notes/a.txt", tmp_path / "dl").read_text() == "hello"
    assert set(tracking.runs_with_model(uri_a, [run_a.info.experiment_id])) == {a.run_id}
    assert set(tracking.runs_with_model(uri_b, [run_b.info.experiment_id])) == {b.run_id}
    assert tracking.load_pyfunc(uri_b, f"runs:/{b.run_id}/model").predict([1, 2]) == [2, 4]


def test_registry_and_model_loading_use_the_given_store_whatever_the_process_uri(
    tmp_path: Path, model_code: str, foreign_process_uri: str
) -> None:
    uri_a, uri_b = store(tmp_path, "a"), store(tmp_path, "b")
    run_id = tracking.MlflowTracker(uri=uri_a, experiment="ggo", run_name="r").run_id
    tracker = tracking.MlflowTracker.resume(uri_a, run_id)
    tracker.log_model(python_model=model_code, pip_requirements=[])
    tracker.finish()
    model = tracking.runs_with_model(uri_a, [tracking.experiment_of(uri_a, run_id)])[run_id]

    first = tracking.register_model(uri_a, f"models:/{model.model_id}", "seg")
    second = tracking.register_model(uri_a, f"runs:/{run_id}/model", "seg")  # the same model, by run
    tracking.set_model_version_tags(uri_a, "seg", second.version, {"val/dice": 0.5})
    tracking.set_alias(uri_a, "seg", second.version)

    assert (str(first.version), str(second.version)) == ("1", "2")
    assert first.source == second.source == f"models:/{model.model_id}"
    assert [str(v.version) for v in tracking.model_versions_of_run(uri_a, "seg", run_id)] == ["2", "1"]
    champion = tracking.model_version_by_alias(uri_a, "seg")
    assert str(champion.version) == "2" and champion.tags == {"val/dice": "0.5"}
    assert tracking.model_version_by_alias(uri_b, "seg") is None
    assert tracking.load_pyfunc(uri_a, "models:/seg@champion").predict([3]) == [6]
    assert (tracking.download_model(uri_a, run_id, tmp_path / "model") / "MLmodel").is_file()
    with pytest.raises(RuntimeError, match=r"cannot load model models:/seg@champion from the MLflow store at .*b/mlflow\.db.*promote"):
        tracking.load_pyfunc(uri_b, "models:/seg@champion")
    with pytest.raises(mlflow.exceptions.MlflowException, match="logged_model with artifact_path other"):
        tracking.register_model(uri_a, f"runs:/{run_id}/other", "seg")
    assert mlflow.get_tracking_uri() == foreign_process_uri, "failures restore the process-wide URI too"
    assert not (tmp_path / "elsewhere").exists(), "nothing went to the process-wide store"


def test_a_resumed_parent_gets_the_logs_and_its_owner_sets_the_status(tmp_path: Path, process_uri_state) -> None:
    uri = store(tmp_path, "s")
    parent_id = tracking.create_run(uri, "ggo", run_name="sweep", tags={tracking.ROLE_TAG: "parent"})
    parent = tracking.MlflowTracker.resume(uri, parent_id)
    parent.log_text("rank,run\n", "summary.csv")
    parent.log_metrics({"best/val/dice": 0.7})
    parent.detach()
    run = tracking.get_run(uri, parent_id)
    assert run.info.status == "RUNNING" and run.data.metrics == {"best/val/dice": 0.7}
    tracking.set_status(uri, parent_id, "FINISHED", end_time=run.info.start_time + 1000)
    run = tracking.get_run(uri, parent_id)
    assert (run.info.status, run.info.end_time - run.info.start_time) == ("FINISHED", 1000)
    with pytest.raises(LookupError, match=r"no MLflow run 'nope' in the store at sqlite"):
        tracking.get_run(uri, "nope")


def test_a_failure_is_recorded_on_the_run(tmp_path: Path, process_uri_state) -> None:
    uri = store(tmp_path, "s")
    tracker = tracking.open_tracker({"uri": uri, "experiment": "ggo"}, run_name="boom", tags={})
    tracking.record_failure(tracker, ValueError("bad lr"), "Traceback ...", "FAILED")
    run = tracking.get_run(uri, tracker.run_id)
    assert run.info.status == "FAILED" and run.data.tags[tracking.ERROR_TAG] == "ValueError: bad lr"
    assert tracking.download_artifact(uri, tracker.run_id, "error.txt").read_text() == "Traceback ..."
    assert type(tracking.open_tracker({"enabled": False}, run_name="x", tags={})) is tracking.Tracker


# --- where mlflow may be used ---------------------------------------------------------------------


def python_files() -> list[Path]:
    return sorted(p for top in ("ggo", "hydra_plugins", "scripts") for p in (ROOT / top).rglob("*.py"))


def imports_mlflow(tree: ast.AST) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "mlflow" for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "mlflow":
            return True
    return False


def test_mlflow_is_imported_only_by_ggo_tracking_and_ggo_serving() -> None:
    allowed = {ROOT / "ggo" / "tracking", ROOT / "ggo" / "serving"}
    offenders = [
        str(p.relative_to(ROOT))
        for p in python_files()
        if not allowed & set(p.parents) and imports_mlflow(ast.parse(p.read_text()))
    ]
    assert offenders == [], f"import mlflow only in ggo/tracking/ (or ggo/serving/); use ggo.tracking in {offenders}"
    assert imports_mlflow(ast.parse((ROOT / "ggo" / "tracking" / "store.py").read_text())), "the check sees imports"


def test_only_fluent_scope_sets_mlflow_process_wide_uris() -> None:
    setters = {"set_tracking_uri", "set_registry_uri"}
    found = []
    for path in python_files():
        tree = ast.parse(path.read_text())
        for func in [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))] + [tree]:
            body = func.body if func is not tree else [n for n in tree.body if not isinstance(n, (ast.FunctionDef, ast.ClassDef))]
            for node in (n for stmt in body for n in ast.walk(stmt)):
                if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) in setters:
                    found.append((str(path.relative_to(ROOT)), getattr(func, "name", "<module>")))
    assert found and set(found) == {("ggo/tracking/store.py", "fluent_scope")}, found

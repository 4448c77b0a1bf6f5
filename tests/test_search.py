"""Sweep presets and the Keras Tuner sweeper (hydra_plugins/ggo_keras_tuner_sweeper).

Fast tests: every preset composes and says what it sweeps; the search space, value formatting,
the refusal of a different search in the same directory, the driver lock (free again when its
driver is killed), the config dataclass as the one source of defaults, and the MLflow hand-off.
Slow tests: a stand-in Hydra app (no training; a few seconds a run) checks failed trials and the
resume semantics exactly; real ggo searches at 64 px on synthetic data check Hyperband's budget,
checkpoint continuation, MLflow parent/children and a failing trial end to end.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import mlflow
import pytest

from ggo.config import compose
from helpers import tiny_overrides
from sweep_fixture import subprocess_env

ROOT = Path(__file__).resolve().parent.parent
PRESETS = sorted(p.stem for p in (ROOT / "sweeps").glob("*.yaml"))
KT_TARGET = "hydra_plugins.ggo_keras_tuner_sweeper.keras_tuner_sweeper.KerasTunerSweeper"


# --- presets ------------------------------------------------------------------------------------


def test_the_search_preset_exists() -> None:
    assert "search" in PRESETS and {"generators", "discriminators", "losses", "resolution", "cv"} <= set(PRESETS)


@pytest.mark.parametrize("name", PRESETS)
def test_every_preset_composes_and_states_its_axes_and_objective(name: str) -> None:
    cfg = compose([f"+sweeps={name}"], with_hydra=True)
    assert str(cfg.hydra.mode) == "RunMode.MULTIRUN"
    assert cfg.hydra.sweeper.params, f"sweeps/{name}.yaml sweeps nothing"
    lines = (ROOT / "sweeps" / f"{name}.yaml").read_text().splitlines()
    assert lines[0] == "# @package _global_"
    head = []
    for line in lines[1:]:
        if not line.startswith("#"):
            break
        head.append(line)
    text = "\n".join(head)
    assert "Axes:" in text and "Objective:" in text, f"sweeps/{name}.yaml must state its axes and objective at the top"


def test_the_search_preset_selects_keras_tuner_hyperband_with_a_valid_space() -> None:
    from hydra_plugins.ggo_keras_tuner_sweeper._space import add_param

    import keras_tuner as kt

    cfg = compose(["+sweeps=search"], with_hydra=True)
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_ == KT_TARGET
    assert sweeper.oracle == "hyperband" and sweeper.objective == cfg.objective == "val/dice" and sweeper.direction == "max"
    hp = kt.HyperParameters()
    for key, spec in sweeper.params.items():
        assert add_param(hp, key, spec) is None
    assert {h.name for h in hp.space} == {"gen", "gen.base_filters", "train.g_lr", "loss"}
    # the objective follows the task's: one override changes both
    assert compose(["+sweeps=search", "objective=val/iou"], with_hydra=True).hydra.sweeper.objective == "val/iou"


def test_keras_tuner_is_a_sweeper_option_hydra_discovers() -> None:
    from hydra.core.plugins import Plugins
    from hydra.plugins.sweeper import Sweeper

    assert "KerasTunerSweeper" in [p.__name__ for p in Plugins.instance().discover(Sweeper)]
    assert not (ROOT / "hydra_plugins" / "__init__.py").exists(), "hydra_plugins must stay a namespace package"
    cfg = compose(["hydra/sweeper=keras_tuner"], with_hydra=True)
    assert cfg.hydra.sweeper._target_ == KT_TARGET and cfg.hydra.sweeper.max_trials == 10


# --- search space and state (no training) -------------------------------------------------------


def test_params_become_keras_tuner_hyperparameters_of_the_right_kind() -> None:
    import keras_tuner as kt

    from hydra_plugins.ggo_keras_tuner_sweeper._space import SearchSpaceError, add_param, flatten_params

    hp = kt.HyperParameters()
    assert add_param(hp, "gen", {"type": "choice", "values": ["unet", "attention_unet"]}) is None
    assert add_param(hp, "gen.base_filters", {"type": "int", "min": 8, "max": 32, "step": 8}) is None
    assert add_param(hp, "train.g_lr", {"type": "float", "min": 1e-5, "max": 1e-3, "sampling": "log"}) is None
    assert add_param(hp, "gen.upsampling", ["transpose", "bilinear"]) is None
    assert add_param(hp, "train.augment.flip", {"type": "boolean"}) is None
    assert add_param(hp, "loss", "bce_l1,dice") is None
    assert add_param(hp, "train.d_lr", "tag(log,interval(1e-5,1e-3))") is None
    assert add_param(hp, "data.fold", 2) == "data.fold=2"  # a single value: fixed for every trial
    # +hydra.sweeper.params.gen.depth=[3,4] on the command line nests; a spec is not a level
    assert flatten_params({"gen": {"depth": [3, 4], "norm": {"values": ["batch"]}}, "loss": {"type": "choice", "values": ["dice"]}}) == {
        "gen.depth": [3, 4], "gen.norm": {"values": ["batch"]}, "loss": {"type": "choice", "values": ["dice"]},
    }  # fmt: skip
    kinds = {h.name: type(h).__name__ for h in hp.space}
    assert kinds == {
        "gen": "Choice", "gen.base_filters": "Int", "train.g_lr": "Float", "gen.upsampling": "Choice",
        "train.augment.flip": "Boolean", "loss": "Choice", "train.d_lr": "Float",
    }  # fmt: skip
    assert hp.space[2].sampling == "log" and hp.space[6].sampling == "log"
    with pytest.raises(SearchSpaceError, match="train.g_lr"):
        add_param(kt.HyperParameters(), "train.g_lr", {"type": "float", "min": 0.0, "max": 1.0, "sampling": "log"})
    with pytest.raises(SearchSpaceError, match="gen.depth.*choice, int, float, boolean"):
        add_param(kt.HyperParameters(), "gen.depth", {"type": "categorical", "values": [3, 4]})
    with pytest.raises(SearchSpaceError, match="unknown field"):
        add_param(kt.HyperParameters(), "gen.depth", {"type": "int", "min": 3, "max": 5, "stpe": 1})


def test_values_are_written_as_overrides_hydra_reads_back_unchanged() -> None:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from hydra_plugins.ggo_keras_tuner_sweeper._space import format_value

    parser = OverridesParser.create()
    for value in (True, False, None, 3, 0.0003, 1e-05, "unet", "/tmp/a b/checkpoint.weights.h5", "1e-3", "it's"):
        parsed = parser.parse_override(f"k={format_value(value)}").value()
        assert parsed == value and type(parsed) is type(value), (value, format_value(value))


def test_a_different_search_in_the_same_directory_is_refused(tmp_path: Path) -> None:
    import keras_tuner as kt

    from hydra_plugins.ggo_keras_tuner_sweeper._state import load_oracle
    from hydra_plugins.ggo_keras_tuner_sweeper.config import KerasTunerSweeperConf

    def load(values: list[int], fixed: list[str], max_trials: int = 3) -> Any:
        conf = KerasTunerSweeperConf(oracle="random", max_trials=max_trials, seed=1)
        project = tmp_path / "search"
        project.mkdir(exist_ok=True)
        hp = kt.HyperParameters()
        hp.Choice("gen.depth", values)
        oracle = load_oracle(conf, project, hp, fixed)
        oracle.verbose = 0
        return oracle

    first = load([3, 4], ["data=synthetic", "tracking.uri=sqlite:///a.db"])
    first.create_trial("t")  # writes the oracle state
    # more trials and another tracking store: still the same search
    again = load([3, 4], ["data=synthetic", "tracking.uri=sqlite:///b.db"], max_trials=5)
    assert again.max_trials == 5 and list(again.trials) == ["0"]
    with pytest.raises(ValueError, match="another search.*space.*project_name"):
        load([3, 5], ["data=synthetic"])
    with pytest.raises(ValueError, match="another search.*fixed_overrides"):
        load([3, 4], ["data=generalblockchain"])


def test_one_driver_per_search_directory_and_a_dead_drivers_lock_is_taken_over(tmp_path: Path) -> None:
    from hydra_plugins.ggo_keras_tuner_sweeper._lock import DriverLock

    lock = tmp_path / "driver.lock"
    with DriverLock(lock):
        assert lock.exists()
        with pytest.raises(RuntimeError, match="Another driver") as refused:
            with DriverLock(lock):
                pass
        assert str(tmp_path) in str(refused.value) and f"pid {os.getpid()}" in str(refused.value)
    assert not lock.exists()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    import socket

    lock.write_text(json.dumps({"host": socket.gethostname(), "pid": int(dead.stdout)}))
    with DriverLock(lock):
        assert json.loads(lock.read_text())["pid"] == os.getpid()


def test_a_killed_drivers_lock_is_free_for_the_next_driver(tmp_path: Path) -> None:
    from hydra_plugins.ggo_keras_tuner_sweeper._lock import DriverLock

    lock = tmp_path / "driver.lock"
    holder = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from hydra_plugins.ggo_keras_tuner_sweeper._lock import DriverLock\n"
        "with DriverLock(Path(sys.argv[1])):\n"
        "    print('holding', flush=True)\n"
        "    time.sleep(300)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", holder, str(lock)], cwd=ROOT, env=subprocess_env(), stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "holding"
        # a second driver is refused, told which process holds which directory
        with pytest.raises(RuntimeError, match=f"Another driver .*pid {proc.pid}.* in {re.escape(str(tmp_path))}"):
            with DriverLock(lock):
                pass
        proc.send_signal(signal.SIGKILL)  # no exit handler runs: the lock file stays behind
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL and lock.exists()
    with DriverLock(lock):  # the kernel dropped the dead driver's lock with its process
        assert json.loads(lock.read_text())["pid"] == os.getpid()


def test_the_config_dataclass_gives_the_sweeper_its_defaults_and_checks_its_values() -> None:
    from hydra.errors import ConfigCompositionException
    from hydra.utils import instantiate

    from hydra_plugins.ggo_keras_tuner_sweeper.config import KerasTunerSweeperConf, OracleName
    from hydra_plugins.ggo_keras_tuner_sweeper.keras_tuner_sweeper import KerasTunerSweeper

    sweeper = instantiate(compose(["hydra/sweeper=keras_tuner"], with_hydra=True).hydra.sweeper)
    assert isinstance(sweeper, KerasTunerSweeper) and sweeper.sweeper.conf == KerasTunerSweeperConf()
    chosen = instantiate(compose(["hydra/sweeper=keras_tuner", "hydra.sweeper.oracle=bayesian"], with_hydra=True).hydra.sweeper)
    assert chosen.sweeper.conf.oracle is OracleName.bayesian and chosen.sweeper.conf.max_trials == 10
    with pytest.raises(ConfigCompositionException):  # Hydra checks the enum while it composes
        compose(["hydra/sweeper=keras_tuner", "hydra.sweeper.oracle=grid"], with_hydra=True)
    bad = {
        "hydra.sweeper.oracle='grid': use one of random, bayesian, hyperband": {"oracle": "grid"},
        "hydra.sweeper.direction='up': use one of max, min": {"direction": "up"},
        "hydra.sweeper.n_parallel=0: must be >= 1": {"n_parallel": 0},
        "hydra.sweeper.max_trials=0: must be >= 1": {"max_trials": 0},
        "the random oracle needs a number of trials": {"oracle": "random", "max_trials": None},
    }
    for message, values in bad.items():
        with pytest.raises(ValueError, match=re.escape(message)):
            KerasTunerSweeper(**values)
    assert KerasTunerSweeperConf(oracle="hyperband", max_trials=None).hyperband  # Hyperband's schedule ends it


def test_the_sweeper_leaves_mlflow_and_the_parent_run_to_ggo_sweep() -> None:
    import ast

    for path in (ROOT / "hydra_plugins" / "ggo_keras_tuner_sweeper").glob("*.py"):
        text = path.read_text()
        imported = set()
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Import):
                imported |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module)
        assert not {m for m in imported if m.split(".")[0] in ("mlflow", "ggo")}, path.name
        assert "GGO_PARENT_RUN_ID" not in text and "MLFLOW_TRACKING_URI" not in text, path.name
        assert len(text.splitlines()) <= 400, path.name


def test_the_sweep_callback_attaches_the_search_results_to_its_parent_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ggo.sweeps.callback import MlflowSweepCallback

    for key in ("GGO_PARENT_RUN_ID", "GGO_SWEEP_ID", "GGO_SWEEP_OVERRIDES", "MLFLOW_TRACKING_URI"):
        monkeypatch.setenv(key, "")  # removed again when the test ends
        monkeypatch.delenv(key)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    results = "name: keras_tuner\ndirectory: /somewhere/kt/search\nbest_value: 0.5\ntrials: []\n"

    def sweep(name: str, *, stale: bool) -> Any:
        sweep_dir = tmp_path / name
        config = compose([f"tracking.uri={uri}", f"hydra.sweep.dir={sweep_dir}"], with_hydra=True)
        callback = MlflowSweepCallback()
        callback.on_multirun_start(config)
        sweep_dir.mkdir()
        (sweep_dir / "search_results.yaml").write_text(results)
        if stale:  # left by an earlier search in a fixed sweep dir
            os.utime(sweep_dir / "search_results.yaml", (1e9, 1e9))
        callback.on_multirun_end(config)
        return mlflow.MlflowClient(uri).get_run(callback.parent_run_id)

    run = sweep("fresh", stale=False)
    assert run.data.tags["ggo.sweeper"] == "keras_tuner" and run.data.tags["ggo.search_dir"] == "/somewhere/kt/search"
    text = mlflow.artifacts.load_text(f"{run.info.artifact_uri}/search_results.yaml")
    assert text == results
    old = sweep("stale", stale=True)
    assert "ggo.sweeper" not in old.data.tags
    assert "search_results.yaml" not in {a.path for a in mlflow.MlflowClient(uri).list_artifacts(old.info.run_id)}


# --- the sweeper driving a stand-in app (no training) -------------------------------------------

APP = '''
import json, math, os, signal

import hydra


@hydra.main(config_path=".", config_name="config", version_base="1.3")
def main(cfg):
    with open(cfg.calls, "a") as f:
        f.write(json.dumps({"trial": str(cfg.trial_id), "x": cfg.x, "mode": cfg.mode}) + "\\n")
    if os.environ.get("KILL_AT_TRIAL") == str(cfg.trial_id):  # a hard stop of the whole search
        os.kill(os.getpid(), signal.SIGKILL)
    if cfg.mode == "raise":
        raise RuntimeError("boom")
    if cfg.mode == "nan_value":
        return float("nan")
    return -float((cfg.x - 3) ** 2)


if __name__ == "__main__":
    main()
'''

APP_CONFIG = """
defaults:
  - opt: a
  - override hydra/sweeper: keras_tuner
  - _self_
x: 0
mode: ok
trial_id: null
calls: calls.jsonl
objective: score
hydra:
  sweep:
    dir: multirun/${now:%H-%M-%S-%f}
  sweeper:
    objective: score
    direction: max
    directory: kt
    budget_key: null
    max_consecutive_failed_trials: 0
"""


@pytest.fixture()
def app(tmp_path: Path) -> Path:
    (tmp_path / "app.py").write_text(APP)
    (tmp_path / "config.yaml").write_text(APP_CONFIG)
    (tmp_path / "opt").mkdir()
    (tmp_path / "opt" / "a.yaml").write_text("value: 1\n")
    return tmp_path


def run_app(app: Path, args: list[str], **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "app.py", "-m", *args], cwd=app, env=subprocess_env(**env), capture_output=True, text=True, timeout=300
    )


def oracle_trials(project: Path) -> dict[str, dict]:
    trials = {}
    for path in project.glob("trial_*/trial.json"):
        trial = json.loads(path.read_text())
        trials[trial["trial_id"]] = trial
    return trials


def calls(app: Path) -> list[dict]:
    path = app / "calls.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.mark.slow
def test_failed_trials_are_marked_failed_and_the_search_goes_on(app: Path) -> None:
    # 6 distinct trials: opt=missing does not compose (never launched), mode=raise raises, mode=nan_value returns NaN.
    space = "+hydra.sweeper.params={opt: [a, missing], mode: [ok, raise, nan_value]}"
    proc = run_app(app, ["hydra.sweeper.oracle=random", "hydra.sweeper.max_trials=6", "hydra.sweeper.seed=1", space])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    trials = oracle_trials(app / "kt" / "search")
    status = {(t["hyperparameters"]["values"]["opt"], t["hyperparameters"]["values"]["mode"]): t["status"] for t in trials.values()}
    assert status == {
        ("a", "ok"): "COMPLETED", ("a", "raise"): "FAILED", ("a", "nan_value"): "FAILED",
        ("missing", "ok"): "FAILED", ("missing", "raise"): "FAILED", ("missing", "nan_value"): "FAILED",
    }  # fmt: skip
    assert sorted(c["mode"] for c in calls(app)) == ["nan_value", "ok", "raise"]  # uncomposable trials never ran
    messages = {t["message"] or "" for t in trials.values() if t["status"] == "FAILED"}
    assert any("RuntimeError: boom" in m for m in messages)
    assert any("nan" in m.lower() for m in messages)
    assert any("do not compose" in m and "missing" in m for m in messages)
    results = next((app / "multirun").glob("*/search_results.yaml")).read_text()
    assert results.count("status: FAILED") == 5 and "best_value: -9.0" in results


@pytest.mark.slow
def test_an_interrupted_search_resumes_without_repeating_finished_trials(app: Path) -> None:
    args = ["hydra.sweeper.oracle=random", "hydra.sweeper.seed=7", "+hydra.sweeper.params={x: {type: int, min: 0, max: 9}}"]
    # 1. killed hard while trial 1 runs: trial 0 is done, trial 1 is left RUNNING in the saved state
    proc = run_app(app, [*args, "hydra.sweeper.max_trials=3"], KILL_AT_TRIAL="1")
    assert proc.returncode == -9, proc.stdout[-3000:] + proc.stderr[-3000:]
    first = calls(app)
    assert [c["trial"] for c in first] == ["0", "1"]
    status = {k: t["status"] for k, t in oracle_trials(app / "kt" / "search").items()}
    assert status == {"0": "COMPLETED", "1": "RUNNING"}

    # 2. the same command: trial 1 runs again from scratch (same values), then the new trial 2
    proc = run_app(app, [*args, "hydra.sweeper.max_trials=3"])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    second = calls(app)[len(first):]
    assert [c["trial"] for c in second] == ["1", "2"]
    assert second[0]["x"] == first[1]["x"]
    assert "1 to run again (interrupted)" in proc.stdout + proc.stderr

    # 3. a finished search given more trials runs only the new one
    proc = run_app(app, [*args, "hydra.sweeper.max_trials=4"])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    third = calls(app)[len(first) + len(second):]
    assert [c["trial"] for c in third] == ["3"]
    trials = oracle_trials(app / "kt" / "search")
    assert {k: t["status"] for k, t in trials.items()} == {"0": "COMPLETED", "1": "COMPLETED", "2": "COMPLETED", "3": "COMPLETED"}
    xs = [t["hyperparameters"]["values"]["x"] for t in trials.values()]
    assert len(set(xs)) == 4, "the oracle never proposes a finished trial's values again"


@pytest.mark.slow
def test_overwrite_deletes_nothing_while_another_driver_holds_the_search(app: Path) -> None:
    from hydra_plugins.ggo_keras_tuner_sweeper._lock import LOCK_FILE

    args = ["hydra.sweeper.oracle=random", "hydra.sweeper.seed=7", "hydra.sweeper.max_trials=2", "+hydra.sweeper.params={x: {type: int, min: 0, max: 9}}"]
    assert run_app(app, args).returncode == 0
    project = app / "kt" / "search"
    before = sorted(p.relative_to(project).as_posix() for p in project.rglob("*") if p.is_file())
    assert "oracle.json" in before and "trial_0/trial.json" in before
    holder = (
        "import sys, time\nfrom pathlib import Path\n"
        "from hydra_plugins.ggo_keras_tuner_sweeper._lock import DriverLock\n"
        "with DriverLock(Path(sys.argv[1])):\n    print('holding', flush=True)\n    time.sleep(300)\n"
    )  # a driver still running the search
    proc = subprocess.Popen([sys.executable, "-c", holder, str(project / LOCK_FILE)], cwd=ROOT, env=subprocess_env(), stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "holding"
        second = run_app(app, [*args, "hydra.sweeper.overwrite=true"])
        assert second.returncode != 0 and "Another driver" in second.stdout + second.stderr
        assert sorted(p.relative_to(project).as_posix() for p in project.rglob("*") if p.is_file() and p.name != LOCK_FILE) == [
            name for name in before if name != LOCK_FILE
        ], "the running search's state is untouched"
    finally:
        proc.kill()
        proc.wait()
    again = run_app(app, [*args, "hydra.sweeper.overwrite=true"])  # the lock is free: overwrite starts afresh
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert [c["trial"] for c in calls(app)] == ["0", "1", "0", "1"]
    assert not list(project.rglob("*.partial")), "every state file was written whole"


# --- real searches (ggo training at 64 px on synthetic data) ------------------------------------


def ggo_train(args: list[str], cwd: Path, cache: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "ggo.train", "-m", *args],
        cwd=cwd, env=subprocess_env(GGO_CACHE=str(cache)), capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    return proc


def search_overrides(root: Path, uri: str, *, drop: tuple[str, ...]) -> list[str]:
    return [o for o in tiny_overrides(root, uri) if not o.startswith(drop)]


def runs(uri: str) -> tuple[list, list]:
    client = mlflow.MlflowClient(uri)
    exp = client.get_experiment_by_name("ggo")
    found = client.search_runs([exp.experiment_id], max_results=100)
    return [r for r in found if r.data.tags.get("ggo.role") == "parent"], [r for r in found if "mlflow.parentRunId" in r.data.tags]


HYPERBAND = [
    "hydra/sweeper=keras_tuner",
    "hydra.sweeper.oracle=hyperband",
    "hydra.sweeper.max_epochs=2",  # with factor 2: 2 trials of 1 epoch, then the better one continues to epoch 2
    "hydra.sweeper.factor=2",
    "hydra.sweeper.seed=3",
    "hydra.sweeper.n_parallel=2",
    "hydra/launcher=joblib",
    "hydra.launcher.n_jobs=2",
    "+hydra.sweeper.params={gen.base_filters: [4, 8], train.g_lr: {type: float, min: 1e-4, max: 1e-2, sampling: log}}",
]


class Search:
    def __init__(self, root: Path, uri: str, kt_dir: Path, proc: subprocess.CompletedProcess, args: list[str]) -> None:
        self.root, self.uri, self.kt_dir, self.proc, self.args = root, uri, kt_dir, proc, args


@pytest.fixture(scope="module")
def hyperband_search(tmp_path_factory: pytest.TempPathFactory, session_cache: Path) -> Search:
    """3 Hyperband trials, 2 at a time through joblib, into a fresh SQLite store."""
    root = tmp_path_factory.mktemp("hyperband")
    uri = f"sqlite:///{root / 'mlruns' / 'mlflow.db'}"
    args = [*HYPERBAND, f"hydra.sweeper.directory={root / 'kt'}", *search_overrides(root, uri, drop=("gen.base_filters=",))]
    proc = ggo_train([*args, "hydra.sweeper.max_trials=3"], root, session_cache)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return Search(root, uri, root / "kt" / "search", proc, args)


@pytest.mark.slow
def test_hyperband_search_records_every_trial_as_a_child_of_one_parent_and_ranks_them(hyperband_search: Search) -> None:
    s = hyperband_search
    parents, children = runs(s.uri)
    assert len(parents) == 1 and len(children) == 3
    parent = parents[0]
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
    assert all(c.info.status == "FINISHED" for c in children)
    assert sorted(c.data.tags["ggo.trial_id"] for c in children) == ["0", "1", "2"]
    # Hyperband's budget is train.epochs: two 1-epoch trials, then one to epoch 2
    epochs = sorted(int(c.data.params["train.epochs"]) for c in children)
    assert epochs == [1, 1, 2]

    client = mlflow.MlflowClient(s.uri)
    summary = list(csv.DictReader(io.StringIO(mlflow.artifacts.load_text(f"{parent.info.artifact_uri}/summary.csv"))))
    assert [row["status"] for row in summary] == ["FINISHED"] * 3
    ranked = [float(row["val/dice"]) for row in summary]
    assert ranked == sorted(ranked, reverse=True) and [int(row["rank"]) for row in summary] == [1, 2, 3]
    assert parent.data.tags.get("ggo.sweeper") == "keras_tuner"
    assert "search_results.yaml" in {a.path for a in client.list_artifacts(parent.info.run_id)}
    best = max(children, key=lambda c: c.data.metrics["val/dice"])
    assert client.get_run(parent.info.run_id).data.tags["ggo.best_run_id"] == best.info.run_id

    # the oracle holds the same scores as MLflow
    by_trial = {c.data.tags["ggo.trial_id"]: c.data.metrics["val/dice"] for c in children}
    for trial in oracle_trials(s.kt_dir).values():
        assert trial["status"] == "COMPLETED"
        assert math.isclose(trial["score"], by_trial[trial["trial_id"]], rel_tol=1e-9)
    log = s.proc.stdout + s.proc.stderr
    assert "ignoring train.epochs=2" in log  # the budget wins over the command line's epochs


def html_table(page: str, css: str) -> list[list[str]]:
    """The body rows of ``<table class="css">`` in a report page, as text."""
    import html

    body = re.search(rf'<table class="{css}">.*?<tbody>(.*?)</tbody>', page, re.S)
    assert body, f"no table {css!r} in the page"
    rows = re.findall(r"<tr>(.*?)</tr>", body.group(1), re.S)
    return [[html.unescape(re.sub(r"<[^>]+>", "", c)).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", r, re.S)] for r in rows]


@pytest.mark.slow
def test_the_search_report_plots_every_trial_and_marks_the_one_hyperband_did_not_continue(hyperband_search: Search) -> None:
    s = hyperband_search
    parents, children = runs(s.uri)
    page = mlflow.artifacts.load_text(f"{parents[0].info.artifact_uri}/report.html")
    assert "<h1>Keras Tuner search report: search over gen.base_filters, train.g_lr</h1>" in page
    assert 'alt="objective by trial"' in page and "data:image/svg+xml;base64," in page
    trials = oracle_trials(s.kt_dir)
    continued = {t["hyperparameters"]["values"].get("tuner/trial_id") for t in trials.values()} - {None}
    stopped = [k for k, t in trials.items() if t["hyperparameters"]["values"]["tuner/epochs"] == 1 and k not in continued]
    assert len(stopped) == 1
    rows = {row[0]: row for row in html_table(page, "trials")}
    assert sorted(rows) == sorted(trials)
    assert {k for k, row in rows.items() if row[1] == "pruned"} == set(stopped)
    for key, trial in trials.items():
        assert float(rows[key][2]) == pytest.approx(trial["score"], abs=5e-4)
    # In the runs table the pruned trial's run says so; the ranking pairs every trial with the top.
    pruned_run = next(c for c in children if c.data.tags["ggo.trial_id"] == stopped[0])
    assert any(row[2] == "FINISHED, pruned" and row[1].startswith(f"trial {stopped[0]}:") for row in html_table(page, "runs")), pruned_run.info.run_id
    assert [row[7] for row in html_table(page, "ranking")][0] == "top" and len(html_table(page, "ranking")) == 3


@pytest.mark.slow
def test_a_continued_hyperband_trial_starts_from_its_parents_checkpoint(hyperband_search: Search) -> None:
    s = hyperband_search
    client = mlflow.MlflowClient(s.uri)
    _, children = runs(s.uri)
    trials = oracle_trials(s.kt_dir)
    continued = [t for t in trials.values() if t["hyperparameters"]["values"].get("tuner/trial_id") is not None]
    assert len(continued) == 1
    trial = continued[0]
    parent_id = trial["hyperparameters"]["values"]["tuner/trial_id"]
    # Hyperband continues the better of the two first trials
    assert trials[parent_id]["score"] == max(t["score"] for k, t in trials.items() if k != trial["trial_id"])

    child = next(c for c in children if c.data.tags["ggo.trial_id"] == trial["trial_id"])
    parent = next(c for c in children if c.data.tags["ggo.trial_id"] == parent_id)
    parent_dir = json.loads((s.kt_dir / f"trial_{parent_id}" / "hydra_job.json").read_text())["output_dir"]
    checkpoint = Path(parent_dir) / "checkpoint.weights.h5"
    assert checkpoint.is_file()
    assert child.data.tags["ggo.resumed_from"] == str(checkpoint)
    assert child.data.params["train.initial_epoch"] == "1" and child.data.params["train.epochs"] == "2"

    # it trained epoch 2 only ...
    steps = sorted(m.step for m in client.get_metric_history(child.info.run_id, "val/dice"))
    assert steps[0] == 2, steps
    assert sorted(m.step for m in client.get_metric_history(child.info.run_id, "train/g_loss")) == [2]
    # ... starting from exactly the parent's best generator: same score on val before any step
    resumed = client.get_metric_history(child.info.run_id, "val/dice_resumed")
    assert [m.step for m in resumed] == [1]
    assert resumed[0].value == pytest.approx(parent.data.metrics["val/dice"], abs=1e-6)


@pytest.mark.slow
def test_rerunning_a_search_with_more_trials_runs_only_the_new_ones(hyperband_search: Search, tmp_path: Path, session_cache: Path) -> None:
    s = hyperband_search
    kt_dir = tmp_path / "kt"
    shutil.copytree(s.kt_dir.parent, kt_dir)  # resume a copy: the other tests read the original
    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    args = [re.sub(r"^hydra\.sweeper\.directory=.*", f"hydra.sweeper.directory={kt_dir}", a) for a in s.args]
    args = [re.sub(r"^tracking\.uri=.*", f"tracking.uri={uri}", a) for a in args]
    proc = ggo_train([*args, "hydra.sweeper.max_trials=4"], tmp_path, session_cache)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "3 trials done, 0 to run again" in proc.stdout + proc.stderr
    parents, children = runs(uri)
    assert len(parents) == 1 and [c.data.tags["ggo.trial_id"] for c in children] == ["3"]
    trials = oracle_trials(kt_dir / "search")
    assert sorted(trials) == ["0", "1", "2", "3"] and all(t["status"] == "COMPLETED" for t in trials.values())
    # the parent run of the resumed invocation ranks the whole search, earlier trials included
    results = mlflow.artifacts.load_text(f"{parents[0].info.artifact_uri}/search_results.yaml")
    assert all(f"trial_id: '{i}'" in results for i in "0123")


@pytest.mark.slow
def test_a_failing_trial_is_marked_failed_in_the_oracle_and_mlflow_and_the_search_goes_on(tmp_path: Path, session_cache: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    args = [
        "hydra/sweeper=keras_tuner",
        "hydra.sweeper.oracle=random",
        "hydra.sweeper.max_trials=2",
        "hydra.sweeper.seed=2",  # draws gen.depth=12 first
        f"hydra.sweeper.directory={tmp_path / 'kt'}",
        "+hydra.sweeper.params={gen.depth: [3, 12]}",  # 12 levels do not fit 64 px
        *search_overrides(tmp_path, uri, drop=("gen.depth=",)),
    ]
    proc = ggo_train(args, tmp_path, session_cache)
    assert proc.returncode == 1, proc.stdout[-4000:] + proc.stderr[-4000:]  # like any sweep with a failed job
    assert "did not finish" in proc.stdout

    trials = oracle_trials(tmp_path / "kt" / "search")
    by_depth = {t["hyperparameters"]["values"]["gen.depth"]: t for t in trials.values()}
    assert by_depth[12]["status"] == "FAILED" and "nan" in by_depth[12]["message"].lower()
    assert by_depth[3]["status"] == "COMPLETED" and by_depth[3]["score"] > 0

    parents, children = runs(uri)
    assert len(parents) == 1 and len(children) == 2
    status = {c.data.params["gen.depth"]: c.info.status for c in children}
    assert status == {"3": "FINISHED", "12": "FAILED"}
    failed = next(c for c in children if c.info.status == "FAILED")
    assert "gen.depth" in failed.data.tags["ggo.error"] and failed.data.tags["ggo.trial_id"] == by_depth[12]["trial_id"]
    summary = mlflow.artifacts.load_text(f"{parents[0].info.artifact_uri}/summary.csv")
    assert "FAILED" in summary and "FINISHED" in summary

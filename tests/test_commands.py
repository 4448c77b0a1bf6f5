"""``python -m ggo COMMAND``: one front door that lists every command, dispatches lazily and forwards
each command its own arguments; bad input to the row tools fails before anything loads.

The commands' own behaviour is tested where their fixtures are: rescore, floor, ggo-free and table
on real CV rows in tests/test_cv.py, figure on the session sweep's champion in
tests/test_predict.py, the GPU check in tests/training/test_jax_backend.py.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import mlflow
import pytest

from helpers import tiny_overrides

ROOT = Path(__file__).resolve().parents[1]

#: The stacks a command loads only once it runs.
HEAVY = ("tensorflow", "keras", "mlflow", "jax", "torch", "cv2", "pandas")


def ggo(*args: str, cwd: Path = ROOT, timeout: int = 120) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    return subprocess.run([sys.executable, "-m", "ggo", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def loaded_after(code: str) -> set[str]:
    """The top-level packages and ggo modules a fresh interpreter holds after running ``code``."""
    probe = f"import sys, contextlib, io\n{code}\nprint(sorted(sys.modules))"
    proc = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    names = set(eval(proc.stdout.strip().splitlines()[-1]))  # noqa: S307 - our own probe's list of names
    return {n for n in names if n.startswith("ggo")} | {n.split(".")[0] for n in names}


def test_help_lists_every_command_with_one_line_each_and_loads_no_command() -> None:
    from ggo.__main__ import COMMANDS

    proc = ggo("--help")
    assert proc.returncode == 0, proc.stderr
    listed = {}
    for line in proc.stdout.splitlines():
        words = line.split(maxsplit=1)
        if line.startswith("  ") and words and words[0] in COMMANDS:
            listed[words[0]] = words[1]
    assert list(listed) == list(COMMANDS), proc.stdout
    assert {"train", "data", "promote", "predict", "compare", "join", "runs", "bench", "report",
            "rescore", "floor", "figure", "table", "ggo-free"} <= set(listed)  # fmt: skip
    assert all(len(text) > 20 for text in listed.values())
    loaded = loaded_after("from ggo.__main__ import main\nwith contextlib.redirect_stdout(io.StringIO()): main(['--help'])")
    assert not loaded & set(HEAVY), f"--help loaded {sorted(loaded & set(HEAVY))}"
    assert loaded & {c.module for c in COMMANDS.values()} == set()


def test_every_listed_command_is_a_module_with_a_main() -> None:
    from ggo.__main__ import COMMANDS, installed

    for name, command in COMMANDS.items():
        if command.optional and not installed(command):
            continue
        module = importlib.import_module(command.module)
        assert callable(getattr(module, "main", None)), f"{name}: {command.module} has no main()"


def test_an_unknown_command_exits_2_naming_the_known_ones() -> None:
    proc = ggo("rescor")
    assert proc.returncode == 2
    assert "unknown command 'rescor'" in proc.stderr and "rescore, floor, ggo-free, table" in proc.stderr
    assert ggo().returncode == 2  # no command: the list, and a status that says something is missing


def test_a_command_loads_its_own_module_and_no_other_command() -> None:
    from ggo.__main__ import COMMANDS

    code = "from ggo.__main__ import main\nwith contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()): main(['table', '--help'])"
    loaded = loaded_after(code)
    others = {c.module for name, c in COMMANDS.items() if name != "table"}
    assert "ggo.sweeps.ablation" in loaded and not loaded & others, sorted(loaded & others)
    assert "tensorflow" not in loaded and "keras" not in loaded  # the table reads the store only


@pytest.mark.parametrize(
    ("command", "prog"),
    [("rescore", "python -m ggo rescore"), ("floor", "python -m ggo floor"), ("ggo-free", "python -m ggo ggo-free"),
     ("table", "python -m ggo table"), ("figure", "python -m ggo figure"), ("gpu-check", "python -m ggo.bench.gpu"),
     ("data", "python -m ggo.data"), ("runs", "python -m ggo.runs"), ("compare", "python -m ggo.compare"),
     ("join", "python -m ggo.join"), ("promote", "python -m ggo.promote"), ("predict", "python -m ggo.predict"),
     ("bench", "python -m ggo.bench")],
)  # fmt: skip
def test_each_command_gets_its_own_arguments(command: str, prog: str, capsys: pytest.CaptureFixture[str]) -> None:
    from ggo.__main__ import main

    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: {prog}"), out[:300]
    if command in ("rescore", "floor", "ggo-free", "table", "figure"):
        assert "examples:" in out and f"{prog} " in out.split("examples:")[1]


def test_a_forwarded_command_runs_with_its_arguments(tracking_uri: str, capsys: pytest.CaptureFixture[str]) -> None:
    from ggo.__main__ import main

    assert main(["runs", "clean", "--dry-run", "--tracking-uri", tracking_uri]) == 0
    assert "0 stale run(s) (dry run: nothing changed)" in capsys.readouterr().out
    assert main(["runs", "clean", "--tracking-uri", tracking_uri + ".missing"]) == 2
    assert "no MLflow store" in capsys.readouterr().err


def test_a_command_missing_from_this_version_says_so(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """``report`` comes with another version of ggo; until then, and for any optional command whose
    module is absent, the list marks it and running it exits 2 saying so."""
    import ggo.__main__ as front

    monkeypatch.setitem(front.COMMANDS, "later", front.Command("ggo.not_in_this_version", "a command of a later ggo", optional=True))
    assert front.main(["later", "--help"]) == 2
    assert "python -m ggo later: not installed in this version" in capsys.readouterr().err
    assert front.main(["--help"]) == 0
    assert "a command of a later ggo (not installed in this version)" in capsys.readouterr().out
    report = front.COMMANDS["report"]
    if not front.installed(report):
        assert front.main(["report"]) == 2 and "not installed in this version" in capsys.readouterr().err


def test_the_ggo_console_script_is_the_front_door() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    module, _, attr = scripts["ggo"].partition(":")
    from ggo.__main__ import main

    assert getattr(importlib.import_module(module), attr) is main


@pytest.mark.parametrize(
    ("sets", "message"),
    [(["eval.gate=hard"], "KEY one of the eval section's keys: tta_flip, min_component_px, threshold, lung_gate"),
     (["lung_gate"], "write eval.KEY=VALUE"),
     (["eval.threshold=0.3"], "eval.threshold is chosen on the validation folds for every setting; --set takes eval.lung_gate, eval.tta_flip"),
     (["eval.lung_gate=strict"], "eval.lung_gate='strict': must be one of ['soft', 'hard']"),
     (["eval.tta_flip=maybe"], "eval.tta_flip is true or false")],
)  # fmt: skip
def test_rescore_refuses_a_wrong_set_before_loading_anything(sets: list[str], message: str, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    from ggo.sweeps.rescore import main

    missing = f"sqlite:///{tmp_path / 'mlflow.db'}"  # never opened: the --set is refused first
    with pytest.raises(SystemExit) as exit_:
        main(["0123456789abcdef0123456789abcdef", *[a for s in sets for a in ("--set", s)], "--tracking-uri", missing])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and message in err and "usage: python -m ggo rescore" in err, err


def test_rescore_sets_eval_keys_with_the_schemas_types() -> None:
    from ggo.config import EvalConfig
    from ggo.config.schema import LungGate
    from ggo.sweeps.rescore import label_of, with_sets

    base = EvalConfig(threshold=0.4, min_component_px=12)
    changed = with_sets(base, ["eval.lung_gate=hard", "tta_flip=true"])
    assert changed == EvalConfig(threshold=0.4, min_component_px=12, lung_gate=LungGate.hard, tta_flip=True)
    assert label_of(base, changed) == "lung_gate=hard tta_flip=true"
    assert with_sets(base, []) == base


def test_the_row_tools_say_what_is_wrong_with_a_store_or_a_run(tmp_path: Path, tracking_uri: str,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    from ggo.__main__ import main

    missing = f"sqlite:///{tmp_path / 'nowhere' / 'mlflow.db'}"
    run = "0123456789abcdef0123456789abcdef"
    for command in (["rescore", run, "--set", "eval.lung_gate=hard"], ["ggo-free", run], ["table"], ["floor", "--lungs-from", run]):
        assert main([*command, "--tracking-uri", missing]) == 2, command
        err = capsys.readouterr().err
        assert f"[ggo] {command[0]}: no MLflow store at" in err, (command, err)
    assert not (tmp_path / "nowhere").exists()  # reading commands create no store
    for command in (["rescore", run, "--set", "eval.lung_gate=hard"], ["ggo-free", run]):
        assert main([*command, "--tracking-uri", tracking_uri]) == 2
        assert f"no MLflow run '{run}'" in capsys.readouterr().err
    assert main(["table", "--tracking-uri", tracking_uri]) == 2
    err = capsys.readouterr().err
    assert "no experiment 'ablation'" in err and "scripts/ablation.sh" in err


@pytest.mark.slow
def test_the_annotated_lungs_floor_scores_the_real_test_and_out_of_fold_films() -> None:
    from helpers import real_data_root

    real_data_root()
    import re

    import numpy as np

    from ggo.config import DataConfig, PreprocessConfig
    from ggo.data import prepare_from_config
    from ggo.evaluation.metrics import evaluate

    proc = ggo("floor", "--resolution", "64", timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    printed = {m[0]: (int(m[1]), float(m[2]), float(m[3]), float(m[4])) for m in re.findall(
        r"^\s*(test|oof|all) \((\d+) films\): dice ([0-9.]+), precision ([0-9.]+), recall ([0-9.]+)", proc.stdout, re.M)}  # fmt: skip
    assert "annotated lungs as the GGO mask (64 px)" in proc.stdout and set(printed) == {"test", "oof", "all"}
    cache = prepare_from_config(DataConfig(), PreprocessConfig(resolution=64), progress=False)
    test = cache.split(0)["test"]
    vals = [cache.split(k)["val"] for k in range(cache.folds)]
    want = evaluate(test.masks, test.lungs.astype(np.float32), 0.5)
    assert printed["test"] == pytest.approx((len(test.masks), want["dice"], want["precision"], want["recall"]), abs=1e-3)
    assert printed["oof"][0] == sum(len(v.masks) for v in vals) and printed["all"][0] == printed["test"][0] + printed["oof"][0]
    assert 0.2 < printed["all"][1] < 0.8  # the lungs hold much of the GGO, and much more than it


@pytest.mark.slow
def test_train_through_the_front_door_is_python_m_ggo_train(tmp_path: Path, tracking_uri: str) -> None:
    """``python -m ggo train -m gen=unet,attention_unet`` runs the same Hydra multirun as ``python -m
    ggo.train -m ...``: the job name, output folders and the sweep's runs are the ones ggo.train makes."""
    args = ["train", "-m", "gen=unet,attention_unet", *tiny_overrides(tmp_path, tracking_uri), "train.epochs=1"]
    proc = ggo(*args, cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    client = mlflow.MlflowClient(tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name("ggo").experiment_id])
    parent = next(r for r in runs if r.data.tags.get("ggo.role") == "parent")
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert sorted(r.data.tags["gen"] for r in children) == ["attention_unet", "unet"]
    assert all(r.info.status == "FINISHED" and r.data.tags["ggo.overrides"].startswith("gen=") for r in children)
    (hydra_yaml,) = (tmp_path / "multirun").glob("*/*/0/.hydra/hydra.yaml")
    import yaml

    job = yaml.safe_load(hydra_yaml.read_text())["hydra"]["job"]
    assert job["name"] == "train" and "gen=unet" in job["override_dirname"]
    cfg = subprocess.run([sys.executable, "-m", "ggo.train", "--cfg", "job", "gen=attention_unet"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    same = ggo("train", "--cfg", "job", "gen=attention_unet", cwd=tmp_path)
    assert same.returncode == cfg.returncode == 0 and same.stdout == cfg.stdout and "name: attention_unet" in same.stdout

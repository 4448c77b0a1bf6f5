"""``train.jit_compile=auto``: both arms timed in processes of their own, the choice kept per
machine and model, and logged with the run."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest

from ggo.config import ConfigError, compose, to_dict, typed, validate
from ggo.training import xla_choice
from ggo.training.experiment import run_job
from tests.helpers import tiny_overrides


def auto_config(tmp_path: Path, *extra: str):
    return typed(to_dict(compose([*tiny_overrides(tmp_path), "train.jit_compile=auto", f"data.cache_dir={tmp_path / 'cache'}", *extra])))


def test_auto_chooses_xla_only_when_it_times_at_least_five_percent_faster() -> None:
    assert xla_choice.choose(10.0, 10.6) is True
    assert xla_choice.choose(10.0, 10.4) is False  # within noise of compiling's cost
    assert xla_choice.choose(11.4, 10.1) is False


def test_jit_compile_takes_true_false_or_auto_and_names_anything_else() -> None:
    for value in ("true", "false", "auto"):
        validate(to_dict(compose([f"train.jit_compile={value}"])))
    with pytest.raises(ConfigError, match=r"train\.jit_compile='yes': must be true, false or auto"):
        validate(to_dict(compose(["train.jit_compile=yes"])))


def test_the_choice_is_timed_once_per_machine_and_model(tmp_path: Path, monkeypatch) -> None:
    timed: list[dict] = []

    def fake_timing(config, **timing):  # the arms' processes are the slow test's; here, what is kept
        timed.append(config)
        rate = 12.0 if config["train"]["jit_compile"] else 10.0
        return {"images_per_s": rate, "images_per_cpu_s": rate}

    monkeypatch.setattr(xla_choice, "timed_in_own_process", fake_timing)
    config = auto_config(tmp_path)
    assert xla_choice.resolve_jit_compile(config, tmp_path / "cache")[0] is True
    assert [c["train"]["jit_compile"] for c in timed] == [False, True]  # each arm its own config and process
    choice, why = xla_choice.resolve_jit_compile(config, tmp_path / "cache")
    assert choice is True and len(timed) == 2 and "12.00 img per CPU s with, 10.00 without" in why
    other_model = auto_config(tmp_path, "preprocess.resolution=32")
    xla_choice.resolve_jit_compile(other_model, tmp_path / "cache")
    assert len(timed) == 4  # another resolution: another step to time
    monkeypatch.setattr(xla_choice, "machine_fingerprint", lambda backend: {"cpu": "another machine"})
    xla_choice.resolve_jit_compile(config, tmp_path / "cache")
    assert len(timed) == 6
    assert len(list((tmp_path / "cache" / "xla-choice").glob("*.json"))) == 3


def test_true_and_false_stand_and_jax_needs_no_timing(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(xla_choice, "timed_in_own_process", lambda *a, **k: pytest.fail("nothing to time"))
    for value, expected in (("true", True), ("false", False)):
        config = typed(to_dict(compose([*tiny_overrides(tmp_path), f"train.jit_compile={value}"])))
        assert xla_choice.resolve_jit_compile(config, tmp_path) == (expected, "")
    jax = auto_config(tmp_path, "train.backend=jax")
    assert xla_choice.resolve_jit_compile(jax, tmp_path)[0] is True


@pytest.mark.slow
def test_a_run_with_jit_compile_auto_times_both_arms_logs_the_choice_and_reuses_it(tmp_path: Path, tracking_uri: str, monkeypatch) -> None:
    overrides = [*tiny_overrides(tmp_path, tracking_uri), "train.epochs=1", "train.jit_compile=auto", f"data.cache_dir={tmp_path / 'cache'}"]
    run_job(to_dict(compose(overrides)), run_name="auto", workdir=tmp_path / "job")
    (kept,) = (tmp_path / "cache" / "xla-choice").glob("*.json")
    record = json.loads(kept.read_text())
    assert set(record["images_per_s"]) == {"off", "on"} and all(v > 0 for v in record["images_per_s"].values())
    judged = record[record["judged_on"]]  # per CPU second on a CPU, per wall-clock second on a GPU
    assert record["jit_compile"] == xla_choice.choose(judged["off"], judged["on"])
    mlflow.set_tracking_uri(tracking_uri)
    (run,) = mlflow.search_runs(experiment_names=["ggo"], output_format="list")
    assert run.data.params["train.jit_compile"] == str(record["jit_compile"])
    assert "each in its own process" in run.data.tags["ggo.jit_compile_auto"]

    monkeypatch.setattr(xla_choice, "timed_in_own_process", lambda *a, **k: pytest.fail("the kept choice is reused"))
    run_job(to_dict(compose(overrides)), run_name="again", workdir=tmp_path / "job2")

"""Promotion to the model registry, on the session's real sweep (store copies where runs change)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pytest

from ggo.ship.promote import PromotionError, promote, report
from sweep_fixture import TinySweep, copy_store, subprocess_env, tiny_sweep  # noqa: F401 - fixture



def run_promote(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ggo.promote", *args], env=subprocess_env(), capture_output=True, text=True, timeout=120
    )


def champion_version(uri: str, name: str):
    return mlflow.MlflowClient(uri, registry_uri=uri).get_model_version_by_alias(name, "champion")


@pytest.mark.slow
def test_promote_cli_registers_the_best_finished_run_and_tags_the_version(tiny_sweep: TinySweep, tmp_path: Path) -> None:
    uri = copy_store(tiny_sweep, tmp_path)
    best = tiny_sweep.best_child()
    proc = run_promote("--tracking-uri", uri, "--sweep", tiny_sweep.parent_run_id, "--name", "cli-test")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert best.info.run_id in proc.stdout and "champion" in proc.stdout and "version 1" in proc.stdout

    version = champion_version(uri, "cli-test")
    assert version.run_id == best.info.run_id
    tags = version.tags
    for key, value in best.data.metrics.items():
        if key.startswith(("val/", "test/")):
            assert float(tags[key]) == pytest.approx(value), key
    assert {"val/dice", "test/dice", "test/recall"} <= set(tags)
    assert tags["ggo.run_id"] == best.info.run_id
    assert tags["ggo.run_name"] == best.info.run_name
    assert tags["ggo.git_commit"] == best.data.tags["ggo.git_commit"]


@pytest.mark.slow
def test_promote_picks_the_sweep_by_its_sweep_id_too(tiny_sweep: TinySweep, tmp_path: Path) -> None:
    uri = copy_store(tiny_sweep, tmp_path)
    sweep_id = tiny_sweep.best_child().data.tags["ggo.sweep_id"]
    result = promote(uri, parent_run_id=sweep_id, name="by-sweep-id")
    assert result.promoted and result.run_id == tiny_sweep.best_child().info.run_id
    assert result.skipped == {"no model": 1}, "the parent run (no model) is left out, and said so"


@pytest.mark.slow
def test_promote_again_keeps_the_champion_and_registers_nothing(tiny_sweep: TinySweep, tmp_path: Path) -> None:
    uri = copy_store(tiny_sweep, tmp_path)
    first = promote(uri, name="idempotent")
    second = promote(uri, name="idempotent")
    assert (first.action, second.action) == ("promoted", "unchanged")
    assert second.version == first.version
    assert len(mlflow.MlflowClient(uri, registry_uri=uri).search_model_versions("name = 'idempotent'")) == 1


@pytest.mark.slow
def test_promote_replaces_a_worse_champion(tiny_sweep: TinySweep, tmp_path: Path) -> None:
    uri = copy_store(tiny_sweep, tmp_path)
    worst, best = tiny_sweep.worst_child(), tiny_sweep.best_child()
    assert best.data.metrics["val/dice"] > worst.data.metrics["val/dice"], "the two jobs must score differently"
    # Lower is better under --mode min: the worse val/dice becomes champion first.
    low = promote(uri, name="upgrade", mode="min")
    assert low.run_id == worst.info.run_id
    high = promote(uri, name="upgrade")
    assert high.promoted and high.run_id == best.info.run_id
    assert high.previous_version == low.version
    assert high.previous_value == pytest.approx(worst.data.metrics["val/dice"])
    version = champion_version(uri, "upgrade")
    assert version.run_id == best.info.run_id and version.tags["ggo.previous_champion"] == low.version
    # ... and it says whether the swap is more than noise: the paired difference on the test films
    assert high.paired is not None and high.paired.split == "test"
    assert high.paired.delta_dice == pytest.approx(high.paired.dice_b - high.paired.dice_a)
    assert version.tags["ggo.vs_previous.delta_dice"] == str(high.paired.delta_dice)
    assert "95% CI" in version.tags["ggo.vs_previous_champion"]
    assert "against the champion" in report(high) and "95% CI" in report(high)


def _champion_outside_the_candidates(sweep: TinySweep, tmp_path: Path, name: str) -> str:
    """A store whose champion (the best run) has since been deleted from the experiment."""
    uri = copy_store(sweep, tmp_path)
    assert promote(uri, name=name).run_id == sweep.best_child().info.run_id
    mlflow.MlflowClient(uri, registry_uri=uri).delete_run(sweep.best_child().info.run_id)
    return uri


@pytest.mark.slow
def test_promote_refuses_to_replace_a_better_champion(tiny_sweep: TinySweep, tmp_path: Path) -> None:
    uri = _champion_outside_the_candidates(tiny_sweep, tmp_path, "guarded")
    before = champion_version(uri, "guarded")

    result = promote(uri, name="guarded")
    assert result.action == "refused" and result.run_id == tiny_sweep.worst_child().info.run_id
    assert champion_version(uri, "guarded").version == before.version

    proc = run_promote("--tracking-uri", uri, "--name", "guarded")
    assert proc.returncode != 0
    assert "--force" in proc.stdout + proc.stderr and "refused" in proc.stdout
    assert champion_version(uri, "guarded").version == before.version
    assert len(mlflow.MlflowClient(uri, registry_uri=uri).search_model_versions("name = 'guarded'")) == 1, "nothing registered"


@pytest.mark.slow
def test_force_replaces_a_better_champion(tiny_sweep: TinySweep, tmp_path: Path) -> None:
    uri = _champion_outside_the_candidates(tiny_sweep, tmp_path, "forced")
    before = champion_version(uri, "forced")
    result = promote(uri, name="forced", force=True)
    assert result.promoted and result.run_id == tiny_sweep.worst_child().info.run_id
    after = champion_version(uri, "forced")
    assert after.version != before.version and after.run_id == tiny_sweep.worst_child().info.run_id
    assert after.tags["ggo.forced"] == "true" and after.tags["ggo.previous_champion"] == str(before.version)


@pytest.mark.slow
def test_failed_runs_and_runs_without_a_model_are_never_promoted(tiny_sweep: TinySweep, tmp_path: Path) -> None:
    uri = copy_store(tiny_sweep, tmp_path)
    client = mlflow.MlflowClient(uri, registry_uri=uri)
    best, worst = tiny_sweep.best_child(), tiny_sweep.worst_child()
    client.set_terminated(best.info.run_id, "FAILED")  # it logged a model, then failed

    result = promote(uri, name="no-failed")
    assert result.run_id == worst.info.run_id
    assert result.skipped == {"FAILED": 1, "no model": 1}

    client.set_terminated(worst.info.run_id, "KILLED")
    with pytest.raises(PromotionError, match=r"1 FAILED, 1 KILLED, 1 no model"):
        promote(uri, name="none-left")
    assert not client.search_registered_models("name = 'none-left'")


@pytest.mark.slow
def test_a_sweep_parent_that_logged_an_ensemble_model_can_be_promoted(tiny_sweep: TinySweep, tmp_path: Path) -> None:
    """What a cross-validation parent will do: log the fold ensemble as its own ``model``."""
    from ggo.serving.model import log_segmenter

    uri = copy_store(tiny_sweep, tmp_path / "store")
    mlflow.set_tracking_uri(uri)
    generators = []
    for i, run_id in enumerate(tiny_sweep.child_ids):
        model_id = mlflow.MlflowClient(uri, registry_uri=uri).search_logged_models(
            [tiny_sweep.experiment_id], filter_string=f"source_run_id = '{run_id}'"
        )[0].model_id
        local = Path(mlflow.artifacts.download_artifacts(f"models:/{model_id}", dst_path=str(tmp_path / f"m{i}")))
        generators.append(shutil.copy(next(local.rglob("*.keras")), tmp_path / f"fold{i}.keras"))
        preprocess_json = next(local.rglob("preprocess.json"))

    class ParentRun:  # what log_segmenter needs from a tracker: log_model into the active run
        @staticmethod
        def log_model(**kwargs):
            mlflow.pyfunc.log_model(name="model", **kwargs)

    client = mlflow.MlflowClient(uri)
    children = [client.get_run(run_id).data.metrics["val/dice"] for run_id in tiny_sweep.child_ids]
    with mlflow.start_run(run_id=tiny_sweep.parent_run_id):
        log_segmenter(ParentRun(), generators, json.loads(preprocess_json.read_text()), tmp_path / "work")
        # The fold mean a CV parent reports: below its best fold, and yet the ensemble is what ships.
        mlflow.log_metric("val/dice", max(children) - 1e-3)
        mlflow.set_tag("fold", "ensemble")

    result = promote(uri, name="ensemble")  # the whole experiment: the folds compete only as the ensemble
    assert result.promoted and result.run_id == tiny_sweep.parent_run_id
    assert result.skipped.get("folds of a promoted-as-a-whole ensemble") == 2
    model = mlflow.pyfunc.load_model(result.model_uri).unwrap_python_model()
    assert len(model.generators) == 2, "the champion is the two-generator ensemble"
    image = np.random.default_rng(0).integers(0, 255, size=(90, 120), dtype=np.uint8)
    assert model.probabilities([image])[0].shape == (90, 120)


def test_promote_without_a_store_says_what_to_do_and_creates_nothing(tmp_path: Path) -> None:
    store = tmp_path / "nowhere" / "mlflow.db"
    proc = run_promote("--tracking-uri", f"sqlite:///{store}")
    assert proc.returncode == 1
    assert str(store) in proc.stderr and "python -m ggo.train" in proc.stderr
    assert not store.exists() and not store.parent.exists()


def test_promote_help_explains_the_options() -> None:
    proc = run_promote("--help")
    assert proc.returncode == 0
    for option in ("--metric", "--mode", "--experiment", "--sweep", "--parent", "--name", "--tracking-uri", "--force"):
        assert option in proc.stdout, option
    assert "champion" in proc.stdout and "val/dice" in proc.stdout

"""The main job end to end: real Hydra multiruns on synthetic data, read back from a real MLflow store."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pytest

from helpers import tiny_overrides

pytestmark = pytest.mark.slow


def run_train(args: list[str], cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "HYDRA_FULL_ERROR": "1"}
    return subprocess.run(
        [sys.executable, "-m", "ggo.train", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def runs_by_role(uri: str) -> tuple[list, list]:
    client = mlflow.MlflowClient(uri)
    exp = client.get_experiment_by_name("ggo")
    runs = client.search_runs([exp.experiment_id], max_results=100)
    parents = [r for r in runs if r.data.tags.get("ggo.role") == "parent"]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    return parents, children


def test_two_job_sweep_records_parent_children_curves_images_and_a_usable_model(tmp_path: Path, tracking_uri: str) -> None:
    proc = run_train(["-m", "gen=unet,attention_unet", *tiny_overrides(tmp_path, tracking_uri)], cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "mlflow ui --backend-store-uri" in proc.stdout

    client = mlflow.MlflowClient(tracking_uri)
    parents, children = runs_by_role(tracking_uri)
    assert len(parents) == 1 and len(children) == 2
    parent = parents[0]
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
    assert {c.data.tags["gen"] for c in children} == {"unet", "attention_unet"}
    assert all(c.info.status == "FINISHED" for c in children)

    for child in children:
        rid = child.info.run_id
        tags, params = child.data.tags, child.data.params
        for key in ("gen", "disc", "loss", "resolution", "fold", "ggo.overrides", "ggo.sweep_id"):
            assert key in tags, key
        assert tags["disc"] == "patchgan70"
        assert params["gen.depth"] == "3" and params["train.epochs"] == "2"
        for key in ("train/g_loss", "train/d_loss", "train/l1", "train/dice", "val/dice"):
            assert len(client.get_metric_history(rid, key)) >= 2, key
        for key in ("val/dice", "val/precision", "val/recall", "test/dice", "test/iou", "test/specificity"):
            assert key in child.data.metrics, key
        arts = {a.path for a in client.list_artifacts(rid)}
        assert {"config.yaml", "dsc_curve.png", "history.json", "predictions"} <= arts, arts
        models = client.search_logged_models([child.info.experiment_id], filter_string=f"source_run_id = '{rid}'")
        assert [m.name for m in models] == ["model"]
        images = [a.path for a in client.list_artifacts(rid, "images")]
        steps = {int(m.group(1)) for p in images if (m := re.match(r"images/val_overlays\+step\+(\d+)\+.*\.png$", p))}
        assert steps >= {1, 2}, images

    parent_arts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"summary.csv", "summary.md", "val_dice_curves.png"} <= parent_arts
    summary = mlflow.artifacts.load_text(f"{parent.info.artifact_uri}/summary.csv")
    assert summary.count("FINISHED") == 2 and "val/dice" in summary

    mlflow.set_tracking_uri(tracking_uri)
    model = mlflow.pyfunc.load_model(f"runs:/{children[0].info.run_id}/model")
    rgb = np.random.default_rng(0).integers(0, 255, size=(200, 300, 3), dtype=np.uint8)
    masks = model.predict([rgb])
    assert masks[0].shape == (200, 300)
    assert set(np.unique(masks[0])) <= {0, 1}


def test_failing_job_is_marked_failed_and_the_sweep_goes_on(tmp_path: Path, tracking_uri: str) -> None:
    base = [o for o in tiny_overrides(tmp_path, tracking_uri) if not o.startswith("gen.depth=")]
    proc = run_train(["-m", "gen.depth=3,12", *base], cwd=tmp_path)
    assert proc.returncode != 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "did not finish" in proc.stdout

    parents, children = runs_by_role(tracking_uri)
    status = {c.data.params["gen.depth"]: c.info.status for c in children}
    assert status == {"3": "FINISHED", "12": "FAILED"}
    failed = next(c for c in children if c.info.status == "FAILED")
    assert "gen.depth" in failed.data.tags["ggo.error"]
    arts = {a.path for a in mlflow.MlflowClient(tracking_uri).list_artifacts(failed.info.run_id)}
    assert "error.txt" in arts
    summary = mlflow.artifacts.load_text(
        f"{parents[0].info.artifact_uri}/summary.csv"
    )
    assert "FAILED" in summary and "FINISHED" in summary


def test_nan_loss_fails_the_job_with_a_clear_error(tmp_path: Path, tracking_uri: str) -> None:
    # 1e39 overflows float32: the very first loss is Inf. (That the sweep goes on after a failed
    # job is test_failing_job_is_marked_failed_and_the_sweep_goes_on's; one job is enough here.)
    proc = run_train(["-m", "loss.l1=1e39", *tiny_overrides(tmp_path, tracking_uri)], cwd=tmp_path)
    assert proc.returncode != 0
    _, (child,) = runs_by_role(tracking_uri)
    assert child.info.status == "FAILED"
    assert "NonFiniteLossError" in child.data.tags["ggo.error"] and "lower the learning rate" in child.data.tags["ggo.error"]


def test_parallel_joblib_jobs_lose_no_run_or_metric_on_a_fresh_sqlite_store(tmp_path: Path) -> None:
    tracking_uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"  # not there yet: both jobs may create it
    args = ["-m", "gen=unet,attention_unet", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]
    proc = run_train([*args, *tiny_overrides(tmp_path, tracking_uri)], cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    client = mlflow.MlflowClient(tracking_uri)
    parents, children = runs_by_role(tracking_uri)
    assert len(parents) == 1 and len(children) == 2
    for child in children:
        assert child.info.status == "FINISHED"
        assert [m.step for m in sorted(client.get_metric_history(child.info.run_id, "val/dice"), key=lambda m: m.step)] == [1, 2, 3]


def signal_at_epoch_2(args: list[str], cwd: Path, sig: int) -> tuple[subprocess.Popen, str]:
    """Start ``python -m ggo.train *args``, send ``sig`` once epoch 2 is printed; the ended process
    and what it printed after the signal."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "ggo.train", *args], cwd=cwd, env={**os.environ}, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
        # Python turns SIGINT into KeyboardInterrupt only when it starts with SIGINT at its default;
        # a pytest-xdist worker ignores SIGINT, and its children would inherit that.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        deadline = time.time() + 240
        for line in proc.stdout:
            if line.startswith("epoch   2/"):
                break
            assert time.time() < deadline, "training did not start"
        proc.send_signal(sig)
        return proc, proc.communicate(timeout=180)[0]
    finally:
        if proc.poll() is None:
            proc.kill()


def test_interrupted_run_is_marked_killed(tmp_path: Path, tracking_uri: str) -> None:
    proc, _ = signal_at_epoch_2([*tiny_overrides(tmp_path, tracking_uri), "train.epochs=500"], tmp_path, signal.SIGINT)
    assert proc.returncode != 0
    client = mlflow.MlflowClient(tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name("ggo").experiment_id])
    assert len(runs) == 1
    assert runs[0].info.status == "KILLED"
    assert len(client.get_metric_history(runs[0].info.run_id, "val/dice")) >= 2, "what was recorded before the interrupt is kept"


def _head_run(tmp_path: Path, tracking_uri: str, heads: str) -> tuple[mlflow.MlflowClient, Any]:
    """A finished 6-epoch tiny run with ``heads`` (an override) whose shipped model returns one
    0/1 mask per film; its client and run."""
    overrides = [*tiny_overrides(tmp_path, tracking_uri), heads, "train.epochs=6", "train.g_lr=3e-3"]
    proc = run_train(overrides, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    client = mlflow.MlflowClient(tracking_uri)
    (run,) = client.search_runs([client.get_experiment_by_name("ggo").experiment_id])
    assert run.info.status == "FINISHED" and {"val/dice", "test/dice"} <= set(run.data.metrics)
    mlflow.set_tracking_uri(tracking_uri)
    model = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/model")
    (mask,) = model.predict([(np.random.default_rng(0).random((80, 100)) * 255).astype(np.uint8)])
    assert mask.shape == (80, 100) and set(np.unique(mask)) <= {0, 1}  # one GGO mask, heads or not
    return client, run


def _falls(client: mlflow.MlflowClient, run: Any, term: str, factor: float = 0.8) -> bool:
    values = [m.value for m in sorted(client.get_metric_history(run.info.run_id, term), key=lambda m: m.step)]
    return len(values) == 6 and values[-1] < factor * values[0]


def test_lung_head_run_logs_the_lung_loss_and_ships_a_one_channel_gated_model(tmp_path: Path, tracking_uri: str) -> None:
    client, run = _head_run(tmp_path, tracking_uri, "gen.lung_head=true")
    assert run.data.params["gen.lung_head"] == "True" and run.data.tags["gen"] == "unet+lungs"
    assert _falls(client, run, "train/lung")  # the lung head learns from the synthetic lungs


def test_aux_heads_run_logs_each_head_loss_and_the_films_that_train_it(tmp_path: Path, tracking_uri: str) -> None:
    client, run = _head_run(tmp_path, tracking_uri, "gen.aux_heads=[heart,lungs]")
    assert run.data.tags["gen"] == "unet+heart+lungs"
    n_train = int(run.data.params["data.n_train"])
    assert run.data.params["data.n_train_heart"] == str(n_train)  # the cartoon heart is on every film
    assert int(run.data.params["data.n_train_lungs"]) in (n_train, n_train - 1)  # one film lacks a lung side
    # The cartoon heart is not drawn on the film (only placed between the lungs): it learns more
    # slowly than the lungs (measured 0.554 -> 0.474 in 6 epochs; lungs 0.698 -> 0.514).
    assert _falls(client, run, "train/heart", 0.92) and _falls(client, run, "train/lung")


def test_lung_head_without_a_lung_loss_is_refused_before_training(tmp_path: Path) -> None:
    proc = run_train(["gen.lung_head=true", "loss.lung=0", *tiny_overrides(tmp_path)], cwd=tmp_path)
    assert proc.returncode != 0
    assert "loss.lung" in proc.stdout + proc.stderr and "gen.lung_head" in proc.stdout + proc.stderr


def test_sigterm_ends_a_sweep_like_ctrl_c_with_its_summary_and_status_143(tmp_path: Path, tracking_uri: str) -> None:
    """What Slurm, Kubernetes and docker stop send: the job KILLED with the reason, the parent KILLED
    with its summary, exit status 128 + 15."""
    args = ["-m", "gen=unet,attention_unet", *tiny_overrides(tmp_path, tracking_uri), "train.epochs=500"]
    proc, rest = signal_at_epoch_2(args, tmp_path, signal.SIGTERM)
    assert proc.returncode == 128 + signal.SIGTERM, rest[-2000:]
    client = mlflow.MlflowClient(tracking_uri)
    parents, children = runs_by_role(tracking_uri)
    assert len(parents) == 1 and len(children) == 1
    assert children[0].info.status == "KILLED" and "SIGTERM" in children[0].data.tags["ggo.error"]
    assert len(client.get_metric_history(children[0].info.run_id, "val/dice")) >= 2, "what was recorded is kept"
    parent = client.get_run(parents[0].info.run_id)
    assert parent.info.status == "KILLED"
    assert "summary.csv" in {a.path for a in client.list_artifacts(parent.info.run_id)}, rest[-3000:]


@pytest.fixture()
def float32_afterwards():
    yield
    import keras

    keras.mixed_precision.set_global_policy("float32")


def test_sparse_validation_same_pass_and_auto_precision_run_logs_what_ran(tmp_path: Path, tracking_uri: str, float32_afterwards) -> None:
    from ggo.config import compose, to_dict
    from ggo.training.experiment import run_job
    from ggo.training.precision import resolve_precision

    overrides = [
        *tiny_overrides(tmp_path, tracking_uri), "train.epochs=5", "train.val_every=2", "train.patience=4",
        "train.precision=auto", "train.adversarial_update=same_pass",
    ]  # fmt: skip
    value = run_job(to_dict(compose(overrides)), run_name="sparse", workdir=tmp_path / "job")
    client = mlflow.MlflowClient(tracking_uri)
    (run,) = client.search_runs([client.get_experiment_by_name("ggo").experiment_id])
    assert run.info.status == "FINISHED" and value == run.data.metrics["val/dice"]
    policy = resolve_precision("auto")  # what this machine runs: the param says so, not "auto"
    assert run.data.params["train.precision"] == run.data.tags["ggo.precision"] == policy
    assert run.data.params["train.adversarial_update"] == "same_pass"

    def steps(key: str) -> list[int]:
        return sorted(m.step for m in client.get_metric_history(run.info.run_id, key))

    assert steps("train/g_loss") == [1, 2, 3, 4, 5]
    assert steps("val/dice") == [2, 4, 5, 6]  # every 2nd epoch, the last, then the best epoch's final score
    history = mlflow.artifacts.load_dict(f"{run.info.artifact_uri}/history.json")
    assert [v is None for v in history["val/dice"]] == [True, False, True, False, False]
    assert len(history["train/g_loss"]) == 5 and None not in history["train/g_loss"]


@pytest.mark.parametrize(
    "bad, key",
    [(["train.adversarial_update=same_pass", "train.d_steps=2"], "train.d_steps"), (["train.val_every=0"], "train.val_every")],
)
def test_speed_options_out_of_range_are_refused_before_any_data(tmp_path: Path, bad: list[str], key: str) -> None:
    from ggo.config import ConfigError, compose, to_dict, validate

    with pytest.raises(ConfigError, match=key):
        validate(to_dict(compose([*tiny_overrides(tmp_path), *bad])))
    if key == "train.d_steps":  # without a discriminator there is no pass to share
        validate(to_dict(compose([*tiny_overrides(tmp_path), *bad, "disc=none"])))


def test_train_ema_averages_the_generator_only_and_each_schedule_spans_its_own_updates(tmp_path: Path) -> None:
    import numpy as np

    from ggo.config import compose, typed
    from ggo.tracking import open_tracker
    from ggo.training import for_backend
    from ggo.training.experiment import Run, RunData, build_gan

    overrides = [*tiny_overrides(tmp_path), "train.ema=0.9", "train.lr_schedule=cosine", "train.d_steps=2", "train.epochs=3"]
    config = typed(compose(overrides))
    data = RunData(np.zeros((20, 1)), None, None, 64, for_backend("tensorflow"))  # 20 films, batch 8: 3 steps an epoch
    gan = build_gan(Run.of(config, open_tracker(config.tracking, run_name="t", tags={})), data)
    g, d = gan.g_optimizer, gan.d_optimizer
    assert g.use_ema and g.ema_momentum == pytest.approx(0.9) and not d.use_ema
    # After the run's 9 generator steps (18 discriminator updates) both rates reach 0 (cosine).
    g.iterations.assign(9)
    d.iterations.assign(9)
    assert float(g.learning_rate) == pytest.approx(0.0, abs=1e-9)
    assert float(d.learning_rate) == pytest.approx(0.5 * config.train.d_lr, rel=1e-5)  # half way
    d.iterations.assign(18)
    assert float(d.learning_rate) == pytest.approx(0.0, abs=1e-9)

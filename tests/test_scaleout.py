"""Scale-out: jobs on Ray workers and parallel jobs against a live ``mlflow server``.

Every job of a sweep must become a child of the sweep's one parent run with all its metrics,
whichever launcher ran it and whichever store recorded it.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Iterator

import pytest

from helpers import tiny_overrides
from live_server import MlflowServer, assert_children_complete, mlflow_server  # noqa: F401 - fixture
from sweep_fixture import subprocess_env

SWEEP_ENV_KEYS = ("GGO_PARENT_RUN_ID", "GGO_SWEEP_ID", "GGO_SWEEP_OVERRIDES", "MLFLOW_TRACKING_URI")


def run_sweep(args: list[str], cwd: Path, cache: Path, timeout: int = 600, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ggo.train", "-m", *args],
        cwd=cwd, env=subprocess_env(GGO_CACHE=str(cache), **env), capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


# --- the parent run id reaches jobs that do not inherit the driver's environment ----------------


def test_the_sweep_callback_hands_its_run_ids_to_a_job_in_a_fresh_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A Ray cluster started before the sweep runs jobs in processes without the driver's
    environment; Hydra pickles the callbacks with each job, and ``on_job_start`` restores the ids."""
    import cloudpickle

    from ggo.config import compose
    from ggo.sweeps.callback import MlflowSweepCallback

    for key in SWEEP_ENV_KEYS:
        monkeypatch.setenv(key, "")  # restored (removed) when the test ends
        monkeypatch.delenv(key)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    callback = MlflowSweepCallback()
    callback.on_multirun_start(compose([f"tracking.uri={uri}"], with_hydra=True))
    expected = {k: os.environ[k] for k in SWEEP_ENV_KEYS}
    assert expected["GGO_PARENT_RUN_ID"] == callback.parent_run_id

    (tmp_path / "callback.pkl").write_bytes(cloudpickle.dumps(callback))  # what Ray ships
    job = (
        "import json, os, pickle, sys\n"
        "callback = pickle.loads(open(sys.argv[1], 'rb').read())\n"
        "before = {k: os.environ.get(k) for k in sys.argv[2:]}\n"
        "callback.on_job_start(config=None)\n"
        "print(json.dumps({'before': before, 'after': {k: os.environ.get(k) for k in sys.argv[2:]}}))\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in SWEEP_ENV_KEYS}
    proc = subprocess.run(
        [sys.executable, "-c", job, str(tmp_path / "callback.pkl"), *SWEEP_ENV_KEYS], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert seen["before"] == dict.fromkeys(SWEEP_ENV_KEYS)
    assert seen["after"] == expected


# --- Ray ----------------------------------------------------------------------------------------


@pytest.fixture()
def ray_env() -> Iterator[dict[str, str]]:
    """A private Ray temp dir (short: Ray's socket paths must fit 107 bytes) and no ~/.ray writes.

    Ray 2.60 turns token authentication on for a new local cluster and saves a generated token in
    ``~/.ray/auth_token``; a token given in the environment is used instead and nothing is written.
    """
    pytest.importorskip("ray", reason="pip install hydra-ray-launcher (pulls ray)")
    pytest.importorskip("hydra_plugins.hydra_ray_launcher", reason="pip install hydra-ray-launcher")
    home_ray = Path.home() / ".ray"
    had_home_ray = home_ray.exists()
    ray_tmp = Path(tempfile.mkdtemp(prefix="ggo-ray-", dir="/tmp"))
    try:
        yield {
            "RAY_TMPDIR": str(ray_tmp),
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN": secrets.token_hex(32),
            "RAY_USAGE_STATS_ENABLED": "0",
        }
        assert had_home_ray or not home_ray.exists(), "Ray wrote ~/.ray"
    finally:
        _kill_leftover_processes(str(ray_tmp))
        shutil.rmtree(ray_tmp, ignore_errors=True)


def _kill_leftover_processes(marker: str) -> None:
    """Ray's own processes for this test (their command lines name its temp dir), if any outlived the driver."""
    import signal

    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline:
            try:
                os.kill(int(proc.name), signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.mark.slow
def test_ray_launcher_jobs_are_children_of_one_parent_with_all_their_metrics(
    tmp_path: Path, session_cache: Path, ray_env: dict[str, str]
) -> None:
    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    args = [
        "gen=unet,attention_unet",
        "hydra/launcher=ray",
        "+hydra.launcher.ray.init.num_cpus=2",
        "+hydra.launcher.ray.init.include_dashboard=false",
        "+hydra.launcher.ray.init._node_ip_address=127.0.0.1",  # keep Ray on loopback
        *tiny_overrides(tmp_path, uri),
    ]
    proc = run_sweep(args, tmp_path, session_cache, **ray_env)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    assert "Started a local Ray instance" in output and "(_run_job pid=" in output, "the jobs did not run on Ray workers"
    assert_children_complete(uri, 2)


# --- a live tracking server ---------------------------------------------------------------------


@pytest.mark.slow
def test_parallel_jobs_to_a_live_tracking_server_lose_no_run_or_metric(
    tmp_path: Path, session_cache: Path, mlflow_server: MlflowServer
) -> None:
    url, store = mlflow_server.url, mlflow_server.root
    args = ["gen=unet,attention_unet", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", *tiny_overrides(tmp_path, url)]
    proc = run_sweep(args, tmp_path, session_cache)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert_children_complete(url, 2)
    # the artifacts went through the server into its destination, not into the client's filesystem
    assert list((store / "artifacts").rglob("history.json")) and not (tmp_path / "mlruns").exists()

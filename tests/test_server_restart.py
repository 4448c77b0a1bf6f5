"""A tracking server that goes away in the middle of a sweep, against a real ``mlflow server``.

Restarted within MLflow's retries, it loses nothing: the jobs wait and go on. Gone for good, the
job that was logging fails soon with the server and the reason named, the sweep ends, and what was
recorded stays in the store.
"""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path
from typing import IO, Iterator

import mlflow
import pytest

from ggo import tracking
from ggo.tracking.clean import main as runs_main
from ggo.tracking.server import LIMITS, apply_limits
from helpers import tiny_overrides
from live_server import MlflowServer, assert_children_complete
from sweep_fixture import free_port, stop_process_group, subprocess_env

# urllib3 logs each retry: "Retrying (Retry(total=6, ...)) after connection broken by '...': /api/2.0/..."
RETRY_LINE = re.compile(r"Retrying \(Retry\(.*?\)\) after connection broken by .*?: (/\S+)")


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[MlflowServer]:
    """A started one-worker server (it starts in ~8 s here, against ~13 s with two)."""
    server = MlflowServer(tmp_path / "server", workers=1)
    try:
        server.start()
        yield server
    finally:
        server.stop()


def start_sweep(tmp_path: Path, cache: Path, url: str, epochs: int, out: IO[str], **env: str) -> subprocess.Popen:
    """A 2-job sweep (unet, attention_unet) of the tiny config into the server at ``url``."""
    args = ["gen=unet,attention_unet", *tiny_overrides(tmp_path, url), f"train.epochs={epochs}"]
    return subprocess.Popen(
        [sys.executable, "-m", "ggo.train", "-m", *args], cwd=tmp_path, env=subprocess_env(GGO_CACHE=str(cache), **env),
        stdout=out, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip


def wait_for_first_epoch(server: MlflowServer, sweep: subprocess.Popen, log: Path, timeout: float = 300) -> None:
    """Until the first job's epoch-1 ``val/dice`` is in the server's store (read directly)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sweep.poll() is not None:
            pytest.fail(f"the sweep ended (exit {sweep.returncode}) before its first epoch:\n{log.read_text()[-4000:]}")
        try:
            with closing(sqlite3.connect(f"file:{server.db}?mode=ro", uri=True, timeout=5)) as db:
                (n,) = db.execute("SELECT COUNT(*) FROM metrics WHERE key = 'val/dice' AND step = 1").fetchone()
            if n:
                return
        except sqlite3.OperationalError:  # the schema is not there yet, or the server holds a lock
            pass
        time.sleep(0.2)
    pytest.fail(f"no epoch logged within {timeout:.0f}s:\n{log.read_text()[-4000:]}")


@pytest.fixture()
def no_retry_settings(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """None of MLflow's HTTP retry variables set (and all restored after the test)."""
    for key in LIMITS:
        monkeypatch.setenv(key, "0")  # so that monkeypatch restores the variable's absence
        monkeypatch.delenv(key)
    return monkeypatch


def test_ggo_retry_limits_fill_in_only_what_the_environment_leaves_unset(no_retry_settings: pytest.MonkeyPatch) -> None:
    no_retry_settings.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "3")
    limits = apply_limits()
    assert (limits.retries, limits.backoff_factor, limits.timeout) == (3, 2, 30)
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "3" and os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "30"
    no_retry_settings.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", LIMITS["MLFLOW_HTTP_REQUEST_MAX_RETRIES"])
    assert apply_limits().window_seconds == 0 + 4 + 8 + 16 + 32 + 64 + 120  # urllib3 caps one sleep at 120 s


@pytest.mark.parametrize("key, value", [("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "11"), ("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0.5")])
def test_a_retry_setting_mlflow_cannot_use_is_named_with_the_fix(no_retry_settings: pytest.MonkeyPatch, key: str, value: str) -> None:
    no_retry_settings.setenv(key, value)
    with pytest.raises(ValueError, match=rf"{key}='{re.escape(value)}': MLflow needs .* fix or unset it"):
        apply_limits()


def test_a_server_that_refuses_connections_fails_the_call_once_retried_and_the_next_at_once(
    no_retry_settings: pytest.MonkeyPatch,
) -> None:
    for key, value in {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                       "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0"}.items():  # fmt: skip
        no_retry_settings.setenv(key, value)
    url = f"http://127.0.0.1:{free_port()}"  # nobody listens
    started = time.monotonic()
    with pytest.raises(tracking.TrackingServerUnavailable, match=rf"{url} unavailable \(connection refused\) after 2 retries"):
        tracking.client_for(url).get_experiment_by_name("ggo")
    assert time.monotonic() - started >= 2  # MLflow retried: at once, then after 2 s
    started = time.monotonic()
    with pytest.raises(tracking.TrackingServerUnavailable, match="this process gave up on it before"):
        tracking.ensure_store(url)
    assert time.monotonic() - started < 1.5


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.slow
def test_a_sweep_rides_out_a_tracking_server_restart_and_loses_no_run_or_metric(
    tmp_path: Path, session_cache: Path, server: MlflowServer
) -> None:
    log = tmp_path / "sweep.log"
    with open(log, "w") as out:
        sweep = start_sweep(tmp_path, session_cache, server.url, 3, out)
        try:
            wait_for_first_epoch(server, sweep, log)
            server.stop()
            time.sleep(2)  # the first job goes on and logs into a dead server
            server.start()
            sweep.wait(timeout=400)
        finally:
            stop_process_group(sweep, grace=5)
    output = log.read_text()
    assert sweep.returncode == 0, output[-4000:]
    retried = set(RETRY_LINE.findall(output))
    assert retried, f"no call met the stopped server:\n{output[-4000:]}"
    print(f"\n[restart] calls retried while the server was down: {sorted(retried)}")
    assert_children_complete(server.url, 2, epochs=3)
    experiment = mlflow.MlflowClient(server.url).get_experiment_by_name("ggo").experiment_id
    assert len(tracking.runs_with_model(server.url, [experiment])) == 2, "each child logged its model"


@pytest.mark.slow
def test_a_job_whose_tracking_server_never_comes_back_fails_soon_with_the_reason(
    tmp_path: Path, session_cache: Path, server: MlflowServer
) -> None:
    log = tmp_path / "sweep.log"
    quick = {  # 2 retries, 0 + 2 s apart: the give-up the defaults reach after ~4 min
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
        "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5",
    }  # fmt: skip
    with open(log, "w") as out:
        sweep = start_sweep(tmp_path, session_cache, server.url, 50, out, **quick)
        try:
            wait_for_first_epoch(server, sweep, log)
            server.stop()
            stopped = time.monotonic()
            sweep.wait(timeout=120)
            waited = time.monotonic() - stopped
            left = _group_alive(sweep.pid)
        finally:
            stop_process_group(sweep, grace=5)
    output = log.read_text()
    assert sweep.returncode == 1, output[-4000:]
    assert waited < 60, f"the sweep took {waited:.0f}s to give up"
    assert not left, "a process of the sweep outlived it"
    # the job that was training names the server, the reason and the way out
    assert f"MLflow tracking server {server.url} unavailable (connection refused) after 2 retries over 2 s" in output
    assert "Start it again on the same store" in output and "MLFLOW_HTTP_REQUEST_MAX_RETRIES" in output
    assert "could not mark MLflow run" in output
    # the next job does not wait again: it fails on its first call
    assert f"{server.url} unavailable (connection refused) and this process gave up on it before" in output

    # what was recorded before the server died is all there; `runs clean` ends what stayed RUNNING
    client = mlflow.MlflowClient(server.store_uri)
    runs = client.search_runs([client.get_experiment_by_name("ggo").experiment_id])
    (parent,) = [r for r in runs if r.data.tags.get("ggo.role") == "parent"]
    (child,) = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert parent.info.status == child.info.status == "RUNNING"
    assert 1 in {m.step for m in client.get_metric_history(child.info.run_id, "val/dice")}
    assert runs_main(["clean", "--tracking-uri", server.store_uri]) == 0
    for run in (parent, child):
        ended = client.get_run(run.info.run_id)
        assert ended.info.status == "KILLED" and "process gone" in ended.data.tags[tracking.ERROR_TAG]

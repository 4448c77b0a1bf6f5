"""python -m ggo.runs clean: runs left RUNNING by a hard kill are found and ended, live ones kept."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from ggo import tracking
from ggo.tracking.clean import main
from ggo.tracking.liveness import HEARTBEAT_TAG, HOST_TAG, PID_TAG
from sweep_fixture import subprocess_env, tiny_sweep  # noqa: F401 - fixture

HOLDER = """
import sys, time
from ggo.tracking import open_tracker
t = open_tracker({"enabled": True, "uri": sys.argv[1], "experiment": "ggo"}, run_name="doomed", tags={})
print(t.run_id, flush=True)
time.sleep(600)
"""


@pytest.fixture()
def store(tracking_uri: str) -> str:
    """An empty MLflow store (conftest's ``tracking_uri``: a copy of one migrated store)."""
    return tracking_uri


def _status(uri, run_id):
    run = tracking.get_run(uri, run_id)
    return run.info.status, run.data.tags.get(tracking.ERROR_TAG, "")


def test_a_run_whose_process_was_killed_9_is_marked_killed(store, capsys):
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, store], stdout=subprocess.PIPE, text=True, env=subprocess_env())
    try:
        run_id = proc.stdout.readline().strip()
        assert run_id, "the holder process started no run"
        live = tracking.open_tracker({"enabled": True, "uri": store, "experiment": "ggo"}, run_name="alive", tags={})
        assert main(["clean", "--dry-run", "--tracking-uri", store]) == 0
        assert "0 stale run(s)" in capsys.readouterr().out  # both processes are alive
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
    assert main(["clean", "--dry-run", "--tracking-uri", store]) == 0
    out = capsys.readouterr().out
    assert f"would mark KILLED: {run_id} (doomed): process gone" in out and "dry run: nothing changed" in out
    assert _status(store, run_id)[0] == "RUNNING"
    assert main(["clean", "--tracking-uri", store]) == 0
    assert f"marked KILLED: {run_id}" in capsys.readouterr().out
    status, error = _status(store, run_id)
    assert status == "KILLED" and "process gone" in error
    assert _status(store, live.run_id)[0] == "RUNNING"  # this process's run is alive: kept
    live.finish()


def test_a_run_on_another_host_is_stale_only_after_its_heartbeat_is_old(store, capsys):
    old = time.time() - 2 * 3600
    tags = {HOST_TAG: "elsewhere-" + socket.gethostname(), PID_TAG: "1", HEARTBEAT_TAG: f"{old:.0f}"}
    run_id = tracking.create_run(store, "ggo", run_name="remote", tags=tags)
    assert main(["clean", "--stale-after", "180", "--tracking-uri", store]) == 0
    assert _status(store, run_id)[0] == "RUNNING"  # pid 1 on another host says nothing here
    assert main(["clean", "--stale-after", "60", "--tracking-uri", store]) == 0
    assert "no heartbeat for 120 min" in capsys.readouterr().out
    assert _status(store, run_id)[0] == "KILLED"


def test_clean_names_bad_input(store, tmp_path, capsys):
    assert main(["clean", "--stale-after", "0", "--tracking-uri", store]) == 2
    assert "positive number of minutes" in capsys.readouterr().err
    assert main(["clean", "--experiment", "nope", "--tracking-uri", store]) == 2
    assert "no experiment 'nope'" in capsys.readouterr().err
    assert main(["clean", "--tracking-uri", f"sqlite:///{tmp_path / 'missing.db'}"]) == 2
    assert "no MLflow store" in capsys.readouterr().err


@pytest.mark.slow
def test_training_runs_record_host_pid_and_a_heartbeat_every_epoch(tiny_sweep):
    for run in tiny_sweep.children.values():
        tags = run.data.tags
        assert tags[HOST_TAG] == socket.gethostname() and int(tags[PID_TAG]) > 0
        # renewed at every epoch end: not older than the last epoch's metrics (seconds, rounded)
        epochs = tracking.client_for(tiny_sweep.uri).get_metric_history(run.info.run_id, "train/epoch_seconds")
        last_epoch = max(m.timestamp for m in epochs) / 1000
        assert last_epoch - run.info.start_time / 1000 > 2, "the run trains for a few seconds before its last epoch"
        assert float(tags[HEARTBEAT_TAG]) >= last_epoch - 1

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
from ggo.tracking.clean import find_stale
from ggo.tracking.liveness import (
    HEARTBEAT_TAG,
    HOST_ID_TAG,
    HOST_TAG,
    PID_SINCE_BOOT_TAG,
    PID_STARTED_TAG,
    PID_TAG,
    Host,
    process_state,
    process_tags,
    this_host,
)
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


def test_a_live_process_on_this_host_is_never_stale_however_old_its_heartbeat(store, capsys):
    tags = {**process_tags(), HEARTBEAT_TAG: f"{time.time() - 5 * 3600:.0f}"}  # silent for 5 hours, still running
    run_id = tracking.create_run(store, "ggo", run_name="busy", tags=tags)
    assert main(["clean", "--stale-after", "0.001", "--tracking-uri", store]) == 0
    assert "0 stale run(s)" in capsys.readouterr().out and _status(store, run_id)[0] == "RUNNING"


def test_process_identity_survives_a_wall_clock_step_and_a_reused_pid_or_a_zombie_is_gone():
    here, mine = this_host(), process_tags()
    assert process_state(mine, here) == "alive"
    # The wall clock moved an hour forward since the run started: psutil now dates this process an
    # hour later than the tag says. The start counted from boot did not move.
    assert process_state({**mine, PID_STARTED_TAG: f"{float(mine[PID_STARTED_TAG]) - 3600:.3f}"}, here) == "alive"
    # The pid now belongs to a process that started 100 s after the run's.
    assert process_state({**mine, PID_SINCE_BOOT_TAG: f"{float(mine[PID_SINCE_BOOT_TAG]) - 100:.2f}"}, here) == "gone"
    # Same host name, another container or boot: its pids say nothing here.
    assert process_state({**mine, HOST_ID_TAG: "another-boot/pid:[4026531836]"}, here) is None
    assert process_state({**mine, HOST_ID_TAG: "", HOST_TAG: here.name}, here) == "alive"  # runs of an older ggo
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1)"])
    import psutil

    from ggo.tracking.liveness import since_boot

    tags = {**mine, PID_TAG: str(child.pid), PID_SINCE_BOOT_TAG: f"{since_boot(psutil.Process(child.pid)):.2f}"}
    assert process_state(tags, here) == "alive"
    deadline = time.time() + 30
    while psutil.Process(child.pid).status() != psutil.STATUS_ZOMBIE and time.time() < deadline:
        time.sleep(0.1)  # exited, not yet waited for: a zombie
    assert process_state(tags, here) == "gone"
    child.wait()
    assert process_state(tags, here) == "gone"


def test_the_heartbeat_is_renewed_by_a_thread_while_the_job_is_silent_and_stops_with_the_run(store, monkeypatch):
    monkeypatch.setenv("GGO_HEARTBEAT_SECONDS", "0.5")
    tracker = tracking.open_tracker({"enabled": True, "uri": store, "experiment": "ggo"}, run_name="long evaluation", tags={})
    first = float(tracking.get_run(store, tracker.run_id).data.tags[HEARTBEAT_TAG])
    time.sleep(3.5)  # the job's own thread says nothing for a while (a long evaluation, a model upload)
    later = float(tracking.get_run(store, tracker.run_id).data.tags[HEARTBEAT_TAG])
    assert later - first >= 2, (first, later)
    elsewhere = Host("elsewhere", "another-boot/pid:[1]")  # how `clean` on another host sees the run
    assert find_stale(store, stale_after_minutes=2 / 60, host=elsewhere) == []
    tracker.finish()
    ended = tracking.get_run(store, tracker.run_id).data.tags[HEARTBEAT_TAG]
    time.sleep(1.5)
    assert tracking.get_run(store, tracker.run_id).data.tags[HEARTBEAT_TAG] == ended, "no beat after the run ended"


def test_a_bad_heartbeat_interval_names_its_variable(store, monkeypatch):
    monkeypatch.setenv("GGO_HEARTBEAT_SECONDS", "often")
    with pytest.raises(ValueError, match=r"^GGO_HEARTBEAT_SECONDS='often': give the seconds between heartbeats"):
        tracking.open_tracker({"enabled": True, "uri": store, "experiment": "ggo"}, run_name="x", tags={})
    assert tracking.search_runs(store, tracking.experiment_ids(store, []), "") == [], "no run was left behind"


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

"""Live runs and a shared store: ``python -m ggo.runs clean`` never ends a live run, and a SQLite
store written by two sweeps at once (created by them too) loses nothing.

The sweeps run with ``GGO_HEARTBEAT_SECONDS=1``, so that their heartbeat threads also write to the
store all the time (more lock contention) and a minute of silence is seconds here.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from helpers import tiny_overrides
from sweep_fixture import subprocess_env

from ggo import tracking
from ggo.tracking.clean import find_stale, main as clean_main
from ggo.tracking.liveness import HEARTBEAT_TAG, Host

pytestmark = pytest.mark.slow
ELSEWHERE = Host("elsewhere", "another-boot/pid:[1]")  # `clean` as another host sees the runs


@dataclass
class TwoSweeps:
    uri: str
    procs: list[subprocess.CompletedProcess] = field(default_factory=list)
    checks: list[tuple[int, str, list]] = field(default_factory=list)  # (RUNNING runs, clean's output, stale from elsewhere)


@pytest.fixture(scope="module")
def two_sweeps(tmp_path_factory: pytest.TempPathFactory, session_cache: Path) -> TwoSweeps:
    """Two 2-job sweeps started at once into one SQLite store that neither finds existing; while
    they run, ``clean --stale-after 0.001`` (6 ms) runs on this host every few seconds."""
    root = tmp_path_factory.mktemp("two-sweeps")
    uri = f"sqlite:///{root / 'store' / 'mlflow.db'}"
    result = TwoSweeps(uri)
    env = subprocess_env(GGO_CACHE=str(session_cache), GGO_HEARTBEAT_SECONDS="1")
    running = []
    for name in ("a", "b"):
        (root / name).mkdir()
        args = ["-m", "gen=unet,attention_unet", *tiny_overrides(root / name, uri)]
        running.append(subprocess.Popen([sys.executable, "-m", "ggo.train", *args], cwd=root / name, env=env,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))  # fmt: skip
    outputs: dict[int, str] = {}
    readers = [threading.Thread(target=lambda i=i, p=p: outputs.__setitem__(i, p.stdout.read()), daemon=True) for i, p in enumerate(running)]
    for reader in readers:
        reader.start()
    try:
        deadline = time.time() + 900
        while any(p.poll() is None for p in running) and time.time() < deadline:
            time.sleep(3)
            result.checks.append(_check(uri))
    finally:
        for proc in running:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        for reader in readers:
            reader.join(timeout=30)
    result.procs = [subprocess.CompletedProcess(p.args, p.returncode, outputs.get(i, ""), "") for i, p in enumerate(running)]
    return result


def _check(uri: str) -> tuple[int, str, list]:
    """(RUNNING runs now, what `clean` printed, the runs another host would find stale at 0.5 min)."""
    import contextlib
    import io

    if not Path(uri[len("sqlite:///") :]).is_file():
        return 0, "", []
    try:
        ids = tracking.experiment_ids(uri, [])
        live = len(tracking.search_runs(uri, ids, "attributes.status = 'RUNNING'"))
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            clean_main(["clean", "--stale-after", "0.001", "--tracking-uri", uri])
        return live, out.getvalue(), find_stale(uri, stale_after_minutes=0.5, host=ELSEWHERE)
    except Exception as exc:  # noqa: BLE001 - a store still being created by the sweeps
        return 0, f"{type(exc).__name__}: {exc}", []


def test_two_sweeps_into_one_new_sqlite_store_finish_every_run_and_lose_nothing(two_sweeps: TwoSweeps) -> None:
    for proc in two_sweeps.procs:
        assert proc.returncode == 0, proc.stdout[-4000:]
    client = tracking.client_for(two_sweeps.uri)
    exp = client.get_experiment_by_name("ggo")
    found = client.search_runs([exp.experiment_id], max_results=100)
    parents = [r for r in found if r.data.tags.get("ggo.role") == "parent"]
    children = [r for r in found if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 2 and len(children) == 4 and len(found) == 6, "two parents, two children each, no orphan"
    for run in found:
        assert run.info.status == "FINISHED" and tracking.ERROR_TAG not in run.data.tags, (run.info.run_name, run.data.tags.get(tracking.ERROR_TAG))
    for parent in parents:
        mine = [c for c in children if c.data.tags["mlflow.parentRunId"] == parent.info.run_id]
        assert sorted(c.data.tags["gen"] for c in mine) == ["attention_unet", "unet"]
        assert parent.data.tags["ggo.jobs"] == "2" and parent.data.tags["ggo.failed_jobs"] == "0"
    models = tracking.runs_with_model(two_sweeps.uri, [exp.experiment_id])
    for child in children:
        steps = sorted(m.step for m in client.get_metric_history(child.info.run_id, "val/dice"))
        assert steps == [1, 2, 3], "every epoch, and the best checkpoint's re-evaluation"
        assert {"config.yaml", "history.json", "predictions"} <= {a.path for a in client.list_artifacts(child.info.run_id)}
        assert child.info.run_id in models, "each child's model is logged, READY"


def test_clean_during_the_sweeps_ends_nothing_and_heartbeats_last_the_whole_run(two_sweeps: TwoSweeps) -> None:
    seen_live = [check for check in two_sweeps.checks if check[0] > 0]
    assert len(seen_live) >= 3, f"clean ran while runs were RUNNING only {len(seen_live)} times: {two_sweeps.checks}"
    for live, output, stale_elsewhere in seen_live:
        assert "0 stale run(s)" in output and "marked KILLED" not in output, output
        assert stale_elsewhere == [], f"another host would end {stale_elsewhere}"
    client = tracking.client_for(two_sweeps.uri)
    for run in client.search_runs([client.get_experiment_by_name("ggo").experiment_id], max_results=100):
        last_beat = float(run.data.tags[HEARTBEAT_TAG])
        # renewed through the whole run, its last phase too (model logging; the parent's summary)
        assert run.info.end_time / 1000 - last_beat < 5, (run.info.run_name, run.info.end_time / 1000 - last_beat)
        assert last_beat - run.info.start_time / 1000 > 5


def test_a_write_waits_out_a_sqlite_lock_held_longer_than_mlflows_20_s(tracking_uri: str) -> None:
    """Another process holds the database for 25 s; MLflow gives up after 20 s, ggo tries again."""
    tracker = tracking.open_tracker({"enabled": True, "uri": tracking_uri, "experiment": "ggo"}, run_name="patient", tags={})
    held = threading.Event()

    def hold() -> None:
        with sqlite3.connect(tracking_uri[len("sqlite:///") :], timeout=60) as connection:
            connection.execute("BEGIN EXCLUSIVE")
            held.set()
            time.sleep(25)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(30)
    started = time.monotonic()
    tracker.log_metrics({"val/dice": 0.5}, step=1)  # without the retry: "database is locked" after 20 s
    waited = time.monotonic() - started
    holder.join()
    tracker.finish()
    assert waited > 20, "the write really met the lock"
    assert tracking.metric_history(tracking_uri, tracker.run_id, "val/dice") == [0.5]
    assert tracking.get_run(tracking_uri, tracker.run_id).info.status == "FINISHED"

"""A real ``mlflow server`` for tests, that can be stopped and started again, and what a sweep into a
store must have left there.

Import the fixture with ``from live_server import mlflow_server`` (pytest finds fixtures imported
into a module's namespace).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Iterator

import mlflow
import pytest

from sweep_fixture import free_port, stop_process_group, subprocess_env, wait_for_http


class MlflowServer:
    """``mlflow server`` on a free 127.0.0.1 port over a SQLite store in ``root``, proxying artifacts
    into ``root/artifacts``, with ``workers`` uvicorn workers. :meth:`stop` and :meth:`start` again
    keep the port and the store. The server's job runner (GenAI evaluation jobs, unused by ggo) is
    off: it costs seconds of start-up on a small machine."""

    def __init__(self, root: Path, workers: int = 2) -> None:
        self.root, self.workers = root, workers
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.db = root / "db.sqlite"
        self.store_uri = f"sqlite:///{self.db}"  # the same store, read without the server
        self.log = root / "server.log"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 120) -> None:
        """Start it and wait until ``/health`` answers (the server log is kept across restarts)."""
        with open(self.log, "a") as handle:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(self.port),
                 "--backend-store-uri", self.store_uri, "--artifacts-destination", str(self.root / "artifacts"),
                 "--serve-artifacts", "--workers", str(self.workers)],
                env=subprocess_env(MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false"), stdout=handle, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        wait_for_http(f"{self.url}/health", self.proc, timeout=timeout, log=self.log)

    def stop(self) -> None:
        """Stop it and every worker it forked."""
        if self.proc is not None:
            stop_process_group(self.proc, grace=3)
            self.proc = None


@pytest.fixture()
def mlflow_server(tmp_path: Path) -> Iterator[MlflowServer]:
    """A started :class:`MlflowServer` over a new store under ``tmp_path/server``; stopped afterwards."""
    server = MlflowServer(tmp_path / "server")
    try:
        server.start()
        yield server
    finally:
        server.stop()


def read_artifact(client: mlflow.MlflowClient, run_id: str, path: str) -> str:
    """Through the client's own store (a server proxies ``mlflow-artifacts:`` URIs)."""
    with tempfile.TemporaryDirectory() as tmp:
        return Path(client.download_artifacts(run_id, path, tmp)).read_text()


def assert_children_complete(uri: str, n: int, epochs: int = 2) -> None:
    """One parent; ``n`` FINISHED children under it, each with every epoch of every metric it recorded."""
    client = mlflow.MlflowClient(uri)
    exp = client.get_experiment_by_name("ggo")
    found = client.search_runs([exp.experiment_id], max_results=100)
    parents = [r for r in found if r.data.tags.get("ggo.role") == "parent"]
    children = [r for r in found if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and len(children) == n, (len(parents), len(children))
    parent = parents[0]
    assert len(found) == n + 1, "no orphan runs"
    assert all(c.data.tags["mlflow.parentRunId"] == parent.info.run_id for c in children)
    assert all(c.data.tags["ggo.sweep_id"] == parent.data.tags["ggo.sweep_id"] for c in children)
    for child in children:
        rid = child.info.run_id
        assert child.info.status == "FINISHED", child.data.tags.get("ggo.error")
        # one point per epoch, and the best epoch's re-evaluation after the last
        assert [m.step for m in sorted(client.get_metric_history(rid, "val/dice"), key=lambda m: m.step)] == list(range(1, epochs + 2))
        # every per-epoch value the job kept (history.json) is in the store, at its epoch
        history = json.loads(read_artifact(client, rid, "history.json"))
        assert {"train/g_loss", "train/d_loss", "train/dice", "val/dice"} <= set(history)
        for key, values in history.items():
            stored = {m.step: m.value for m in client.get_metric_history(rid, key)}
            kept = {step: v for step, v in enumerate(values, 1) if math.isfinite(v)}  # the tracker drops NaN/Inf
            assert {step: stored.get(step) for step in kept} == pytest.approx(kept), key
        assert {a.path for a in client.list_artifacts(rid)} >= {"config.yaml", "history.json", "dsc_curve.png", "predictions"}
    summary = read_artifact(client, parent.info.run_id, "summary.csv")
    assert summary.count("FINISHED") == n
    assert client.get_run(parent.info.run_id).info.status == "FINISHED"

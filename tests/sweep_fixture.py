"""One tiny real sweep per test session, shared by the promote, predict, serve and UI tests.

``tiny_sweep`` runs ``python -m ggo.train -m gen=unet,attention_unet train.precision=mixed_bfloat16``
with the tiny synthetic config (64 px, 2 epochs) into a session store, so the suite trains once
(about 25 s on 2 CPU cores) and every model-consuming test reads the same real runs. Both jobs
train in mixed precision (bfloat16), so every prediction test also checks that such a model
predicts on a CPU-only machine; the two architectures score differently, which the promotion
tests need.

Tests must not change the store behind ``tiny_sweep``; a test that needs to (delete a run, mark it
FAILED, log a model to the parent) works on :func:`copy_store`. ``champion`` registers the
sweep's best run as ``ggo-segmenter@champion`` once, for prediction and serving.

Import in a test module with ``from sweep_fixture import tiny_sweep`` (and ``champion``): pytest
finds fixtures imported into a module's namespace. It registers them once per importing module,
so the values are memoised here: the sweep still runs once per session.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pytest

from helpers import tiny_overrides

GENERATORS = ("unet", "attention_unet")
PRECISION = "mixed_bfloat16"
_MEMO: dict[str, Any] = {}  # fixture name -> value, shared by every module that imports the fixtures
CHAMPION_NAME = "ggo-segmenter"


@dataclass
class TinySweep:
    """What the session sweep left behind: its store, parent run and one child run per generator."""

    root: Path
    uri: str
    experiment_id: str
    parent_run_id: str
    children: dict[str, Any] = field(default_factory=dict)  # generator name -> mlflow Run
    stdout: str = ""
    stderr: str = ""

    @property
    def child_ids(self) -> list[str]:
        return [run.info.run_id for run in self.children.values()]

    def best_child(self, metric: str = "val/dice") -> Any:
        return max(self.children.values(), key=lambda run: run.data.metrics[metric])

    def worst_child(self, metric: str = "val/dice") -> Any:
        return min(self.children.values(), key=lambda run: run.data.metrics[metric])


def subprocess_env(**extra: str) -> dict[str, str]:
    """The environment for ggo commands run by tests: quiet TensorFlow, no stray tracking URI."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env.update(TF_CPP_MIN_LOG_LEVEL="2", MPLBACKEND="Agg", HYDRA_FULL_ERROR="1", PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


@pytest.fixture(scope="session")
def tiny_sweep(tmp_path_factory: pytest.TempPathFactory, session_cache: Path) -> TinySweep:
    """A real 2-job sweep (unet and attention_unet, bfloat16) recorded in a session SQLite store."""
    if "tiny_sweep" not in _MEMO:
        try:
            _MEMO["tiny_sweep"] = _run_tiny_sweep(tmp_path_factory, session_cache)
        except BaseException as exc:  # a failed sweep fails every user once, without retraining
            _MEMO["tiny_sweep"] = exc
    if isinstance(_MEMO["tiny_sweep"], BaseException):
        raise _MEMO["tiny_sweep"]
    return _MEMO["tiny_sweep"]


def _run_tiny_sweep(tmp_path_factory: pytest.TempPathFactory, session_cache: Path) -> TinySweep:
    import mlflow

    root = tmp_path_factory.mktemp("tiny-sweep")
    uri = f"sqlite:///{root / 'mlruns' / 'mlflow.db'}"
    args = ["-m", "gen=" + ",".join(GENERATORS), f"train.precision={PRECISION}", *tiny_overrides(root, uri)]
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "ggo.train", *args],
        cwd=root, env=subprocess_env(GGO_CACHE=str(session_cache)), capture_output=True, text=True, timeout=600,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"the tiny sweep failed (exit {proc.returncode}):\n{output[-4000:]}"
    print(f"\n[sweep_fixture] tiny sweep trained in {time.perf_counter() - started:.0f}s at {root}")

    client = mlflow.MlflowClient(uri)
    exp = client.get_experiment_by_name("ggo")
    assert exp is not None, f"the sweep recorded no experiment 'ggo' in {uri}:\n{output[-3000:]}"
    runs = client.search_runs([exp.experiment_id], max_results=100)
    parents = [r for r in runs if r.data.tags.get("ggo.role") == "parent"]
    assert len(parents) == 1, f"expected one parent run, found {len(parents)} (is the sweep callback working?)"
    parent = parents[0]
    children = {r.data.tags["gen"]: r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id}
    assert set(children) == set(GENERATORS), f"children by generator: {sorted(children)}"
    assert all(r.info.status == "FINISHED" for r in children.values())
    assert all(r.data.tags.get("ggo.precision") == PRECISION for r in children.values())
    return TinySweep(root, uri, exp.experiment_id, parent.info.run_id, children, proc.stdout, proc.stderr)


@pytest.fixture(scope="session")
def champion(tiny_sweep: TinySweep) -> str:
    """Promote the sweep's best run to ``ggo-segmenter@champion`` (once); returns the model URI."""
    from ggo.ship.promote import promote

    if "champion" not in _MEMO:
        result = promote(tiny_sweep.uri, name=CHAMPION_NAME)
        assert result.action == "promoted", result
        _MEMO["champion"] = result.model_uri
    return _MEMO["champion"]


def copy_store(sweep: TinySweep, dst: Path) -> str:
    """A private copy of the sweep's SQLite store (same artifacts, read in place); returns its URI.

    Runs and registry entries in the copy can be changed freely; new artifacts logged through it
    still land beside the original store, under fresh ids.
    """
    dst.mkdir(parents=True, exist_ok=True)
    target = dst / "mlflow.db"
    src = sqlite3.connect(sweep.uri[len("sqlite:///"):])
    out = sqlite3.connect(target)
    try:
        src.backup(out)
    finally:
        src.close()
        out.close()
    return f"sqlite:///{target}"


@contextmanager
def model_server(tracking_uri: str, model_uri: str, log: Path, **env: str) -> Iterator[tuple[str, subprocess.Popen]]:
    """``mlflow models serve -m model_uri`` on a free 127.0.0.1 port, with ``env`` added to its
    environment; yields its base URL and process (the ``mlflow`` command, which runs uvicorn), and
    stops the whole process group afterwards."""
    port = free_port()
    bin_dir = str(Path(sys.executable).parent)  # the server runs `uvicorn` from the virtualenv
    full_env = subprocess_env(MLFLOW_TRACKING_URI=tracking_uri, PATH=bin_dir + os.pathsep + os.environ.get("PATH", ""), **env)
    with open(log, "w") as handle:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "models", "serve", "-m", model_uri, "--env-manager", "local",
             "-h", "127.0.0.1", "-p", str(port)],
            env=full_env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        wait_for_http(f"http://127.0.0.1:{port}/health", proc, timeout=120, log=log)
        yield f"http://127.0.0.1:{port}", proc
    finally:
        stop_process_group(proc)
    assert proc.poll() is not None


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_http(url: str, proc: subprocess.Popen, timeout: float, log: Path | None = None) -> None:
    """Poll ``url`` until it answers 200; fail early if ``proc`` exits, and after ``timeout`` seconds."""
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text()[-3000:] if log and log.exists() else ""
            pytest.fail(f"the server exited with status {proc.returncode} before {url} answered:\n{tail}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass
        time.sleep(0.5)
    tail = log.read_text()[-3000:] if log and log.exists() else ""
    pytest.fail(f"{url} did not answer within {timeout:.0f}s:\n{tail}")


def stop_process_group(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM the whole process group ``proc`` leads (servers fork workers), SIGKILL what remains."""
    import signal

    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # workers that outlived their parent
    except ProcessLookupError:
        pass
    if proc.poll() is None:
        proc.wait(timeout=grace)

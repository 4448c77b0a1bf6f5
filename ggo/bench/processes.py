"""Measurements that need their own processes: start-up, per-job overhead of a multirun, and
the peak memory of a 256 px training run.

Each launches ``python -m ggo.train`` as a user would (Hydra, the real config) and reads its
output line by line with arrival times. Data caches are built once in the parent beforehand: the
figures are a job's cost with a warm cache, which is what every run after a dataset's first sees.

Peak memory is the child's ``VmHWM`` (its address space's high-water mark), printed by a
one-line ``atexit`` hook around ``runpy.run_module("ggo.train")``, which is what ``-m`` does.
``ru_maxrss`` from ``wait4``/``RUSAGE_CHILDREN`` is no good here: Linux carries the parent's
resident size across fork/exec into the child's ``ru_maxrss``, so a child of this (TensorFlow
holding) process would report at least the parent's size.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Sequence

# tests/helpers.py's tiny_overrides: synthetic data, 64 px, a few filters, 2 epochs.
TINY = [
    "data=synthetic",
    "preprocess.resolution=64",
    "gen.depth=3",
    "gen.base_filters=4",
    "gen.max_filters=16",
    "disc.base_filters=4",
    "disc.max_filters=16",
    "train.epochs=2",
    "train.batch_size=8",
    "train.patience=0",
    "tracking.image_every=1",
    "tracking.n_images=2",
]

_EPOCH_LINE = re.compile(r"^epoch\s+(\d+)/(\d+)\b.*\((\d+(?:\.\d+)?)s\)")
_DATA_LINE = re.compile(r"^\[ggo\] data:")
_PEAK_LINE = re.compile(r"^\[ggo-bench\] peak_rss_kb (\d+)")

# ``python -m MODULE ARGS`` plus a line with the process's peak resident memory at exit.
_WITH_PEAK = """\
import atexit, re, runpy, sys

def _peak():
    try:
        kb = int(re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read()).group(1))
    except (OSError, AttributeError):
        import resource  # not Linux: ru_maxrss (KiB on Linux, bytes on macOS)
        kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // (1024 if sys.platform == "darwin" else 1)
    print(f"[ggo-bench] peak_rss_kb {kb}", flush=True)

atexit.register(_peak)
sys.argv = sys.argv[1:]
runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
"""


def python_module_cmd(module: str, *args: str) -> list[str]:
    """``python -m module args`` that also prints its peak resident memory when it exits."""
    return [sys.executable, "-c", _WITH_PEAK, module, *args]


def start_reading(cmd: Sequence[str], *, cwd: str | Path, env: dict[str, str] | None = None) -> tuple[Any, list[tuple[float, str]], threading.Thread, float]:
    """Start ``cmd`` (in ``env``, default this process's environment, unbuffered) with a thread
    collecting its output lines and their arrival times (seconds after launch). Returns the
    process, the lines (filled as they come), the thread and the launch time."""
    env = {**(os.environ if env is None else env), "PYTHONUNBUFFERED": "1"}
    start = time.perf_counter()
    proc = subprocess.Popen(
        list(cmd), cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    )
    lines: list[tuple[float, str]] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append((time.perf_counter() - start, line.rstrip("\n")))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    return proc, lines, reader, start


def run_timed(cmd: Sequence[str], *, cwd: str | Path, timeout: float, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``cmd`` (in ``env``, default this process's environment); return its output lines
    with arrival times (seconds after launch), exit code, wall time, and its peak resident memory
    (MB) when it printed one (see :func:`python_module_cmd`)."""
    proc, lines, reader, start = start_reading(cmd, cwd=cwd, env=env)
    timed_out = False
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        proc.kill()
        proc.wait()
    wall = time.perf_counter() - start
    reader.join(timeout=10)
    peaks = [int(m.group(1)) for _, line in lines if (m := _PEAK_LINE.match(line))]
    return {
        "cmd": " ".join(cmd if "-c" not in cmd else [Path(cmd[0]).name, "-m", *cmd[3:]]),
        "returncode": proc.returncode,
        "timed_out": timed_out,
        "wall_s": wall,
        "peak_rss_mb": peaks[-1] / 1024 if peaks else None,
        "lines": lines,
    }


def check_finished(result: dict[str, Any], what: str) -> None:
    """Raise with the output's last lines unless the command exited 0 in time."""
    if result["returncode"] != 0 or result["timed_out"]:
        tail = "\n".join(line for _, line in result["lines"][-25:])
        reason = "timed out" if result["timed_out"] else f"exited with {result['returncode']}"
        raise RuntimeError(f"{what} ({result['cmd']}) {reason}:\n{tail}")


def parse_startup(lines: Sequence[tuple[float, str]]) -> dict[str, Any]:
    """Start-up figures from a training run's timed output lines.

    ``startup_s`` is the launch-to-end of the first epoch less one steady epoch (the second):
    imports, config composition, opening the data cache, building and compiling the models and
    tracing the train and val steps, i.e. how long until the run trains at full speed.
    """
    data_at = next((t for t, line in lines if _DATA_LINE.match(line)), None)
    epochs = [(t, int(m.group(1)), float(m.group(3))) for t, line in lines if (m := _EPOCH_LINE.match(line))]
    if not epochs:
        raise ValueError("no 'epoch N/M ... (Xs)' line in the run's output")
    first_end, _, first_s = epochs[0]
    steady = epochs[1][2] if len(epochs) > 1 else None
    return {
        "startup_s": round(first_end - (steady if steady is not None else first_s), 2),
        "to_data_s": round(data_at, 2) if data_at is not None else None,
        "to_first_epoch_start_s": round(first_end - first_s, 2),
        "first_epoch_end_s": round(first_end, 2),
        "epoch_s": [s for _, _, s in epochs],
    }


def job_overheads(jobs: Sequence[dict[str, float]]) -> dict[str, Any]:
    """Per-job overhead from MLflow records ``{"start_ms", "end_ms", "train_s"}`` in start order:
    the run's wall time minus its training (``fit``) time; ``first`` for job 0, ``later`` the
    median of the rest, and the gaps between one job's end and the next one's start."""
    if not jobs:
        raise ValueError("no job runs to measure")
    overheads = [(j["end_ms"] - j["start_ms"]) / 1000.0 - j["train_s"] for j in jobs]
    gaps = [(b["start_ms"] - a["end_ms"]) / 1000.0 for a, b in zip(jobs, jobs[1:])]
    return {
        "first": round(overheads[0], 2),
        "later": round(statistics.median(overheads[1:]), 2) if len(overheads) > 1 else None,
        "per_job_s": [round(x, 2) for x in overheads],
        "job_wall_s": [round((j["end_ms"] - j["start_ms"]) / 1000.0, 2) for j in jobs],
        "train_s": [round(j["train_s"], 2) for j in jobs],
        "gap_between_jobs_s": [round(g, 2) for g in gaps],
    }


def prepare_caches(cache_dir: Path, resolutions: Sequence[int], n_images: int | None = None) -> None:
    """Build the synthetic-data caches the child runs will open (so they measure a warm cache)."""
    from ggo.data import prepare_from_config

    data = {"name": "synthetic", "cache_dir": str(cache_dir)}
    if n_images:
        data["n_images"] = n_images
    for res in resolutions:
        prepare_from_config(data, {"resolution": res}, progress=False)


def _train_cmd(*overrides: str, multirun: bool = False) -> list[str]:
    """``python -m ggo.train`` on this process's Keras backend."""
    import keras

    backend = f"train.backend={keras.backend.backend()}"
    return python_module_cmd("ggo.train", *(["-m"] if multirun else []), backend, *overrides)


def measure_startup(workdir: Path, *, timeout: float = 300) -> dict[str, Any]:
    """Launch-to-training time of the tiny configuration with ``tracking=none``."""
    cache = workdir / "cache"
    prepare_caches(cache, [64])
    result = run_timed(
        _train_cmd(*TINY, "tracking=none", f"data.cache_dir={cache}", f"hydra.run.dir={workdir / 'startup'}"),
        cwd=workdir,
        timeout=timeout,
    )
    check_finished(result, "the start-up run")
    return {
        **parse_startup(result["lines"]),
        "wall_s": round(result["wall_s"], 2),
        "peak_rss_mb": round(result["peak_rss_mb"], 1) if result["peak_rss_mb"] else None,  # a baseline
        "config": "tiny, tracking=none",
    }


def measure_multirun(workdir: Path, *, jobs: int = 3, timeout: float = 600) -> dict[str, Any]:
    """Per-job overhead of a ``jobs``-job tiny multirun tracked in a throw-away SQLite store."""
    from ggo import tracking

    cache = workdir / "cache"
    prepare_caches(cache, [64])
    uri = f"sqlite:///{workdir / 'mlruns' / 'mlflow.db'}"
    experiment = "ggo-bench"
    seeds = ",".join(str(i) for i in range(jobs))
    result = run_timed(
        _train_cmd(
            f"train.seed={seeds}", *TINY, f"tracking.uri={uri}", f"tracking.experiment={experiment}",
            f"data.cache_dir={cache}", f"hydra.sweep.dir={workdir / 'multirun'}", multirun=True,
        ),  # fmt: skip
        cwd=workdir,
        timeout=timeout,
    )
    check_finished(result, "the multirun")
    exp = tracking.find_experiment(uri, experiment)
    runs = tracking.search_runs(uri, [exp.experiment_id]) if exp else []
    children = sorted((r for r in runs if r.data.tags.get("mlflow.parentRunId")), key=lambda r: r.info.start_time)
    if len(children) != jobs:
        raise RuntimeError(f"expected {jobs} job runs in {uri}, found {len(children)}")
    records = [
        {"start_ms": r.info.start_time, "end_ms": r.info.end_time, "train_s": float(r.data.metrics["train/seconds"])}
        for r in children
    ]
    overheads = job_overheads(records)
    return {
        **overheads,
        "jobs": jobs,
        "sweep_wall_s": round(result["wall_s"], 2),
        # Process start-up, the parent run, Hydra's per-job set-up and the sweep summary.
        "outside_jobs_s": round(result["wall_s"] - sum(overheads["job_wall_s"]), 2),
        "config": "tiny, MLflow SQLite",
    }


def measure_memory(workdir: Path, *, resolution: int = 256, n_images: int = 40, timeout: float = 400) -> dict[str, Any]:
    """Peak resident memory of a short training run of the default generator and 70 px PatchGAN."""
    cache = workdir / "cache"
    prepare_caches(cache, [resolution], n_images=n_images)
    result = run_timed(
        _train_cmd(
            "data=synthetic", f"data.n_images={n_images}", f"preprocess.resolution={resolution}",
            "disc=patchgan", "disc.n_layers=3", "train.epochs=1", "train.patience=0", "tracking=none",
            f"data.cache_dir={cache}", f"hydra.run.dir={workdir / 'memory'}",
        ),  # fmt: skip
        cwd=workdir,
        timeout=timeout,
    )
    check_finished(result, "the memory run")
    if result["peak_rss_mb"] is None:
        raise RuntimeError("the memory run printed no peak memory line")
    return {
        "peak_rss_mb": round(result["peak_rss_mb"], 1),
        "resolution": resolution,
        "n_images": n_images,
        "wall_s": round(result["wall_s"], 2),
        "config": f"default gen + 70 px PatchGAN, {resolution} px, 1 epoch, tracking=none",
    }


__all__ = [
    "TINY",
    "check_finished",
    "job_overheads",
    "measure_memory",
    "measure_multirun",
    "measure_startup",
    "parse_startup",
    "prepare_caches",
    "python_module_cmd",
    "run_timed",
]

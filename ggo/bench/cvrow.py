"""The "CV row" figure: how long a 5-fold cross-validation row takes, run two ways.

What a working day of model search waits on is the wall time of one row of the ablation, the
5-fold preset ``python -m ggo.train -m +sweeps=cv preprocess=res128``, here for a fixed number of
epochs (``train.epochs=N train.patience=0``) so every run does the same work. It is timed

- ``sequential``: Hydra's basic launcher, one job at a time, each with ``train.threads`` = the
  cores this process may use (TensorFlow's default on most machines, said explicitly);
- ``parallel``: the joblib launcher, ``jobs`` jobs at a time, each with ``cores // jobs`` threads
  (``hydra/launcher=joblib hydra.launcher.n_jobs=<jobs> train.threads=<cores // jobs>``);
- optionally ``baseline``: the plain command (no thread or launcher override) from another
  checkout (``PYTHONPATH=<dir>``), e.g. the main branch before a speed change, for the ratio of
  the two commits on the same machine, one after the other.

Each command is the whole user-visible wait: start-up, five jobs, the fold ensemble and the
summary, into a throw-away MLflow store (created and migrated beforehand, as a user's exists)
under the bench's temp dir. The data cache is built beforehand by an untimed ``python -m ggo.data
prepare`` per checkout. With ``repeats`` > 1 the ways alternate (baseline, sequential, parallel,
baseline, ...) and ratios are paired by repeat (:mod:`ggo.bench.paired`).
"""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path
from typing import Any, Callable

EXPERIMENT = "ggo-bench-cv"


@dataclasses.dataclass(frozen=True)
class CvRowOptions:
    """What the CV-row figure runs (``python -m ggo.bench --cv-row-*``)."""

    epochs: int = 6
    jobs: int = 2  # parallel jobs of the ``parallel`` way
    cores: int | None = None  # threads of the sequential way; None: the cores this process may use
    repeats: int = 1
    baseline: str | None = None  # another checkout to time the plain command from
    overrides: tuple[str, ...] = ()  # appended to every command (e.g. data.root=..., gen=attention_unet)
    timeout_s: float = 3600.0


def available_cores() -> int:
    """The CPU cores this process may run on (its affinity mask; the CPU count elsewhere)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def cv_overrides(opts: CvRowOptions) -> list[str]:
    """The command every way shares: the 5-fold preset at 128 px, fixed epochs, no early stop."""
    return ["-m", "+sweeps=cv", "preprocess=res128", f"train.epochs={opts.epochs}", "train.patience=0", *opts.overrides]


def way_overrides(opts: CvRowOptions) -> dict[str, list[str]]:
    """The launcher and thread overrides of each way (``baseline``: none, the plain command)."""
    cores = opts.cores or available_cores()
    if opts.jobs < 2:
        raise ValueError(f"CV row: jobs={opts.jobs}: the parallel way needs at least 2 jobs")
    ways = {
        "sequential": [f"train.threads={cores}"],
        "parallel": ["hydra/launcher=joblib", f"hydra.launcher.n_jobs={opts.jobs}", f"train.threads={max(1, cores // opts.jobs)}"],
    }  # fmt: skip
    return ({"baseline": []} if opts.baseline else {}) | ways


def way_command(way: str, opts: CvRowOptions, workdir: Path, repeat: int = 0) -> tuple[list[str], dict[str, str], str]:
    """``python -m ggo.train ...`` of one way into its own store and sweep dir under ``workdir``;
    the environment to run it in (the baseline's ``PYTHONPATH``) and its store's URI."""
    where = workdir / f"cv-{way}-{repeat}"
    uri = f"sqlite:///{where / 'mlflow.db'}"
    cmd = [
        sys.executable, "-m", "ggo.train", *cv_overrides(opts), *way_overrides(opts)[way],
        f"tracking.uri={uri}", f"tracking.experiment={EXPERIMENT}", f"hydra.sweep.dir={where / 'multirun'}",
    ]  # fmt: skip
    return cmd, _env(opts if way == "baseline" else None), uri


def check_checkout(path: str) -> Path:
    """The ggo checkout at ``path`` (resolved), or :class:`ggo.bench.BenchConfigError`."""
    from ggo.bench.errors import BenchConfigError

    root = Path(path).expanduser().resolve()
    if not (root / "ggo" / "train.py").is_file() or not (root / "conf" / "config.yaml").is_file():
        raise BenchConfigError(f"--cv-row-baseline {path}: no ggo checkout there (ggo/train.py and conf/config.yaml); "
                               "give the root of a ggo checkout, e.g. a git worktree of the commit to compare with")  # fmt: skip
    return root


def _env(opts: CvRowOptions | None) -> dict[str, str]:
    """This process's environment; for the baseline, with ``PYTHONPATH`` at its checkout."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if opts is not None and opts.baseline:
        env["PYTHONPATH"] = str(check_checkout(opts.baseline))
    return env


def _prepare_cache(opts: CvRowOptions, env: dict[str, str], workdir: Path) -> None:
    """Build the 128 px cache untimed, with the checkout the runs will use."""
    from ggo.bench.processes import check_finished, run_timed

    data = [o for o in opts.overrides if o.split("=", 1)[0].lstrip("+").split(".")[0] in ("data", "preprocess")]
    cmd = [sys.executable, "-m", "ggo.data", "prepare", "preprocess=res128", *data]
    check_finished(run_timed(cmd, cwd=workdir, timeout=opts.timeout_s, env=env), "the CV row's cache build")


def _jobs(uri: str) -> list[dict[str, float]]:
    """Per fold job: its run's wall seconds and its ``fit`` seconds, in start order."""
    from ggo import tracking

    exp = tracking.find_experiment(uri, EXPERIMENT)
    runs = tracking.search_runs(uri, [exp.experiment_id]) if exp else []
    children = sorted((r for r in runs if r.data.tags.get("mlflow.parentRunId")), key=lambda r: r.info.start_time)
    return [
        {"wall_s": round((r.info.end_time - r.info.start_time) / 1000.0, 2),
         "fit_s": round(float(r.data.metrics.get("train/seconds", float("nan"))), 2)}
        for r in children
    ]  # fmt: skip


def _time_way(way: str, opts: CvRowOptions, workdir: Path, repeat: int, log: Callable[[str], None]) -> dict[str, Any]:
    from ggo.bench.processes import check_finished, run_timed
    from ggo.tracking import ensure_store

    cmd, env, uri = way_command(way, opts, workdir, repeat)
    ensure_store(uri)
    got = run_timed(cmd, cwd=workdir, timeout=opts.timeout_s, env=env)
    check_finished(got, f"the CV row ({way})")
    jobs = _jobs(uri)
    log(f"[bench] CV row {way} #{repeat + 1}: {got['wall_s']:.0f} s ({len(jobs)} jobs)")
    return {"wall_s": round(got["wall_s"], 2), "jobs": jobs}


def _ratios(runs: dict[str, list[dict[str, Any]]], slow: str, fast: str) -> dict[str, Any] | None:
    """``slow`` wall over ``fast`` wall per repeat (> 1: ``fast`` finishes sooner), with spread."""
    from ggo.bench.paired import spread

    if slow not in runs or fast not in runs:
        return None
    values = [a["wall_s"] / b["wall_s"] for a, b in zip(runs[slow], runs[fast])]
    return {"values": [round(v, 3) for v in values], **{k: round(v, 3) for k, v in (spread(values) or {}).items()}}


def measure_cv_row(opts: CvRowOptions, workdir: Path, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Wall time of the 5-fold 128 px preset each way (see the module's docstring)."""
    import statistics

    import keras

    if keras.backend.backend() != "tensorflow":
        raise RuntimeError("the CV row times TensorFlow jobs (train.threads sets TensorFlow's thread pools): run it without --backend jax")
    ways = way_overrides(opts)
    for way in ways:
        _prepare_cache(opts, _env(opts if way == "baseline" else None), workdir)
    runs: dict[str, list[dict[str, Any]]] = {way: [] for way in ways}
    for repeat in range(opts.repeats):
        for way in ways:
            runs[way].append(_time_way(way, opts, workdir, repeat, log))
    return {
        "command": "python -m ggo.train " + " ".join(cv_overrides(opts)),
        "ways": {way: " ".join(ov) or "(the plain command)" for way, ov in ways.items()},
        "baseline": str(Path(opts.baseline).resolve()) if opts.baseline else None,
        "epochs": opts.epochs,
        "repeats": opts.repeats,
        "runs": runs,
        "wall_s": {way: round(statistics.median(r["wall_s"] for r in rs), 1) for way, rs in runs.items()},
        # > 1: the parallel way finishes sooner than the sequential one.
        "parallel_speedup": _ratios(runs, "sequential", "parallel"),
        # > 1: this checkout finishes sooner than the baseline's.
        "speedup_vs_baseline": {way: _ratios(runs, "baseline", way) for way in ("sequential", "parallel")} if opts.baseline else None,
    }  # fmt: skip


__all__ = ["CvRowOptions", "available_cores", "check_checkout", "cv_overrides", "measure_cv_row", "way_command", "way_overrides"]

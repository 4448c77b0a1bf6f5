"""Gather a sweep from MLflow into plain dataclasses: the parent, its children, what they logged.

Everything the report shows is read here, once: the runs, each child's objective curve and
per-image scores, the parent's own scores (a cross-validation parent's ``test`` and ``oof`` rows),
a Keras Tuner search's ``search_results.yaml``, and where the data came from. The rest of the
package computes and draws from these objects and never talks to MLflow.
"""

from __future__ import annotations

import math
import re
import shlex
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ggo import tracking
from ggo.evaluation import ggo_free, scores
from ggo.sweeps.folds import JOINED_TAG, cross_validation_groups

#: Tag a Keras Tuner search leaves on its parent (:mod:`ggo.sweeps.callback`).
SWEEPER_TAG = "ggo.sweeper"
SEARCH_RESULTS = "search_results.yaml"
CV_SUMMARY = "cv_summary.csv"
#: Overrides the Keras Tuner sweeper adds to every trial (not what makes a trial what it is).
TRIAL_BOOKKEEPING = ("trial_id=", "train.resume_from=", "train.initial_epoch=", "train.epochs=")


class ReportError(RuntimeError):
    """A report that cannot be made; the message says why and what to do."""


@dataclass
class Child:
    """One job of the sweep, as the report needs it."""

    run_id: str
    name: str
    status: str
    value: float  # the objective (NaN when the run logged none)
    metrics: dict[str, float]
    params: dict[str, str]
    tags: dict[str, str]
    minutes: float
    error: str
    curve: list[tuple[int, float]]  # (epoch, objective) of every validated epoch
    best_epoch: int | None
    per_image: pd.DataFrame | None = None  # scores/per_image.csv
    ggo_free: pd.DataFrame | None = None  # scores/ggo_free.csv

    @property
    def finished(self) -> bool:
        return self.status == "FINISHED"

    @property
    def trial_id(self) -> str | None:
        return self.tags.get("ggo.trial_id")

    @property
    def label(self) -> str:
        """The run's name, short: a search trial as ``trial 3: <its params>``, without the
        overrides every trial gets (its id, budget, checkpoint)."""
        if self.trial_id is None:
            return self.name
        words = [w for w in self.name.split() if not w.startswith(TRIAL_BOOKKEEPING)]
        return f"trial {self.trial_id}: " + " ".join(words)


@dataclass
class Sweep:
    """A sweep, cross-validation or Keras Tuner parent run and its children, best first."""

    uri: str
    run_id: str
    name: str
    status: str
    experiment_id: str
    objective: str
    kind: str  # "sweep", "cv" or "search"
    tags: dict[str, str]
    metrics: dict[str, float]
    started: float  # seconds since the epoch
    minutes: float
    children: list[Child]
    per_image: pd.DataFrame | None = None  # the parent's own (a CV parent: test and oof rows)
    ggo_free: pd.DataFrame | None = None
    cv_groups: list[list[Child]] = field(default_factory=list)
    cv_summary: pd.DataFrame | None = None
    search: dict[str, Any] | None = None

    @property
    def finished(self) -> list[Child]:
        return [c for c in self.children if c.finished]

    @property
    def swept(self) -> str:
        """What the sweep sweeps: its overrides with several values and its presets
        (``gen=unet,attention_unet``, ``+sweeps=cv``), else its run name."""
        if self.search and self.search.get("trials"):
            return "search over " + ", ".join(sorted((self.search["trials"][0].get("params") or {}).keys()))
        words = self.tags.get("ggo.overrides", "").split()
        swept = [w for w in words if "," in w or w.startswith("+sweeps=")]
        return " ".join(swept) or self.name


def resolve_parent(uri: str, ref: str, *, model_name: str) -> str:
    """The run id ``ref`` stands for: a run id, or ``champion``, the registered model alias's
    source run (its sweep's parent when that run is a sweep's child)."""
    if ref != tracking.CHAMPION:
        return ref
    version = tracking.model_version_by_alias(uri, model_name, tracking.CHAMPION)
    if version is None:
        raise ReportError(f"no '{model_name}@champion' in the registry at {uri}: promote a run first (python -m ggo.promote)")
    run = tracking.get_run(uri, version.run_id)
    return run.data.tags.get("mlflow.parentRunId") or version.run_id


def gather(uri: str, run_id: str, workdir: str | Path | None = None) -> Sweep:
    """Read parent ``run_id`` and its children (a ``python -m ggo.join`` run: the children of the
    parents it joined). Raises :class:`ReportError` for a run without children."""
    workdir = Path(workdir or tempfile.mkdtemp(prefix="ggo-report-"))
    try:
        parent = tracking.get_run(uri, run_id)
    except LookupError as exc:
        raise ReportError(f"{exc}. Pass the parent run id the sweep printed, or 'champion'.") from None
    runs = _children_of(uri, parent)
    if not runs:
        hint = parent.data.tags.get("mlflow.parentRunId")
        more = f": it is a child of sweep {hint}; pass that id" if hint else ": pass the parent run id the sweep printed"
        raise ReportError(f"run {run_id} ({parent.info.run_name}) has no child runs{more}")
    objective = parent.data.tags.get("ggo.objective", "val/dice")
    children = rank([_child(uri, r, objective, workdir) for r in runs])
    by_id = {c.run_id: c for c in children}
    groups = [[by_id[r.info.run_id] for r in group] for group in cross_validation_groups(runs)]
    search = _yaml(uri, run_id, SEARCH_RESULTS, workdir)
    kind = "search" if search is not None or parent.data.tags.get(SWEEPER_TAG) else ("cv" if groups else "sweep")
    return Sweep(
        uri=uri, run_id=run_id, name=parent.info.run_name or run_id[:8], status=parent.info.status,
        experiment_id=parent.info.experiment_id, objective=objective, kind=kind, tags=dict(parent.data.tags),
        metrics=dict(parent.data.metrics), started=(parent.info.start_time or 0) / 1000, minutes=_minutes(parent.info),
        children=children, per_image=_table(uri, run_id, scores.ARTIFACT, workdir),
        ggo_free=_table(uri, run_id, ggo_free.ARTIFACT, workdir), cv_groups=groups,
        cv_summary=_csv(uri, run_id, CV_SUMMARY, workdir), search=search,
    )  # fmt: skip


def rank(children: list[Child]) -> list[Child]:
    """Finished children by the objective (highest first, no value last), then the others."""
    return sorted(children, key=lambda c: (not c.finished, math.isnan(c.value), -c.value if not math.isnan(c.value) else 0))


def _children_of(uri: str, parent: Any) -> list[Any]:
    joined = parent.data.tags.get(JOINED_TAG)
    if joined:
        return [run for pid in joined.split(",") for run in tracking.child_runs(uri, pid.strip())]
    return tracking.child_runs(uri, parent.info.run_id)


def _minutes(info: Any) -> float:
    if not info.start_time:
        return float("nan")
    end = info.end_time or (time.time() * 1000 if info.status == "RUNNING" else None)
    return (end - info.start_time) / 60000 if end else float("nan")


def _child(uri: str, run: Any, objective: str, workdir: Path) -> Child:
    m, tags = run.data.metrics, run.data.tags
    epochs = m.get("train/epochs_run")
    best = m.get("train/best_epoch")
    error = tags.get(tracking.ERROR_TAG, "")
    if run.info.status in ("FAILED", "KILLED") and not error:
        error = f"{run.info.status}, no error recorded (see the run's error.txt or the job's log)"
    finished = run.info.status == "FINISHED"
    return Child(
        run_id=run.info.run_id, name=run.info.run_name or run.info.run_id[:8], status=run.info.status,
        value=float(m.get(objective, float("nan"))), metrics=dict(m), params=dict(run.data.params), tags=dict(tags),
        minutes=_minutes(run.info), error=error, curve=_curve(uri, run.info.run_id, objective, epochs),
        best_epoch=int(best) if best is not None else None,
        per_image=_table(uri, run.info.run_id, scores.ARTIFACT, workdir) if finished else None,
        ggo_free=_table(uri, run.info.run_id, ggo_free.ARTIFACT, workdir) if finished else None,
    )  # fmt: skip


def _curve(uri: str, run_id: str, key: str, epochs_run: float | None) -> list[tuple[int, float]]:
    """(epoch, value) by step; a finished run's last point (the best checkpoint's re-evaluation,
    logged one step past its last epoch) is left out."""
    history = tracking.client_for(uri).get_metric_history(run_id, key)
    points = sorted({m.step: m.value for m in sorted(history, key=lambda m: m.timestamp)}.items())
    if epochs_run is not None:
        points = [(s, v) for s, v in points if s <= int(epochs_run)]
    return [(int(s), float(v)) for s, v in points if math.isfinite(v)]


def _download(uri: str, run_id: str, path: str, workdir: Path) -> Path | None:
    try:
        return tracking.download_artifact(uri, run_id, path, workdir / run_id)
    except Exception:  # noqa: BLE001 - MLflow raises its own or OSError for a missing artifact
        return None


def _table(uri: str, run_id: str, path: str, workdir: Path) -> pd.DataFrame | None:
    local = _download(uri, run_id, path, workdir)
    if local is None:
        return None
    table = pd.read_csv(local, dtype={"image": str, "patient": str, "split": str})
    return table if {"image", "patient", "split"} <= set(table.columns) else None


def _csv(uri: str, run_id: str, path: str, workdir: Path) -> pd.DataFrame | None:
    local = _download(uri, run_id, path, workdir)
    return pd.read_csv(local) if local is not None else None


def _yaml(uri: str, run_id: str, path: str, workdir: Path) -> dict[str, Any] | None:
    import yaml

    local = _download(uri, run_id, path, workdir)
    return (yaml.safe_load(local.read_text()) or {}) if local is not None else None


def download(uri: str, run_id: str, path: str, workdir: str | Path) -> Path | None:
    """One artifact of a run under ``workdir``, or None when it has none."""
    return _download(uri, run_id, path, Path(workdir))


# --- how to get the same sweep again --------------------------------------------------------


@dataclass
class Provenance:
    """What reproduces the sweep: the command, the code, the data."""

    command: str
    exact: bool  # the command came from Hydra's own record (multirun.yaml), not the tag
    git_commit: str
    git_dirty: bool
    data: str
    cache: str
    cache_key: str
    dataset_digest: str


#: Where an override starts: ``key=``, ``+key=``, ``~key``, ``group/option=``.
_OVERRIDE = re.compile(r"^(\+\+|\+|~)?[\w./@-]+(=|$)")


def provenance(sweep: Sweep) -> Provenance:
    """The command that reproduces ``sweep``, its git commit and its data's digest."""
    command, exact = sweep_command(sweep.tags)
    child = sweep.finished[0] if sweep.finished else (sweep.children[0] if sweep.children else None)
    cache = child.tags.get("ggo.cache", "") if child else ""
    digest = ""
    config = Path(cache) / "config.json" if cache else None
    if config is not None and config.is_file():
        import json

        digest = str(json.loads(config.read_text()).get("dataset", ""))
    return Provenance(
        command=command, exact=exact, git_commit=sweep.tags.get("ggo.git_commit", ""),
        git_dirty=sweep.tags.get("ggo.git_dirty", "false") == "true", data=child.tags.get("data", "") if child else "",
        cache=cache, cache_key=Path(cache).name if cache else "", dataset_digest=digest,
    )  # fmt: skip


def sweep_command(tags: dict[str, str]) -> tuple[str, bool]:
    """``python -m ggo.train -m ...``: from the sweep dir's ``multirun.yaml`` when it is still
    there (every override exactly, the ``hydra/...`` ones too), else from the parent's
    ``ggo.overrides`` tag (task overrides only, joined by spaces)."""
    import yaml

    recorded = Path(tags.get("ggo.sweep_dir", "")) / "multirun.yaml"
    if tags.get("ggo.sweep_dir") and recorded.is_file():
        overrides = (yaml.safe_load(recorded.read_text()) or {}).get("hydra", {}).get("overrides", {})
        hydra = [o for o in overrides.get("hydra") or [] if o != "hydra.mode=MULTIRUN"]
        words = [*(overrides.get("task") or []), *hydra]
        return " ".join(["python -m ggo.train -m", *(shlex.quote(w) for w in words)]), True
    words: list[str] = []
    for piece in tags.get("ggo.overrides", "").split(" "):
        if words and not _OVERRIDE.match(piece):
            words[-1] += " " + piece  # a value with spaces: "{a: [4, 8]}"
        elif piece:
            words.append(piece)
    return " ".join(["python -m ggo.train -m", *(shlex.quote(w) for w in words)]), False

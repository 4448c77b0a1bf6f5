"""Which runs compete for promotion: FINISHED runs with a READY logged model and a finite value
of the ranking metric, in an experiment or one sweep (its children, and its parent when that
logged a model, e.g. a cross-validation ensemble whose folds then compete only as the ensemble)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ggo import tracking


class PromotionError(RuntimeError):
    """Nothing can be promoted: no experiment, sweep or eligible run. The message says why."""


@dataclass
class Candidate:
    """A FINISHED run with a logged model and a finite value of the metric."""

    run_id: str
    run_name: str
    value: float
    metrics: dict[str, float]
    tags: dict[str, str]
    model_id: str


def better(a: float, b: float, mode: str) -> bool:
    """Whether score ``a`` is strictly better than ``b`` under ``mode`` (``max`` or ``min``)."""
    return a > b if mode == "max" else a < b


def finite(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _scope(uri: str, experiment: str, parent_run_id: str | None) -> tuple[list[str], str | None, str]:
    """(experiment ids, the sweep's parent run id or None, a description) of the runs to consider."""
    exp = tracking.find_experiment(uri, experiment)
    if not parent_run_id:
        if exp is None:
            raise PromotionError(
                f"no experiment {experiment!r} in the MLflow store at {uri}: train first "
                f"(python -m ggo.train), or pass --experiment <name> or --tracking-uri <store>"
            )
        return [exp.experiment_id], None, f"experiment {experiment!r}"
    try:
        parent = tracking.get_run(uri, parent_run_id)
    except LookupError:
        # Not a run id: maybe the sweep id that every run of a sweep carries as a tag.
        where = f"tags.`{tracking.SWEEP_TAG}` = '{parent_run_id}'"
        runs = tracking.search_runs(uri, [exp.experiment_id], where) if exp else []
        parents = [r for r in runs if r.data.tags.get(tracking.ROLE_TAG) == "parent"]
        if not parents:
            raise PromotionError(
                f"--sweep {parent_run_id!r} is neither a run id in the MLflow store at {uri} nor a sweep id "
                f"in its experiment {experiment!r}: "
                f"pass the parent run id that 'python -m ggo.train -m' printed ('parent MLflow run ...')"
            ) from None
        parent = parents[0]
    pid = parent.info.run_id
    return [parent.info.experiment_id], pid, f"sweep {pid} ({parent.info.run_name!r})"


def find_candidates(
    uri: str, *, metric: str, mode: str, experiment: str, parent_run_id: str | None
) -> tuple[list[Candidate], dict[str, int], str]:
    """Eligible runs sorted best first, counts of the runs left out by reason, and the scope's description."""
    exp_ids, pid, scope = _scope(uri, experiment, parent_run_id)
    if pid:
        # The parent itself counts too: a cross-validation parent carries the fold-ensemble model.
        runs = [*tracking.search_runs(uri, exp_ids, f"tags.mlflow.parentRunId = '{pid}'"), tracking.get_run(uri, pid)]
    else:
        runs = tracking.search_runs(uri, exp_ids)
    with_model = tracking.runs_with_model(uri, exp_ids)
    # A fold's model is one part of its cross-validation ensemble: the ensemble (the parent, val/*
    # = the fold means) competes for it. A single fold's val/dice is one fold's luck, not comparable.
    ensembles = {
        r.info.run_id for r in runs
        if r.data.tags.get("fold") == "ensemble" and r.info.status == "FINISHED" and r.info.run_id in with_model
    }  # fmt: skip
    skipped: dict[str, int] = {}
    found: list[Candidate] = []
    for run in runs:
        status = run.info.status
        value = run.data.metrics.get(metric)
        if run.data.tags.get("mlflow.parentRunId") in ensembles:
            reason = "folds of a promoted-as-a-whole ensemble"
        elif status != "FINISHED":
            reason = status
        elif run.info.run_id not in with_model:
            reason = "no model"
        elif not finite(value):
            reason = f"no {metric}"
        else:
            found.append(
                Candidate(
                    run_id=run.info.run_id,
                    run_name=run.info.run_name or run.info.run_id,
                    value=float(value),
                    metrics=dict(run.data.metrics),
                    tags=dict(run.data.tags),
                    model_id=with_model[run.info.run_id].model_id,
                )
            )
            continue
        skipped[reason] = skipped.get(reason, 0) + 1
    # Best first; among equals the newest run (search order) stays first.
    found.sort(key=lambda c: -c.value if mode == "max" else c.value)
    return found, skipped, scope


def describe_skipped(skipped: dict[str, int]) -> str:
    return ", ".join(f"{n} {reason}" for reason, n in sorted(skipped.items())) or "none"

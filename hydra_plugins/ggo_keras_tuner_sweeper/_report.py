"""The ranking of every trial of a search (earlier invocations too): a YAML file and a log table.

The file goes to the sweep dir as ``search_results.yaml`` (:data:`config.RESULTS_FILE`); ggo's
MLflow sweep callback attaches it to the sweep's parent run, so the sweeper never talks to MLflow.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from ._state import COMPLETED, TUNER_PREFIX, read_job, replace_text
from .config import RESULTS_FILE, KerasTunerSweeperConf

log = logging.getLogger(__name__)


def trial_rows(oracle: Any, project: Path, *, maximize: bool) -> list[dict[str, Any]]:
    """One row per trial, best first; trials without a score (failed, running) last."""
    rows = []
    for trial in oracle.trials.values():
        record = read_job(project, trial.trial_id)
        values = trial.hyperparameters.values
        row = {
            "trial_id": trial.trial_id,
            "status": str(trial.status),
            "value": float(trial.score) if trial.status == COMPLETED and trial.score is not None else None,
            "params": {k: v for k, v in values.items() if not k.startswith(TUNER_PREFIX)},
        }
        if "tuner/epochs" in values:
            row["epochs"] = values["tuner/epochs"]
        if values.get("tuner/trial_id") is not None:
            row["continues"] = values["tuner/trial_id"]
        row["output_dir"] = record.get("output_dir")
        if record.get("error"):
            row["error"] = record["error"]
        rows.append(row)
    sign = -1 if maximize else 1
    rows.sort(key=lambda r: (r["value"] is None, sign * (r["value"] or 0)))
    return rows


def write_report(conf: KerasTunerSweeperConf, oracle: Any, project: Path, sweep_dir: Path) -> Path:
    """Rank every trial in ``<sweep_dir>/search_results.yaml`` and log the table; return the file."""
    rows = trial_rows(oracle, project, maximize=conf.direction.value == "max")
    best = rows[0] if rows and rows[0]["value"] is not None else None
    results = {
        "name": "keras_tuner",
        "oracle": conf.oracle.value,
        "objective": conf.objective,
        "direction": conf.direction.value,
        "directory": str(project),
        "best_value": best["value"] if best else None,
        "best_params": best["params"] if best else None,
        "trials": rows,
    }
    path = sweep_dir / RESULTS_FILE
    replace_text(path, OmegaConf.to_yaml(OmegaConf.create(results)))
    log.info(
        "Keras Tuner search (%s, %s %s), every trial so far:\n%s",
        conf.oracle.value, conf.direction.value, conf.objective, table(rows, conf.objective),
    )  # fmt: skip
    log.info("Results: %s", path)
    return path


def table(rows: list[dict[str, Any]], objective: str) -> str:
    """The ranking as a fixed-width text table."""
    lines = [f"{'rank':>4}  {'trial':>5}  {'status':<9}  {objective:>10}  params"]
    for rank, row in enumerate(rows, 1):
        score = f"{row['value']:.4f}" if row["value"] is not None else "-"
        params = " ".join(f"{k}={v}" for k, v in row["params"].items())
        extra = ""
        if "epochs" in row:
            extra = f"  (epochs {row['epochs']}" + (f", continues {row['continues']})" if "continues" in row else ")")
        lines.append(f"{rank:>4}  {row['trial_id']:>5}  {row['status']:<9}  {score:>10}  {params}{extra}")
    return "\n".join(lines)

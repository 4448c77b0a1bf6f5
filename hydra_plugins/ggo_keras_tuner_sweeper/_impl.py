"""Keras Tuner oracles driving a Hydra multirun (ask/tell).

The loop, per batch of ``n_parallel`` trials::

    trial = oracle.create_trial(slot)                 # ask (Hyperband may answer IDLE or STOPPED)
    overrides = fixed + trial values (+ budget, resume path, trial id)
    results = launcher.launch(batch, initial_job_idx) # basic, joblib, ray: whatever hydra/launcher is
    oracle.update_trial(id, {objective: value}); oracle.end_trial(trial)   # tell

A job that raised (``JobStatus.FAILED``), returned NaN/None (ggo's task does that for a failed run
inside a sweep) or whose overrides do not compose ends as a FAILED trial; the search goes on
until ``max_consecutive_failed_trials`` fail in a row.

Hyperband: ``tuner/epochs`` becomes ``budget_key`` (``train.epochs``), and a trial that continues
an earlier one (``tuner/trial_id``) gets ``initial_epoch_key`` and ``resume_key`` = the checkpoint
its parent's job left in its output directory (``_state.checkpoint_of``).

Resume: the oracle's state lives in ``<directory>/<project_name>`` and is saved after every
ask and tell, each file written whole (``_state.whole_state_files``). Rerunning the same command reloads it (``_state.load_oracle``): finished trials are
never repeated, ``max_trials`` counts every trial of the search, and a trial that was RUNNING
when the search was interrupted is run again from scratch (same id, same values, same budget)
before any new trial; that is Keras Tuner's own rule (its retry queue). A search whose space,
objective or fixed overrides differ from the saved one is refused.

The search space is parsed in ``_space``, the state kept by ``_state``, the driver lock is
``_lock`` and the ranking ``_report``; this module is the loop.
"""

from __future__ import annotations

import logging
import math
import os
import time
from numbers import Number
from pathlib import Path
from typing import Any, List, Mapping, Optional, Sequence

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn, JobStatus
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

from . import _state
from ._lock import LOCK_FILE, DriverLock
from ._report import write_report
from ._space import build_space, flatten_params, format_value, plain, round_value
from ._state import COMPLETED, FAILED, RUNNING, STOPPED, TUNER_PREFIX
from .config import KerasTunerSweeperConf

log = logging.getLogger(__name__)


class KerasTunerSweeperImpl(Sweeper):
    """The ask/tell loop; ``conf`` holds every setting (defaults and checks live there)."""

    def __init__(self, conf: KerasTunerSweeperConf) -> None:
        self.conf = conf
        self.params = flatten_params(plain(conf.params) or {})
        self.hydra_context: Optional[HydraContext] = None
        self.config: Optional[DictConfig] = None
        self.launcher: Any = None
        self.oracle: Any = None
        self.project_dir: Optional[Path] = None
        self.job_idx = 0

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.hydra_context = hydra_context
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )
        objective = self.conf.objective
        app_objective = OmegaConf.select(config, "objective", default=None)
        if isinstance(app_objective, str) and app_objective != objective:
            raise ValueError(
                f"hydra.sweeper.objective={objective!r} but the task returns objective={app_objective!r}: "
                f"set both to the same metric (objective={objective} hydra.sweeper.objective={objective})"
            )

    # ---------------------------------------------------------------- the search
    def sweep(self, arguments: List[str]) -> Any:
        assert self.config is not None and self.launcher is not None and self.hydra_context is not None
        hp, fixed = self._space(arguments)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")

        cwd = Path(str(OmegaConf.select(self.config, "hydra.runtime.cwd", default=os.getcwd())))
        self.project_dir = _state.project_dir(self.conf, cwd)
        with DriverLock(self.project_dir / LOCK_FILE), _state.whole_state_files():
            if self.conf.overwrite:  # only now: a running search's driver holds the lock, and its state stays
                _state.clear(self.project_dir, keep=LOCK_FILE)
            self.oracle = _state.load_oracle(self.conf, self.project_dir, hp, fixed)
            returns: list[Sequence[JobReturn]] = []
            try:
                self._search(fixed, returns)
            except KeyboardInterrupt:
                log.warning(
                    "Search interrupted; its state is in %s. Rerun the same command to resume "
                    "(the interrupted trials run again first).", self.project_dir
                )  # fmt: skip
                raise
            write_report(self.conf, self.oracle, self.project_dir, sweep_dir)
        return returns

    def _space(self, arguments: List[str]) -> tuple[Any, list[str]]:
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        cli = parser.parse_overrides(list(arguments))
        c = self.conf
        per_trial = (c.budget_key, c.initial_epoch_key, c.resume_key) if c.hyperband else ()
        return build_space(self.params, cli, per_trial)

    def _search(self, fixed: list[str], returns: list) -> None:
        failed_in_a_row = 0
        limit = self.conf.max_consecutive_failed_trials
        while True:
            batch, stopped = self._ask()
            if not batch:
                if not stopped:
                    log.warning("The oracle has no trial to give and none is running; ending the search.")
                return
            jobs, legal = [], []
            for trial in batch:
                overrides = self._overrides(trial, fixed)
                error = self._compose_error(overrides)
                if error:
                    self._tell(trial, None, f"the overrides do not compose: {error}", overrides=overrides)
                    failed_in_a_row += 1
                else:
                    jobs.append(overrides)
                    legal.append(trial)
            if jobs:
                results = self.launcher.launch(jobs, initial_job_idx=self.job_idx)
                returns.append(results)
                for trial, overrides, result in zip(legal, jobs, results):
                    value, error = self._objective_of(result)
                    self._tell(trial, value, error, overrides=overrides, result=result, job_num=self.job_idx)
                    self.job_idx += 1
                    failed_in_a_row = failed_in_a_row + 1 if error else 0
            if limit and failed_in_a_row >= limit:
                log.error(
                    "Stopping the search: %d trials failed in a row (hydra.sweeper.max_consecutive_failed_trials); "
                    "see their errors above and in %s", failed_in_a_row, self.project_dir
                )  # fmt: skip
                return
            if stopped:
                return

    def _ask(self) -> tuple[list[Any], bool]:
        """Up to ``n_parallel`` new trials; ``stopped`` when the oracle has none left to give."""
        batch: list[Any] = []
        for slot in range(self.conf.n_parallel):
            trial = self.oracle.create_trial(f"hydra-{slot}")
            if trial.status == RUNNING:
                batch.append(trial)
            elif trial.status == STOPPED:
                return batch, True
            else:  # IDLE: Hyperband waits for this batch's trials before its next round
                break
        return batch, False

    def _tell(
        self,
        trial: Any,
        value: Optional[float],
        error: Optional[str],
        *,
        overrides: list[str],
        result: Optional[JobReturn] = None,
        job_num: Optional[int] = None,
    ) -> None:
        record = {
            "trial_id": trial.trial_id,
            "status": "FAILED" if error else "COMPLETED",
            "value": value,
            "error": error,
            "overrides": overrides,
            "output_dir": _output_dir(result, job_num, self.config),
            "job_num": job_num,
            "sweep_dir": str(Path(str(self.config.hydra.sweep.dir)).resolve()),
            "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
        }
        _state.write_job(self.project_dir, trial.trial_id, record)
        if error:
            log.warning("Trial %s FAILED: %s", trial.trial_id, error)
            trial.status = FAILED
            trial.message = error
        else:
            step = int(trial.hyperparameters.values.get("tuner/epochs", 0))
            self.oracle.update_trial(trial.trial_id, {self.conf.objective: float(value)}, step=step)
            trial.status = COMPLETED
        self.oracle.end_trial(trial)
        # end_trial saves the state before it drops the trial from ongoing_trials; a search stopped
        # right after would re-run it on resume. Save again.
        self.oracle.save()

    def _objective_of(self, result: JobReturn) -> tuple[Optional[float], Optional[str]]:
        """The trial's score, or why there is none."""
        objective = self.conf.objective
        if result.status == JobStatus.FAILED:
            exc = result._return_value
            return None, f"{type(exc).__name__}: {exc}"
        value = result.return_value
        if isinstance(value, Mapping):
            value = value.get(objective)
        if isinstance(value, bool) or not isinstance(value, Number):
            return None, f"the task returned {value!r}, not a number for {objective}"
        if not math.isfinite(float(value)):
            return None, f"the task returned {value} for {objective} (a failed run)"
        return float(value), None

    # ---------------------------------------------------------------- trial -> job
    def _overrides(self, trial: Any, fixed: list[str]) -> list[str]:
        c = self.conf
        values = trial.hyperparameters.values
        for name, value in list(values.items()):
            values[name] = round_value(value)
        job: list[str] = []
        if c.trial_id_key:
            job.append(f"{c.trial_id_key}={trial.trial_id}")  # digits: Hydra reads "0" as 0, "01" as "01"
        job.extend(f"{name}={format_value(value)}" for name, value in values.items() if not name.startswith(TUNER_PREFIX))
        if "tuner/epochs" in values and c.budget_key:
            job.append(f"{c.budget_key}={int(values['tuner/epochs'])}")
            parent = values.get("tuner/trial_id")
            if parent is not None:
                if c.initial_epoch_key:
                    job.append(f"{c.initial_epoch_key}={int(values['tuner/initial_epoch'])}")
                if c.resume_key:
                    checkpoint = _state.checkpoint_of(self.project_dir, str(parent), c.checkpoint)
                    job.append(f"{c.resume_key}={format_value(checkpoint)}")
        return [*fixed, *job]

    def _compose_error(self, overrides: list[str]) -> Optional[str]:
        try:
            self.validate_batch_is_legal([overrides])
        except Exception as exc:  # noqa: BLE001 - one bad trial must not end the search
            return f"{type(exc).__name__}: {exc}".strip()
        return None


def _output_dir(result: Optional[JobReturn], job_num: Optional[int], config: Any) -> Optional[str]:
    """Where a job wrote its files (its checkpoint): from the job's own Hydra config when it came back."""
    hydra_cfg = getattr(result, "hydra_cfg", None) if result is not None else None
    out = OmegaConf.select(hydra_cfg, "hydra.runtime.output_dir", default=None) if hydra_cfg is not None else None
    if out:
        return str(out)
    if job_num is None:
        return None
    return str(Path(str(config.hydra.sweep.dir)).resolve() / str(job_num))

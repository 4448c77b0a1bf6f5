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
its parent's job left in its output directory. Each trial's job (output dir, overrides, result)
is kept in ``<project dir>/trial_<id>/hydra_job.json``, so a parent run by an earlier invocation
is found too.

Resume: the oracle's state lives in ``<directory>/<project_name>`` and is saved after every
ask and tell. Rerunning the same command reloads it (``oracle.reload()``): finished trials are
never repeated, ``max_trials`` counts every trial of the search, and a trial that was RUNNING
when the search was interrupted is run again from scratch (same id, same values, same budget)
before any new trial; that is Keras Tuner's own rule (its retry queue). A search whose space,
objective or fixed overrides differ from the saved one is refused (use another ``project_name``
or ``overwrite=true``).
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
import socket
import time
from numbers import Number
from pathlib import Path
from typing import Any, Iterable, List, Mapping, Optional, Sequence

import keras_tuner as kt
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn, JobStatus
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, ListConfig, OmegaConf

log = logging.getLogger(__name__)

JOB_FILE = "hydra_job.json"  # per trial, in the oracle's trial_<id> folder
SEARCH_FILE = "search.json"  # what defines the search (checked on resume)
LOCK_FILE = "driver.lock"  # one driver per oracle directory
RESULTS_FILE = "search_results.yaml"  # ranking of every trial, written to the sweep dir
TUNER_PREFIX = "tuner/"  # Hyperband's bookkeeping values: never config keys

RUNNING = kt.engine.trial.TrialStatus.RUNNING
COMPLETED = kt.engine.trial.TrialStatus.COMPLETED
FAILED = kt.engine.trial.TrialStatus.FAILED
STOPPED = kt.engine.trial.TrialStatus.STOPPED
IDLE = kt.engine.trial.TrialStatus.IDLE


class SearchSpaceError(ValueError):
    """A ``params`` entry cannot be turned into a Keras Tuner hyperparameter."""


# --- the search space ---------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    if isinstance(value, (DictConfig, ListConfig)):
        return OmegaConf.to_container(value, resolve=True)
    return value


def flatten_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{gen: {base_filters: [8, 16]}}`` -> ``{"gen.base_filters": [8, 16]}``; a dict with ``type``
    or ``values`` is a spec, not a level (``+hydra.sweeper.params.gen.base_filters=[8,16]`` nests)."""
    flat: dict[str, Any] = {}
    for key, spec in params.items():
        if isinstance(spec, Mapping) and not ({"type", "values"} & set(spec)):
            flat.update(flatten_params(spec, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = spec
    return flat


def add_param(hp: kt.HyperParameters, key: str, spec: Any) -> Optional[str]:
    """Register ``key`` in ``hp`` from a ``params`` entry; return an override when it is fixed.

    ``spec``: a dict with ``type`` (choice, int, float, boolean), a list (choice), or a string in
    Hydra's sweep syntax (``a,b``, ``choice(a,b)``, ``range(1,5)``, ``interval(0.1,1)``,
    ``tag(log,interval(1e-5,1e-3))``); a single value fixes ``key`` for every trial.
    """
    spec = _plain(spec)
    if isinstance(spec, list):
        spec = {"type": "choice", "values": spec}
    if not isinstance(spec, dict):
        override = OverridesParser.create().parse_override(f"{key}={format_value(spec) if not isinstance(spec, str) else spec}")
        if not override.is_sweep_override():
            return override.input_line
        add_override(hp, override)
        return None
    kind = str(spec.get("type", "choice" if "values" in spec else "")).lower()
    extra = set(spec) - {"type", "values", "min", "max", "step", "sampling", "default"}
    if extra:
        raise SearchSpaceError(f"hydra.sweeper.params.{key}: unknown field(s) {sorted(extra)}")
    try:
        if kind == "choice":
            values = spec.get("values")
            if not values:
                raise SearchSpaceError(f"hydra.sweeper.params.{key}: a choice needs a non-empty 'values' list")
            hp.Choice(key, values, default=spec.get("default"))
        elif kind in ("int", "float"):
            if "min" not in spec or "max" not in spec:
                raise SearchSpaceError(f"hydra.sweeper.params.{key}: type {kind} needs 'min' and 'max'")
            make = hp.Int if kind == "int" else hp.Float
            make(
                key,
                spec["min"],
                spec["max"],
                step=spec.get("step"),
                sampling=str(spec.get("sampling", "linear")),
                default=spec.get("default"),
            )
        elif kind in ("boolean", "bool"):
            hp.Boolean(key, default=bool(spec.get("default", False)))
        else:
            raise SearchSpaceError(
                f"hydra.sweeper.params.{key}: type {spec.get('type')!r} is not one of choice, int, float, boolean"
            )
    except SearchSpaceError:
        raise
    except (TypeError, ValueError) as exc:  # Keras Tuner's own checks (log sampling of 0, mixed types, ...)
        raise SearchSpaceError(f"hydra.sweeper.params.{key}: {exc}") from None
    return None


def add_override(hp: kt.HyperParameters, override: Override) -> None:
    """A sweep override (``key=a,b``, ``key=interval(0,1)``) as a hyperparameter."""
    key = override.get_key_element()
    if override.is_interval_sweep():
        sweep = override.value()  # Hydra's intervals are continuous: a float hyperparameter
        sampling = "log" if "log" in (sweep.tags or set()) else "linear"
        hp.Float(key, float(sweep.start), float(sweep.end), sampling=sampling)
    elif override.is_discrete_sweep():
        hp.Choice(key, list(override.sweep_string_iterator()))
    else:
        raise SearchSpaceError(f"{override.input_line}: this sweep type cannot become a Keras Tuner hyperparameter")


_PLAIN_VALUE = re.compile(r"^[A-Za-z0-9_./:@+\-]+$")


def format_value(value: Any) -> str:
    """A Python value as the right-hand side of a Hydra override."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    text = str(value)
    if _PLAIN_VALUE.match(text) and not re.fullmatch(r"[+\-]?(\d[\d_]*|\d*\.\d+([eE][+\-]?\d+)?|\d+[eE][+\-]?\d+|inf|nan|true|false|null)", text, re.I):
        return text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _round(value: Any) -> Any:
    """Floats to 4 significant digits: readable overrides and run names, same value for oracle and job."""
    if isinstance(value, float) and math.isfinite(value) and value != 0:
        return float(f"{value:.4g}")
    return value


# --- the sweeper --------------------------------------------------------------------------------


class KerasTunerSweeperImpl(Sweeper):
    def __init__(
        self,
        *,
        oracle: str = "hyperband",
        objective: str = "val/dice",
        direction: str = "max",
        max_trials: Optional[int] = 10,
        n_parallel: int = 1,
        seed: Optional[int] = None,
        max_epochs: int = 10,
        factor: int = 3,
        hyperband_iterations: int = 1,
        num_initial_points: Optional[int] = None,
        max_consecutive_failed_trials: int = 3,
        directory: Optional[str] = None,
        project_name: str = "search",
        overwrite: bool = False,
        budget_key: Optional[str] = "train.epochs",
        initial_epoch_key: Optional[str] = "train.initial_epoch",
        resume_key: Optional[str] = "train.resume_from",
        checkpoint: str = "checkpoint.weights.h5",
        trial_id_key: Optional[str] = "trial_id",
        params: Optional[Mapping[str, Any]] = None,
    ) -> None:
        self.oracle_name = str(getattr(oracle, "value", oracle))
        self.objective = objective
        self.direction = str(getattr(direction, "value", direction))
        if self.oracle_name not in ("random", "bayesian", "hyperband"):
            raise ValueError(f"hydra.sweeper.oracle={self.oracle_name!r}: use random, bayesian or hyperband")
        if self.direction not in ("max", "min"):
            raise ValueError(f"hydra.sweeper.direction={self.direction!r}: use max or min")
        if n_parallel < 1:
            raise ValueError(f"hydra.sweeper.n_parallel={n_parallel}: must be >= 1")
        if max_trials is not None and max_trials < 1:
            raise ValueError(f"hydra.sweeper.max_trials={max_trials}: must be >= 1 (or null)")
        if self.oracle_name != "hyperband" and max_trials is None:
            raise ValueError(f"hydra.sweeper.max_trials: the {self.oracle_name} oracle needs a number of trials")
        self.max_trials = max_trials
        self.n_parallel = int(n_parallel)
        self.seed = seed
        self.max_epochs, self.factor, self.hyperband_iterations = int(max_epochs), int(factor), int(hyperband_iterations)
        self.num_initial_points = num_initial_points
        self.max_consecutive_failed = int(max_consecutive_failed_trials)
        self.directory = directory
        self.project_name = project_name
        self.overwrite = bool(overwrite)
        self.budget_key, self.initial_epoch_key, self.resume_key = budget_key, initial_epoch_key, resume_key
        self.checkpoint = checkpoint
        self.trial_id_key = trial_id_key
        self.params = flatten_params(_plain(params) or {})

        self.hydra_context: Optional[HydraContext] = None
        self.config: Optional[DictConfig] = None
        self.launcher: Any = None
        self.oracle: Any = None
        self.project_dir: Optional[Path] = None
        self.job_idx = 0

    # ---------------------------------------------------------------- setup
    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.hydra_context = hydra_context
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )
        app_objective = OmegaConf.select(config, "objective", default=None)
        if isinstance(app_objective, str) and app_objective != self.objective:
            raise ValueError(
                f"hydra.sweeper.objective={self.objective!r} but the task returns objective={app_objective!r}: "
                f"set both to the same metric (objective={self.objective} hydra.sweeper.objective={self.objective})"
            )

    # ---------------------------------------------------------------- the search
    def sweep(self, arguments: List[str]) -> Any:
        assert self.config is not None and self.launcher is not None and self.hydra_context is not None
        hp, fixed = self._space(arguments)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")

        self.project_dir = self._project_dir()
        with _DriverLock(self.project_dir / LOCK_FILE):
            self.oracle = self._load_oracle(hp, fixed)
            returns: list[Sequence[JobReturn]] = []
            try:
                self._search(fixed, returns)
            except KeyboardInterrupt:
                log.warning(
                    "Search interrupted; its state is in %s. Rerun the same command to resume "
                    "(the interrupted trials run again first).", self.project_dir
                )
                raise
            self._report(sweep_dir)
        return returns

    def _search(self, fixed: list[str], returns: list) -> None:
        failed_in_a_row = 0
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
            if self.max_consecutive_failed and failed_in_a_row >= self.max_consecutive_failed:
                log.error(
                    "Stopping the search: %d trials failed in a row (hydra.sweeper.max_consecutive_failed_trials); "
                    "see their errors above and in %s", failed_in_a_row, self.project_dir
                )
                return
            if stopped:
                return

    def _ask(self) -> tuple[list[Any], bool]:
        """Up to ``n_parallel`` new trials; ``stopped`` when the oracle has none left to give."""
        batch: list[Any] = []
        for slot in range(self.n_parallel):
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
        output_dir = _output_dir(result, job_num, self.config)
        record = {
            "trial_id": trial.trial_id,
            "status": "FAILED" if error else "COMPLETED",
            "value": value,
            "error": error,
            "overrides": overrides,
            "output_dir": output_dir,
            "job_num": job_num,
            "sweep_dir": str(Path(str(self.config.hydra.sweep.dir)).resolve()),
            "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
        }
        (self.project_dir / f"trial_{trial.trial_id}").mkdir(parents=True, exist_ok=True)
        (self.project_dir / f"trial_{trial.trial_id}" / JOB_FILE).write_text(json.dumps(record, indent=2))
        if error:
            log.warning("Trial %s FAILED: %s", trial.trial_id, error)
            trial.status = FAILED
            trial.message = error
        else:
            step = int(trial.hyperparameters.values.get("tuner/epochs", 0))
            self.oracle.update_trial(trial.trial_id, {self.objective: float(value)}, step=step)
            trial.status = COMPLETED
        self.oracle.end_trial(trial)
        # end_trial saves the state before it drops the trial from ongoing_trials; a search stopped
        # right after would re-run it on resume. Save again.
        self.oracle.save()

    def _objective_of(self, result: JobReturn) -> tuple[Optional[float], Optional[str]]:
        """The trial's score, or why there is none."""
        if result.status == JobStatus.FAILED:
            exc = result._return_value
            return None, f"{type(exc).__name__}: {exc}"
        value = result.return_value
        if isinstance(value, Mapping):
            value = value.get(self.objective)
        if isinstance(value, bool) or not isinstance(value, Number):
            return None, f"the task returned {value!r}, not a number for {self.objective}"
        if not math.isfinite(float(value)):
            return None, f"the task returned {value} for {self.objective} (a failed run)"
        return float(value), None

    # ---------------------------------------------------------------- trial -> job
    def _overrides(self, trial: Any, fixed: list[str]) -> list[str]:
        values = trial.hyperparameters.values
        for name, value in list(values.items()):
            values[name] = _round(value)
        job: list[str] = []
        if self.trial_id_key:
            job.append(f"{self.trial_id_key}={trial.trial_id}")  # digits: Hydra reads "0" as 0, "01" as "01"
        job.extend(f"{name}={format_value(value)}" for name, value in values.items() if not name.startswith(TUNER_PREFIX))
        if "tuner/epochs" in values and self.budget_key:
            job.append(f"{self.budget_key}={int(values['tuner/epochs'])}")
            parent = values.get("tuner/trial_id")
            if parent is not None:
                if self.initial_epoch_key:
                    job.append(f"{self.initial_epoch_key}={int(values['tuner/initial_epoch'])}")
                if self.resume_key:
                    job.append(f"{self.resume_key}={format_value(self._checkpoint_of(str(parent)))}")
        return [*fixed, *job]

    def _checkpoint_of(self, trial_id: str) -> str:
        record_path = self.project_dir / f"trial_{trial_id}" / JOB_FILE
        if not record_path.is_file():
            raise RuntimeError(
                f"Hyperband continues trial {trial_id}, but {record_path} is missing: the oracle state in "
                f"{self.project_dir} is incomplete (start afresh with hydra.sweeper.overwrite=true)"
            )
        record = json.loads(record_path.read_text())
        path = Path(record["output_dir"]) / self.checkpoint
        if not path.exists():  # a remote worker may still see it (a shared sweep dir); the job fails otherwise
            log.warning("Checkpoint %s of trial %s is not visible from the driver", path, trial_id)
        return str(path)

    def _compose_error(self, overrides: list[str]) -> Optional[str]:
        try:
            self.validate_batch_is_legal([overrides])
        except Exception as exc:  # noqa: BLE001 - one bad trial must not end the search
            return f"{type(exc).__name__}: {exc}".strip()
        return None

    # ---------------------------------------------------------------- space, oracle, state
    def _space(self, arguments: List[str]) -> tuple[kt.HyperParameters, list[str]]:
        """The hyperparameters (``params`` + command-line sweeps) and the overrides every trial gets."""
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        cli = parser.parse_overrides(list(arguments))
        cli_keys = {o.get_key_element() for o in cli}
        hp = kt.HyperParameters()
        fixed: list[str] = []
        for key, spec in self.params.items():
            if key in cli_keys:  # the command line wins over the preset
                log.info("%s is set on the command line: its hydra.sweeper.params entry is ignored", key)
                continue
            line = add_param(hp, key, spec)
            if line:
                fixed.append(line)
        budget_keys = {self.budget_key, self.initial_epoch_key, self.resume_key} if self.oracle_name == "hyperband" else set()
        for override in cli:
            key = override.get_key_element()
            if override.is_sweep_override():
                add_override(hp, override)
            elif key in budget_keys - {None}:
                log.info("%s is set by Hyperband for each trial: ignoring %s", key, override.input_line)
            else:
                fixed.append(override.input_line)
        if not hp.space:
            log.warning("The search space is empty: every trial runs the same configuration")
        return hp, fixed

    def _project_dir(self) -> Path:
        cwd = Path(str(OmegaConf.select(self.config, "hydra.runtime.cwd", default=os.getcwd())))
        directory = Path(self.directory) if self.directory else Path("multirun") / "keras_tuner"
        if not directory.is_absolute():
            directory = cwd / directory
        project = directory / self.project_name
        if self.overwrite and project.exists():
            log.info("hydra.sweeper.overwrite=true: deleting the earlier search in %s", project)
            shutil.rmtree(project)
        project.mkdir(parents=True, exist_ok=True)
        return project

    def _make_oracle(self, hp: kt.HyperParameters) -> Any:
        common = dict(
            objective=kt.Objective(self.objective, direction=self.direction),
            hyperparameters=hp,
            seed=self.seed,
            # The sweeper counts failures itself, after the state is saved (Keras Tuner raises first).
            max_consecutive_failed_trials=None,
        )
        if self.oracle_name == "random":
            oracle = kt.oracles.RandomSearchOracle(max_trials=self.max_trials, **common)
        elif self.oracle_name == "bayesian":
            oracle = kt.oracles.BayesianOptimizationOracle(
                max_trials=self.max_trials, num_initial_points=self.num_initial_points, **common
            )
        else:
            oracle = kt.oracles.HyperbandOracle(
                max_epochs=self.max_epochs, factor=self.factor, hyperband_iterations=self.hyperband_iterations, **common
            )
        return oracle

    def _definition(self, hp: kt.HyperParameters, fixed: list[str]) -> dict[str, Any]:
        """What makes two invocations the same search (``max_trials`` and tracking may change)."""
        keep = [o for o in fixed if not o.lstrip("+~").startswith(("hydra.", "hydra/", "tracking."))]
        definition: dict[str, Any] = {
            "oracle": self.oracle_name,
            "objective": self.objective,
            "direction": self.direction,
            "space": hp.get_config(),
            "fixed_overrides": sorted(keep),
            "seed": self.seed,
        }
        if self.oracle_name == "hyperband":
            definition.update(max_epochs=self.max_epochs, factor=self.factor, hyperband_iterations=self.hyperband_iterations)
        return json.loads(json.dumps(definition, default=str))

    def _load_oracle(self, hp: kt.HyperParameters, fixed: list[str]) -> Any:
        oracle = self._make_oracle(hp)
        oracle._set_project_dir(str(self.project_dir.parent), self.project_dir.name)
        definition = self._definition(hp, fixed)
        search_file = self.project_dir / SEARCH_FILE
        if (self.project_dir / "oracle.json").exists():
            saved = json.loads(search_file.read_text()) if search_file.exists() else None
            if saved is not None and saved != definition:
                changed = sorted(k for k in set(saved) | set(definition) if saved.get(k) != definition.get(k))
                raise ValueError(
                    f"{self.project_dir} holds another search (different {', '.join(changed)}). "
                    f"Resume it with the same command, or pick hydra.sweeper.project_name=<new name>, "
                    f"or start afresh with hydra.sweeper.overwrite=true"
                )
            oracle.reload()
            done = [t for t in oracle.trials.values() if t.status in (COMPLETED, FAILED)]
            log.info(
                "Resuming the search in %s: %d trials done, %d to run again (interrupted)",
                self.project_dir, len(done), len(oracle._retry_queue),
            )
        else:
            search_file.write_text(json.dumps(definition, indent=2))
            log.info("Keras Tuner %s search; state in %s", self.oracle_name, self.project_dir)
        # Hyperband's own schedule has no trial cap; the others take it at construction (and resume).
        oracle.max_trials = self.max_trials
        return oracle

    # ---------------------------------------------------------------- results
    def _report(self, sweep_dir: Path) -> None:
        """Rank every trial of the search (earlier invocations too) in ``search_results.yaml``."""
        rows = []
        for trial in self.oracle.trials.values():
            path = self.project_dir / f"trial_{trial.trial_id}" / JOB_FILE
            record = json.loads(path.read_text()) if path.exists() else {}
            values = trial.hyperparameters.values
            rows.append(
                {
                    "trial_id": trial.trial_id,
                    "status": str(trial.status),
                    "value": float(trial.score) if trial.status == COMPLETED and trial.score is not None else None,
                    "params": {k: v for k, v in values.items() if not k.startswith(TUNER_PREFIX)},
                    **({"epochs": values["tuner/epochs"]} if "tuner/epochs" in values else {}),
                    **({"continues": values["tuner/trial_id"]} if values.get("tuner/trial_id") is not None else {}),
                    "output_dir": record.get("output_dir"),
                    **({"error": record["error"]} if record.get("error") else {}),
                }
            )
        reverse = self.direction == "max"
        rows.sort(key=lambda r: (r["value"] is None, -(r["value"] or 0) if reverse else (r["value"] or 0)))
        results = {
            "name": "keras_tuner",
            "oracle": self.oracle_name,
            "objective": self.objective,
            "direction": self.direction,
            "directory": str(self.project_dir),
            "best_value": rows[0]["value"] if rows and rows[0]["value"] is not None else None,
            "best_params": rows[0]["params"] if rows and rows[0]["value"] is not None else None,
            "trials": rows,
        }
        OmegaConf.save(OmegaConf.create(results), sweep_dir / RESULTS_FILE)
        lines = [f"{'rank':>4}  {'trial':>5}  {'status':<9}  {self.objective:>10}  params"]
        for rank, row in enumerate(rows, 1):
            score = f"{row['value']:.4f}" if row["value"] is not None else "-"
            params = " ".join(f"{k}={v}" for k, v in row["params"].items())
            extra = f"  (epochs {row['epochs']}" + (f", continues {row['continues']})" if "continues" in row else ")") if "epochs" in row else ""
            lines.append(f"{rank:>4}  {row['trial_id']:>5}  {row['status']:<9}  {score:>10}  {params}{extra}")
        log.info("Keras Tuner search (%s, %s %s), every trial so far:\n%s", self.oracle_name, self.direction, self.objective, "\n".join(lines))
        log.info("Results: %s", sweep_dir / RESULTS_FILE)
        _attach_to_sweep_run(sweep_dir / RESULTS_FILE, self.project_dir)


def _output_dir(result: Optional[JobReturn], job_num: Optional[int], config: Any) -> Optional[str]:
    """Where a job wrote its files (its checkpoint): from the job's own Hydra config when it came back."""
    hydra_cfg = getattr(result, "hydra_cfg", None) if result is not None else None
    out = OmegaConf.select(hydra_cfg, "hydra.runtime.output_dir", default=None) if hydra_cfg is not None else None
    if out:
        return str(out)
    if job_num is None:
        return None
    return str(Path(str(config.hydra.sweep.dir)).resolve() / str(job_num))


def _attach_to_sweep_run(results: Path, project_dir: Path) -> None:
    """Give ggo's MLflow parent run (when there is one) the ranking of the whole search."""
    parent = os.environ.get("GGO_PARENT_RUN_ID")
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if not parent or not uri:
        return
    try:
        from ggo import tracking

        run = tracking.MlflowTracker.resume(uri, parent)
        try:
            run.set_tags({"ggo.sweeper": "keras_tuner", "ggo.search_dir": str(project_dir)})
            run.log_text(results.read_text(), RESULTS_FILE)
        finally:
            run.detach()
    except Exception as exc:  # noqa: BLE001 - tracking must never fail the search
        log.warning("Could not attach %s to the sweep's MLflow run: %s", results.name, exc)


class _DriverLock:
    """One driver per oracle directory: two would interleave their trials in one state file.

    A lock left by a driver that died (same host, process gone) is taken over.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.mine = False

    def __enter__(self) -> "_DriverLock":
        me = {"host": socket.gethostname(), "pid": os.getpid()}
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                try:
                    holder = json.loads(self.path.read_text() or "{}")
                except (OSError, ValueError):
                    holder = {}
                if holder.get("host") == me["host"] and not _alive(int(holder.get("pid", -1))):
                    self.path.unlink(missing_ok=True)
                    continue
                raise RuntimeError(
                    f"Another driver ({holder}) is running the search in {self.path.parent}; wait for it, "
                    f"or delete {self.path} if it is gone"
                ) from None
            with os.fdopen(fd, "w") as f:
                json.dump(me, f)
            self.mine = True
            return self
        raise RuntimeError(f"Could not take {self.path}")

    def __exit__(self, *exc: Any) -> None:
        if self.mine:
            self.path.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

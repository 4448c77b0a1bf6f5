"""The search's state on disk: the oracle in ``<directory>/<project_name>``, and one job record per trial.

The oracle's own files (``oracle.json``, ``trial_<id>/trial.json``) are Keras Tuner's. Beside
them: ``search.json`` (what defines the search, compared on resume) and
``trial_<id>/hydra_job.json`` (the job that ran the trial: output dir, overrides, result), so
Hyperband finds the checkpoint of a trial run by an earlier invocation.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import keras_tuner as kt

from .config import KerasTunerSweeperConf, OracleName

log = logging.getLogger(__name__)

JOB_FILE = "hydra_job.json"  # per trial, in the oracle's trial_<id> folder
SEARCH_FILE = "search.json"  # what defines the search (checked on resume)
TUNER_PREFIX = "tuner/"  # Hyperband's bookkeeping values: never config keys

RUNNING = kt.engine.trial.TrialStatus.RUNNING
COMPLETED = kt.engine.trial.TrialStatus.COMPLETED
FAILED = kt.engine.trial.TrialStatus.FAILED
STOPPED = kt.engine.trial.TrialStatus.STOPPED
IDLE = kt.engine.trial.TrialStatus.IDLE


def project_dir(conf: KerasTunerSweeperConf, cwd: Path) -> Path:
    """``<directory>/<project_name>`` (relative to ``cwd``), created. Nothing is deleted here:
    ``overwrite`` empties it (:func:`clear`) once the driver holds its lock."""
    directory = Path(conf.directory) if conf.directory else Path("multirun") / "keras_tuner"
    if not directory.is_absolute():
        directory = cwd / directory
    project = directory / conf.project_name
    project.mkdir(parents=True, exist_ok=True)
    return project


def clear(project: Path, keep: str) -> None:
    """Delete the earlier search in ``project``, all but the file ``keep`` (the driver's lock, held)."""
    log.info("hydra.sweeper.overwrite=true: deleting the earlier search in %s", project)
    for path in project.iterdir():
        if path.name == keep:
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()


def replace_text(path: Path, text: str) -> None:
    """Write ``text`` into a new file beside ``path`` and rename it over ``path``: a reader, or a
    resume after a crash, finds the old file or the new one, never half of one."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        temporary.write_text(text)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


@contextmanager
def whole_state_files() -> Iterator[None]:
    """For the block, Keras Tuner writes its own state (``oracle.json``, ``trial_<id>/trial.json``)
    through :func:`replace_text`. It writes them in place (``keras_tuner.src.utils.save_json``), so
    a driver killed mid-write would leave a file the next resume cannot read. Paths that are not
    local (``gs://...``) and a Keras Tuner without that function are left as they are."""
    from keras_tuner.src import utils

    original = getattr(utils, "save_json", None)
    if original is None:
        yield
        return

    def save_json(path: Any, obj: Any) -> str:
        if "://" in str(path):
            return original(path, obj)
        text = json.dumps(obj)
        replace_text(Path(path), text)
        return text

    utils.save_json = save_json
    try:
        yield
    finally:
        utils.save_json = original


def make_oracle(conf: KerasTunerSweeperConf, hp: kt.HyperParameters) -> Any:
    common = dict(
        objective=kt.Objective(conf.objective, direction=conf.direction.value),
        hyperparameters=hp,
        seed=conf.seed,
        # The sweeper counts failures itself, after the state is saved (Keras Tuner raises first).
        max_consecutive_failed_trials=None,
    )
    if conf.oracle == OracleName.random:
        return kt.oracles.RandomSearchOracle(max_trials=conf.max_trials, **common)
    if conf.oracle == OracleName.bayesian:
        return kt.oracles.BayesianOptimizationOracle(
            max_trials=conf.max_trials, num_initial_points=conf.num_initial_points, **common
        )
    return kt.oracles.HyperbandOracle(
        max_epochs=conf.max_epochs, factor=conf.factor, hyperband_iterations=conf.hyperband_iterations, **common
    )


def definition(conf: KerasTunerSweeperConf, hp: kt.HyperParameters, fixed: list[str]) -> dict[str, Any]:
    """What makes two invocations the same search (``max_trials`` and tracking may change)."""
    keep = [o for o in fixed if not o.lstrip("+~").startswith(("hydra.", "hydra/", "tracking."))]
    search: dict[str, Any] = {
        "oracle": conf.oracle.value,
        "objective": conf.objective,
        "direction": conf.direction.value,
        "space": hp.get_config(),
        "fixed_overrides": sorted(keep),
        "seed": conf.seed,
    }
    if conf.hyperband:
        search.update(max_epochs=conf.max_epochs, factor=conf.factor, hyperband_iterations=conf.hyperband_iterations)
    return json.loads(json.dumps(search, default=str))


def load_oracle(conf: KerasTunerSweeperConf, project: Path, hp: kt.HyperParameters, fixed: list[str]) -> Any:
    """A new oracle in ``project``, or the saved one when ``project`` holds the same search.

    A saved search with another definition is refused: resuming it with a different space would
    mix trials of two searches.
    """
    oracle = make_oracle(conf, hp)
    oracle._set_project_dir(str(project.parent), project.name)
    wanted = definition(conf, hp, fixed)
    search_file = project / SEARCH_FILE
    if (project / "oracle.json").exists():
        saved = json.loads(search_file.read_text()) if search_file.exists() else None
        if saved is not None and saved != wanted:
            changed = sorted(k for k in set(saved) | set(wanted) if saved.get(k) != wanted.get(k))
            raise ValueError(
                f"{project} holds another search (different {', '.join(changed)}). "
                f"Resume it with the same command, or pick hydra.sweeper.project_name=<new name>, "
                f"or start afresh with hydra.sweeper.overwrite=true"
            )
        oracle.reload()
        done = [t for t in oracle.trials.values() if t.status in (COMPLETED, FAILED)]
        log.info(
            "Resuming the search in %s: %d trials done, %d to run again (interrupted)",
            project, len(done), len(oracle._retry_queue),
        )  # fmt: skip
    else:
        replace_text(search_file, json.dumps(wanted, indent=2))
        log.info("Keras Tuner %s search; state in %s", conf.oracle.value, project)
    # Hyperband's own schedule has no trial cap; the others take it at construction (and resume).
    oracle.max_trials = conf.max_trials
    return oracle


def write_job(project: Path, trial_id: str, record: dict[str, Any]) -> None:
    """Keep the job that ran ``trial_id`` beside the oracle's own trial file."""
    folder = project / f"trial_{trial_id}"
    folder.mkdir(parents=True, exist_ok=True)
    replace_text(folder / JOB_FILE, json.dumps(record, indent=2))


def read_job(project: Path, trial_id: str) -> dict[str, Any]:
    """The job record of ``trial_id`` (empty when it has none, e.g. a trial still to run)."""
    path = project / f"trial_{trial_id}" / JOB_FILE
    return json.loads(path.read_text()) if path.exists() else {}


def checkpoint_of(project: Path, trial_id: str, checkpoint: str) -> str:
    """The checkpoint the job of ``trial_id`` left in its output dir (Hyperband continues from it)."""
    record = read_job(project, trial_id)
    if not record:
        raise RuntimeError(
            f"Hyperband continues trial {trial_id}, but {project / f'trial_{trial_id}' / JOB_FILE} is missing: "
            f"the oracle state in {project} is incomplete (start afresh with hydra.sweeper.overwrite=true)"
        )
    path = Path(record["output_dir"]) / checkpoint
    if not path.exists():  # a remote worker may still see it (a shared sweep dir); the job fails otherwise
        log.warning("Checkpoint %s of trial %s is not visible from the driver", path, trial_id)
    return str(path)

"""The ``hydra/sweeper=keras_tuner`` config (registered in Hydra's ConfigStore on import).

Hydra imports this module when it scans the ``hydra_plugins`` namespace, so the option exists for
``python -m ggo.train -m hydra/sweeper=keras_tuner`` and for presets that
``override /hydra/sweeper: keras_tuner``.

:class:`KerasTunerSweeperConf` is the one place that holds the sweeper's defaults and checks its
values: Hydra composes it, and the sweeper builds one from what Hydra hands it
(``KerasTunerSweeperConf(**config)``), which runs the checks in ``__post_init__``.

No ``from __future__ import annotations`` here: Hydra's plugin scanner executes this module before
it is in ``sys.modules``, where dataclasses cannot resolve string annotations.
"""

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Dict, Optional, Type, TypeVar

from hydra.core.config_store import ConfigStore

#: The ranking of every trial of the search, written to the sweep dir when a search ends (ggo's
#: MLflow sweep callback attaches it to the sweep's parent run).
RESULTS_FILE = "search_results.yaml"


class OracleName(str, Enum):
    random = "random"
    bayesian = "bayesian"
    hyperband = "hyperband"


class Direction(str, Enum):
    max = "max"
    min = "min"


E = TypeVar("E", bound=Enum)


def _member(enum: Type[E], value: Any, key: str) -> E:
    """``value`` (an enum member or its name) as a member of ``enum``, or an error naming the key."""
    try:
        return enum(getattr(value, "value", value))
    except ValueError:
        allowed = ", ".join(m.value for m in enum)
        raise ValueError(f"hydra.sweeper.{key}={value!r}: use one of {allowed}") from None


@dataclass
class KerasTunerSweeperConf:
    """A Keras Tuner search run through Hydra's launcher (basic, joblib, ray, ...).

    ``params`` maps a config key (or a group: ``gen``, ``loss``) to its search space:
    ``{type: choice, values: [a, b]}`` (or a plain list), ``{type: int, min, max, step}``,
    ``{type: float, min, max, sampling: log|linear}``, ``{type: boolean}``; a string uses Hydra's
    sweep syntax (``a,b`` or ``choice(a,b)`` -> choice, ``interval(0,1)`` -> float, a single value
    -> fixed for every trial). A ``key=a,b`` sweep on the command line joins the space; a plain
    ``key=value`` on the command line fixes that key (it leaves the space).
    """

    _target_: str = "hydra_plugins.ggo_keras_tuner_sweeper.keras_tuner_sweeper.KerasTunerSweeper"

    oracle: OracleName = OracleName.hyperband
    # The value the task returns (ggo's task returns its config key ``objective``; they must agree).
    objective: str = "val/dice"
    direction: Direction = Direction.max
    # Trials created by this search, counted over every invocation of the same directory
    # (null: until the oracle stops, e.g. at the end of Hyperband's schedule).
    max_trials: Optional[int] = 10
    # Trials asked from the oracle and launched together as one batch of the launcher.
    n_parallel: int = 1
    # The oracle's random seed (Keras Tuner treats null and 0 as "pick one").
    seed: Optional[int] = None

    # Hyperband: the budget is ``budget_key`` (epochs); a continued trial resumes from its parent's checkpoint.
    max_epochs: int = 10
    factor: int = 3
    hyperband_iterations: int = 1
    # Bayesian optimisation: random trials before the Gaussian process takes over (null: 3 x dimensions).
    num_initial_points: Optional[int] = None

    # Stop the search after this many failed trials in a row (0: never).
    max_consecutive_failed_trials: int = 3

    # Oracle state: <directory>/<project_name>. Rerunning the same command resumes the search;
    # null -> multirun/keras_tuner under the directory the command runs in.
    directory: Optional[str] = None
    project_name: str = "search"
    # Start afresh, deleting the state of an earlier search with the same directory and name.
    overwrite: bool = False

    # How a trial talks to the task (ggo's keys; null switches one off).
    budget_key: Optional[str] = "train.epochs"
    initial_epoch_key: Optional[str] = "train.initial_epoch"
    resume_key: Optional[str] = "train.resume_from"
    checkpoint: str = "checkpoint.weights.h5"  # the file a job leaves in its output dir
    trial_id_key: Optional[str] = "trial_id"

    params: Dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Checks the field types cannot express (Hydra only runs these when the sweeper starts)."""
        self.oracle = _member(OracleName, self.oracle, "oracle")
        self.direction = _member(Direction, self.direction, "direction")
        if self.n_parallel < 1:
            raise ValueError(f"hydra.sweeper.n_parallel={self.n_parallel}: must be >= 1")
        if self.max_trials is not None and self.max_trials < 1:
            raise ValueError(f"hydra.sweeper.max_trials={self.max_trials}: must be >= 1 (or null)")
        if self.oracle != OracleName.hyperband and self.max_trials is None:
            raise ValueError(f"hydra.sweeper.max_trials: the {self.oracle.value} oracle needs a number of trials")

    @property
    def hyperband(self) -> bool:
        return self.oracle == OracleName.hyperband


ConfigStore.instance().store(
    group="hydra/sweeper",
    name="keras_tuner",
    node=KerasTunerSweeperConf,
    provider="ggo_keras_tuner_sweeper",
)

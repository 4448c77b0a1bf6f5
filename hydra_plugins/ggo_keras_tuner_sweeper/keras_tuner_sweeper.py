"""The ``Sweeper`` Hydra discovers; the work happens in ``_impl`` (imported lazily: it loads Keras)."""

from __future__ import annotations

from typing import Any, List

from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

from .config import KerasTunerSweeperConf


class KerasTunerSweeper(Sweeper):
    """Ask a Keras Tuner oracle for trials, run them through Hydra's launcher, tell it the results."""

    def __init__(self, **config: Any) -> None:
        conf = KerasTunerSweeperConf(**config)  # fills the defaults and checks the values
        from ._impl import KerasTunerSweeperImpl

        self.sweeper = KerasTunerSweeperImpl(conf)

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.sweeper.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: List[str]) -> Any:
        return self.sweeper.sweep(arguments)

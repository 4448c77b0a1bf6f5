"""Config schemas and composition: the single source of every default.

- :mod:`~ggo.config.schema`: the dataclasses, registered in Hydra's ConfigStore as ``schema`` (the
  first entry of ``conf/config.yaml``'s defaults list). Every group file merges into them, so a
  wrong type (``gen.depth=abc``), an unknown key (``gen.depht=4``) or an unknown choice
  (``gen.norm=layer``) fails at composition, with Hydra's message naming the key.
- :mod:`~ggo.config.checks`: :func:`validate`, the range checks types cannot express.
- :mod:`~ggo.config.typed`: :func:`typed` turns what Hydra composed (or a plain mapping) into the
  schema's objects once per run; :func:`plain` turns them back into plain dicts at the edges
  (MLflow params, ``config.yaml``, a shipped model's ``preprocess.json``); :func:`compose` composes
  outside ``@hydra.main`` (tests, notebooks, the data CLI).

Only this package, ``ggo.train`` and the Hydra plugins import hydra or omegaconf, and this package
only inside its functions: library code reads defaults from the dataclasses (:func:`defaults`)
even where Hydra is not installed (a served model).
"""

from ggo.config.checks import validate
from ggo.config.schema import (
    CONF_DIR,
    AugmentConfig,
    Config,
    ConfigError,
    DataConfig,
    DiscConfig,
    EvalConfig,
    GenConfig,
    LossConfig,
    PreprocessConfig,
    TrackingConfig,
    TrainConfig,
    defaults,
    register,
)
from ggo.config.typed import compose, flatten, plain, section, to_dict, typed

__all__ = [
    "CONF_DIR",
    "AugmentConfig",
    "Config",
    "ConfigError",
    "DataConfig",
    "DiscConfig",
    "EvalConfig",
    "GenConfig",
    "LossConfig",
    "PreprocessConfig",
    "TrackingConfig",
    "TrainConfig",
    "compose",
    "defaults",
    "flatten",
    "plain",
    "register",
    "section",
    "to_dict",
    "typed",
    "validate",
]

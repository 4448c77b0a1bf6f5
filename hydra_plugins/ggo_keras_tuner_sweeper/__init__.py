"""Keras Tuner as a Hydra sweeper: ``hydra/sweeper=keras_tuner`` (random, bayesian, hyperband).

Laid out like Hydra's own sweeper plugins:

- ``config.py``: the config dataclass, registered in Hydra's ConfigStore; the one place for its
  defaults and value checks.
- ``keras_tuner_sweeper.py``: the thin ``Sweeper`` Hydra discovers.
- ``_impl.py``: the ask/tell loop, imported only when a sweep starts (Keras Tuner loads Keras),
  with ``_space.py`` (params -> hyperparameters -> overrides), ``_state.py`` (the oracle on disk,
  resume), ``_lock.py`` (one driver per search directory) and ``_report.py`` (the ranking).

Hydra does not import modules whose names start with ``_`` while it scans for plugins, so
``--help`` and ordinary runs never pay for Keras Tuner. The sweeper does not talk to MLflow: ggo's
sweep callback attaches the ranking it writes (``search_results.yaml``) to the sweep's parent run.
"""

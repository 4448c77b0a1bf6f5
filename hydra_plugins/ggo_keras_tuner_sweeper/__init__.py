"""Keras Tuner as a Hydra sweeper: ``hydra/sweeper=keras_tuner`` (random, bayesian, hyperband).

``config.py`` registers the config, ``keras_tuner_sweeper.py`` holds the thin ``Sweeper`` that
Hydra discovers, and ``_impl.py`` (imported only when a sweep starts, because Keras Tuner loads
Keras) does the work. Hydra does not import modules whose names start with ``_`` while it scans
for plugins, so ``--help`` and ordinary runs never pay for it.
"""

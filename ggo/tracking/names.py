"""Names ggo shares with MLflow and with its own jobs: environment variables, tags, model names."""

from __future__ import annotations

PARENT_ENV = "GGO_PARENT_RUN_ID"  # a sweep's parent run, handed to its jobs
SWEEP_ENV = "GGO_SWEEP_ID"
SWEEP_OVERRIDES_ENV = "GGO_SWEEP_OVERRIDES"
ROLE_TAG = "ggo.role"
SWEEP_TAG = "ggo.sweep_id"
ERROR_TAG = "ggo.error"

MODEL_NAME = "model"  # what ggo.training.experiment logs each run's segmenter as
CHAMPION = "champion"  # the registry alias ggo.ship.predict and serving load by default

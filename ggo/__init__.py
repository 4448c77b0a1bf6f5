"""ggo: adversarial U-Nets for ground-glass opacity segmentation on chest X-rays.

One package per stage; each imports only the stages listed before it (tests/test_layers.py holds
this, over every import, and no import cycle):

- core: ``ggo.config`` (the schema, the single source of every default), ``ggo.paths``, ``ggo.heads``
- ``ggo.runtime``: how this process runs (Keras backend, threads, signals); imports core
- ``ggo.tracking``: the only stage that talks to MLflow's client; imports core
- ``ggo.data``: reading, placement, preprocessing, patient splits, the cache; imports core
- ``ggo.models``: generators and discriminators; imports core
- ``ggo.evaluation``: predict -> post-process -> score, statistics, pictures; core, data, tracking
- ``ggo.serving``: the shipped MLflow model; core, data, models, evaluation
- ``ggo.training``: the GAN per backend, pipelines, losses, one run end to end; the above
- ``ggo.sweeps``: a sweep's parent run, summaries, cross-validation, the report page; core to serving
- ``ggo.ship``: promote and predict; core, tracking, data, evaluation, serving, sweeps
- ``ggo.bench``: ``python -m ggo.bench``
- commands: ``python -m ggo COMMAND`` (``ggo/__main__.py``, the ``ggo`` console script: every
  command, ``--help`` lists them), ``ggo.train`` (the Hydra entry point) and thin ``python -m ggo.X`` shims
"""

import os as _os

# Quieter defaults; set them yourself to see TensorFlow's info logs or MLflow's download bars.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
_os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

__version__ = "0.1.0"

"""ggo: adversarial U-Nets for ground-glass opacity segmentation on chest X-rays.

Stages live in their own modules: ``ggo.data`` (reading, preprocessing, splits, cache),
``ggo.models`` (generators, discriminators), ``ggo.training.losses``, ``ggo.evaluation.metrics``,
``ggo.training`` (the GAN ``keras.Model`` and its input pipeline), ``ggo.tracking`` (MLflow),
``ggo.train`` (the Hydra entry point), ``ggo.ship.promote`` and ``ggo.ship.predict``.
"""

import os as _os

# Quieter defaults; set them yourself to see TensorFlow's info logs or MLflow's download bars.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
_os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

__version__ = "0.1.0"

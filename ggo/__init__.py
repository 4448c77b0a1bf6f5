"""ggo: adversarial U-Nets for ground-glass opacity segmentation on chest X-rays.

Stages live in their own modules: ``ggo.data`` (reading, preprocessing, splits, cache),
``ggo.models`` (generators, discriminators), ``ggo.losses``, ``ggo.metrics``,
``ggo.training`` (the GAN ``keras.Model`` and its input pipeline), ``ggo.tracking`` (MLflow),
``ggo.train`` (the Hydra entry point), ``ggo.promote`` and ``ggo.predict``.
"""

import os as _os
import sys as _sys

# Quieter defaults; set them yourself to see TensorFlow's info logs or MLflow's download bars.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
_os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

__version__ = "0.1.0"


def _load_torchvision_before_tensorflow() -> None:
    """Import torchvision now if TensorFlow is not loaded yet.

    torchxrayvision (metadata and intensity normalisation) pulls in torchvision, and loading
    torchvision's native ops into a process that already holds TensorFlow 2.21 segfaults
    (checked here with torchvision 0.29). Loaded first, both live together. Costs ~2 s at start-up.
    """
    if "tensorflow" in _sys.modules:
        return
    try:
        import torchvision  # noqa: F401
    except ImportError:  # torchxrayvision missing: ggo.data says so when it needs it
        pass


_load_torchvision_before_tensorflow()

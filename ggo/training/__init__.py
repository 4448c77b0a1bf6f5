"""Training: the GAN ``keras.Model``, its input pipeline, precision policy, LR schedules and
callbacks.

Names load lazily (PEP 562) and follow the Keras backend: under TensorFlow, ``GAN`` is
:class:`ggo.training.gan.GAN` and ``make_dataset`` the tf.data pipeline; under JAX, ``GAN`` is
:class:`ggo.training.jax_gan.JaxGAN` and ``make_dataset`` the numpy pipeline
(:mod:`ggo.training.numpy_pipeline`). So ``from ggo.training import GAN, make_dataset`` gives the
pair that trains on ``keras.backend.backend()``, and importing this package under JAX never
imports TensorFlow. Only ``gan.py`` and ``pipeline.py`` import TensorFlow at module level (and
``precision.gpu_available`` asks it for GPUs on the TensorFlow backend).
"""

from __future__ import annotations

import importlib

# name -> (module under TensorFlow, module under JAX, attribute there)
_BY_BACKEND = {
    "GAN": ("ggo.training.gan", "ggo.training.jax_gan", ("GAN", "JaxGAN")),
    "LOSS_NAMES": ("ggo.training.gan", "ggo.training.jax_gan", "LOSS_NAMES"),
    "make_gan": ("ggo.training.gan", "ggo.training.jax_gan", "make_gan"),
    "augment_batch": ("ggo.training.pipeline", "ggo.training.numpy_pipeline", "augment_batch"),
    "make_dataset": ("ggo.training.pipeline", "ggo.training.numpy_pipeline", "make_dataset"),
}
# name -> module (the same on every backend)
_COMMON = {
    "AugmentConfig": "ggo.training.augment",
    "NonFiniteLossError": "ggo.training.callbacks",
    "RaiseOnNonFinite": "ggo.training.callbacks",
    "PRECISION_MODES": "ggo.training.precision",
    "current_precision": "ggo.training.precision",
    "set_precision": "ggo.training.precision",
    "SCHEDULES": "ggo.training.schedules",
    "make_schedule": "ggo.training.schedules",
}

__all__ = sorted([*_BY_BACKEND, *_COMMON, "set_random_seed"])


def set_random_seed(seed: int) -> None:
    """``keras.utils.set_random_seed`` (Python, numpy and Keras' seed), without importing
    TensorFlow on another backend.

    Keras also seeds TensorFlow whenever it is installed, importing it (seconds of start-up,
    and the JAX path promises no TensorFlow). Off TensorFlow, Keras is shown TensorFlow as
    absent while it seeds; its lazy handle then keeps reporting TensorFlow unavailable in this
    process, which only Keras' tf.data adapters would notice (the JAX path uses none).
    """
    import sys

    import keras

    if keras.backend.backend() == "tensorflow" or "tensorflow" in sys.modules:
        keras.utils.set_random_seed(seed)
        return
    sys.modules["tensorflow"] = None  # `import tensorflow` raises ImportError: Keras skips it
    try:
        keras.utils.set_random_seed(seed)
    finally:
        del sys.modules["tensorflow"]


def __getattr__(name: str):
    if name in _COMMON:
        return getattr(importlib.import_module(_COMMON[name]), name)
    if name not in _BY_BACKEND:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import keras

    tf_module, jax_module, attribute = _BY_BACKEND[name]
    backend = keras.backend.backend()
    if backend == "tensorflow":
        module, index = tf_module, 0
    elif backend == "jax":
        module, index = jax_module, 1
    else:
        raise ImportError(
            f"ggo.training.{name}: no implementation for the Keras backend {backend!r}; "
            "ggo trains on 'tensorflow' or 'jax' (set KERAS_BACKEND, or train.backend)"
        )
    attr = attribute[index] if isinstance(attribute, tuple) else attribute
    # Not cached in globals(): the answer belongs to the backend of this process, which cannot
    # change once keras is imported, so caching would only save a dict lookup.
    return getattr(importlib.import_module(module), attr)


def __dir__():
    return sorted({*globals(), *__all__})

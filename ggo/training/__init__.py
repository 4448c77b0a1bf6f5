"""Training: the GAN ``keras.Model``, its input pipeline, precision policy, LR schedules and
callbacks.

The GAN and its input pipeline exist once per Keras backend: on TensorFlow
:class:`ggo.training.gan.GAN` on a tf.data pipeline (:mod:`ggo.training.pipeline`), on JAX
:class:`ggo.training.jax_gan.JaxGAN` on a numpy one (:mod:`ggo.training.numpy_pipeline`). A
process asks for its backend's pieces by name, once::

    trainer = for_backend(config["train"]["backend"])  # raises unless Keras runs that backend
    gan = trainer.make_gan("unet", "patchgan", 256)
    gan.fit(trainer.make_dataset(images, masks, batch_size=8, shuffle=True), ...)

The other names here mean the same on every backend and load lazily (importing this package
imports neither keras nor TensorFlow). Only ``gan.py`` and ``pipeline.py`` import TensorFlow
at module level (and ``precision.gpu_available`` asks it for GPUs on the TensorFlow backend), so
nothing on the JAX path imports TensorFlow.
"""

from __future__ import annotations

import dataclasses
import importlib
import sys
from typing import Any, Callable

from ggo.runtime.backend import require_backend

# backend -> (module of the GAN and its make_gan, the GAN's class name, input pipeline module)
_MODULES = {
    "tensorflow": ("ggo.training.gan", "GAN", "ggo.training.pipeline"),
    "jax": ("ggo.training.jax_gan", "JaxGAN", "ggo.training.numpy_pipeline"),
}
# name -> module (the same on every backend)
_COMMON = {
    "AugmentConfig": "ggo.training.augment",
    "LOSS_NAMES": "ggo.training.gan_base",
    "NonFiniteLossError": "ggo.training.callbacks",
    "RaiseOnNonFinite": "ggo.training.callbacks",
    "EarlyStoppingOnValidation": "ggo.training.callbacks",
    "validation_epochs": "ggo.training.callbacks",
    "ADVERSARIAL_UPDATES": "ggo.training.gan_base",
    "PRECISION_MODES": "ggo.training.precision",
    "current_precision": "ggo.training.precision",
    "set_precision": "ggo.training.precision",
    "SCHEDULES": "ggo.training.schedules",
    "make_schedule": "ggo.training.schedules",
}

__all__ = sorted([*_COMMON, "Trainer", "for_backend", "keep_keras_off_tensorflow", "set_random_seed"])


@dataclasses.dataclass(frozen=True)
class Trainer:
    """What trains on one Keras backend (see :func:`for_backend`)."""

    backend: str  # "tensorflow" or "jax"
    GAN: type  # ggo.training.gan.GAN or ggo.training.jax_gan.JaxGAN  # noqa: N815
    make_gan: Callable[..., Any]  # (gen_name, disc_name, resolution, gen_options, disc_options)
    make_dataset: Callable[..., Any]  # (images, masks, *, batch_size, shuffle, augment, seed, ...)
    augment_batch: Callable[..., Any]


def for_backend(name: str, *, by: str | None = None) -> Trainer:
    """The GAN class, ``make_gan`` and input pipeline that train on the Keras backend ``name``.

    Call it once per process, after :func:`ggo.runtime.backend.select_backend`. Raises ``ValueError``
    for a backend ggo does not train on and ``RuntimeError`` when this process's Keras runs
    another one (:func:`ggo.runtime.backend.require_backend`; ``by`` names the caller's setting in that
    message). Off TensorFlow it also keeps Keras from importing TensorFlow
    (:func:`keep_keras_off_tensorflow`); the JAX pieces never import it themselves.
    """
    require_backend(name, by=by)
    if name != "tensorflow":
        keep_keras_off_tensorflow()
    gan_module, gan_class, pipeline_module = _MODULES[name]
    gan = importlib.import_module(gan_module)
    pipeline = importlib.import_module(pipeline_module)
    return Trainer(name, getattr(gan, gan_class), gan.make_gan, pipeline.make_dataset, pipeline.augment_batch)


def set_random_seed(seed: int) -> None:
    """``keras.utils.set_random_seed``: Python's ``random``, numpy, Keras' global seed, and
    TensorFlow's where Keras runs on TensorFlow (or TensorFlow is already loaded).

    Off TensorFlow, Keras is first told that TensorFlow is absent
    (:func:`keep_keras_off_tensorflow`): its own function would otherwise import TensorFlow to
    seed it.
    """
    import keras

    if keras.backend.backend() != "tensorflow":
        keep_keras_off_tensorflow()
    keras.utils.set_random_seed(seed)


def keep_keras_off_tensorflow() -> None:
    """Make Keras treat TensorFlow as absent in this process, unless TensorFlow is loaded already.

    Keras probes TensorFlow through one lazy handle whose first ``available`` check imports it
    (seconds of start-up; the JAX path promises no TensorFlow): ``keras.utils.set_random_seed``
    seeds it, ``Model.save`` looks for ``tf.TensorShape`` while serialising, the data adapters
    look for tf.data. Off TensorFlow ggo needs none of them, so :func:`for_backend` tells the
    handle "absent" before any of them asks. (A private Keras attribute: the TensorFlow import
    watch of tests/training/test_jax_backend.py fails if a Keras release moves it.)
    """
    if sys.modules.get("tensorflow") is not None:
        return
    from keras.src.utils import module_utils

    handle = module_utils.tensorflow
    if handle.module is None:
        handle._available = False


def __getattr__(name: str):
    if name in _COMMON:
        return getattr(importlib.import_module(_COMMON[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *__all__})

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
import random
import sys
import warnings
from typing import Any, Callable

from ggo.backend import require_backend

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
    "PRECISION_MODES": "ggo.training.precision",
    "current_precision": "ggo.training.precision",
    "set_precision": "ggo.training.precision",
    "SCHEDULES": "ggo.training.schedules",
    "make_schedule": "ggo.training.schedules",
}
# TRANSITIONAL: names that followed the loaded backend. ggo/experiment.py and
# ggo/bench/throughput.py still import them; remove once both call for_backend.
_FOLLOWS_BACKEND = ("GAN", "make_dataset")

__all__ = sorted([*_COMMON, "Trainer", "for_backend", "set_random_seed"])


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

    Call it once per process, after :func:`ggo.backend.select_backend`. Raises ``ValueError``
    for a backend ggo does not train on and ``RuntimeError`` when this process's Keras runs
    another one (:func:`ggo.backend.require_backend`; ``by`` names the caller's setting in that
    message). The JAX pieces never import TensorFlow.
    """
    require_backend(name, by=by)
    gan_module, gan_class, pipeline_module = _MODULES[name]
    gan = importlib.import_module(gan_module)
    pipeline = importlib.import_module(pipeline_module)
    return Trainer(name, getattr(gan, gan_class), gan.make_gan, pipeline.make_dataset, pipeline.augment_batch)


def set_random_seed(seed: int) -> None:
    """Seed what ``keras.utils.set_random_seed`` seeds (Python's ``random``, numpy, Keras'
    global seed), and TensorFlow's only where TensorFlow is the backend or already loaded.

    Keras' own function seeds TensorFlow whenever it is installed, importing it: seconds of
    start-up, and the JAX path promises no TensorFlow.
    """
    import keras

    if keras.backend.backend() == "tensorflow" or sys.modules.get("tensorflow") is not None:
        keras.utils.set_random_seed(seed)
        return
    if not isinstance(seed, int):
        raise ValueError(f"set_random_seed: seed must be an int, got {seed!r} ({type(seed).__name__})")
    # The state keras.utils.set_random_seed sets, by the names it uses (an import error here
    # means Keras renamed them: compare with keras/src/utils/rng_utils.py).
    from keras.src.backend.common import global_state
    from keras.src.random.seed_generator import GLOBAL_SEED_GENERATOR
    from keras.src.utils.rng_utils import GLOBAL_RANDOM_SEED

    global_state.set_global_attribute(GLOBAL_RANDOM_SEED, seed)
    global_state.set_global_attribute(GLOBAL_SEED_GENERATOR, None)  # re-made from the seed
    random.seed(seed)
    import numpy as np

    np.random.seed(seed)


def __getattr__(name: str):
    if name in _COMMON:
        return getattr(importlib.import_module(_COMMON[name]), name)
    if name in _FOLLOWS_BACKEND:
        import keras

        warnings.warn(
            f"ggo.training.{name} follows the loaded Keras backend; use "
            f"ggo.training.for_backend(name).{name}",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(for_backend(keras.backend.backend()), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *__all__})

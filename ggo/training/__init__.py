"""Training: the GAN ``keras.Model``, its input pipeline, precision policy, LR schedules and
callbacks. The only package (with the input pipeline) that imports TensorFlow directly."""

from ggo.training.callbacks import NonFiniteLossError, RaiseOnNonFinite
from ggo.training.gan import GAN, LOSS_NAMES, make_gan
from ggo.training.pipeline import AugmentConfig, augment_batch, make_dataset
from ggo.training.precision import PRECISION_MODES, current_precision, set_precision
from ggo.training.schedules import SCHEDULES, make_schedule

__all__ = [
    "GAN",
    "LOSS_NAMES",
    "PRECISION_MODES",
    "SCHEDULES",
    "AugmentConfig",
    "NonFiniteLossError",
    "RaiseOnNonFinite",
    "augment_batch",
    "current_precision",
    "make_dataset",
    "make_gan",
    "make_schedule",
    "set_precision",
]

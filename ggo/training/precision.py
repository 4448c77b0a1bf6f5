"""Numeric precision policy for training: float32 or mixed precision.

Call ``set_precision`` BEFORE building models: Keras layers read the global policy when they
are created. Model outputs and losses stay float32 in every mode (the generators' and
discriminators' last layers are float32; the losses cast their inputs).
"""

from __future__ import annotations

import keras

PRECISION_MODES = ("auto", "float32", "mixed_float16", "mixed_bfloat16")


def gpu_available() -> bool:
    """Whether Keras' backend sees at least one GPU (asked of that backend only: under JAX
    this never imports TensorFlow)."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return any(device.platform == "gpu" for device in jax.devices())
    if backend == "torch":
        import torch

        return bool(torch.cuda.is_available())
    if backend == "tensorflow":
        import tensorflow as tf

        return bool(tf.config.list_physical_devices("GPU"))
    return False


def resolve_precision(mode: str) -> str:
    """The Keras policy name ``mode`` stands for (``auto``: mixed_float16 with a GPU, else
    float32, since float16 is slow on CPUs)."""
    if mode not in PRECISION_MODES:
        raise ValueError(f"Unknown precision {mode!r}; valid: {', '.join(PRECISION_MODES)}")
    if mode == "auto":
        return "mixed_float16" if gpu_available() else "float32"
    return mode


def set_precision(mode: str) -> str:
    """Set the global Keras dtype policy and return the resolved policy name.

    Args:
        mode: ``auto``, ``float32``, ``mixed_float16`` (the GAN then scales its losses) or
            ``mixed_bfloat16``.
    """
    policy = resolve_precision(mode)
    keras.mixed_precision.set_global_policy(policy)
    return policy


def current_precision() -> str:
    """Name of the global Keras dtype policy."""
    return keras.mixed_precision.global_policy().name


__all__ = ["PRECISION_MODES", "current_precision", "gpu_available", "resolve_precision", "set_precision"]

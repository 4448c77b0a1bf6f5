"""Numeric precision policy for training: float32 or mixed precision.

Call ``set_precision`` BEFORE building models: Keras layers read the global policy when they
are created. Model outputs and losses stay float32 in every mode (the generators' and
discriminators' last layers are float32; the losses cast their inputs).

``auto`` is the fastest mode the hardware computes correctly (:func:`auto_precision`):
mixed_float16 on a GPU, mixed_bfloat16 on a CPU with native bfloat16 arithmetic (AVX512-BF16 or
AMX, read from Linux's ``/proc/cpuinfo``), float32 elsewhere (a CPU without those instructions
emulates bfloat16 and float16, slower than float32).
"""

from __future__ import annotations

import sys
from pathlib import Path

import keras

PRECISION_MODES = ("auto", "float32", "mixed_float16", "mixed_bfloat16")

#: ``/proc/cpuinfo`` flags of native bfloat16 arithmetic (AVX512-BF16; AMX tiles).
BFLOAT16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


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


def read_cpuinfo() -> str | None:
    """The text of ``/proc/cpuinfo`` on Linux; None on other systems or when it cannot be read."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return None


def cpu_has_native_bfloat16(cpuinfo: str | None) -> bool:
    """Whether a ``/proc/cpuinfo`` text lists a native bfloat16 flag (:data:`BFLOAT16_CPU_FLAGS`)
    on its ``flags`` lines. None (no cpuinfo: another OS) -> False."""
    if not cpuinfo:
        return False
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() == "flags" and any(flag in value.split() for flag in BFLOAT16_CPU_FLAGS):
            return True
    return False


def auto_precision(*, gpu: bool, cpuinfo: str | None) -> str:
    """What ``auto`` stands for: ``mixed_float16`` with a GPU; else ``mixed_bfloat16`` when the
    CPU computes bfloat16 natively (``cpuinfo``: the text of ``/proc/cpuinfo``, None elsewhere);
    else ``float32``."""
    if gpu:
        return "mixed_float16"
    if cpu_has_native_bfloat16(cpuinfo):
        return "mixed_bfloat16"
    return "float32"


def resolve_precision(mode: str) -> str:
    """The Keras policy name ``mode`` stands for (``auto``: :func:`auto_precision` on this machine)."""
    if mode not in PRECISION_MODES:
        raise ValueError(f"Unknown precision {mode!r}; valid: {', '.join(PRECISION_MODES)}")
    if mode == "auto":
        return auto_precision(gpu=gpu_available(), cpuinfo=read_cpuinfo())
    return mode


def set_precision(mode: str) -> str:
    """Set the global Keras dtype policy and return the resolved policy name.

    Args:
        mode: ``auto`` (see :func:`auto_precision`), ``float32``, ``mixed_float16`` (the GAN
            then scales its losses) or ``mixed_bfloat16``.
    """
    policy = resolve_precision(mode)
    keras.mixed_precision.set_global_policy(policy)
    return policy


def current_precision() -> str:
    """Name of the global Keras dtype policy."""
    return keras.mixed_precision.global_policy().name


__all__ = [
    "BFLOAT16_CPU_FLAGS",
    "PRECISION_MODES",
    "auto_precision",
    "cpu_has_native_bfloat16",
    "current_precision",
    "gpu_available",
    "read_cpuinfo",
    "resolve_precision",
    "set_precision",
]

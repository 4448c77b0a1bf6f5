"""What the benchmark ran on: CPU, cores, memory, accelerator, library versions, load."""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path
from typing import Any


def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo (Linux), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags(wanted: tuple[str, ...] = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")) -> list[str]:
    """The SIMD features that decide CPU training speed (bf16 support above all)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                have = set(line.split(":", 1)[1].split())
                return [f for f in wanted if f in have]
    except OSError:
        pass
    return []


def load_average() -> list[float] | None:
    """1, 5 and 15 minute load averages (None where the OS has none)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def gpu_names() -> list[str]:
    """Names of the GPUs Keras' backend sees (empty on a CPU-only machine)."""
    import keras

    if keras.backend.backend() == "jax":
        import jax

        return [d.device_kind for d in jax.devices() if d.platform == "gpu"]
    import tensorflow as tf

    names = []
    for gpu in tf.config.list_physical_devices("GPU"):
        try:
            names.append(tf.config.experimental.get_device_details(gpu).get("device_name", gpu.name))
        except Exception:  # noqa: BLE001 - details are best effort
            names.append(gpu.name)
    return names


def machine_info() -> dict[str, Any]:
    """A JSON-ready description of this machine and software stack."""
    import keras
    import psutil

    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        versions = {"jax": jax.__version__, "tensorflow": None}
    else:
        import tensorflow as tf

        versions = {"tensorflow": tf.__version__}
    gpus = gpu_names()
    cpu = cpu_model()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = load_average()
    return {
        "hostname": platform.node(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "cpu_model": cpu,
        "cpu_flags": cpu_flags(),
        "logical_cores": os.cpu_count(),
        "physical_cores": psutil.cpu_count(logical=False),
        "cores_available": cores,
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "backend": backend,
        **versions,
        "keras": keras.__version__,
        "device": f"GPU: {', '.join(gpus)}" if gpus else f"CPU: {cpu}",
        "gpus": gpus,
        "load_average_start": load,
        # Other work already running: more than half the cores' worth of load before we start.
        "busy": bool(load and cores and load[0] > 0.5 * cores),
    }


__all__ = ["cpu_flags", "cpu_model", "gpu_names", "load_average", "machine_info"]

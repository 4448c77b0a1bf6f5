"""Which Keras backend a process trains on: ``train.backend`` (``tensorflow`` or ``jax``).

Keras reads ``KERAS_BACKEND`` once, at its first import, so entry points (``python -m ggo.train``,
``python -m ggo.bench --backend``) call :func:`select_backend` before anything imports keras.
"""

from __future__ import annotations

import os
import sys

BACKENDS = ("tensorflow", "jax")


def select_backend(backend: str) -> None:
    """Make Keras run on ``backend`` (``train.backend``): ``tensorflow`` or ``jax``.

    Keras reads ``KERAS_BACKEND`` once, when it is first imported, so this sets it before any
    import of keras. A process whose keras is already loaded with another backend (a multirun
    that switches backends between jobs of one process) cannot switch: that raises.
    """
    if backend not in BACKENDS:
        raise ValueError(f"Unknown Keras backend {backend!r}; ggo trains on: {', '.join(BACKENDS)}")
    loaded = sys.modules.get("keras")
    if loaded is not None:
        current = loaded.backend.backend()
        if current != backend:
            raise RuntimeError(
                f"train.backend={backend}, but this process already runs Keras on {current!r} "
                "(Keras picks its backend once, at import). Run one command per backend "
                f"(python -m ggo.train train.backend={backend} ...), or give each job its own "
                "process with the joblib launcher (hydra/launcher=joblib, hydra.launcher.n_jobs "
                "at least the number of jobs: its workers are reused); with a sweeper that "
                f"imports keras itself, set KERAS_BACKEND={backend} in the environment too."
            )
    os.environ["KERAS_BACKEND"] = backend
    if backend == "jax":
        # XLA compiles the step, every weight initialiser and every eager op of a run (~30 s on
        # a CPU); JAX's persistent cache keeps them for the next run and sweep job (~10 s).
        from ggo.paths import default_cache_dir

        os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(default_cache_dir() / "xla"))
        os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")


__all__ = ["BACKENDS", "select_backend"]

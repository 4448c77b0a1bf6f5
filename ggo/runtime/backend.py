"""Which Keras backend a process trains on: ``train.backend`` (``tensorflow`` or ``jax``).

Keras reads ``KERAS_BACKEND`` once, at its first import, so entry points (``python -m ggo.train``,
``python -m ggo.bench --backend``) call :func:`select_backend` before anything imports keras.
Code that needs a given backend afterwards asks :func:`require_backend` (the one check, with the
one error message); ``ggo.training.for_backend`` does so before handing out a backend's trainer.
"""

from __future__ import annotations

import os
import sys

BACKENDS = ("tensorflow", "jax")


def _check_known(backend: str) -> None:
    if backend not in BACKENDS:
        raise ValueError(f"Unknown Keras backend {backend!r}; ggo trains on: {', '.join(BACKENDS)}")


def require_backend(backend: str, *, by: str | None = None) -> None:
    """Raise unless Keras runs on ``backend`` in this process (this imports keras).

    ``by`` names what wants the backend in the message (default ``train.backend=<backend>``).
    """
    _check_known(backend)
    import keras

    current = keras.backend.backend()
    if current == backend:
        return
    by = by or f"train.backend={backend}"
    raise RuntimeError(
        f"{by}, but this process already runs Keras on {current!r} (Keras picks its backend once, "
        f"at import: set KERAS_BACKEND={backend} before anything imports keras, as python -m "
        f"ggo.train does). Run one command per backend (python -m ggo.train train.backend={backend} "
        "...), or give each job its own process with the joblib launcher (hydra/launcher=joblib, "
        "hydra.launcher.n_jobs at least the number of jobs: its workers are reused); with a sweeper "
        f"that imports keras itself, set KERAS_BACKEND={backend} in the environment too."
    )


def select_backend(backend: str) -> None:
    """Make Keras run on ``backend`` (``train.backend``): ``tensorflow`` or ``jax``.

    Keras reads ``KERAS_BACKEND`` once, when it is first imported, so this sets it before any
    import of keras. A process whose keras is already loaded with another backend (a multirun
    that switches backends between jobs of one process) cannot switch: that raises.
    """
    _check_known(backend)
    if sys.modules.get("keras") is not None:
        require_backend(backend)
    os.environ["KERAS_BACKEND"] = backend
    if backend == "jax":
        # XLA compiles the step, every weight initialiser and every eager op of a run (~30 s on
        # a CPU); JAX's persistent cache keeps them for the next run and sweep job (~10 s).
        from ggo.paths import default_cache_dir

        os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(default_cache_dir() / "xla"))
        os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")


__all__ = ["BACKENDS", "require_backend", "select_backend"]

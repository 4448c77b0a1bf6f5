"""How many CPU threads one job's TensorFlow uses: ``train.threads``.

TensorFlow sizes two thread pools when it starts (its first op or device query in the process):
*intra-op* threads run one op (a convolution, a matmul: oneDNN runs on this pool) and *inter-op*
threads run independent ops side by side. Both default to the number of cores, which is right
for one job alone and wasteful for two jobs sharing the cores (each job's pools then fight the
other's). :func:`limit_threads` sets both to ``train.threads`` before the pools exist; ``0`` keeps
TensorFlow's default.

TensorFlow fixes its pools for the life of the process, which matters where one process runs
several jobs: the basic launcher runs every job of a sweep in the driver, and the joblib
launcher reuses its workers. A later job asking for the same count is fine (nothing to change);
one asking for another count raises :class:`ThreadLimitError` (the job ends FAILED with the
message, the sweep goes on): a job that ran on 2 threads while recording ``train.threads=1`` would
mislead whoever compares timings. ``train.threads=0`` in a process an earlier job limited only
warns: 0 asks for no particular count.

TensorFlow only. The JAX backend runs XLA's own CPU thread pool, which has no such setting;
:func:`ggo.config.validate` refuses ``train.threads`` > 0 with ``train.backend=jax``.
"""

from __future__ import annotations

import warnings


class ThreadLimitError(RuntimeError):
    """This process's TensorFlow already runs with another thread count than the job asks for."""


def tensorflow_threads() -> tuple[int, int]:
    """TensorFlow's configured (intra-op, inter-op) thread counts in this process; 0 = its default."""
    import tensorflow as tf

    return (
        int(tf.config.threading.get_intra_op_parallelism_threads()),
        int(tf.config.threading.get_inter_op_parallelism_threads()),
    )


def limit_threads(threads: int | None, *, backend: str = "tensorflow") -> int | None:
    """Give this process's TensorFlow ``threads`` intra-op and inter-op threads (``train.threads``).

    Call it before the job runs any TensorFlow op (``ggo.training.experiment.prepare`` does, right after
    choosing the backend). Returns the count set, or None when ``threads`` is 0/None (TensorFlow's
    default: one thread per core) or the backend is not TensorFlow.

    Raises:
        ValueError: ``threads`` is negative.
        ThreadLimitError: TensorFlow already started in this process with another count (an
            earlier job of the same process, or code that ran TensorFlow ops before the job).
    """
    if threads is not None and int(threads) < 0:
        raise ValueError(f"train.threads={threads}: must be >= 0 (0 keeps TensorFlow's default, one thread per core)")
    if backend != "tensorflow":
        return None  # XLA's CPU pool on JAX has no thread setting; validate() refuses threads > 0 there
    want = int(threads or 0)
    current = tensorflow_threads()
    if not want:
        if current != (0, 0):
            warnings.warn(
                f"train.threads=0 asks for TensorFlow's default, but an earlier job of this process "
                f"limited it to {current[0]} intra-op / {current[1]} inter-op threads, which TensorFlow "
                "keeps for the life of the process; this job runs with those.",
                RuntimeWarning,
                stacklevel=2,
            )
        return None
    if current == (want, want):
        return want  # a reused worker or a later job of the same sweep: already so
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(want)
        tf.config.threading.set_inter_op_parallelism_threads(want)
    except RuntimeError as exc:
        have = "its default (one per core)" if current == (0, 0) else f"{current[0]} intra-op / {current[1]} inter-op"
        raise ThreadLimitError(
            f"train.threads={want}: TensorFlow already runs in this process with {have} threads and "
            "cannot change them after it starts (an earlier job of this process, or TensorFlow code "
            "run before the job). Use one train.threads value per sweep, or give each job a fresh "
            "process: hydra/launcher=joblib with hydra.launcher.n_jobs at least the number of jobs."
        ) from exc
    return want


__all__ = ["ThreadLimitError", "limit_threads", "tensorflow_threads"]

"""Images/s of a run config's train step, timed in a process of its own:
``python -m ggo.training.steptime CONFIG.json [--warmup-steps N] [--steps N] [--windows N]``.

Some settings hold for a whole process: XLA (``train.jit_compile``), TensorFlow's thread pools
(``train.threads``), the precision policy. Timed side by side in one process they disturb each
other: with XLA on, a plain step in the same process ran 7-14% slower (an AVX2 EPYC, 128 px), so
a ratio against it overstates XLA. Each arm of such a comparison therefore runs here, alone in its
process, and reports its own images/s (:func:`ggo.training.xla_choice.timed_in_own_process` starts
it; ``train.jit_compile=auto`` and the benchmark's process arms use it).

The step is the run's own: the GAN is built and compiled by
:func:`ggo.training.experiment.build_gan` from the config, and ``fit`` runs over one synthetic
batch repeated (the step's cost, not the input pipeline's). The last line printed is
``[ggo-steptime] {json}``.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ggo.training.xla_choice import RESULT_PREFIX


def synthetic_batch(batch_size: int, resolution: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Images (B, R, R, 1) float32 in [-1, 1] and blob masks (B, R, R, 1) float32 in {0, 1}:
    the dtypes and ranges the cache hands to training."""
    rng = np.random.default_rng(seed)
    images = rng.uniform(-1.0, 1.0, (batch_size, resolution, resolution, 1)).astype(np.float32)
    yy, xx = np.mgrid[0:resolution, 0:resolution] / resolution
    masks = np.zeros((batch_size, resolution, resolution, 1), np.float32)
    for i in range(batch_size):
        for _ in range(int(rng.integers(1, 3))):
            cy, cx = rng.uniform(0.3, 0.7, 2)
            ry, rx = rng.uniform(0.05, 0.15, 2)
            masks[i, ..., 0] = np.maximum(masks[i, ..., 0], (((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0))
    return images, masks


def repeated_batch(images: np.ndarray, targets: np.ndarray) -> Any:
    """One batch forever, as ``fit`` takes it on this process's backend: a ``tf.data`` dataset, or
    on JAX a Python generator."""
    import keras

    if keras.backend.backend() == "jax":
        return _forever((images, targets))
    import tensorflow as tf

    return tf.data.Dataset.from_tensors((images, targets)).repeat()


def _forever(batch: Any) -> Any:
    while True:
        yield batch


def window_timer() -> Any:
    """A callback timing each ``fit`` epoch (one timed window) from its first step to its logs,
    in wall time and in this process's CPU time; it keeps the epoch's scalar logs."""
    import keras

    class WindowTimer(keras.callbacks.Callback):
        seconds = cpu_seconds = 0.0
        logs: dict[str, float] = {}

        def on_epoch_begin(self, epoch, logs=None):
            self._start, self._cpu_start = time.perf_counter(), time.process_time()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds = time.perf_counter() - self._start
            self.cpu_seconds = time.process_time() - self._cpu_start
            self.logs = {k: float(np.asarray(v)) for k, v in (logs or {}).items() if np.ndim(v) == 0}

    return WindowTimer()


def time_steps(
    config: Mapping[str, Any], *, warmup_steps: int = 2, steps: int = 2, windows: int = 3, min_window_s: float = 1.0
) -> dict[str, Any]:
    """Images/s of ``config``'s train step in this process: ``warmup_steps`` untimed steps (tracing,
    XLA compiling), then ``windows`` windows of at least ``steps`` steps, more where a window would
    last under ``min_window_s`` (a small model's steps are too short to time one by one); the
    median window's rate."""
    from ggo.config import typed
    from ggo.runtime.threads import limit_threads
    from ggo.tracking import Tracker
    from ggo.training import for_backend, set_precision, set_random_seed
    from ggo.training.experiment import Run, RunData, build_gan

    cfg = typed(config)
    t = cfg.train
    trainer = for_backend(str(t.backend), by="python -m ggo.training.steptime")
    limit_threads(t.threads, backend=trainer.backend)
    policy = set_precision(str(t.precision))
    set_random_seed(t.seed)
    run = Run.of(cfg, Tracker())
    images, masks = synthetic_batch(t.batch_size, cfg.preprocess.resolution)
    heads = np.concatenate([masks, np.ones_like(masks)], axis=-1)  # a head's target and its weight
    targets = np.concatenate([masks, *[heads] * len(run.heads)], axis=-1)
    gan = build_gan(run, RunData(images, None, None, cfg.preprocess.resolution, trainer))
    dataset, timer = repeated_batch(images, targets), window_timer()

    def window(n: int) -> tuple[float, float]:
        gan.fit(dataset, epochs=1, steps_per_epoch=n, verbose=0, callbacks=[timer])
        return timer.seconds, timer.cpu_seconds

    started = time.perf_counter()
    window(warmup_steps)
    warmup_s = time.perf_counter() - started
    probe, _ = window(1)
    steps = max(steps, math.ceil(min_window_s / max(probe, 1e-6)))
    timed = [window(steps) for _ in range(windows)]
    per_window = steps * t.batch_size
    return {
        "images_per_s": round(per_window / statistics.median(w for w, _ in timed), 3),
        "images_per_cpu_s": round(per_window / statistics.median(c for _, c in timed), 3),
        "window_s": [round(w, 3) for w, _ in timed],
        "warmup_s": round(warmup_s, 2),
        "steps": steps,
        "windows": windows,
        "batch_size": t.batch_size,
        "resolution": cfg.preprocess.resolution,
        "precision": policy,
        "jit_compile": bool(gan.jit_compile),
        "backend": trainer.backend,
        "threads": t.threads,
        "g_loss": round(timer.logs.get("g_loss", float("nan")), 4),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ggo.training.steptime", description=__doc__.split("\n\n")[0])
    parser.add_argument("config", help="a JSON file: the run config (any keys left out take the schema's defaults)")
    parser.add_argument("--warmup-steps", type=int, default=2)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--windows", type=int, default=3)
    parser.add_argument("--min-window-s", type=float, default=1.0)
    args = parser.parse_args(argv)
    config = json.loads(Path(args.config).read_text())
    from ggo.config import typed
    from ggo.runtime.backend import select_backend

    select_backend(str(typed(config).train.backend))  # before anything imports keras
    result = time_steps(config, warmup_steps=args.warmup_steps, steps=args.steps, windows=args.windows, min_window_s=args.min_window_s)
    print(RESULT_PREFIX + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

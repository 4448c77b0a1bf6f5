"""Training throughput of ggo's GAN against the pix2pix reference step, and the input pipeline.

ggo is timed on its real default path: ``GAN.fit`` (its ``train_step`` as Keras runs it, with
the ``RaiseOnNonFinite`` callback ``GAN.fit`` adds) over a fixed ``tf.data`` dataset that repeats
one synthetic batch, so the numbers are the step's cost, not the input pipeline's. The reference
step (:mod:`ggo.bench.reference`) trains fresh instances of the same architectures on the same
batch through the same kind of dataset iterator. Timed windows alternate between the two so a
load change on a shared machine hits both alike; the reported figure is the median window.

Each window is also timed in this process's CPU time (``images_per_cpu_s``, ``cpu_ratio``). On
a machine shared with other jobs the wall-clock figures swing with their load, while the CPU
seconds a step costs stay nearly put, so the CPU ratio is the steadier comparison there. (On a
GPU the CPU time measures the host side only: compare wall clock.)
"""

from __future__ import annotations

import dataclasses
import gc
import math
import statistics
import time
from typing import Any, Callable

import numpy as np

def conf_defaults(gen: str = "unet") -> dict[str, Any]:
    """ggo's default generator, PatchGAN, batch size, loss and optimiser: the config a user's
    ``python -m ggo.train gen=<gen>`` run composes (so the benchmark follows its defaults)."""
    from ggo.config import compose, to_dict

    cfg = to_dict(compose([f"gen={gen}", "disc=patchgan"]))
    drop = {"name", "lung_head", "lung"}  # the benchmark times the default one-head model
    return {
        "gen": {k: v for k, v in cfg["gen"].items() if k not in drop},
        "disc": {**{k: v for k, v in cfg["disc"].items() if k != "name"}, "n_layers": 3},  # the 70 px PatchGAN
        "batch_size": int(cfg["train"]["batch_size"]),
        "loss": {k: v for k, v in cfg["loss"].items() if k not in drop},
        "optimizer": {k: float(cfg["train"][k]) for k in ("g_lr", "d_lr", "beta_1")},
    }


def best_mixed_precision() -> str:
    """The mixed precision this device runs fastest: bfloat16 on a CPU, float16 on a GPU."""
    from ggo.training.precision import gpu_available

    return "mixed_float16" if gpu_available() else "mixed_bfloat16"


def resolve_precisions(names: list[str]) -> list[str]:
    """``best`` -> :func:`best_mixed_precision`, ``auto`` -> ggo's auto; duplicates dropped."""
    from ggo.training.precision import resolve_precision

    out: list[str] = []
    for name in names:
        policy = best_mixed_precision() if name == "best" else resolve_precision(name)
        if policy not in out:
            out.append(policy)
    return out


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


@dataclasses.dataclass(frozen=True)
class TrainCase:
    """One row of the throughput grid."""

    resolution: int
    gen: str
    precision: str
    jit_compile: bool
    reference: bool = True  # also time the reference step (quick mode skips it for XLA rows)


def _window_timer() -> Any:
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


def _build_pair(case: TrainCase, gen_opts: dict, disc_opts: dict):
    from ggo.models import build_models

    return build_models({"name": case.gen, **gen_opts}, {"name": "patchgan", **disc_opts}, case.resolution)


def _median_rate(seconds: list[float], images: int) -> float:
    return images / statistics.median(seconds)


def _empty_row(case: TrainCase, batch_size: int, gen_opts: dict, disc_opts: dict, steps: int, windows: int) -> dict[str, Any]:
    return {
        "resolution": case.resolution,
        "gen": case.gen,
        "disc": f"patchgan{70 if disc_opts.get('n_layers', 3) == 3 else ''}",
        "base_filters": int(gen_opts["base_filters"]),
        "disc_base_filters": int(disc_opts["base_filters"]),
        "batch_size": batch_size,
        "precision": case.precision,
        "jit_compile": case.jit_compile,
        "steps_per_window": steps,
        "windows": windows,
        "images_per_s": None,
        "reference_images_per_s": None,
        "ratio": None,
        "cpu_ratio": None,
    }


def _compiled_gan(case: TrainCase, gen_opts: dict, disc_opts: dict, loss: dict, optimizer: dict) -> Any:
    """ggo's GAN of the backend, built and compiled as a run with these sections is."""
    import keras

    from ggo.training import for_backend

    GAN = for_backend(keras.backend.backend(), by="the bench").GAN  # noqa: N806 - a class

    def adam(lr: str) -> Any:
        return keras.optimizers.Adam(float(optimizer[lr]), beta_1=float(optimizer["beta_1"]))

    gan = GAN(*_build_pair(case, gen_opts, disc_opts))
    gan.compile(
        g_optimizer=adam("g_lr"),
        d_optimizer=adam("d_lr"),
        adversarial_weight=float(loss["adversarial"]),
        l1_weight=float(loss["l1"]),
        bce_weight=float(loss["bce"]),
        dice_weight=float(loss["dice"]),
        adversarial_mode=loss["adversarial_mode"],
        label_smoothing=float(loss["label_smoothing"]),
        jit_compile=case.jit_compile,
    )
    return gan


def _reference_window(case: TrainCase, gen_opts: dict, disc_opts: dict, loss: dict, dataset: Any) -> tuple[Callable, list]:
    """A function timing ``n`` pix2pix reference steps on fresh networks, and its last losses."""
    from ggo.bench.reference import make_reference_step

    r_gen, r_disc = _build_pair(case, gen_opts, disc_opts)
    ref_step = make_reference_step(r_gen, r_disc, l1_weight=float(loss["l1"]), jit_compile=case.jit_compile)
    ref_iter = iter(dataset)
    ref_losses: list[float] = []

    def ref_window(n: int) -> tuple[float, float]:
        start, cpu_start = time.perf_counter(), time.process_time()
        for _ in range(n):
            g_loss, d_loss = ref_step(*next(ref_iter))
        ref_losses[:] = [float(g_loss), float(d_loss)]  # waits for the last step
        return time.perf_counter() - start, time.process_time() - cpu_start

    return ref_window, ref_losses


def _rates(row: dict[str, Any], prefix: str, seconds: list[tuple[float, float]], n_images: int) -> None:
    """Median images/s (wall and CPU) and the per-window times into ``row`` under ``prefix``."""
    row[f"{prefix}images_per_s"] = round(_median_rate([w for w, _ in seconds], n_images), 2)
    row[f"{prefix}images_per_cpu_s"] = round(_median_rate([c for _, c in seconds], n_images), 2)
    row[f"{prefix}window_s"] = [round(w, 3) for w, _ in seconds]
    row[f"{prefix}window_cpu_s"] = [round(c, 3) for _, c in seconds]


def _time_windows(
    row: dict[str, Any],
    ggo_window: Callable,
    timer: Any,
    ref_window: Callable | None,
    ref_losses: list | None,
    *,
    steps: int,
    windows: int,
    batch_size: int,
) -> None:
    """Alternate ``windows`` timed windows of ggo and the reference (a load change on a shared
    machine hits both alike); write the median rates, finiteness and ratios into ``row``."""
    ggo_seconds, ref_seconds = [], []
    finite = True
    for _ in range(windows):
        ggo_seconds.append(ggo_window(steps))
        finite &= all(math.isfinite(timer.logs.get(k, math.nan)) for k in ("g_loss", "d_loss"))
        if ref_window is not None:
            ref_seconds.append(ref_window(steps))
    _rates(row, "", ggo_seconds, steps * batch_size)
    row["finite"] = bool(finite)
    row["g_loss"] = round(timer.logs.get("g_loss", math.nan), 4)
    if ref_window is not None:
        _rates(row, "reference_", ref_seconds, steps * batch_size)
        row["reference_finite"] = all(math.isfinite(v) for v in ref_losses)
        row["ratio"] = round(row["images_per_s"] / row["reference_images_per_s"], 3)
        row["cpu_ratio"] = round(row["images_per_cpu_s"] / row["reference_images_per_cpu_s"], 3)


def measure_train_case(
    case: TrainCase,
    *,
    batch_size: int,
    gen_opts: dict[str, Any],
    disc_opts: dict[str, Any],
    loss: dict[str, Any],
    steps: int,
    windows: int,
    warmup_steps: int,
    reference: bool = True,
    optimizer: dict[str, Any] | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Images/s of ggo's ``GAN.fit`` (and of the reference step) for one grid cell.

    ``optimizer`` (``g_lr``, ``d_lr``, ``beta_1``) defaults to the config schema's ``train``. On
    the JAX backend ``GAN`` is ``JaxGAN``, fed a Python iterator of the same numpy batch, and
    there is no reference step (it is TensorFlow's tutorial code)."""
    import keras

    from ggo.config import defaults
    from ggo.training import set_precision, set_random_seed

    on_jax = keras.backend.backend() == "jax"
    row = _empty_row(case, batch_size, gen_opts, disc_opts, steps, windows)
    images, masks = synthetic_batch(batch_size, case.resolution)
    try:
        set_precision(case.precision)
        set_random_seed(0)
        dataset = _repeated(images, masks, on_jax)
        if on_jax:
            row["reference_skipped"] = "the pix2pix reference step is TensorFlow code"
        gan = _compiled_gan(case, gen_opts, disc_opts, loss, optimizer or defaults("train"))
        row["jit_compile_effective"] = bool(gan.jit_compile)
        timer = _window_timer()

        def ggo_window(n: int) -> tuple[float, float]:
            gan.fit(dataset, epochs=1, steps_per_epoch=n, verbose=0, callbacks=[timer])
            return timer.seconds, timer.cpu_seconds

        t = time.perf_counter()
        ggo_window(warmup_steps)  # traces (and with XLA compiles) the train step
        row["warmup_s"] = round(time.perf_counter() - t, 2)
        ref_window = ref_losses = None
        if reference and case.reference and not on_jax:
            ref_window, ref_losses = _reference_window(case, gen_opts, disc_opts, loss, dataset)
            t = time.perf_counter()
            ref_window(warmup_steps)
            row["reference_warmup_s"] = round(time.perf_counter() - t, 2)

        _time_windows(row, ggo_window, timer, ref_window, ref_losses, steps=steps, windows=windows, batch_size=batch_size)
    except Exception as exc:  # noqa: BLE001 - one failing mode must not end the benchmark
        row["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
        log(f"[bench] {case} failed: {row['error']}")
    finally:
        keras.backend.clear_session()
        gc.collect()
        set_precision("float32")
    return row


def _repeated(images: np.ndarray, masks: np.ndarray, on_jax: bool) -> Any:
    """The one batch forever: a ``tf.data`` dataset, or on JAX a Python generator (what fit takes there)."""
    if on_jax:
        return _forever((images, masks))
    import tensorflow as tf

    return tf.data.Dataset.from_tensors((images, masks)).repeat()


def _forever(batch):
    """A Python generator yielding ``batch`` forever."""
    while True:
        yield batch


def _batches(ds):
    """One epoch of a ``tf.data.Dataset`` or of the numpy pipeline's ``keras.utils.PyDataset``."""
    import keras

    if isinstance(ds, keras.utils.PyDataset):
        for i in range(len(ds)):
            yield ds[i]
        ds.on_epoch_end()
    else:
        yield from ds


def measure_input_pipeline(
    resolution: int,
    *,
    batch_size: int,
    n_images: int = 64,
    epochs: int = 3,
) -> dict[str, Any]:
    """Images/s that ``make_dataset(shuffle=True, augment=AugmentConfig())`` delivers from
    cache-sized in-memory arrays, iterated without training (median of ``epochs`` passes after a
    warm-up pass)."""
    import keras

    from ggo.training import AugmentConfig, for_backend

    make_dataset = for_backend(keras.backend.backend(), by="the bench").make_dataset
    rng = np.random.default_rng(1)
    images = rng.uniform(-1.0, 1.0, (n_images, resolution, resolution, 1)).astype(np.float32)
    masks = (rng.random((n_images, resolution, resolution, 1)) > 0.9).astype(np.float32)
    ds = make_dataset(images, masks, batch_size=batch_size, shuffle=True, augment=AugmentConfig(), seed=0)
    rates = []
    for epoch in range(epochs + 1):
        start = time.perf_counter()
        seen = 0
        for image_batch, _ in _batches(ds):
            seen += int(image_batch.shape[0])
        if epoch:  # the first pass fills the cache and traces the map function
            rates.append(seen / (time.perf_counter() - start))
    return {
        "resolution": resolution,
        "batch_size": batch_size,
        "n_images": n_images,
        "images_per_s": round(statistics.median(rates), 1),
    }


__all__ = [
    "TrainCase",
    "best_mixed_precision",
    "conf_defaults",
    "measure_input_pipeline",
    "measure_train_case",
    "resolve_precisions",
    "synthetic_batch",
]

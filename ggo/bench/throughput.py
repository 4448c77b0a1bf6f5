"""Training throughput of ggo's GAN against the pix2pix reference step, and the input pipeline.

ggo is timed on its real path: each grid row composes the config a run with those settings
composes (``ggo.config.compose``, plus any ``--set KEY=VALUE`` overrides) and builds and compiles
the GAN the way a run does (``ggo.training.experiment.build_gan``), so any ``train.*`` option that changes
the step is benchmarked by naming it. The step runs through ``GAN.fit`` (its ``train_step`` as Keras
runs it, with the ``RaiseOnNonFinite`` callback ``GAN.fit`` adds) over a ``tf.data`` dataset that
repeats one synthetic batch, so the numbers are the step's cost, not the input pipeline's.

The yardstick (:mod:`ggo.bench.reference`) is the pix2pix tutorial's step in float32 without XLA
over fresh instances of the same architectures and batch: every row's ratio is "this mode of ggo
against the reference's float32", which for the float32 row is the same-settings comparison
(``--reference-same-settings`` times the reference in each row's precision and XLA setting
instead). Windows of ggo and the reference alternate and each pair gives one ratio
(:mod:`ggo.bench.paired`), in wall time and in this process's CPU time. On a machine shared with
other jobs the wall-clock figures swing with their load, while the CPU seconds a step costs stay
nearly put, so the CPU ratio is the steadier comparison there. (On a GPU the CPU time measures
the host side only: compare wall clock.)
"""

from __future__ import annotations

import dataclasses
import gc
import math
import statistics
import time
from typing import Any, Callable

import numpy as np

from ggo.training.steptime import repeated_batch, synthetic_batch, window_timer  # synthetic_batch: re-exported


def conf_defaults(gen: str = "unet") -> dict[str, Any]:
    """ggo's default generator, PatchGAN, batch size, loss and optimiser: the config a user's
    ``python -m ggo.train gen=<gen>`` run composes (so the benchmark follows its defaults)."""
    from ggo.config import compose, to_dict

    cfg = to_dict(compose([f"gen={gen}", "disc=patchgan"]))
    drop = {"name", "lung_head", "aux_heads", "lung", "aux"}  # the benchmark times the default one-head model
    return {
        "gen": {k: v for k, v in cfg["gen"].items() if k not in drop},
        "disc": {**{k: v for k, v in cfg["disc"].items() if k != "name"}, "n_layers": 3},  # the 70 px PatchGAN
        "batch_size": int(cfg["train"]["batch_size"]),
        "loss": {k: v for k, v in cfg["loss"].items() if k not in drop},
        "optimizer": {k: float(cfg["train"][k]) for k in ("g_lr", "d_lr", "beta_1")},
    }


def best_mixed_precision(gpu: bool | None = None, cpu_flags: list[str] | None = None) -> str:
    """The mixed precision this device runs fastest: ggo's ``train.precision=auto`` rule
    (:func:`ggo.training.precision.auto_precision`: float16 on a GPU, bfloat16 on a CPU with native
    bfloat16, else ``float32``: on an AVX2-only CPU TensorFlow's bfloat16 step measured 10x slower
    than float32). ``gpu`` and ``cpu_flags`` default to this machine's."""
    from ggo.training.precision import auto_precision, gpu_available, read_cpuinfo

    cpuinfo = read_cpuinfo() if cpu_flags is None else "flags\t: " + " ".join(cpu_flags)
    return auto_precision(gpu=gpu_available() if gpu is None else gpu, cpuinfo=cpuinfo)


def resolve_precisions(names: list[str]) -> list[str]:
    """``best`` -> :func:`best_mixed_precision`, ``auto`` -> ggo's auto; duplicates dropped."""
    from ggo.training.precision import resolve_precision

    out: list[str] = []
    for name in names:
        policy = best_mixed_precision() if name == "best" else resolve_precision(name)
        if policy not in out:
            out.append(policy)
    return out


@dataclasses.dataclass(frozen=True)
class TrainCase:
    """One row of the throughput grid."""

    resolution: int
    gen: str
    precision: str
    jit_compile: bool
    reference: bool = True  # also time the reference step
    overrides: tuple[str, ...] = ()  # config overrides of this row (``--set``), e.g. train.x=y

    def mode(self) -> str:
        """``mixed_bfloat16 + XLA [train.x=y]``: what distinguishes the row within its cell."""
        extra = f" [{' '.join(self.overrides)}]" if self.overrides else ""
        return f"{self.precision}{' + XLA' if self.jit_compile else ''}{extra}"


@dataclasses.dataclass(frozen=True)
class Timing:
    """How a row is timed (see :mod:`ggo.bench.paired`)."""

    windows: int = 10  # pairs of windows (ggo, reference)
    min_window_s: float = 3.0  # steps per window are calibrated so each window lasts at least this
    warmup_steps: int = 2  # untimed steps first (tracing, XLA compile)
    steps: int | None = None  # fixed steps per window instead of calibrating
    probe_steps: int = 2  # steps of the calibration window of each side
    reference_same_settings: bool = False  # reference in the row's precision/XLA, not float32

    def indicative(self, pairs: list[dict[str, float]]) -> bool:
        """Too few or too short windows for a verdict to steer by (below 10 pairs of 3 s)."""
        from ggo.bench.paired import median_shorter_window_s

        return self.windows < STEER_WINDOWS or median_shorter_window_s(pairs) < 0.95 * STEER_WINDOW_S


#: What a verdict needs to steer by (issue 14): at least 10 windows each of at least 3 s.
STEER_WINDOWS, STEER_WINDOW_S = 10, 3.0


def case_config(case: TrainCase, *, batch_size: int, base_filters: int | None = None,
                disc_base_filters: int | None = None) -> tuple[dict[str, Any], bool]:
    """The validated config a ``python -m ggo.train`` run of this row composes, and whether the
    row's own overrides leave it at the defaults (it is then the default path)."""
    import keras

    from ggo.config import compose, to_dict, validate

    base = [
        f"gen={case.gen}", "disc=patchgan", "disc.n_layers=3", f"preprocess.resolution={case.resolution}",
        f"train.batch_size={batch_size}", f"train.precision={case.precision}",
        f"train.jit_compile={str(case.jit_compile).lower()}", f"train.backend={keras.backend.backend()}", "tracking=none",
    ]  # fmt: skip
    defaults = to_dict(compose(base))
    for section, value in (("gen", base_filters), ("disc", disc_base_filters)):
        if value:
            base += [f"{section}.base_filters={value}", f"{section}.max_filters={max(value, defaults[section]['max_filters'])}"]
    plain = to_dict(compose(base))
    cfg = to_dict(compose([*base, *case.overrides])) if case.overrides else plain
    validate(cfg)
    return cfg, cfg == plain


def _empty_row(case: TrainCase, cfg: dict[str, Any], default: bool, timing: Timing) -> dict[str, Any]:
    same = timing.reference_same_settings
    return {
        "resolution": case.resolution,
        "gen": case.gen,
        "disc": f"patchgan{70 if cfg['disc']['n_layers'] == 3 else ''}",
        "base_filters": int(cfg["gen"]["base_filters"]),
        "disc_base_filters": int(cfg["disc"]["base_filters"]),
        "batch_size": int(cfg["train"]["batch_size"]),
        "precision": case.precision,
        "jit_compile": case.jit_compile,
        "overrides": list(case.overrides),
        "default_settings": default,
        "reference_precision": case.precision if same else "float32",
        "reference_jit_compile": case.jit_compile if same else False,
        "windows": timing.windows,
        "min_window_s": timing.min_window_s,
        "steps_per_window": timing.steps,
        "images_per_s": None,
        "reference_images_per_s": None,
        "ratio": None,
        "cpu_ratio": None,
    }


def _build_gan(cfg: dict[str, Any], images: np.ndarray) -> Any:
    """ggo's GAN built and compiled by the function a run uses, from the row's config."""
    import keras

    from ggo.tracking import Tracker
    from ggo.training import for_backend
    from ggo.training.experiment import Run, RunData, build_gan  # the run's own builder: every train.* option counts

    trainer = for_backend(keras.backend.backend(), by="the bench")
    return build_gan(Run.of(cfg, Tracker()), RunData(images, None, None, int(cfg["preprocess"]["resolution"]), trainer))


def _reference_window(cfg: dict[str, Any], jit_compile: bool, dataset: Any) -> tuple[Callable, list]:
    """A function timing ``n`` pix2pix reference steps on fresh networks of the row's
    architectures (built under the current precision policy), and its last losses."""
    from ggo.bench.reference import make_reference_step
    from ggo.models import build_models

    r_gen, r_disc = build_models(cfg["gen"], cfg["disc"], int(cfg["preprocess"]["resolution"]))
    ref_step = make_reference_step(r_gen, r_disc, l1_weight=float(cfg["loss"]["l1"]), jit_compile=jit_compile)
    ref_iter = iter(dataset)
    ref_losses: list[float] = []

    def ref_window(n: int) -> tuple[float, float]:
        start, cpu_start = time.perf_counter(), time.process_time()
        for _ in range(n):
            g_loss, d_loss = ref_step(*next(ref_iter))
        ref_losses[:] = [float(g_loss), float(d_loss)]  # waits for the last step
        return time.perf_counter() - start, time.process_time() - cpu_start

    return ref_window, ref_losses


def _warm(window: Callable, steps: int) -> float:
    t = time.perf_counter()
    window(steps)
    return round(time.perf_counter() - t, 2)


def _summarise(row: dict[str, Any], pairs: list[dict[str, float]], steps: int, timing: Timing) -> None:
    """Median rates, the raw windows, the paired ratios and their spread into ``row``."""
    from ggo.bench.paired import pair_ratios, spread

    images = steps * row["batch_size"]
    row["steps_per_window"] = steps
    for prefix, side in (("", "ggo"), ("reference_", "ref")):
        if f"{side}_wall_s" not in pairs[0]:
            continue
        wall, cpu = [p[f"{side}_wall_s"] for p in pairs], [p[f"{side}_cpu_s"] for p in pairs]
        row[f"{prefix}images_per_s"] = round(images / statistics.median(wall), 2)
        row[f"{prefix}images_per_cpu_s"] = round(images / statistics.median(cpu), 2)
        row[f"{prefix}window_s"] = [round(w, 3) for w in wall]
        row[f"{prefix}window_cpu_s"] = [round(c, 3) for c in cpu]
    for key, clock in (("ratio", "wall"), ("cpu_ratio", "cpu")):
        ratios = pair_ratios(pairs, clock)
        stats = spread(ratios)
        row[f"pair_{key}s"] = [round(r, 4) for r in ratios]
        row[key] = round(stats["median"], 3) if stats else None
        row[f"{key}_iqr"] = [round(stats["p25"], 3), round(stats["p75"], 3)] if stats else None
    row["indicative"] = timing.indicative(pairs)


def measure_train_case(
    case: TrainCase,
    cfg: dict[str, Any],
    *,
    timing: Timing,
    default_settings: bool = True,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Images/s of ggo's ``GAN.fit`` for the run config ``cfg`` (:func:`case_config`) in windows
    alternating with the reference step's, and their paired ratios.

    On the JAX backend ``GAN`` is ``JaxGAN``, fed a Python iterator of the same numpy batch, and
    there is no reference step (it is TensorFlow's tutorial code)."""
    import keras

    from ggo.bench.paired import calibrated_steps, time_interleaved
    from ggo.training import set_precision, set_random_seed

    on_jax = keras.backend.backend() == "jax"
    row = _empty_row(case, cfg, default_settings, timing)
    images, masks = synthetic_batch(row["batch_size"], case.resolution)
    try:
        set_precision(case.precision)
        set_random_seed(0)
        dataset = repeated_batch(images, masks)
        gan = _build_gan(cfg, images)
        row["jit_compile_effective"] = bool(gan.jit_compile)
        timer, finite = window_timer(), [True]

        def ggo_window(n: int) -> tuple[float, float]:
            gan.fit(dataset, epochs=1, steps_per_epoch=n, verbose=0, callbacks=[timer])
            finite[0] &= all(math.isfinite(timer.logs.get(k, math.nan)) for k in ("g_loss", "d_loss"))
            return timer.seconds, timer.cpu_seconds

        row["warmup_s"] = _warm(ggo_window, timing.warmup_steps)  # traces (and with XLA compiles) the step
        ref_window = ref_losses = None
        if on_jax:
            row["reference_skipped"] = "the pix2pix reference step is TensorFlow code"
        elif case.reference:
            set_precision(row["reference_precision"])  # ggo's networks keep the policy they were built with
            ref_window, ref_losses = _reference_window(cfg, row["reference_jit_compile"], dataset)
            row["reference_warmup_s"] = _warm(ref_window, timing.warmup_steps)
        steps = timing.steps or calibrated_steps(
            [w(timing.probe_steps)[0] / timing.probe_steps for w in (ggo_window, ref_window) if w is not None],
            timing.min_window_s,
        )
        pairs = time_interleaved(ggo_window, ref_window, windows=timing.windows, steps=steps)
        _summarise(row, pairs, steps, timing)
        row["finite"] = bool(finite[0])
        row["g_loss"] = round(timer.logs.get("g_loss", math.nan), 4)
        if ref_losses is not None:
            row["reference_finite"] = all(math.isfinite(v) for v in ref_losses)
    except Exception as exc:  # noqa: BLE001 - one failing mode must not end the benchmark
        row["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
        log(f"[bench] {case} failed: {row['error']}")
    finally:
        keras.backend.clear_session()
        gc.collect()
        set_precision("float32")
    return row


def _batches(ds):
    """One epoch of a ``tf.data.Dataset`` or of the numpy pipeline's ``keras.utils.PyDataset``."""
    import keras

    if isinstance(ds, keras.utils.PyDataset):
        for i in range(len(ds)):
            yield ds[i]
        ds.on_epoch_end()
    else:
        yield from ds


def _pipeline_rate(ds: Any, epochs: int) -> float:
    """Median images/s of ``epochs`` passes over ``ds`` after a warm-up pass."""
    rates = []
    for epoch in range(epochs + 1):
        start = time.perf_counter()
        seen = sum(int(image_batch.shape[0]) for image_batch, _ in _batches(ds))
        if epoch:  # the first pass fills tf.data's cache (arrays) and traces the map functions
            rates.append(seen / (time.perf_counter() - start))
    return round(statistics.median(rates), 1)


def measure_input_pipeline(
    resolution: int,
    *,
    batch_size: int,
    n_images: int = 64,
    epochs: int = 3,
) -> dict[str, Any]:
    """Images/s that ``make_dataset(shuffle=True, augment=AugmentConfig())`` delivers without
    training (median of ``epochs`` passes after a warm-up pass): from a cache on disk, read a batch
    at a time as training reads it (``images_per_s``), and from the same films in memory as
    arrays (``in_memory_images_per_s``, how training read them before it streamed)."""
    import tempfile
    from pathlib import Path

    import keras

    from ggo.data.cache_split import SplitSource
    from ggo.training import AugmentConfig, for_backend

    make_dataset = for_backend(keras.backend.backend(), by="the bench").make_dataset
    rng = np.random.default_rng(1)
    images = rng.uniform(-1.0, 1.0, (n_images, resolution, resolution, 1)).astype(np.float32)
    masks = (rng.random((n_images, resolution, resolution, 1)) > 0.9).astype(np.uint8)
    options = {"batch_size": batch_size, "shuffle": True, "augment": AugmentConfig(), "seed": 0}
    in_memory = _pipeline_rate(make_dataset(images, masks.astype(np.float32), **options), epochs)
    with tempfile.TemporaryDirectory(prefix="ggo-bench-cache-") as folder:
        np.save(Path(folder) / "images.npy", images)  # the cache's files and dtypes
        np.save(Path(folder) / "masks.npy", masks)
        source = SplitSource(Path(folder), np.arange(n_images))
        from_cache = _pipeline_rate(make_dataset(source, **options), epochs)
    return {
        "resolution": resolution,
        "batch_size": batch_size,
        "n_images": n_images,
        "images_per_s": from_cache,
        "in_memory_images_per_s": in_memory,
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

"""``python -m ggo.bench``: how fast ggo trains, feeds, predicts and starts, on this machine.

Sections (each can be skipped):

1. training throughput of ggo's ``GAN`` (``fit`` over a fixed synthetic batch) per resolution,
   generator, precision and XLA setting, beside 2. the pix2pix tutorial's plain training step
   over fresh instances of the same networks (:mod:`ggo.bench.reference`);
3. the input pipeline alone (``make_dataset`` with augmentation);
4. inference from image files through the logged MLflow model, preprocessing included;
5. start-up to training, and per-job overhead inside a multirun;
6. peak resident memory of a 256 px training run.

Results go to a JSON file (``bench.json``) and a markdown file beside it, with the machine they
came from and the targets ggo holds itself to (:mod:`ggo.bench.report`). This package holds the
benchmark's backend-specific code (TensorFlow datasets and the TensorFlow reference step; on
``--backend jax`` the numpy pipeline and no reference); the library it measures stays
backend-neutral.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

QUICK_STEPS, QUICK_WINDOWS, QUICK_WARMUP = 4, 3, 1
FULL_STEPS, FULL_WINDOWS, FULL_WARMUP = 10, 5, 2


@dataclasses.dataclass
class BenchOptions:
    """What to measure. ``None`` grid fields mean: the full grid, or the quick grid with ``quick``."""

    quick: bool = False
    resolutions: list[int] | None = None
    gens: list[str] | None = None
    precisions: list[str] | None = None
    xla: list[bool] | None = None
    base_filters: int | None = None
    disc_base_filters: int | None = None
    batch_size: int | None = None
    steps: int | None = None
    windows: int | None = None
    warmup_steps: int | None = None
    reference: bool = True
    pipeline: bool = True
    inference: bool = True
    overhead: bool = True
    memory: bool = True
    inference_files: int | None = None
    inference_size: int = 1024
    memory_resolution: int = 256
    multirun_jobs: int = 3
    workdir: str | None = None
    backend: str = "tensorflow"  # informational: the process's Keras backend is chosen at start-up


def train_cases(opts: BenchOptions) -> list[Any]:
    """The throughput grid.

    Quick mode without grid options: the U-Net at 128 px in float32 and the best mixed
    precision, XLA off, plus the best mixed precision with XLA (without its reference: compiling
    both steps with XLA takes longer on a CPU than all the other rows); float32 rows for the
    Attention U-Net at 128 px and the U-Net at 256 px. Enough for every target."""
    from ggo.bench.throughput import TrainCase, resolve_precisions

    precisions = resolve_precisions(opts.precisions or ["float32", "best"])
    xla = opts.xla if opts.xla is not None else [False, True]
    explicit = any(v is not None for v in (opts.resolutions, opts.gens, opts.precisions, opts.xla))
    if opts.quick and not explicit:
        cases = [TrainCase(128, "unet", p, False) for p in precisions]
        cases += [TrainCase(128, "unet", p, True, reference=False) for p in precisions[-1:]]
        cases += [TrainCase(128, "attention_unet", "float32", False), TrainCase(256, "unet", "float32", False)]
        return cases
    return [
        TrainCase(res, gen, p, j)
        for res in (opts.resolutions or [128, 256])
        for gen in (opts.gens or ["unet", "attention_unet"])
        for p in precisions
        for j in xla
    ]


def run_bench(opts: BenchOptions, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the selected sections; return the result (see ``ggo.bench.report`` for its files)."""
    from ggo.bench import report
    from ggo.bench.machine import load_average, machine_info
    import keras

    from ggo.bench.throughput import conf_defaults, measure_input_pipeline, measure_train_case

    if keras.backend.backend() != opts.backend:
        raise RuntimeError(
            f"run_bench(backend={opts.backend!r}) in a process whose Keras runs on {keras.backend.backend()!r}: "
            "call ggo.backend.select_backend before importing keras (python -m ggo.bench --backend does)"
        )
    started = time.perf_counter()
    result: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "mode": "quick" if opts.quick else "full",
        "machine": machine_info(),
    }
    defaults = {gen: conf_defaults(gen) for gen in ("unet", "attention_unet")}
    batch = opts.batch_size or defaults["unet"]["batch_size"]
    steps = opts.steps or (QUICK_STEPS if opts.quick else FULL_STEPS)
    windows = opts.windows or (QUICK_WINDOWS if opts.quick else FULL_WINDOWS)
    warmup = opts.warmup_steps or (QUICK_WARMUP if opts.quick else FULL_WARMUP)

    def steps_at(res: int) -> int:
        # Quick mode keeps windows about as long at 256 px as at 128 px (a step costs ~4x).
        return max(2, steps // 2) if opts.quick and not opts.steps and res > 128 else steps
    log(f"[bench] {result['machine']['device']}; load average {result['machine']['load_average_start']}")

    def gen_opts(gen: str) -> dict[str, Any]:
        g = dict(defaults[gen]["gen"])
        if opts.base_filters:
            g["base_filters"] = opts.base_filters
            g["max_filters"] = max(g["max_filters"], opts.base_filters)
        return g

    disc_opts = dict(defaults["unet"]["disc"])
    if opts.disc_base_filters:
        disc_opts["base_filters"] = opts.disc_base_filters
        disc_opts["max_filters"] = max(disc_opts["max_filters"], opts.disc_base_filters)
    result["settings"] = {
        "batch_size": batch, "steps_per_window": steps, "windows": windows, "warmup_steps": warmup,
        "gen": {g: gen_opts(g) for g in ("unet", "attention_unet")}, "disc": {"name": "patchgan", **disc_opts},
        "loss": defaults["unet"]["loss"],
    }  # fmt: skip

    errors: dict[str, str] = {}
    rows = []
    cases = train_cases(opts)
    for i, case in enumerate(cases, 1):
        row = measure_train_case(
            case, batch_size=batch, gen_opts=gen_opts(case.gen), disc_opts=disc_opts, loss=defaults[case.gen]["loss"],
            steps=steps_at(case.resolution), windows=windows, warmup_steps=warmup, reference=opts.reference, log=log,
        )  # fmt: skip
        rows.append(row)
        log(f"[bench] train {i}/{len(cases)} {case.resolution} px {case.gen} {case.precision} "
            f"XLA {'on' if case.jit_compile else 'off'}: ggo {row['images_per_s']} img/s, "
            f"reference {row['reference_images_per_s']} img/s")  # fmt: skip
    result["train"] = rows

    def section(name: str, fn: Callable[[], Any]) -> Any:
        t = time.perf_counter()
        try:
            value = fn()
        except Exception as exc:  # noqa: BLE001 - record and go on with the other sections
            errors[name] = f"{type(exc).__name__}: {exc}"
            log(f"[bench] {name} failed: {errors[name]}")
            return None
        log(f"[bench] {name} done in {time.perf_counter() - t:.0f}s")
        return value

    resolutions = sorted({c.resolution for c in cases})
    result["input_pipeline"] = {}
    if opts.pipeline:
        for res in resolutions:
            got = section(f"input_pipeline_{res}", lambda res=res: measure_input_pipeline(res, batch_size=batch))
            if got:
                result["input_pipeline"][str(res)] = got
    pipe = result["input_pipeline"]
    result["input_pipeline_images_per_s"] = pipe[str(max(int(r) for r in pipe))]["images_per_s"] if pipe else None

    with tempfile.TemporaryDirectory(prefix="ggo-bench-", dir=opts.workdir) as tmp:
        tmp = Path(tmp)
        result["inference"] = None
        if opts.inference:
            from ggo.bench.inference import measure_inference

            n_files = opts.inference_files or (6 if opts.quick else 16)
            result["inference"] = section(
                "inference",
                lambda: measure_inference(
                    resolution=256, gen="unet", gen_opts=gen_opts("unet"), n_files=n_files,
                    image_size=opts.inference_size, repeats=2 if opts.quick else 3, workdir=tmp,
                ),  # fmt: skip
            )
        result["inference_images_per_s"] = (result["inference"] or {}).get("images_per_s")

        from ggo.bench import processes

        result["startup"] = result["multirun"] = result["memory"] = None
        if opts.overhead:
            result["startup"] = section("startup", lambda: processes.measure_startup(tmp))
            result["multirun"] = section("multirun", lambda: processes.measure_multirun(tmp, jobs=opts.multirun_jobs))
        if opts.memory:
            result["memory"] = section(
                "memory", lambda: processes.measure_memory(tmp, resolution=opts.memory_resolution)
            )
    result["startup_s"] = (result["startup"] or {}).get("startup_s")
    multirun = result["multirun"] or {}
    result["multirun_overhead_s"] = {"first": multirun["first"], "later": multirun["later"]} if multirun else None
    result["peak_rss_mb"] = (result["memory"] or {}).get("peak_rss_mb")

    result["skipped"] = [
        name for name, on in (("reference", opts.reference), ("input_pipeline", opts.pipeline),
                              ("inference", opts.inference), ("overhead", opts.overhead), ("memory", opts.memory))
        if not on
    ]  # fmt: skip
    result["errors"] = errors
    result["targets"] = report.evaluate_targets(result)
    result["machine"]["load_average_end"] = load_average()
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result


__all__ = ["BenchOptions", "run_bench", "train_cases"]

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


@dataclasses.dataclass(frozen=True)
class _Plan:
    """The settings every section shares: the options resolved against ggo's ``conf/`` defaults."""

    batch: int
    steps: int
    windows: int
    warmup: int
    gen: dict[str, dict[str, Any]]  # generator name -> its options
    disc: dict[str, Any]  # the 70 px PatchGAN's options
    loss: dict[str, dict[str, Any]]  # generator name -> its loss defaults
    shorter_above_128: bool  # quick mode without --steps

    def steps_at(self, resolution: int) -> int:
        # Quick mode keeps windows about as long at 256 px as at 128 px (a step costs ~4x).
        return max(2, self.steps // 2) if self.shorter_above_128 and resolution > 128 else self.steps

    def settings(self) -> dict[str, Any]:
        """The ``settings`` entry of the result."""
        return {
            "batch_size": self.batch, "steps_per_window": self.steps, "windows": self.windows,
            "warmup_steps": self.warmup, "gen": {g: dict(o) for g, o in self.gen.items()},
            "disc": {"name": "patchgan", **self.disc}, "loss": self.loss["unet"],
        }  # fmt: skip


def _with_base_filters(options: dict[str, Any], base_filters: int | None) -> dict[str, Any]:
    out = dict(options)
    if base_filters:
        out["base_filters"] = base_filters
        out["max_filters"] = max(out["max_filters"], base_filters)
    return out


def _plan(opts: BenchOptions) -> _Plan:
    from ggo.bench.throughput import conf_defaults

    defaults = {gen: conf_defaults(gen) for gen in ("unet", "attention_unet")}
    return _Plan(
        batch=opts.batch_size or defaults["unet"]["batch_size"],
        steps=opts.steps or (QUICK_STEPS if opts.quick else FULL_STEPS),
        windows=opts.windows or (QUICK_WINDOWS if opts.quick else FULL_WINDOWS),
        warmup=opts.warmup_steps or (QUICK_WARMUP if opts.quick else FULL_WARMUP),
        gen={gen: _with_base_filters(d["gen"], opts.base_filters) for gen, d in defaults.items()},
        disc=_with_base_filters(defaults["unet"]["disc"], opts.disc_base_filters),
        loss={gen: d["loss"] for gen, d in defaults.items()},
        shorter_above_128=opts.quick and not opts.steps,
    )


def _train_rows(cases: list[Any], plan: _Plan, opts: BenchOptions, log: Callable[[str], None]) -> list[dict[str, Any]]:
    """Section 1 and 2: one throughput row per grid case."""
    from ggo.bench.throughput import measure_train_case

    rows = []
    for i, case in enumerate(cases, 1):
        row = measure_train_case(
            case, batch_size=plan.batch, gen_opts=dict(plan.gen[case.gen]), disc_opts=dict(plan.disc),
            loss=plan.loss[case.gen], steps=plan.steps_at(case.resolution), windows=plan.windows,
            warmup_steps=plan.warmup, reference=opts.reference, log=log,
        )  # fmt: skip
        rows.append(row)
        log(f"[bench] train {i}/{len(cases)} {case.resolution} px {case.gen} {case.precision} "
            f"XLA {'on' if case.jit_compile else 'off'}: ggo {row['images_per_s']} img/s, "
            f"reference {row['reference_images_per_s']} img/s")  # fmt: skip
    return rows


@dataclasses.dataclass
class _Sections:
    """Runs the sections after training: a failing one is recorded in ``errors``, the rest go on."""

    log: Callable[[str], None]
    errors: dict[str, str] = dataclasses.field(default_factory=dict)

    def run(self, name: str, fn: Callable[[], Any]) -> Any:
        t = time.perf_counter()
        try:
            value = fn()
        except Exception as exc:  # noqa: BLE001 - record and go on with the other sections
            self.errors[name] = f"{type(exc).__name__}: {exc}"
            self.log(f"[bench] {name} failed: {self.errors[name]}")
            return None
        self.log(f"[bench] {name} done in {time.perf_counter() - t:.0f}s")
        return value


def _pipeline(opts: BenchOptions, plan: _Plan, resolutions: list[int], sections: _Sections) -> dict[str, Any]:
    """Section 3: the input pipeline alone, per resolution of the grid."""
    from ggo.bench.throughput import measure_input_pipeline

    pipe: dict[str, Any] = {}
    if opts.pipeline:
        for res in resolutions:
            got = sections.run(f"input_pipeline_{res}", lambda res=res: measure_input_pipeline(res, batch_size=plan.batch))
            if got:
                pipe[str(res)] = got
    best = pipe[str(max(int(r) for r in pipe))]["images_per_s"] if pipe else None
    return {"input_pipeline": pipe, "input_pipeline_images_per_s": best}


def _inference(opts: BenchOptions, plan: _Plan, tmp: Path, sections: _Sections) -> dict[str, Any]:
    """Section 4: inference from image files through the logged MLflow model."""
    got = None
    if opts.inference:
        from ggo.bench.inference import measure_inference

        n_files = opts.inference_files or (6 if opts.quick else 16)
        got = sections.run(
            "inference",
            lambda: measure_inference(
                resolution=256, gen="unet", gen_opts=dict(plan.gen["unet"]), n_files=n_files,
                image_size=opts.inference_size, repeats=2 if opts.quick else 3, workdir=tmp,
            ),  # fmt: skip
        )
    return {"inference": got, "inference_images_per_s": (got or {}).get("images_per_s")}


def _subprocess_sections(opts: BenchOptions, tmp: Path, sections: _Sections) -> dict[str, Any]:
    """Sections 5 and 6: start-up, multirun overhead and peak memory of real ``ggo.train`` runs."""
    from ggo.bench import processes

    out: dict[str, Any] = {"startup": None, "multirun": None, "memory": None}
    if opts.overhead:
        out["startup"] = sections.run("startup", lambda: processes.measure_startup(tmp))
        out["multirun"] = sections.run("multirun", lambda: processes.measure_multirun(tmp, jobs=opts.multirun_jobs))
    if opts.memory:
        out["memory"] = sections.run("memory", lambda: processes.measure_memory(tmp, resolution=opts.memory_resolution))
    multirun = out["multirun"] or {}
    out["startup_s"] = (out["startup"] or {}).get("startup_s")
    out["multirun_overhead_s"] = {"first": multirun["first"], "later": multirun["later"]} if multirun else None
    out["peak_rss_mb"] = (out["memory"] or {}).get("peak_rss_mb")
    return out


def _skipped(opts: BenchOptions) -> list[str]:
    switches = (("reference", opts.reference), ("input_pipeline", opts.pipeline), ("inference", opts.inference),
                ("overhead", opts.overhead), ("memory", opts.memory))  # fmt: skip
    return [name for name, on in switches if not on]


def run_bench(opts: BenchOptions, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the selected sections; return the result (see ``ggo.bench.report`` for its files)."""
    from ggo.bench import report
    from ggo.bench.machine import load_average, machine_info
    from ggo.training import for_backend

    # The backend switch, once: it checks Keras runs opts.backend (and, off TensorFlow, keeps
    # Keras from importing it). ggo.bench.throughput still imports the GAN and pipeline by name.
    for_backend(opts.backend, by=f"run_bench(backend={opts.backend!r})")
    started = time.perf_counter()
    result: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "mode": "quick" if opts.quick else "full",
        "machine": machine_info(),
    }
    plan = _plan(opts)
    log(f"[bench] {result['machine']['device']}; load average {result['machine']['load_average_start']}")
    result["settings"] = plan.settings()
    cases = train_cases(opts)
    result["train"] = _train_rows(cases, plan, opts, log)

    sections = _Sections(log)
    result.update(_pipeline(opts, plan, sorted({c.resolution for c in cases}), sections))
    with tempfile.TemporaryDirectory(prefix="ggo-bench-", dir=opts.workdir) as tmp:
        result.update(_inference(opts, plan, Path(tmp), sections))
        result.update(_subprocess_sections(opts, Path(tmp), sections))
    result["skipped"] = _skipped(opts)
    result["errors"] = sections.errors
    result["targets"] = report.evaluate_targets(result)
    result["machine"]["load_average_end"] = load_average()
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result


__all__ = ["BenchOptions", "run_bench", "train_cases"]

"""``python -m ggo.bench``: how fast ggo trains, feeds, predicts and starts, on this machine.

Sections (each can be skipped):

1. training throughput of ggo's ``GAN`` (``fit`` over a fixed synthetic batch) per resolution,
   generator, precision, XLA setting and any ``--set`` config axis, in windows alternating with
   2. the pix2pix tutorial's plain training step in float32 over fresh instances of the same
   networks (:mod:`ggo.bench.reference`); each pair of windows gives a ratio, reported as the
   median with its interquartile range (:mod:`ggo.bench.paired`);
3. the input pipeline alone (``make_dataset`` with augmentation), from a cache on disk as
   training reads it and from arrays in memory;
3b. process-wide settings (XLA, threads, precision) arm by arm, each arm alone in a fresh process
   (:mod:`ggo.bench.arms`), every arm's own images/s beside the ratio;
4. inference from image files through the logged MLflow model, preprocessing included;
5. start-up to training, and per-job overhead inside a multirun;
6. peak resident memory of a 256 px training run;
7. the CV row: wall time of the 5-fold 128 px preset one job at a time and as parallel jobs
   (:mod:`ggo.bench.cvrow`; only with ``--cv-row``);
8. data at scale: generated folders of growing size prepared and trained on, with wall time,
   cores used, peak memory, cache size, start-up and epoch time per film count
   (:mod:`ggo.bench.datascale`; only with ``--data-scale``).

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

from ggo.bench.errors import BenchConfigError  # re-exported: raised by run_bench

# Pairs of windows, seconds a window lasts at least, untimed warm-up steps. The full run's
# windows are what a verdict needs to steer by; quick ones give an indicative verdict only.
QUICK_WINDOWS, QUICK_WINDOW_S, QUICK_WARMUP = 5, 1.5, 1
FULL_WINDOWS, FULL_WINDOW_S, FULL_WARMUP = 10, 3.0, 2




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
    steps: int | None = None  # fixed steps per window; None: calibrated to window_s
    windows: int | None = None
    window_s: float | None = None
    warmup_steps: int | None = None
    set_axes: list[str] | None = None  # "KEY=V1[,V2...]": config overrides, a grid axis when several
    reference_same_settings: bool = False
    train: bool = True
    reference: bool = True
    pipeline: bool = True
    inference: bool = True
    overhead: bool = True
    memory: bool = True
    inference_files: int | None = None
    inference_size: int = 1024
    memory_resolution: int = 256
    multirun_jobs: int = 3
    cv_row: bool = False  # minutes of real training: only when asked for (--cv-row)
    cv_row_options: Any = None  # ggo.bench.cvrow.CvRowOptions (None: its defaults)
    workdir: str | None = None
    backend: str = "tensorflow"  # informational: the process's Keras backend is chosen at start-up
    arms: list[str] | None = None  # "KEY=V1,V2": a process-wide setting timed one fresh process per arm
    arms_rounds: int | None = None
    process_arms: bool = True
    data_scale: Any = None  # ggo.bench.datascale.DataScaleOptions: only with --data-scale


def train_cases(opts: BenchOptions) -> list[Any]:
    """The throughput grid.

    Quick mode without grid options: the U-Net at 128 px in float32 and the best mixed
    precision, XLA off, plus the best mixed precision with XLA; float32 rows for the Attention
    U-Net at 128 px and the U-Net at 256 px. Enough for every target. Each ``--set`` axis
    multiplies the grid (``train.x=a,b``: every row once with ``a``, once with ``b``)."""
    from ggo.bench.throughput import TrainCase, resolve_precisions

    precisions = resolve_precisions(opts.precisions or ["float32", "best"])
    xla = opts.xla if opts.xla is not None else [False, True]
    explicit = any(v is not None for v in (opts.resolutions, opts.gens, opts.precisions, opts.xla))
    if opts.quick and not explicit:
        cells = [(128, "unet", p, False) for p in precisions] + [(128, "unet", p, True) for p in precisions[-1:]]
        cells += [(128, "attention_unet", "float32", False), (256, "unet", "float32", False)]
    else:
        cells = [
            (res, gen, p, j)
            for res in (opts.resolutions or [128, 256])
            for gen in (opts.gens or ["unet", "attention_unet"])
            for p in precisions
            for j in xla
        ]
    return [TrainCase(*cell, overrides=ov) for cell in cells for ov in override_grid(opts.set_axes or [])]


def override_grid(axes: list[str]) -> list[tuple[str, ...]]:
    """``["a.b=1,2", "c=x"]`` -> ``[("a.b=1", "c=x"), ("a.b=2", "c=x")]``: every combination of
    the ``--set`` values (a comma separates the values of one key, as in a Hydra sweep)."""
    import itertools

    choices = []
    for axis in axes:
        key, sep, values = axis.partition("=")
        items = [v.strip() for v in values.split(",")]
        if not sep or not key.strip() or not all(items):
            raise BenchConfigError(f"--set {axis!r}: expected KEY=VALUE or KEY=V1,V2,... (e.g. train.d_steps=1,2)")
        choices.append([f"{key.strip()}={v}" for v in items])
    return [tuple(combo) for combo in itertools.product(*choices)]


@dataclasses.dataclass(frozen=True)
class _Plan:
    """The settings every section shares: the options resolved against ggo's ``conf/`` defaults."""

    batch: int
    timing: Any  # ggo.bench.throughput.Timing
    base_filters: int | None
    disc_base_filters: int | None
    gen: dict[str, dict[str, Any]]  # generator name -> its options
    disc: dict[str, Any]  # the 70 px PatchGAN's options
    loss: dict[str, dict[str, Any]]  # generator name -> its loss defaults

    def settings(self) -> dict[str, Any]:
        """The ``settings`` entry of the result."""
        t = self.timing
        return {
            "batch_size": self.batch, "windows": t.windows, "min_window_s": t.min_window_s,
            "steps_per_window": t.steps or "calibrated", "warmup_steps": t.warmup_steps,
            "reference": "each row's precision and XLA" if t.reference_same_settings else "float32 without XLA",
            "gen": {g: dict(o) for g, o in self.gen.items()}, "disc": {"name": "patchgan", **self.disc},
            "loss": self.loss["unet"],
        }  # fmt: skip


def _with_base_filters(options: dict[str, Any], base_filters: int | None) -> dict[str, Any]:
    out = dict(options)
    if base_filters:
        out["base_filters"] = base_filters
        out["max_filters"] = max(out["max_filters"], base_filters)
    return out


def _plan(opts: BenchOptions) -> _Plan:
    from ggo.bench.throughput import Timing, conf_defaults

    defaults = {gen: conf_defaults(gen) for gen in ("unet", "attention_unet")}
    timing = Timing(
        windows=opts.windows or (QUICK_WINDOWS if opts.quick else FULL_WINDOWS),
        min_window_s=opts.window_s or (QUICK_WINDOW_S if opts.quick else FULL_WINDOW_S),
        warmup_steps=opts.warmup_steps or (QUICK_WARMUP if opts.quick else FULL_WARMUP),
        steps=opts.steps,
        reference_same_settings=opts.reference_same_settings,
    )
    return _Plan(
        batch=opts.batch_size or defaults["unet"]["batch_size"],
        timing=timing,
        base_filters=opts.base_filters,
        disc_base_filters=opts.disc_base_filters,
        gen={gen: _with_base_filters(d["gen"], opts.base_filters) for gen, d in defaults.items()},
        disc=_with_base_filters(defaults["unet"]["disc"], opts.disc_base_filters),
        loss={gen: d["loss"] for gen, d in defaults.items()},
    )


def _train_rows(cases: list[Any], plan: _Plan, opts: BenchOptions, log: Callable[[str], None]) -> list[dict[str, Any]]:
    """Section 1 and 2: one throughput row per grid case. Every row's config is composed and
    validated first, so a bad ``--set`` fails before anything is timed."""
    from ggo.bench.throughput import case_config, measure_train_case

    cases = [dataclasses.replace(c, reference=c.reference and opts.reference) for c in cases]
    configs = []
    for case in cases:
        try:
            configs.append(case_config(case, batch_size=plan.batch, base_filters=plan.base_filters,
                                       disc_base_filters=plan.disc_base_filters))  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - Hydra's and the schema's errors name the key
            raise BenchConfigError(f"the row {case.resolution} px {case.gen} {case.mode()} does not compose: {exc}") from exc
    rows = []
    for i, (case, (cfg, default)) in enumerate(zip(cases, configs), 1):
        row = measure_train_case(case, cfg, timing=plan.timing, default_settings=default, log=log)
        rows.append(row)
        log(f"[bench] train {i}/{len(cases)} {case.resolution} px {case.gen} {case.mode()}: ggo {row['images_per_s']} "
            f"img/s, reference {row['reference_images_per_s']} img/s, ggo/ref CPU {row['cpu_ratio']} "
            f"(IQR {row.get('cpu_ratio_iqr')})")  # fmt: skip
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


def _process_arms(opts: BenchOptions, plan: _Plan, resolution: int, sections: _Sections) -> dict[str, Any]:
    """Process-wide settings (XLA, threads, precision), each arm alone in a fresh process."""
    from ggo.bench.arms import DEFAULT_ARMS, ArmsCase, arm_config, measure_arms

    out: list[dict[str, Any]] = []
    if not opts.process_arms or opts.backend != "tensorflow":
        return {"process_arms": out}
    rounds = opts.arms_rounds or (2 if opts.quick else 4)
    timing = {"warmup_steps": plan.timing.warmup_steps, "steps": plan.timing.steps or 2, "windows": 3,
              "min_window_s": plan.timing.min_window_s}  # fmt: skip
    for text in opts.arms or DEFAULT_ARMS:
        case = ArmsCase.parse(text, resolution=resolution)
        configs = {v: arm_config(case, v, batch_size=plan.batch, base_filters=plan.base_filters,
                                 disc_base_filters=plan.disc_base_filters) for v in case.values}  # fmt: skip
        got = sections.run(f"arms {case.key}", lambda: measure_arms(case, configs, rounds=rounds, timing=timing, log=sections.log))
        out.append(got or {"setting": case.key, "error": sections.errors.get(f"arms {case.key}")})
    return {"process_arms": out}


def _cv_row(opts: BenchOptions, tmp: Path, sections: _Sections) -> dict[str, Any]:
    """Section 7: the CV row's wall time, one job at a time and as parallel jobs."""
    got = None
    if opts.cv_row:
        from ggo.bench.cvrow import CvRowOptions, measure_cv_row

        got = sections.run("cv_row", lambda: measure_cv_row(opts.cv_row_options or CvRowOptions(), tmp, log=sections.log))
    return {"cv_row": got}


def _skipped(opts: BenchOptions) -> list[str]:
    switches = (("train", opts.train), ("reference", opts.reference), ("input_pipeline", opts.pipeline),
                ("inference", opts.inference), ("overhead", opts.overhead), ("memory", opts.memory),
                ("cv_row", opts.cv_row), ("process_arms", opts.process_arms), ("data_scale", opts.data_scale is not None))  # fmt: skip
    return [name for name, on in switches if not on]


def run_bench(opts: BenchOptions, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the selected sections; return the result (see ``ggo.bench.report`` for its files)."""
    from ggo.bench import report
    from ggo.bench.machine import load_average, machine_info
    from ggo.training import for_backend

    # The backend switch, once: it checks Keras runs opts.backend (and, off TensorFlow, keeps
    # Keras from importing it). ggo.bench.throughput still imports the GAN and pipeline by name.
    for_backend(opts.backend, by=f"run_bench(backend={opts.backend!r})")
    if opts.cv_row and (opts.cv_row_options and opts.cv_row_options.baseline):
        from ggo.bench.cvrow import check_checkout

        check_checkout(opts.cv_row_options.baseline)  # before anything is timed
    started = time.perf_counter()
    result: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "mode": "quick" if opts.quick else "full",
        "machine": machine_info(),
    }
    plan = _plan(opts)
    log(f"[bench] {result['machine']['device']}; load average {result['machine']['load_average_start']}")
    result["settings"] = plan.settings()
    cases = train_cases(opts) if opts.train else []
    result["train"] = _train_rows(cases, plan, opts, log)

    sections = _Sections(log)
    resolutions = sorted({c.resolution for c in cases}) or sorted(opts.resolutions or [128, 256])
    result.update(_pipeline(opts, plan, resolutions, sections))
    result.update(_process_arms(opts, plan, min(resolutions), sections))
    with tempfile.TemporaryDirectory(prefix="ggo-bench-", dir=opts.workdir) as tmp:
        result.update(_inference(opts, plan, Path(tmp), sections))
        result.update(_subprocess_sections(opts, Path(tmp), sections))
        result.update(_cv_row(opts, Path(tmp), sections))
        if opts.data_scale is not None:
            from ggo.bench.datascale import measure_data_scale

            result["data_scale"] = sections.run("data_scale", lambda: measure_data_scale(opts.data_scale, Path(tmp), log=sections.log))
    result["skipped"] = _skipped(opts)
    result["errors"] = sections.errors
    result["targets"] = report.evaluate_targets(result)
    result["machine"]["load_average_end"] = load_average()
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result


__all__ = ["BenchConfigError", "BenchOptions", "override_grid", "run_bench", "train_cases"]

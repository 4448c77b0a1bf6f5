"""``python -m ggo.bench [--quick] [--out bench.json] [...]``: see ``--help``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ggo.runtime.backend import BACKENDS, select_backend
from ggo.bench import BenchConfigError, BenchOptions, run_bench

EPILOG = """\
sections (each has a --skip flag or --no-reference):
  train         images/s of ggo's GAN.fit (float32 and the device's best mixed precision,
                XLA off and on, times each --set axis), built from the composed run config,
                in windows alternating with the pix2pix tutorial's plain step in float32
                without XLA over the same networks (ggo, ref, ggo, ref, ...)
  pipeline      images/s of make_dataset(shuffle, augmentation) iterated without training, reading
                a cache on disk a batch at a time (as training does) and, beside it, the same
                films held in memory as arrays
  inference     images/s of the logged MLflow model's predict over 1024 px PNG/JPEG files
  overhead      start-up to training (tiny config, tracking=none) and per-job overhead of a
                3-job tiny multirun (MLflow run wall time - fit time)
  memory        peak RSS of a 1-epoch 256 px run of the default U-Net + 70 px PatchGAN
  arms          a process-wide setting (default XLA off and on) timed arm by arm, each arm alone
                in a fresh process: every arm's own images/s and the ratio to the first arm
                (the train rows time XLA beside the reference in one process, which slows the
                reference too and so overstates XLA)
  data-scale    generated data=folder sets of growing size (--data-scale-films, films of
                --data-scale-size px): prepare wall time, cores used, peak RSS, cache size,
                run start-up and epoch time per film count. Only with --data-scale.
  cv-row        wall time of python -m ggo.train -m +sweeps=cv preprocess=res128
                train.epochs=6 train.patience=0 on the real data, one job at a time
                (train.threads=<cores>) and as 2 parallel joblib jobs (train.threads=<cores/2>);
                with --cv-row-baseline DIR also the plain command from the checkout DIR.
                Only with --cv-row (about 4 minutes here, 6 with a baseline).

ratios and verdicts: each pair of windows gives ggo's images/s over the reference's, in wall
and in CPU time; the table shows the median and the interquartile range (p25-p75). A target
holds when p25 >= its threshold, misses when p75 < it, and is inconclusive when the range
straddles it. Targets are judged on the CPU-time ratio (wall clock on a GPU). A verdict from
fewer than 10 pairs or windows shorter than 3 s (--quick: 5 pairs of 1.5 s) is marked
indicative only.

the full grid is --resolutions 128,256 --gens unet,attention_unet --precisions float32,best
--xla off,on; --quick measures the U-Net at 128 px in float32 and the best mixed precision
(plus that precision with XLA), float32 rows for the Attention U-Net (128 px) and the U-Net
(256 px). Any grid option given replaces the quick grid by the product of the options. "best"
is float32 on a CPU without native bfloat16 (AVX2 only): emulated bfloat16 is far slower there.

timings on a shared machine are noisy: the JSON records the load average at start and end,
and every window's wall and CPU seconds.

backends: --backend jax times JaxGAN on the numpy input pipeline (no TensorFlow in the process;
the pix2pix reference step is TensorFlow's tutorial code, so JAX rows have no reference column),
and the start-up, multirun and memory runs train with train.backend=jax (no CV row).

examples:
  python -m ggo.bench --quick
  python -m ggo.bench --cv-row --cv-row-baseline ../main        # docs/benchmarks.md's table and targets
  python -m ggo.bench --quick --set train.d_steps=1,2           # a config key as a grid axis
  python -m ggo.bench --cv-row --skip-train --skip-pipeline --skip-inference --skip-overhead \\
      --skip-memory --skip-arms --cv-row-baseline ../main        # the CV row alone, vs another commit
  python -m ggo.bench --quick --backend jax --out bench-jax.json
  python -m ggo.bench --data-scale --skip-train --skip-pipeline --skip-inference --skip-overhead \\
      --skip-memory --skip-arms --out bench-data.json           # data at scale alone (minutes)
  python -m ggo.bench --skip-train --skip-pipeline --skip-inference --skip-overhead --skip-memory \\
      --arms train.jit_compile=false,true --arms train.threads=1,2  # process-wide settings alone
  python -m ggo.bench --resolutions 64 --gens unet --precisions float32 --xla off --steps 2 \\
      --windows 2 --skip-overhead --skip-memory --skip-arms  # a smoke run in seconds
"""


def _list(kind):
    def parse(text: str):
        items = [t.strip() for t in text.split(",") if t.strip()]
        if not items:
            raise argparse.ArgumentTypeError("give at least one value, comma-separated")
        return [kind(t) for t in items]

    return parse


def _xla(text: str) -> bool:
    value = text.lower()
    if value in ("on", "true", "1", "yes"):
        return True
    if value in ("off", "false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"XLA setting must be on or off, got {text!r}")


def _precision(text: str) -> str:
    from ggo.training.precision import PRECISION_MODES

    if text not in (*PRECISION_MODES, "best"):
        raise argparse.ArgumentTypeError(f"unknown precision {text!r}; valid: best, {', '.join(PRECISION_MODES)}")
    return text


def _gen(text: str) -> str:
    from ggo.models import GENERATORS

    if text not in GENERATORS:
        raise argparse.ArgumentTypeError(f"unknown generator {text!r}; valid: {', '.join(GENERATORS)}")
    return text


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text}")
    return value


def _assignment(text: str) -> str:
    if "=" not in text or not text.split("=", 1)[0].strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE (a ggo.train override), got {text!r}")
    return text


def _arms_and_scale_options(p: argparse.ArgumentParser) -> None:
    """The option groups of the process arms and of the data-at-scale section."""
    arms = p.add_argument_group("process arms")
    arms.add_argument("--arms", action="append", metavar="KEY=V1,V2",
                      help="a process-wide setting (train.jit_compile, train.threads, train.precision) timed arm by arm, "
                      "each arm alone in a fresh process (repeatable; default train.jit_compile=false,true)")  # fmt: skip
    arms.add_argument("--arms-rounds", type=_positive, metavar="N", help="rounds of one process per arm (default 2, quick; 4)")
    arms.add_argument("--skip-arms", action="store_true", help="do not time process arms")
    scale = p.add_argument_group("data at scale")
    scale.add_argument("--data-scale", action="store_true",
                       help="generate data=folder sets of growing size and time prepare and training on each (minutes)")
    scale.add_argument("--data-scale-films", type=_list(_positive), default=[300, 600, 1200], metavar="N[,N...]",
                       help="film counts (default 300,600,1200)")
    scale.add_argument("--data-scale-size", type=_positive, default=1536, metavar="PX", help="side of the generated films (default 1536)")
    scale.add_argument("--data-scale-resolution", type=_positive, default=512, metavar="R", help="cache resolution (default 512)")
    scale.add_argument("--data-scale-workers", type=int, default=0, metavar="N", help="data.workers of the prepare runs (0: one per core)")
    scale.add_argument("--data-scale-no-train", action="store_true", help="prepare only: no training runs")
    scale.add_argument("--data-scale-startup-only", action="store_true",
                       help="of the training run only its start-up (stopped at its '[ggo] data:' line): for big sets")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m ggo.bench",
        description="Measure ggo's training throughput (against a plain pix2pix step), input pipeline, "
        "inference, start-up and multirun overhead, and memory on this machine; print a table and write "
        "JSON plus markdown.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--quick", action="store_true",
                   help="a reduced grid, 5 pairs of 1.5 s windows (indicative verdicts only; 5-15 minutes on 2 cores)")
    p.add_argument("--backend", choices=BACKENDS, default="tensorflow",
                   help="the Keras backend to train on (default: tensorflow)")
    p.add_argument("--out", default="bench.json", help="the JSON file (default: bench.json); the markdown goes beside it as <stem>.md")
    grid = p.add_argument_group("training grid")
    grid.add_argument("--resolutions", type=_list(_positive), metavar="R[,R...]", help="image sizes (default 128,256)")
    grid.add_argument("--gens", type=_list(_gen), metavar="G[,G...]", help="generators (default unet,attention_unet)")
    grid.add_argument("--precisions", type=_list(_precision), metavar="P[,P...]",
                      help="float32, mixed_bfloat16, mixed_float16, auto, or best (float16 on a GPU, bfloat16 on a CPU with "
                      "native bfloat16: AVX512-BF16 or AMX; else float32); default float32,best")  # fmt: skip
    grid.add_argument("--xla", type=_list(_xla), metavar="off,on", help="jit_compile settings (default off,on)")
    grid.add_argument("--base-filters", type=_positive, metavar="N", help="generator base filters (default: conf/gen, 16)")
    grid.add_argument("--disc-base-filters", type=_positive, metavar="N", help="PatchGAN base filters (default: conf/disc/patchgan, 32)")
    grid.add_argument("--batch-size", type=_positive, metavar="N", help="images per step (default: conf/train, 8)")
    grid.add_argument("--set", dest="set_axes", action="append", type=_assignment, metavar="KEY=V[,V...]",
                      help="a ggo.train config override for every row (repeatable); several comma-separated values "
                      "make it a grid axis (e.g. --set train.d_steps=1,2). The row built from defaults is the default path")  # fmt: skip
    timing = p.add_argument_group("timing")
    timing.add_argument("--windows", type=_positive, metavar="N", help="pairs of windows (ggo, ref) per row (default 10, quick 5)")
    timing.add_argument("--window-s", type=_seconds, metavar="S",
                        help="each window lasts at least S seconds: steps per window are calibrated after warm-up (default 3, quick 1.5)")
    timing.add_argument("--steps", type=_positive, metavar="N", help="fixed train steps per window instead of calibrating to --window-s")
    timing.add_argument("--warmup-steps", type=_positive, metavar="N", help="untimed steps first (tracing, XLA compile); default 2, quick 1")
    timing.add_argument("--reference-same-settings", action="store_true",
                        help="time the reference in each row's precision and XLA setting (default: float32 without XLA, "
                        "the yardstick of every target)")  # fmt: skip
    skip = p.add_argument_group("sections")
    skip.add_argument("--skip-train", action="store_true", help="do not time training (no throughput rows)")
    skip.add_argument("--no-reference", action="store_true", help="do not time the pix2pix reference step")
    skip.add_argument("--skip-pipeline", action="store_true", help="do not time the input pipeline")
    skip.add_argument("--skip-inference", action="store_true", help="do not time inference from files")
    skip.add_argument("--skip-overhead", action="store_true", help="do not measure start-up and multirun overhead (subprocesses)")
    skip.add_argument("--skip-memory", action="store_true", help="do not measure the peak memory of a training run (subprocess)")
    cv = p.add_argument_group("CV row")
    cv.add_argument("--cv-row", action="store_true", help="also time the CV row (minutes; needs the real dataset)")
    cv.add_argument("--cv-row-epochs", type=_positive, default=6, metavar="N", help="train.epochs of every fold (default 6)")
    cv.add_argument("--cv-row-jobs", type=int, default=2, metavar="N", help="parallel jobs of the joblib way (default 2)")
    cv.add_argument("--cv-row-repeats", type=_positive, default=1, metavar="N", help="runs per way, alternating (default 1)")
    cv.add_argument("--cv-row-baseline", metavar="DIR",
                    help="also time the plain command from the ggo checkout DIR (PYTHONPATH=DIR), e.g. the main branch")
    cv.add_argument("--cv-row-set", action="append", type=_assignment, default=[], metavar="KEY=VALUE",
                    help="an extra override of every CV-row command (repeatable), e.g. data.root=...")
    _arms_and_scale_options(p)
    more = p.add_argument_group("other settings")
    more.add_argument("--inference-files", type=_positive, metavar="N", help="image files to predict (default 16, quick 6)")
    more.add_argument("--inference-size", type=_positive, default=1024, metavar="PX", help="side of the image files (default 1024)")
    more.add_argument("--memory-resolution", type=_positive, default=256, metavar="R", help="resolution of the memory run (default 256)")
    more.add_argument("--multirun-jobs", type=int, default=3, metavar="N", help="jobs in the overhead multirun (default 3, at least 2)")
    more.add_argument("--workdir", metavar="DIR", help="where temporary files go (default: the system temp dir)")
    return p


def options(args: argparse.Namespace) -> BenchOptions:
    from ggo.bench.cvrow import CvRowOptions

    if args.multirun_jobs < 2:
        raise SystemExit("--multirun-jobs must be at least 2 (the first job and the later ones are reported apart)")
    if args.cv_row_jobs < 2:
        raise SystemExit(f"--cv-row-jobs must be at least 2 (the parallel way runs that many jobs at once), got {args.cv_row_jobs}")
    cv_row = CvRowOptions(
        epochs=args.cv_row_epochs, jobs=args.cv_row_jobs, repeats=args.cv_row_repeats, baseline=args.cv_row_baseline,
        overrides=tuple(args.cv_row_set),
    )  # fmt: skip
    data_scale = None
    if args.data_scale:
        from ggo.bench.datascale import DataScaleOptions

        data_scale = DataScaleOptions(
            films=tuple(args.data_scale_films), image_size=args.data_scale_size, resolution=args.data_scale_resolution,
            workers=args.data_scale_workers, train=not args.data_scale_no_train, startup_only=args.data_scale_startup_only,
        )  # fmt: skip
    return BenchOptions(
        arms=args.arms, arms_rounds=args.arms_rounds, process_arms=not args.skip_arms, data_scale=data_scale,
        quick=args.quick, resolutions=args.resolutions, gens=args.gens, precisions=args.precisions, xla=args.xla,
        base_filters=args.base_filters, disc_base_filters=args.disc_base_filters, batch_size=args.batch_size,
        steps=args.steps, windows=args.windows, window_s=args.window_s, warmup_steps=args.warmup_steps,
        set_axes=args.set_axes, reference_same_settings=args.reference_same_settings, train=not args.skip_train,
        reference=not args.no_reference, pipeline=not args.skip_pipeline, inference=not args.skip_inference,
        overhead=not args.skip_overhead, memory=not args.skip_memory, inference_files=args.inference_files,
        inference_size=args.inference_size, memory_resolution=args.memory_resolution,
        multirun_jobs=args.multirun_jobs, cv_row=args.cv_row, cv_row_options=cv_row, workdir=args.workdir,
        backend=args.backend,
    )  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    # The backend is chosen before the full parse: checking --precisions and --gens imports keras.
    early = argparse.ArgumentParser(add_help=False)
    early.add_argument("--backend", choices=BACKENDS, default="tensorflow")
    known, _ = early.parse_known_args(argv)
    select_backend(known.backend)
    import ggo  # noqa: F401  loads torchvision before TensorFlow (see ggo/__init__.py)

    args = parser().parse_args(argv)
    from ggo.bench import report

    try:
        result = run_bench(options(args))
    except BenchConfigError as exc:  # a --set that does not compose, a missing baseline: before any timing
        raise SystemExit(f"python -m ggo.bench: {exc}") from exc
    json_path, md_path = report.write_reports(result, args.out)
    print()
    print("\n".join(report.machine_lines(result["machine"])))
    print()
    print(report.train_table(result["train"]))
    print()
    print("\n".join(report.summary_lines(result)))
    if result.get("data_scale"):
        print()
        print(report.data_scale_table(result["data_scale"]))
    print()
    print("\n".join(report.target_lines(result["targets"])))
    print(f"\nwrote {json_path} and {md_path} ({result['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

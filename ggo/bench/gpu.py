"""GPU check of the JAX training path: images/s and peak GPU memory per precision.

Trains the default pix2pix pair (U-Net depth 4 / 16 filters + 70 px PatchGAN, Adam, L1 100 +
adversarial) with ``ggo.training.jax_gan.JaxGAN`` for a fixed number of steps in float32,
mixed_float16 and mixed_bfloat16, each in its own process (so each peak is its own), and prints
one JSON line per precision plus a table. Needs JAX, Keras and numpy only: no TensorFlow, no
MLflow/Hydra, no OpenCV unless ``--augment`` (importing ``ggo``, ``ggo.bench`` and this module
loads none of them).

On the device machine (JAX + CUDA, no TensorFlow), with what ``scripts/gpu_carry.sh`` built in
gpu_carry/::

    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \\
        --target /tmp/site gpu_carry/wheels/*.whl && export PYTHONPATH=/tmp/site:$PWD
    python3 -m ggo.bench.gpu --cache gpu_carry/cache_res256.npz --out $OUT/gpu_check.json --expect-gpu

Here, to make that cache from the real data's 256 px cache (built first if missing), or from any
cache folder::

    python -m ggo.bench.gpu --write-cache gpu_carry/cache_res256.npz --n 64
    python -m ggo.bench.gpu --write-cache gpu_carry/cache_res256.npz --from data/cache/<key> --n 64

Per precision it reports: ``fit_images_per_s`` (``JaxGAN.fit`` on the numpy pipeline, timed per
batch after the warm-up steps, every batch synced as fit's NaN check does; the ``_median_step``
variant leaves out the end-of-epoch work of these short epochs), ``step_images_per_s``
(the jitted train step alone on a device-resident batch, synced once at the end: the ceiling
fit could reach), ``compile_s`` (the first batch), ``peak_gpu_gib``
(``memory_stats()['peak_bytes_in_use']``), the final losses and, for float16, the loss scale.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

PROG = "python -m ggo.bench.gpu"
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")


# ------------------------------------------------------------------ data
def write_cache(out: Path, source: Path, n: int) -> None:
    """A small carried cache: the first ``n`` images (float16) and masks (bit-packed) of the cache
    folder ``source``; a FileNotFoundError names a folder without images.npy and masks.npy."""
    import numpy as np

    missing = [name for name in ("images.npy", "masks.npy") if not (source / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{source} holds no {' or '.join(missing)}: give --from a ggo cache folder (data/cache/<key>)")
    images = np.load(source / "images.npy", mmap_mode="r")[:n]
    masks = np.load(source / "masks.npy", mmap_mode="r")[:n]
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        out,
        images=np.asarray(images, np.float16),
        masks_packed=np.packbits(np.asarray(masks) > 0.5),
        masks_shape=np.array(masks.shape),
    )
    print(f"wrote {out}: {len(images)} images {images.shape[1:]} ({out.stat().st_size / 2**20:.1f} MiB)")


def real_cache(resolution: int) -> Path:
    """The real data's cache folder at ``resolution`` (the schema's default data), built if missing.
    Needs ggo's data stack (OpenCV, pandas): only here, never on the device."""
    from ggo.config import DataConfig, PreprocessConfig
    from ggo.data import prepare_from_config

    return Path(prepare_from_config(DataConfig(), PreprocessConfig(resolution=resolution), progress=True).path)


def blobs(n: int, size: int, seed: int = 0):
    """Synthetic stand-in: noisy background, one bright disk per image, the disk as mask."""
    import numpy as np

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    cx, cy = rng.uniform(size / 4, 3 * size / 4, (2, n, 1, 1))
    r = rng.uniform(size / 8, size / 4, (n, 1, 1))
    masks = ((xx - cx) ** 2 + (yy - cy) ** 2 <= r * r).astype(np.float32)
    images = rng.normal(-0.5, 0.2, masks.shape).astype(np.float32) + masks
    return images[..., None], masks[..., None]


def load_cache(path: str | None, resolution: int):
    """(images, masks) float32 at ``resolution`` from an .npz (see ``write_cache``), a cache
    folder with images.npy/masks.npy, or synthetic blobs when ``path`` is None."""
    import numpy as np

    if path is None:
        return blobs(64, resolution)
    path = Path(path)
    if path.is_dir():
        images = np.load(path / "images.npy").astype(np.float32)
        masks = np.load(path / "masks.npy").astype(np.float32)
    else:
        data = np.load(path)
        images = data["images"].astype(np.float32)
        shape = tuple(int(s) for s in data["masks_shape"])
        masks = np.unpackbits(data["masks_packed"])[: math.prod(shape)].reshape(shape).astype(np.float32)
    side = images.shape[1]
    if side != resolution:  # block-average down (masks re-binarised), e.g. 256 -> 64 for a CPU try
        if side % resolution:
            raise SystemExit(f"cache is {side} px; --resolution must divide it, got {resolution}")
        f = side // resolution
        pool = lambda a: a.reshape(len(a), resolution, f, resolution, f, a.shape[-1]).mean(axis=(2, 4))  # noqa: E731
        images, masks = pool(images), (pool(masks) > 0.5).astype(np.float32)
    return images, masks


# ------------------------------------------------------------------ one precision
def _jax_trainer():
    """ggo's JAX trainer (``for_backend("jax")``), imported without TensorFlow."""
    os.environ.setdefault("KERAS_BACKEND", "jax")
    from ggo.training import for_backend

    try:
        return for_backend("jax", by=f"{PROG} trains on JAX (KERAS_BACKEND=jax)")
    except RuntimeError as exc:
        raise SystemExit(str(exc)) from None


def _time_fit(gan, data, args) -> dict:
    """``gan.fit`` for ``args.warmup + args.steps`` batches, each one stamped when it is done."""
    import keras
    import numpy as np

    stamps: list[float] = []

    class Stamp(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            float(logs["g_loss"])  # sync: the step is done
            stamps.append(time.perf_counter())

    total = args.warmup + args.steps
    started = time.perf_counter()
    history = gan.fit(data, epochs=math.ceil(total / len(data)), callbacks=[Stamp()], verbose=0)
    stamps = [started, *stamps][: total + 1]
    timed = stamps[args.warmup :]
    intervals = np.diff(timed)  # one per measured step; epoch boundaries (every len(data) steps) included
    return {
        "compile_s": stamps[1] - stamps[0],
        "fit_ips": args.batch * len(intervals) / float(intervals.sum()) if len(intervals) else float("nan"),
        "fit_ips_median": args.batch / float(np.median(intervals)) if len(intervals) else float("nan"),
        "hist": {k: float(v[-1]) for k, v in history.history.items()},
    }


def _time_step_alone(gan, images, masks, args) -> float:
    """Seconds per jitted train step on a device-resident batch and state, synced once at the end.

    fit's own compiled step (jax.jit of train_step, state donated): no second compilation. The
    state's buffers are donated, so the model's variables are not read after this."""
    import jax

    state = gan._get_jax_state(trainable_variables=True, non_trainable_variables=True,
                               optimizer_variables=True, metrics_variables=True)
    batch = jax.device_put((images[: args.batch], masks[: args.batch]))
    logs, state = gan.train_function(state, iter([batch]))
    jax.block_until_ready(state)
    t0 = time.perf_counter()
    for _ in range(args.steps):
        logs, state = gan.train_function(state, iter([batch]))
    jax.block_until_ready(state)
    return (time.perf_counter() - t0) / args.steps


def measure(args) -> dict:
    """Train ``args.steps`` measured steps in ``args.only`` precision; return the figures."""
    jax_trainer = _jax_trainer()
    import jax
    import keras
    import numpy as np

    from ggo.training import AugmentConfig, set_precision, set_random_seed

    device = jax.devices()[0]
    if args.expect_gpu and device.platform != "gpu":
        raise SystemExit(f"--expect-gpu: JAX runs on {jax.devices()} (is the CUDA plugin installed and working?)")
    policy = set_precision(args.only)
    set_random_seed(0)
    images, masks = load_cache(args.cache, args.resolution)
    gan = jax_trainer.make_gan(
        "unet", "patchgan", args.resolution,
        dict(depth=args.depth, base_filters=args.gen_filters, max_filters=args.max_filters),
        dict(n_layers=3, base_filters=args.disc_filters, max_filters=args.max_filters),
    )
    gan.compile(
        keras.optimizers.Adam(2e-4, beta_1=0.5),
        keras.optimizers.Adam(2e-4, beta_1=0.5),
        adversarial_weight=1.0, l1_weight=100.0,
    )
    augment = AugmentConfig() if args.augment else None
    data = jax_trainer.make_dataset(images, masks, batch_size=args.batch, shuffle=True, augment=augment, seed=0,
                                    drop_remainder=True, workers=args.workers)
    per_epoch = len(data)
    if per_epoch == 0:
        raise SystemExit(f"{len(images)} images make no batch of {args.batch}")

    fit = _time_fit(gan, data, args)
    scale = None
    if isinstance(gan.g_optimizer, keras.optimizers.LossScaleOptimizer):
        scale = float(np.asarray(gan.g_optimizer.dynamic_scale.value))
    step_s = _time_step_alone(gan, images, masks, args)
    hist = fit["hist"]
    stats = device.memory_stats() or {}
    peak = stats.get("peak_bytes_in_use")
    return {
        "precision": policy,
        "device": f"{device.platform}:{getattr(device, 'device_kind', '?')}",
        "jax": jax.__version__,
        "keras": keras.__version__,
        "resolution": args.resolution,
        "model": f"unet d{args.depth}/{args.gen_filters}-{args.max_filters} + patchgan70/{args.disc_filters}",
        "batch": args.batch,
        "warmup": args.warmup,
        "steps": args.steps,
        "augment": bool(args.augment),
        "compile_s": round(fit["compile_s"], 2),
        "fit_images_per_s": round(fit["fit_ips"], 1),
        "fit_images_per_s_median_step": round(fit["fit_ips_median"], 1),
        "steps_per_epoch": per_epoch,
        "step_ms": round(1000 * step_s, 2),
        "step_images_per_s": round(args.batch / step_s, 1),
        "peak_gpu_gib": round(peak / 2**30, 3) if peak is not None else None,
        "g_loss": round(hist["g_loss"], 4),
        "d_loss": round(hist["d_loss"], 4),
        "finite": all(math.isfinite(v) for v in hist.values()),
        "loss_scale": scale,
    }


# ------------------------------------------------------------------ driver
def table(rows: list[dict]) -> str:
    cols = ("precision", "fit_images_per_s", "step_images_per_s", "step_ms", "compile_s", "peak_gpu_gib", "g_loss", "d_loss", "loss_scale")
    lines = [" | ".join(cols), " | ".join("---" for _ in cols)]
    for r in rows:
        if "error" in r:
            lines.append(f"{r['precision']} | FAILED: {r['error'].strip().splitlines()[-1] if r['error'].strip() else '?'}")
        else:
            lines.append(" | ".join(str(r.get(c)) for c in cols))
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cache", help="an .npz from --write-cache or a cache folder (images.npy, masks.npy); default synthetic blobs")
    p.add_argument("--resolution", type=int, default=256, help="image size trained at (default: %(default)s)")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--steps", type=int, default=50, help="measured steps per precision")
    p.add_argument("--warmup", type=int, default=5, help="steps before timing (the first one compiles)")
    p.add_argument("--depth", type=int, default=4, help="U-Net depth (gen.depth)")
    p.add_argument("--gen-filters", type=int, default=16, help="gen.base_filters")
    p.add_argument("--disc-filters", type=int, default=32, help="disc.base_filters (PatchGAN, 3 layers: 70 px)")
    p.add_argument("--max-filters", type=int, default=256, help="gen.max_filters and disc.max_filters")
    p.add_argument("--precisions", default=",".join(PRECISIONS), help="comma-separated (default: %(default)s)")
    p.add_argument("--augment", action="store_true", help="the default augmentation (needs OpenCV)")
    p.add_argument("--workers", type=int, default=1, help="input pipeline threads")
    p.add_argument("--timeout", type=int, default=200, help="seconds per precision")
    p.add_argument("--out", help="also write the results here (JSON list)")
    p.add_argument("--expect-gpu", action="store_true", help="fail rather than measure a CPU when JAX sees no GPU")
    p.add_argument("--only", choices=PRECISIONS, help=argparse.SUPPRESS)  # child: one precision
    p.add_argument("--write-cache", type=Path, help="write a small .npz cache here and exit")
    p.add_argument("--from", dest="source", type=Path,
                   help="cache folder for --write-cache (default: the real data's cache at --resolution, built if missing)")
    p.add_argument("--n", type=int, default=64, help="images for --write-cache")
    return p


def child_env() -> dict[str, str]:
    """The environment of a precision's process: this ggo first on the path, and one JAX
    compilation cache, so the precisions share their weight initialisers' compilations."""
    import ggo

    env = dict(os.environ)
    here = str(Path(ggo.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (here, env.get("PYTHONPATH", "")) if p)
    env.setdefault("JAX_COMPILATION_CACHE_DIR", str(Path(tempfile.gettempdir()) / "ggo-gpu-check-xla"))
    env.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    return env


def run_precision(precision: str, child_args: Sequence[str], timeout: int) -> dict:
    """One precision measured in a process of its own: its row, or its error."""
    started = time.perf_counter()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "ggo.bench.gpu", *child_args, "--only", precision],
            capture_output=True, text=True, timeout=timeout, env=child_env(),
        )  # fmt: skip
        found = [line for line in proc.stdout.splitlines() if line.startswith("GPU_CHECK ")]
        if proc.returncode == 0 and found:
            row = json.loads(found[-1][len("GPU_CHECK "):])
        else:
            row = {"precision": precision, "error": f"exit {proc.returncode}: " + (proc.stderr or proc.stdout)[-1500:]}
    except subprocess.TimeoutExpired:
        row = {"precision": precision, "error": f"timed out after {timeout}s"}
    row["wall_s"] = round(time.perf_counter() - started, 1)
    return row


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point: 0 when every precision measured, 1 when one failed, 2 for bad input."""
    p = build_parser()
    args = p.parse_args(argv)
    if args.write_cache:
        try:
            write_cache(args.write_cache, args.source or real_cache(args.resolution), args.n)
        except (FileNotFoundError, ValueError) as exc:
            print(f"[ggo] gpu check: {exc}", file=sys.stderr)
            return 2
        return 0
    if args.only:
        print("GPU_CHECK " + json.dumps(measure(args)), flush=True)
        return 0
    unknown = sorted(set(args.precisions.split(",")) - set(PRECISIONS))
    if unknown:
        p.error(f"--precisions: unknown {', '.join(unknown)}; choose from {', '.join(PRECISIONS)}")
    rows = []
    child_args = list(argv if argv is not None else sys.argv[1:])
    for precision in args.precisions.split(","):
        row = run_precision(precision, child_args, args.timeout)
        print(json.dumps(row), flush=True)
        rows.append(row)
        if args.out:  # after every precision: a run cut short keeps what it measured
            Path(args.out).write_text(json.dumps(rows, indent=2))
    print(table(rows), flush=True)
    return 0 if all("error" not in r for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())

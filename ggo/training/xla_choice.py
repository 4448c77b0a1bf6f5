"""``train.jit_compile=auto``: XLA where it makes this machine's train step faster.

Whether XLA pays depends on the CPU and the model: on an AVX2 EPYC at 128 px the U-Net + PatchGAN
step ran 1.13x faster with it, on an AVX-512 Xeon 2-4x slower. So ``auto`` times a few steps of
the run's own model both ways, each arm in a process of its own (:mod:`ggo.training.steptime`:
XLA is a process-wide setting that slows other work in its process, so side-by-side timing in one
process misleads), and chooses XLA when it is at least :data:`MARGIN` faster (compiling costs
every run some seconds): in images per CPU second on a CPU (steady while other work shares the
machine), per wall-clock second on a GPU. The choice is kept in ``<cache_dir>/xla-choice/<key>.json``, keyed by
this machine (CPU, cores, GPU, library versions) and everything of the config that shapes the step
(networks, losses, resolution, batch, precision, update rule, threads), so the timing runs once
per machine and model; the run logs the choice (``train.jit_compile`` true/false among its params)
and the timings behind it (tag ``ggo.jit_compile_auto``).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ggo.config import Config, plain
from ggo.paths import default_cache_dir

AUTO = "auto"
MARGIN = 1.05  # XLA must time at least 5% faster to be chosen
AUTO_TIMING = {"warmup_steps": 2, "steps": 2, "windows": 3, "min_window_s": 2.0}  # per arm: about a minute on 2 cores at 256 px
STORE_DIR = "xla-choice"  # under the cache dir
RESULT_PREFIX = "[ggo-steptime] "  # how python -m ggo.training.steptime prints its result
_TRAIN_KEYS = ("batch_size", "precision", "d_steps", "adversarial_update", "ema", "threads", "backend")


def timed_in_own_process(
    config: Mapping[str, Any], *, warmup_steps: int = 2, steps: int = 2, windows: int = 3, min_window_s: float = 1.0,
    timeout: float = 900,
) -> dict[str, Any]:
    """Images/s of ``config``'s train step, timed by ``python -m ggo.training.steptime`` in a new
    process (a plain run config as a mapping). Raises RuntimeError with the child's last output
    when it fails."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="ggo-steptime-", delete=False) as handle:
        json.dump(plain(config), handle)
    package_root = str(Path(__file__).resolve().parents[2])  # the child imports this same ggo
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
    cmd = [sys.executable, "-m", "ggo.training.steptime", handle.name, f"--warmup-steps={warmup_steps}",
           f"--steps={steps}", f"--windows={windows}", f"--min-window-s={min_window_s}"]  # fmt: skip
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, check=False)
    finally:
        Path(handle.name).unlink(missing_ok=True)
    results = [line[len(RESULT_PREFIX) :] for line in proc.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if proc.returncode != 0 or not results:
        raise RuntimeError(f"timing the train step in its own process failed (exit {proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return json.loads(results[-1])


def machine_fingerprint(backend: str) -> dict[str, Any]:
    """What makes one machine's timings another's: CPU, cores, GPU, the libraries that run the step."""
    from importlib.metadata import PackageNotFoundError, version

    from ggo.training.precision import gpu_available, read_cpuinfo

    cpuinfo = read_cpuinfo()
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")), "")
    flags = next((line.split(":", 1)[1].split() for line in cpuinfo.splitlines() if line.startswith("flags")), [])
    versions = {}
    for package in ("tensorflow", "keras", "jax"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    wanted = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
    return {
        "cpu": model or platform.processor(), "flags": [f for f in wanted if f in flags], "cores": cores,
        "gpu": gpu_available(), "backend": backend, **versions,
    }  # fmt: skip


def model_part(config: Config) -> dict[str, Any]:
    """Everything of the config that shapes the train step's cost."""
    train = plain(config.train)
    return {
        "gen": plain(config.gen), "disc": plain(config.disc), "loss": plain(config.loss),
        "resolution": config.preprocess.resolution, "train": {k: train[k] for k in _TRAIN_KEYS},
    }  # fmt: skip


def choose(off_images_per_s: float, on_images_per_s: float) -> bool:
    """XLA when its step times at least :data:`MARGIN` faster."""
    return on_images_per_s >= MARGIN * off_images_per_s


def describe(record: Mapping[str, Any], how: str) -> str:
    key = record.get("judged_on", "images_per_s")
    rates, unit = record[key], "img/s" if key == "images_per_s" else "img per CPU s"
    return (f"{'XLA' if record['jit_compile'] else 'no XLA'}: {rates['on']:.2f} {unit} with, {rates['off']:.2f} "
            f"without, each in its own process ({how} {record['measured_at']})")  # fmt: skip


def resolve_jit_compile(
    config: Config, cache_dir: str | Path | None = None, *, log: Callable[[str], None] = print
) -> tuple[bool, str]:
    """``(jit_compile, why)`` for ``config.train.jit_compile``: true and false stand; ``auto`` is
    this machine's timed choice for this model (kept under ``cache_dir``, default the data cache
    dir: the timing runs once). ``why`` is empty unless ``auto`` decided."""
    value = config.train.jit_compile
    if value != AUTO:
        return bool(value), ""
    if str(config.train.backend) == "jax":
        return True, "JAX compiles every step with XLA: nothing to choose"
    from filelock import FileLock

    machine = machine_fingerprint(str(config.train.backend))
    model = model_part(config)
    key = hashlib.sha256(json.dumps({"machine": machine, "model": model}, sort_keys=True).encode()).hexdigest()[:16]
    base = Path(cache_dir).expanduser() if cache_dir not in (None, "") else default_cache_dir()
    path = base / STORE_DIR / f"{key}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path.with_suffix(".lock"))):  # parallel jobs of one sweep time it once
        if path.is_file():
            record = json.loads(path.read_text())
            return bool(record["jit_compile"]), describe(record, "timed")
        log("[ggo] train.jit_compile=auto: timing a few train steps without and with XLA, each in its own "
            "process (once for this machine and model)", )  # fmt: skip
        rates, cpu_rates = {}, {}
        for arm, jit in (("off", False), ("on", True)):
            arm_config = {**plain(config), "train": {**plain(config.train), "jit_compile": jit}}
            got = timed_in_own_process(arm_config, **AUTO_TIMING)
            rates[arm], cpu_rates[arm] = got["images_per_s"], got.get("images_per_cpu_s", got["images_per_s"])
        # On a CPU, images per CPU second: other work on a shared machine moves the wall clock, not
        # the CPU seconds a step costs. On a GPU the CPU time is the host's share only: wall clock.
        judged = rates if machine.get("gpu") else cpu_rates
        record = {
            "jit_compile": choose(judged["off"], judged["on"]), "images_per_s": rates, "images_per_cpu_s": cpu_rates,
            "judged_on": "images_per_s" if machine.get("gpu") else "images_per_cpu_s", "margin": MARGIN,
            "timing": AUTO_TIMING, "measured_at": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": machine, "model": model,
        }  # fmt: skip
        tmp = path.with_suffix(f".tmp-{os.getpid()}")
        tmp.write_text(json.dumps(record, indent=2) + "\n")
        os.replace(tmp, path)
    why = describe(record, "timed")
    log(f"[ggo] train.jit_compile=auto: {why}")
    return bool(record["jit_compile"]), why

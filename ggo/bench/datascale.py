"""Data at scale (``python -m ggo.bench --data-scale``): generated ``data=folder`` sets of growing
size, prepared and trained on as a user would, with what each costs.

Per film count: ``python -m ggo.data prepare`` (wall time, cores used = CPU seconds of it and its
worker processes over wall time, peak resident memory of all its processes together and of the
main one, cache size on disk), the same command again on the prepared folder (how long a run start
spends finding its cache), and ``python -m ggo.train`` for two epochs of a small model on it
(start-up to the "[ggo] data:" line, each epoch's seconds, peak resident memory through the
training epochs and over the whole run, whose final evaluation holds the val and test films).

The films are drawn by :func:`ggo.data.synthetic.make_synthetic_folder`: 16 distinct films, the
rest hard links to them, so a folder of any size takes little disk. Each name is still listed,
hashed, decoded and preprocessed as a film of its own; only the disk reads come from the page
cache, as they would for a dataset that fits in memory.
"""

from __future__ import annotations

import dataclasses
import resource
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from ggo.bench.processes import _EPOCH_LINE, TINY, python_module_cmd, start_reading

_DATA = "[ggo] data:"
SAMPLE_S = 0.2  # how often the processes' memory is read


@dataclasses.dataclass(frozen=True)
class DataScaleOptions:
    """What ``--data-scale`` generates and measures."""

    films: tuple[int, ...] = (300, 600, 1200)
    image_size: int = 1536
    resolution: int = 512
    workers: int = 0  # data.workers of the prepare runs (0: one per core)
    train: bool = True  # also the training runs (start-up, epoch time, memory)
    startup_only: bool = False  # a training run stopped at its "[ggo] data:" line: start-up alone (big sets)
    timeout: float = 3600.0


def run_sampled(cmd: Sequence[str], *, cwd: Path, timeout: float, stop_at: str | None = None) -> dict[str, Any]:
    """Run ``cmd`` reading its output lines (with arrival times) and, every :data:`SAMPLE_S`,
    the resident memory of it and all its descendants. Returns wall time, CPU seconds of the
    whole tree (its waited-for descendants included), the samples and the lines. ``stop_at``:
    end the command once a line starts with it (returncode 0 then)."""
    import psutil

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc, lines, reader, start = start_reading(cmd, cwd=cwd)
    samples: list[tuple[float, float, float]] = []  # (seconds, MB of the tree, MB of the main process)
    main = psutil.Process(proc.pid)
    stopped = False
    while proc.poll() is None and time.perf_counter() - start < timeout:
        if stop_at is not None and any(line.startswith(stop_at) for _, line in lines):
            proc.terminate()
            stopped = True
            break
        try:
            tree = [main, *main.children(recursive=True)]
            sizes = [p.memory_info().rss for p in tree if p.is_running()]
            samples.append((time.perf_counter() - start, sum(sizes) / 2**20, sizes[0] / 2**20))
        except psutil.Error:
            pass  # a process ended between listing and reading
        time.sleep(SAMPLE_S)
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    wall = time.perf_counter() - start
    reader.join(timeout=10)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    code = 0 if stopped else proc.returncode
    return {"returncode": code, "wall_s": wall, "cpu_s": cpu, "samples": samples, "lines": lines}


def _check(result: dict[str, Any], what: str) -> None:
    if result["returncode"] != 0:
        tail = "\n".join(line for _, line in result["lines"][-20:])
        raise RuntimeError(f"{what} exited with {result['returncode']}:\n{tail}")


def _peak(samples: list[tuple[float, float, float]], until: float | None = None, column: int = 1) -> float | None:
    values = [s[column] for s in samples if until is None or s[0] <= until]
    return round(max(values), 1) if values else None


def _main_peak(lines: list[tuple[float, str]]) -> float | None:
    """The main process's own high-water mark (VmHWM), printed at its exit."""
    marks = [line.split()[-1] for _, line in lines if line.startswith("[ggo-bench] peak_rss_kb")]
    return round(int(marks[-1]) / 1024, 1) if marks else None


def disk_mb(folder: Path) -> float:
    """Disk space the files under ``folder`` take (allocated blocks: an unwritten row takes none)."""
    return round(sum(p.stat().st_blocks * 512 for p in folder.rglob("*") if p.is_file()) / 2**20, 1)


def _prepare(root: Path, cache: Path, opts: DataScaleOptions, cwd: Path) -> dict[str, Any]:
    args = ["prepare", "data=folder", f"data.root={root}", f"data.cache_dir={cache}",
            f"preprocess.resolution={opts.resolution}", f"data.workers={opts.workers}"]  # fmt: skip
    first = run_sampled(python_module_cmd("ggo.data", *args), cwd=cwd, timeout=opts.timeout)
    _check(first, "python -m ggo.data prepare")
    again = run_sampled(python_module_cmd("ggo.data", *args), cwd=cwd, timeout=opts.timeout)
    _check(again, "python -m ggo.data prepare (again)")
    return {
        "prepare_s": round(first["wall_s"], 1), "prepare_cpu_s": round(first["cpu_s"], 1),
        "cores_used": round(first["cpu_s"] / first["wall_s"], 2),
        "prepare_peak_rss_mb": _peak(first["samples"]), "prepare_main_peak_rss_mb": _main_peak(first["lines"]),
        "cache_mb": disk_mb(cache), "prepared_again_s": round(again["wall_s"], 2),
    }  # fmt: skip


def _train(root: Path, cache: Path, opts: DataScaleOptions, cwd: Path) -> dict[str, Any]:
    overrides = [o for o in TINY if not o.startswith(("data=", "preprocess.resolution", "train.epochs"))]
    cmd = python_module_cmd(
        "ggo.train", "data=folder", f"data.root={root}", f"data.cache_dir={cache}", f"data.workers={opts.workers}",
        f"preprocess.resolution={opts.resolution}", *overrides, "train.epochs=2", "tracking=none",
        f"hydra.run.dir={cwd / 'run'}",
    )  # fmt: skip
    result = run_sampled(cmd, cwd=cwd, timeout=opts.timeout, stop_at=_DATA if opts.startup_only else None)
    _check(result, "python -m ggo.train")
    epochs = [(t, float(m.group(3))) for t, line in result["lines"] if (m := _EPOCH_LINE.match(line))]
    data_at = next((t for t, line in result["lines"] if line.startswith(_DATA)), None)
    trained_until = epochs[-1][0] if epochs else None
    return {
        "startup_s": round(data_at, 2) if data_at is not None else None,
        "epoch_s": [s for _, s in epochs],
        "train_peak_rss_mb": _peak(result["samples"], trained_until),
        "train_main_peak_rss_mb": _peak(result["samples"], trained_until, column=2),
        "run_peak_rss_mb": None if opts.startup_only else _main_peak(result["lines"]),
        "run_s": round(result["wall_s"], 1),
    }


def measure_data_scale(opts: DataScaleOptions, workdir: Path, *, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Generate, prepare and train on a folder per film count of ``opts``: one row each, and what
    one more film costs (:func:`per_film`)."""
    from ggo.data.synthetic import make_synthetic_folder

    rows = []
    for n in opts.films:
        root = make_synthetic_folder(workdir / f"films-{n}", n, opts.image_size, distinct=16)
        cache = workdir / f"cache-{n}"
        row = {"films": n, "image_size": opts.image_size, "resolution": opts.resolution}
        row.update(_prepare(root, cache, opts, workdir))
        log(f"[bench] data scale {n} films: prepared in {row['prepare_s']} s on {row['cores_used']} cores, "
            f"peak RSS {row['prepare_peak_rss_mb']} MB, cache {row['cache_mb']} MB")  # fmt: skip
        if opts.train:
            row.update(_train(root, cache, opts, workdir))
            log(f"[bench] data scale {n} films: start-up {row['startup_s']} s, epochs {row['epoch_s']} s, "
                f"peak RSS training {row['train_peak_rss_mb']} MB")  # fmt: skip
        rows.append(row)
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(cache, ignore_errors=True)
    return {"options": dataclasses.asdict(opts), "rows": rows, "per_film": per_film(rows)}


def per_film(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """What one more film costs, from the smallest and largest counts measured."""
    if len(rows) < 2:
        return {}
    a, b = rows[0], rows[-1]
    films = b["films"] - a["films"]

    def slope(key: str) -> float | None:
        return round((b[key] - a[key]) / films, 5) if a.get(key) is not None and b.get(key) is not None else None

    out = {"prepare_s": slope("prepare_s"), "cache_mb": slope("cache_mb"), "prepare_peak_rss_mb": slope("prepare_peak_rss_mb")}
    if a.get("epoch_s") and b.get("epoch_s"):
        out["epoch_s"] = round((b["epoch_s"][-1] - a["epoch_s"][-1]) / films, 5)
        out["train_peak_rss_mb"] = slope("train_peak_rss_mb")
    ratios = {k: round(b[k] / a[k], 3) for k in ("prepare_peak_rss_mb", "train_peak_rss_mb") if a.get(k) and b.get(k)}
    return {**out, "peak_rss_ratio_largest_to_smallest": ratios}


COLUMNS = (
    ("films", "films"), ("prepare s", "prepare_s"), ("cores used", "cores_used"),
    ("prepare peak RSS MB (all / main)", "prepare_peak_rss_mb"), ("cache MB", "cache_mb"),
    ("prepared again s", "prepared_again_s"), ("run start-up s", "startup_s"), ("epoch s", "epoch_s"),
    ("training peak RSS MB", "train_peak_rss_mb"), ("run peak RSS MB", "run_peak_rss_mb"),
)  # fmt: skip


def _cell(row: dict[str, Any], key: str) -> str:
    value = row.get(key)
    if key == "prepare_peak_rss_mb":
        return f"{value} / {row.get('prepare_main_peak_rss_mb')}"
    if key == "epoch_s" and value:
        return " / ".join(f"{v:g}" for v in value)
    return "-" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def table(scale: dict[str, Any], markdown: bool = False) -> str:
    """The rows as an aligned text table (or a markdown one), with what one more film costs."""
    opts = scale.get("options", {})
    header = [h for h, _ in COLUMNS]
    body = [[_cell(r, k) for _, k in COLUMNS] for r in scale.get("rows", [])]
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *("| " + " | ".join(c) + " |" for c in body)]
    else:
        widths = [max(len(x) for x in col) for col in zip(header, *body)]
        lines = ["  ".join(c.rjust(w) for c, w in zip(cells, widths)) for cells in [header, *body]]
    lines.append(f"films of {opts.get('image_size')} px into a {opts.get('resolution')} px cache; per film: "
                 + ", ".join(f"{k} {v}" for k, v in (scale.get("per_film") or {}).items()))  # fmt: skip
    return "\n".join(lines)

"""Building a data cache (:mod:`ggo.data.cache`): read every film, bring it to the cache's grid,
audit it, split the patients, write the arrays and manifest atomically.

The build streams: the arrays are made to their full size on disk first (:mod:`ggo.data.npyrows`)
and each film is decoded, preprocessed and written straight into its row, so memory holds a few
films at a time whatever the dataset's size, never the arrays. Films are read by a pool of worker
processes (``workers``; 0: one per core, fewer for a small dataset), each writing the rows of its
films; results come back in reading order, so the cache is the same bit for bit with any number of
workers. Everything is written inside a temporary directory that becomes the cache in one rename
(:func:`~ggo.data.atomic.atomic_directory`): an interrupted build is never read.

:func:`build` is what :func:`ggo.data.prepare.prepare_cache` calls when no complete cache matches
the config; everything else here is its steps.
"""

from __future__ import annotations

import json
import math
import time
import warnings
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ggo.data import npyrows
from ggo.data.atomic import atomic_directory
from ggo.data.audit import build_summary, flags
from ggo.data.cache import COMPLETE, MANIFEST_COLUMNS, Cache, is_complete, open_cache
from ggo.data.folder import unusable_files_error
from ggo.data.preprocess import preprocess, preprocess_mask
from ggo.data.records import GENERALBLOCKCHAIN, Film, LoadReport, Record, dataset_films, read_film
from ggo.data.split import TEST, fold_name, split_with_ggo_free
from ggo.heads import CLASS_HEADS

#: A worker per this many films at most: a worker process takes about a second to start, which a
#: handful of films does not repay (the 24-film synthetic set builds in this process).
FILMS_PER_WORKER = 32
#: Films handed to the pool ahead of the one being written, per worker process.
IN_FLIGHT = 4
#: The cache's per-film arrays and their types, (N, R, R, 1) each.
ARRAYS = {"images": np.float32, "masks": np.uint8, "lungs": np.uint8, **{f"class_{h}": np.uint8 for h in CLASS_HEADS}}


def worker_count(workers: int, films: int) -> int:
    """The processes that read ``films`` films: ``workers`` (0: one per core this process may
    use, by its CPU affinity and container quota, and one per :data:`FILMS_PER_WORKER` films at
    most), never more than the films; 1 reads them in this process."""
    if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 0:
        raise ValueError(f"workers must be an integer >= 0 (0: one per core), got {workers!r}")
    if workers == 0:
        from joblib import cpu_count  # the cores this process may use: its CPU affinity and cgroup quota

        workers = min(cpu_count(), math.ceil(films / FILMS_PER_WORKER))
    return max(1, min(int(workers), films))


@dataclass(frozen=True)
class _Job:
    """One film's work, as a worker process gets it: the film, its row, the grid, where to write."""

    film: Film
    index: int
    pre: Mapping[str, Any]
    folder: Path
    lungs_expected: bool


@dataclass
class _Done:
    """What reading one film gave: its manifest row and audit entry (None: skipped or unusable),
    what its reading worked around, the warnings it raised and the folder layout's problems."""

    row: dict[str, Any] | None = None
    suspicious: dict[str, Any] | None = None
    report: LoadReport = field(default_factory=LoadReport)
    warnings: list[Warning] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _write_rows(record: Record, job: _Job) -> np.ndarray:
    """Bring one record to the cache's grid and write its rows; its GGO mask on the grid."""
    pre, res = job.pre, job.pre["resolution"]
    fit, clip = pre["fit"], pre["clahe_clip"] if pre["clahe"] else 2.0
    image = preprocess(record.image, res, fit=fit, clahe=pre["clahe"], clahe_clip=clip)
    mask = preprocess_mask(record.mask, res, fit=fit)
    planes = {"images": image, "masks": mask.astype(np.uint8)}
    if record.lungs is not None:
        planes["lungs"] = preprocess_mask(record.lungs, res, fit=fit).astype(np.uint8)
    for head in CLASS_HEADS:
        plane = record.classes.get(head)
        if plane is not None:
            planes[f"class_{head}"] = preprocess_mask(plane, res, fit=fit).astype(np.uint8)
    for name, plane in planes.items():  # absent planes stay zeros (the file starts as zeros)
        npyrows.write_row(job.folder / f"{name}.npy", job.index, plane[..., None])
    return mask


def _manifest_row(record: Record, mask: np.ndarray, report: LoadReport, resolution: int) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """One record's manifest row (without its split) and its audit entry (None: nothing suspicious)."""
    has_lungs = record.lungs is not None
    pixels = int(record.mask.sum())
    inside = float((record.mask & record.lungs).sum()) / pixels if has_lungs and pixels else float("nan")
    codes, reasons = flags(record, mask, report, resolution)
    row = {
        "name": record.name, "patient_id": record.patient_id, "height": record.shape[0],
        "width": record.shape[1], "ggo_fraction": pixels / record.mask.size, "ggo_inside_lungs": inside,
        "lung_sides": "+".join(record.lung_sides), "has_lungs": has_lungs, "flags": ";".join(codes),
        "ggo_free": bool(record.ggo_free),
        "classes": "+".join(h for h in CLASS_HEADS if h in record.classes),
        "unmasked": "+".join(h for h in CLASS_HEADS if h in record.unmasked),
    }  # fmt: skip
    suspicious = {"name": record.name, "patient_id": record.patient_id, "reasons": reasons} if reasons else None
    return row, suspicious


def _build_film(job: _Job) -> _Done:
    """Read, preprocess, write and audit one film (in a worker process, or in this one)."""
    done = _Done(report=LoadReport(lungs_expected=job.lungs_expected))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # every warning goes back to the parent, which shows it once
        record = read_film(job.film, done.report, done.problems)
        if record is not None and not done.problems:
            mask = _write_rows(record, job)
            done.row, done.suspicious = _manifest_row(record, mask, done.report, job.pre["resolution"])
    done.warnings = [w.message for w in caught]
    return done


def _one_thread() -> None:
    """A pool process's start: OpenCV on one thread, the pool being one process per core already
    (threads of its own on top would only fight over the same cores)."""
    import cv2

    cv2.setNumThreads(1)


def _run(jobs: Iterable[_Job], workers: int) -> Iterator[_Done]:
    """Each job's result, in the jobs' order: in this process (``workers`` 1) or in a pool.

    The pool is loky's (joblib's process pool): its processes are started fresh, not forked (the
    parent may hold TensorFlow, whose threads a fork would copy in a broken state), and without
    re-running the caller's ``__main__`` (a script needs no ``if __name__ == "__main__"`` guard,
    unlike the standard library's ``spawn``). At most :data:`IN_FLIGHT` jobs per process are
    handed out ahead, so memory does not grow with the dataset; the pool ends with the build."""
    if workers <= 1:
        yield from map(_build_film, jobs)
        return
    from joblib.externals.loky import ProcessPoolExecutor

    pool = ProcessPoolExecutor(max_workers=workers, initializer=_one_thread)
    pending: deque[Any] = deque()
    finished = False
    try:
        for job in jobs:
            pending.append(pool.submit(_build_film, job))
            if len(pending) >= IN_FLIGHT * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
        finished = True
    finally:
        pool.shutdown(wait=True, kill_workers=not finished)  # an error or Ctrl-C: stop the films in flight


@dataclass
class _Built:
    """What the reading pass gathered: manifest rows, audit entries, the films kept, problems."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    suspicious: list[dict[str, Any]] = field(default_factory=list)
    kept: list[int] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _read_all(films: list[Film], folder: Path, pre: Mapping[str, Any], report: LoadReport, workers: int, progress: bool) -> _Built:
    """Read every film into the arrays in ``folder``; gather the rows and what reading noticed."""
    from tqdm.auto import tqdm

    for name, dtype in ARRAYS.items():
        npyrows.create(folder / f"{name}.npy", len(films), (pre["resolution"], pre["resolution"], 1), dtype)
    jobs = (_Job(film, i, pre, folder, report.lungs_expected) for i, film in enumerate(films))
    built = _Built()
    processes = worker_count(workers, len(films))
    desc = f"ggo cache {pre['resolution']}px" + (f" ({processes} processes)" if processes > 1 else "")
    results = _run(jobs, processes)
    with tqdm(results, total=len(films), desc=desc, unit="img", disable=not progress) as bar:
        for i, done in enumerate(bar):
            report.merge(done.report)
            for message in done.warnings:
                warnings.warn(message, stacklevel=2)
            built.problems += done.problems
            if done.row is not None:
                built.rows.append(done.row)
                built.kept.append(i)
                if done.suspicious:
                    built.suspicious.append(done.suspicious)
    if len(built.kept) < len(films):  # skipped films leave empty rows: drop them
        for name in ARRAYS:
            npyrows.keep_rows(folder / f"{name}.npy", built.kept)
    return built


def _assign_splits(built: _Built, split_cfg: Mapping[str, Any]) -> None:
    """Label every manifest row and suspicious item with its patient-grouped split (the GGO films
    split as without GGO-free films; those follow, :func:`~ggo.data.split.split_with_ggo_free`)."""
    assignment = split_with_ggo_free(
        {r["name"]: r["patient_id"] for r in built.rows if not r["ggo_free"]},
        {r["name"]: r["patient_id"] for r in built.rows if r["ggo_free"]},
        seed=split_cfg["seed"],
        test_fraction=split_cfg["test_fraction"],
        folds=split_cfg["folds"],
    )
    for item in (*built.rows, *built.suspicious):
        item["split"] = assignment[item["name"]]


def _check_usable(built: _Built, root: Path, report: LoadReport) -> None:
    if built.problems:
        raise unusable_files_error(root, built.problems)
    if all(row["ggo_free"] for row in built.rows):
        raise ValueError(
            f"no usable GGO-annotated image under {root} ({report.n_skipped} files skipped, "
            f"{len(report.ggo_free)} GGO-free films): "
            "check structure.csv and images/, or run 'python -m ggo.data fetch' for a fresh copy"
        )


def build(
    root: Path, config: dict[str, Any], path: Path, progress: bool, layout: str = GENERALBLOCKCHAIN, workers: int = 0
) -> Cache:
    """Preprocess, audit, split, summarise and write the cache at ``path``; open it.

    ``workers``: processes reading the films (0: one per core; see :func:`worker_count`)."""
    report = LoadReport()
    films = dataset_films(root, report, layout)
    with atomic_directory(path, is_done=is_complete) as tmp:
        built = _read_all(films, tmp, config["preprocess"], report, workers, progress)
        _check_usable(built, root, report)
        _assign_splits(built, config["split"])
        manifest = pd.DataFrame(built.rows, columns=MANIFEST_COLUMNS)
        split_names = [TEST] + [fold_name(k) for k in range(config["split"]["folds"])]
        summary = build_summary(
            manifest, report, built.suspicious, root=root, path=path, config=config, split_names=split_names
        )
        np.save(tmp / "has_lungs.npy", manifest["has_lungs"].to_numpy(bool))
        manifest.to_csv(tmp / "manifest.csv", index=False)
        (tmp / "config.json").write_text(json.dumps({**config, "root": str(root)}, indent=2) + "\n")
        (tmp / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        (tmp / COMPLETE).write_text(time.strftime("%Y-%m-%dT%H:%M:%S%z") + "\n")  # last: the build is whole
    return open_cache(path)

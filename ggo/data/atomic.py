"""Write a directory so that readers see nothing or all of it: build in a temporary sibling, rename.

No library fits: ``atomicwrites``, ``safer`` and ``boltons.fileutils.atomic_save`` replace one
file; a cache or an exported dataset is a directory of many files that must appear together, and
``os.rename`` of a sibling directory (same filesystem) is the one atomic step POSIX offers for that.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_directory(target: str | Path, is_done: Callable[[Path], bool] = lambda _: False) -> Iterator[Path]:
    """Yield an empty temporary directory beside ``target``; when the block ends without an error,
    rename it to ``target`` in one step. On an error nothing appears at ``target`` and the
    temporary directory is removed.

    ``is_done(target)`` says whether a directory already at ``target`` is finished: another
    process won the race for the same content, so ours is dropped. An unfinished one (not made by
    this code, or half-written by something else) is set aside and replaced.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        yield tmp
        _move_into_place(tmp, target, is_done)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _move_into_place(tmp: Path, target: Path, is_done: Callable[[Path], bool]) -> None:
    try:
        os.rename(tmp, target)  # atomic on one filesystem; replaces an empty directory
    except OSError:
        if is_done(target):
            return  # another process finished the same build first; ours is dropped
        stale = target.with_name(f".{target.name}.stale-{os.getpid()}-{time.time_ns()}")
        os.rename(target, stale)
        shutil.rmtree(stale, ignore_errors=True)
        os.rename(tmp, target)

"""Write a file or a directory so that readers see nothing or all of it: write a temporary
sibling, then rename it into place (the one atomic step POSIX offers, on one filesystem).

:func:`atomic_directory` is for a cache or an exported dataset: many files that must appear
together (``atomicwrites``, ``safer`` and ``boltons.fileutils.atomic_save`` replace one file only).
:func:`atomic_file` is for one output (a predicted mask, a CSV): ``os.replace`` of a sibling, so a
crash mid-write leaves the old file or none, never half of one. It yields a path rather than an
open file because some writers (``cv2.imwrite``) take a path and pick the format by its suffix.
"""

from __future__ import annotations

import os
import secrets
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


@contextmanager
def atomic_file(target: str | Path) -> Iterator[Path]:
    """Yield a path beside ``target`` with the same suffix, for the block to write; when the block
    ends without an error, move it onto ``target`` in one step (``os.replace``). On an error, or if
    the block wrote nothing, ``target`` is left as it was and the temporary file is removed."""
    target = Path(target)
    tmp = target.with_name(f".{target.stem}.tmp-{os.getpid()}-{secrets.token_hex(4)}{target.suffix}")
    try:
        yield tmp
        if tmp.exists():
            os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(target: str | Path, text: str) -> None:
    """``Path(target).write_text(text)`` in UTF-8, through :func:`atomic_file`."""
    with atomic_file(target) as tmp:
        tmp.write_text(text, encoding="utf-8")

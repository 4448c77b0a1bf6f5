"""A SQLite store written by several processes at once: its creation serialised, its locks waited out.

SQLite lets one writer in at a time. MLflow 3.17 waits up to 20 s for the lock (``PRAGMA
busy_timeout = 20000``, fixed in its session maker) and then fails the call with "database is
locked"; and when a transaction that has read wants to write while another writes, SQLite answers
"locked" at once, without waiting, to avoid a deadlock. Either way the transaction was rolled back,
so running the same call again is safe. :func:`retry_locked` does that with backoff, for up to
about :data:`WAIT_MINUTES`, instead of failing a job that has trained for hours. Many writers
are better served by ``mlflow server`` (one process owns the file; README: scale-out).

A new store's schema is made by MLflow's migrations when a process first opens the store, which
two processes doing at once would interleave (one creating the store, another reading it, as
``python -m ggo.runs clean`` does). :func:`creating` holds a file lock (``filelock``) beside the
database while a process opens it for the first time (:func:`ggo.tracking.store.client_for`).
"""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, TypeVar

T = TypeVar("T")
BACKOFF_SECONDS = (0.5, 1, 2, 4, 8, 15, 30, 30, 30, 30)  # between tries, each of which waits 20 s in SQLite
WAIT_MINUTES = round((sum(BACKOFF_SECONDS) + 20 * (len(BACKOFF_SECONDS) + 1)) / 60)
_LOCKED = ("database is locked", "database table is locked")


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (None for any other store)."""
    return Path(uri[len("sqlite:///") :]) if uri.startswith("sqlite:///") else None


def is_locked(exc: BaseException) -> bool:
    """Is ``exc`` (or what caused it) SQLite saying another writer holds the database?"""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if any(text in str(exc) for text in _LOCKED):
            return True
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return False


def retry_locked(uri: str, call: Callable[[], T], what: str = "an MLflow call") -> T:
    """``call()``, run again after :data:`BACKOFF_SECONDS` while a SQLite store at ``uri`` is locked.
    Other stores, and other errors, go through untouched."""
    if sqlite_path(uri) is None:
        return call()
    for attempt, pause in enumerate((*BACKOFF_SECONDS, None)):
        try:
            return call()
        except Exception as exc:
            if pause is None or not is_locked(exc):
                if pause is None:
                    raise RuntimeError(
                        f"the SQLite store {uri} stayed locked by other writers for ~{WAIT_MINUTES} min ({what}); "
                        "for many parallel jobs run an `mlflow server` on the store and point tracking.uri at it"
                    ) from exc
                raise
            if attempt == 2:
                print(f"[ggo] the SQLite store {uri} is locked by another writer; waiting ({what})", file=sys.stderr, flush=True)
            time.sleep(pause)
    raise AssertionError("unreachable")


@contextmanager
def creating(uri: str) -> Iterator[None]:
    """Hold ``<database>.lock`` for the block when ``uri`` is a SQLite store (its folder is made;
    where the lock file cannot be written, the block runs without it)."""
    from filelock import FileLock

    path = sqlite_path(uri)
    if path is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(path) + ".lock")
    try:
        lock.acquire()
    except OSError:  # a store in a folder this user may not write: read it as it is (nobody can migrate it here)
        yield
        return
    try:
        yield
    finally:
        lock.release()


__all__ = ["BACKOFF_SECONDS", "creating", "is_locked", "retry_locked", "sqlite_path"]

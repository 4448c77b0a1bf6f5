"""One driver per search directory: two would interleave their trials in one oracle state.

An OS lock (``filelock``, ``flock`` on Unix): the kernel drops it when its process dies, however
it dies, so a killed driver never blocks the next one. The file names its holder, for the error
the second driver shows.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

LOCK_FILE = "driver.lock"  # in the oracle's project directory


class DriverLock:
    """Hold ``path`` while a driver runs its search; a second holder gets a clear error."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = FileLock(self.path, blocking=False)

    def __enter__(self) -> "DriverLock":
        try:
            self._lock.acquire()
        except Timeout:
            raise RuntimeError(
                f"Another driver ({self._holder()}) is running the search in {self.path.parent}; wait for it "
                f"to finish, or stop it (its lock goes with its process)"
            ) from None
        owner = {"host": socket.gethostname(), "pid": os.getpid(), "since": time.strftime("%Y-%m-%d %H:%M:%S")}
        self.path.write_text(json.dumps(owner))
        return self

    def __exit__(self, *exc: Any) -> None:
        # Unlink while still holding: a driver that opened the old file sees it unlinked and retries.
        self.path.unlink(missing_ok=True)
        self._lock.release()

    def _holder(self) -> str:
        try:
            owner = json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            return "owner unknown"
        return ", ".join(f"{k} {v}" for k, v in owner.items()) or "owner unknown"

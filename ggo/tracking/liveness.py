"""Signs of life a run records, so a run left RUNNING by a hard kill can be found and ended.

Every run records where it runs (tags ``ggo.host``, ``ggo.pid``, ``ggo.pid_started``: the
process's start time, so a reused pid is not mistaken for the run's) and a heartbeat
(``ggo.heartbeat``, seconds since the epoch), renewed every epoch. ``python -m ggo.runs clean``
reads them.
"""

from __future__ import annotations

import socket
import time

HOST_TAG, PID_TAG, PID_STARTED_TAG, HEARTBEAT_TAG = "ggo.host", "ggo.pid", "ggo.pid_started", "ggo.heartbeat"


def heartbeat_tag(now: float | None = None) -> dict[str, str]:
    """The heartbeat tag with the current time."""
    return {HEARTBEAT_TAG: f"{time.time() if now is None else now:.0f}"}


def process_tags() -> dict[str, str]:
    """Where this process runs, and a first heartbeat: the tags a run records when it starts."""
    import psutil

    me = psutil.Process()
    return {HOST_TAG: socket.gethostname(), PID_TAG: str(me.pid), PID_STARTED_TAG: f"{me.create_time():.3f}", **heartbeat_tag()}

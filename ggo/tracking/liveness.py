"""Signs of life a run records, so that a run left RUNNING by a hard kill can be found and ended,
and a live one never is.

Every run records where it runs and a heartbeat:

- ``ggo.host``: the host name, for people; ``ggo.host_id``: the kernel boot and the pid
  namespace the process runs in (``/proc/sys/kernel/random/boot_id`` and ``/proc/self/ns/pid``).
  Two processes with one ``host_id`` can see each other's pids; two containers that share a host
  name (or a copied ``/etc/machine-id``) but not a pid namespace cannot, and a rebooted host gets
  a new one. Where ``/proc`` has neither, the host name stands in.
- ``ggo.pid``, and when it started: ``ggo.pid_since_boot`` (seconds after boot, which a
  wall-clock step does not move) and ``ggo.pid_started`` (wall clock, for people and older ggo).
  A pid that now belongs to a process started at another time is not the run's.
- ``ggo.heartbeat`` (seconds since the epoch), renewed by a :class:`Heartbeat` thread every
  ``GGO_HEARTBEAT_SECONDS`` (default 60) for as long as the process runs the run: through cache
  builds, evaluation, model logging and summaries, not only at epoch ends.

``python -m ggo.runs clean`` reads them (:func:`process_state`): a run whose process is alive on
this host is never stale, whatever its heartbeat says.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

HOST_TAG, HOST_ID_TAG, PID_TAG = "ggo.host", "ggo.host_id", "ggo.pid"
PID_STARTED_TAG, PID_SINCE_BOOT_TAG, HEARTBEAT_TAG = "ggo.pid_started", "ggo.pid_since_boot", "ggo.heartbeat"
HEARTBEAT_ENV = "GGO_HEARTBEAT_SECONDS"
HEARTBEAT_SECONDS = 60.0
_START_TOLERANCE = 1.0  # seconds: the start times compared are the kernel's, in clock ticks


@dataclass(frozen=True)
class Host:
    """This machine as a run's tags name it: ``name`` for people, ``id`` to compare."""

    name: str
    id: str


def this_host() -> Host:
    """The host this process runs on (see the module docstring for what ``id`` holds)."""
    name = socket.gethostname()
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        pid_namespace = os.readlink("/proc/self/ns/pid")  # "pid:[4026531836]"
    except OSError:  # no /proc (macOS, ...): the host name is all there is
        return Host(name, name)
    return Host(name, f"{boot}/{pid_namespace}")


def since_boot(proc: object) -> float:
    """When psutil process ``proc`` started, in seconds after boot: both terms move together when
    the wall clock is stepped, so their difference does not."""
    import psutil

    return proc.create_time() - psutil.boot_time()  # type: ignore[attr-defined]


def heartbeat_tag(now: float | None = None) -> dict[str, str]:
    """The heartbeat tag with the current time."""
    return {HEARTBEAT_TAG: f"{time.time() if now is None else now:.0f}"}


def process_tags() -> dict[str, str]:
    """Where this process runs, and a first heartbeat: the tags a run records when it starts."""
    import psutil

    me, host = psutil.Process(), this_host()
    return {
        HOST_TAG: host.name, HOST_ID_TAG: host.id, PID_TAG: str(me.pid),
        PID_SINCE_BOOT_TAG: f"{since_boot(me):.2f}", PID_STARTED_TAG: f"{me.create_time():.3f}", **heartbeat_tag(),
    }  # fmt: skip


def _number(value: object) -> float | None:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def process_state(tags: Mapping[str, str], here: Host) -> str | None:
    """``"alive"`` or ``"gone"`` for a run whose process this host can see; None when it cannot
    tell (another host, another container, no pid recorded). A process this host may not inspect
    (``AccessDenied``) is alive; a zombie is gone."""
    import psutil

    pid = _number(tags.get(PID_TAG))
    recorded_id = tags.get(HOST_ID_TAG)
    same_host = recorded_id == here.id if recorded_id else tags.get(HOST_TAG) == here.name  # older runs: the name
    if pid is None or not same_host:
        return None
    try:
        proc = psutil.Process(int(pid))
        if proc.status() == psutil.STATUS_ZOMBIE:
            return "gone"
        boot_start, wall_start = _number(tags.get(PID_SINCE_BOOT_TAG)), _number(tags.get(PID_STARTED_TAG))
        if boot_start is not None:
            same = abs(since_boot(proc) - boot_start) <= _START_TOLERANCE
        elif wall_start is not None:  # recorded by an older ggo: the wall clock is all there is
            same = proc.create_time() <= wall_start + _START_TOLERANCE
        else:
            same = True
        return "alive" if same else "gone"
    except psutil.NoSuchProcess:
        return "gone"
    except psutil.AccessDenied:
        return "alive"


def heartbeat_seconds() -> float:
    """``GGO_HEARTBEAT_SECONDS`` (default 60); a ValueError naming it for a value that is not positive."""
    raw = os.environ.get(HEARTBEAT_ENV, "").strip()
    if not raw:
        return HEARTBEAT_SECONDS
    value = _number(raw)
    if value is None or not 0 < value < float("inf"):
        raise ValueError(f"{HEARTBEAT_ENV}={raw!r}: give the seconds between heartbeats, above 0 (default {HEARTBEAT_SECONDS:g})")
    return value


class Heartbeat:
    """Call ``beat`` every ``interval`` seconds (default :func:`heartbeat_seconds`) from a daemon
    thread, from :meth:`start` until :meth:`stop`. A failed beat is reported once on stderr and
    tried again at the next interval: a tracking server that is away for a while must not end the
    job, and a process that dies takes its thread with it."""

    def __init__(self, beat: Callable[[], None], *, what: str, interval: float | None = None) -> None:
        self._beat, self.what = beat, what
        self.interval = heartbeat_seconds() if interval is None else interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"ggo-heartbeat {what}", daemon=True)
        self._failing = False

    def start(self) -> "Heartbeat":
        self._thread.start()
        return self

    def stop(self) -> None:
        """No beat after this returns (one in flight is waited for, up to a few seconds)."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self._beat()
            except Exception as exc:  # noqa: BLE001 - reported, and tried again at the next beat
                if not self._failing:
                    print(f"[ggo] could not renew the heartbeat of {self.what} ({type(exc).__name__}: {exc}); "
                          f"trying again every {self.interval:g} s", file=sys.stderr, flush=True)  # fmt: skip
                self._failing = True
            else:
                self._failing = False


__all__ = [
    "HEARTBEAT_ENV", "HEARTBEAT_TAG", "HOST_ID_TAG", "HOST_TAG", "PID_SINCE_BOOT_TAG", "PID_STARTED_TAG", "PID_TAG",
    "Heartbeat", "Host", "heartbeat_seconds", "heartbeat_tag", "process_state", "process_tags", "since_boot", "this_host",
]  # fmt: skip

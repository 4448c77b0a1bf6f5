"""Scheduler signals end a run the way Ctrl-C does.

Slurm, Kubernetes, ``docker stop``, Ray job cancellation and most schedulers stop a job with
SIGTERM (a lost terminal sends SIGHUP). Python's default for both ends the process on the spot,
leaving its MLflow run RUNNING for ever. :func:`install` turns them into :class:`Terminated`, a
``KeyboardInterrupt``, so everything that already handles Ctrl-C (the run marked KILLED with the
reason, a sweep's parent KILLED with its summary, a Keras Tuner search resumable) handles them too.
"""

from __future__ import annotations

import signal
import threading

SIGNALS = tuple(s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None)) if s is not None)


class Terminated(KeyboardInterrupt):
    """The process received ``signum``; it should exit with status ``128 + signum``."""

    def __init__(self, signum: int) -> None:
        self.signum = int(signum)
        super().__init__(f"received {signal.Signals(self.signum).name}")

    @property
    def exit_status(self) -> int:
        return 128 + self.signum


def _raise(signum: int, frame: object) -> None:
    raise Terminated(signum)


def install() -> None:
    """Raise :class:`Terminated` on SIGTERM and SIGHUP (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is threading.main_thread():
        for sig in SIGNALS:
            signal.signal(sig, _raise)


__all__ = ["SIGNALS", "Terminated", "install"]

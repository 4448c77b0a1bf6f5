"""A tracking server that goes away: how long ggo waits for it, and what a job says when it gives up.

MLflow's HTTP client (3.17) retries every request to an ``http(s)://`` tracking server itself:
a refused, reset or timed-out connection, and the answers 408, 429, 500, 502, 503 and 504, are
retried up to ``MLFLOW_HTTP_REQUEST_MAX_RETRIES`` times. The first retry is immediate; before the
n-th it sleeps ``MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR * 2**(n-1)`` seconds (at most 120) plus up to
``MLFLOW_HTTP_REQUEST_BACKOFF_JITTER``. Each attempt waits ``MLFLOW_HTTP_REQUEST_TIMEOUT`` seconds
for a connection and again for an answer. Artifact and model uploads through the server's proxy
(``mlflow-artifacts:``) are requests like any other, retried the same way. Retried writes are safe:
a metric that reached the store twice (same key, step, value and timestamp) is stored once.

:data:`LIMITS` are ggo's values for those four variables, set by :func:`apply_limits` wherever the
environment does not set them already (the environment wins): a restart of up to about 4 minutes
is ridden out; a server that refuses connections for longer fails the call after ~4 minutes, one
that does not answer at all after ~8.

:func:`guard` wraps every call ggo makes to a store (``client_for`` and ``fluent_scope`` use it).
When MLflow has run out of retries it raises :class:`TrackingServerUnavailable`, which names the
server, the reason and what to do, instead of MLflow's page of urllib3 text. This process then
remembers that it gave up on that server: later calls first ask ``/health`` once, without
retries, and fail at once while it stays away, so recording a failure, the next jobs of a sweep and
its summary do not wait the whole retry window again; the first answer ends that.
"""

from __future__ import annotations

import os
import re
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator
from urllib.parse import urlparse

#: ggo's retry limits for MLflow's HTTP client; a variable already in the environment wins.
LIMITS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "7",  # MLflow's default; MLflow refuses more than 10
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "2",  # sleeps 0, 4, 8, 16, 32, 64, 120 s: ~4 min in all
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "1.0",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",  # MLflow's 120 s would make a silent host cost 8 x 2 min
}
_BACKOFF_MAX = 120.0  # urllib3's cap on one sleep
_PROBE_TIMEOUT = 10
_GAVE_UP: dict[str, str] = {}  # server URI -> why this process gave up on it


@dataclass(frozen=True)
class HttpLimits:
    """The retry settings MLflow's HTTP client will use, as numbers."""

    retries: int
    backoff_factor: int
    jitter: float
    timeout: int

    @property
    def window_seconds(self) -> float:
        """How long one call keeps retrying a server that refuses connections (jitter left out)."""
        return sum(min(_BACKOFF_MAX, self.backoff_factor * 2 ** (n - 1)) for n in range(2, self.retries + 1))

    def describe(self) -> str:
        tries = f"{self.retries} {'retry' if self.retries == 1 else 'retries'}"
        return f"{tries} over {_duration(self.window_seconds)}" if self.window_seconds else tries


def apply_limits() -> HttpLimits:
    """Put :data:`LIMITS` into the environment where it has no value yet; return the limits in force.

    A value MLflow cannot use fails here, naming the variable and what to write instead.
    """
    for key, value in LIMITS.items():
        os.environ.setdefault(key, value)
    return HttpLimits(
        retries=_env_number("MLFLOW_HTTP_REQUEST_MAX_RETRIES", int, 0, 10, "a whole number from 0 to 10"),
        backoff_factor=_env_number("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", int, 0, 120, "whole seconds from 0 to 120"),
        jitter=_env_number("MLFLOW_HTTP_REQUEST_BACKOFF_JITTER", float, 0, float("inf"), "seconds, 0 or more"),
        timeout=_env_number("MLFLOW_HTTP_REQUEST_TIMEOUT", int, 1, float("inf"), "whole seconds, 1 or more"),
    )


def _env_number(key: str, kind: type, low: float, high: float, what: str) -> int | float:
    raw = os.environ[key]
    try:
        value = kind(raw)
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        raise ValueError(f"{key}={raw!r}: MLflow needs {what} (ggo's default is {LIMITS[key]}); fix or unset it")
    return value


class TrackingServerUnavailable(RuntimeError):
    """The MLflow tracking server at ``uri`` did not answer within MLflow's retries."""

    def __init__(self, uri: str, reason: str, waited: str) -> None:
        self.uri, self.reason = uri, reason
        super().__init__(
            f"MLflow tracking server {uri} unavailable ({reason}) {waited}: what it recorded stays in its store. "
            f"Start it again on the same store and rerun (`python -m ggo.runs clean` ends runs left RUNNING); "
            f"to wait longer, set MLFLOW_HTTP_REQUEST_MAX_RETRIES (up to 10) or MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"
        )


def is_http(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


@contextmanager
def guard(uri: str) -> Iterator[None]:
    """Run the block's MLflow calls to ``uri`` under ggo's retry limits; when MLflow gives up on the
    server, raise :class:`TrackingServerUnavailable` instead (a no-op for stores that are not servers)."""
    if not is_http(uri):
        yield
        return
    limits = apply_limits()
    if uri in _GAVE_UP:
        _probe(uri, limits)
    try:
        yield
    except TrackingServerUnavailable:
        raise
    except Exception as exc:
        reason = transport_failure(exc, uri, limits.timeout)
        if reason is None:
            raise
        _GAVE_UP[uri] = reason
        raise TrackingServerUnavailable(uri, reason, f"after {limits.describe()}") from exc


def _probe(uri: str, limits: HttpLimits) -> None:
    """Ask a server this process gave up on for ``/health``, once; forget it gave up if it answers."""
    from mlflow.utils.credentials import get_default_host_creds
    from mlflow.utils.rest_utils import http_request

    timeout = min(limits.timeout, _PROBE_TIMEOUT)
    try:
        http_request(get_default_host_creds(uri), "/health", "GET", max_retries=0, timeout=timeout)
    except Exception as exc:
        reason = transport_failure(exc, uri, timeout) or f"{type(exc).__name__}: {exc}"
        raise TrackingServerUnavailable(uri, reason, f"and this process gave up on it before, after {limits.describe()}") from exc
    _GAVE_UP.pop(uri, None)


def transport_failure(exc: BaseException, uri: str, timeout: float) -> str | None:
    """Why ``exc`` means the server at ``uri`` could not be reached or kept failing (a few words),
    or None when it is any other error (a missing run, a bad value: the server answered)."""
    import requests

    host = urlparse(uri).hostname or uri
    for err in _chain(exc):
        if not isinstance(err, requests.exceptions.RequestException) or host not in str(err):
            continue
        text = str(err)
        if isinstance(err, requests.exceptions.Timeout) or "timed out" in text:  # retried timeouts end as ConnectionError
            return f"no answer within {timeout:g} s"
        if isinstance(err, requests.exceptions.RetryError):
            status = re.search(r"too many (\d+) error responses", text)
            return f"it kept answering HTTP {status.group(1)}" if status else "it kept answering with errors"
        if isinstance(err, requests.exceptions.ConnectionError):
            if "refused" in text:
                return "connection refused"
            if "resolve" in text or "Name or service not known" in text:
                return "host name not found"
            return "connection failed"
    return None


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    stack = [exc]
    while stack:
        err = stack.pop()
        if err is None or id(err) in seen:
            continue
        seen.add(id(err))
        yield err
        stack.extend([err.__cause__, err.__context__])  # type: ignore[list-item]


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


__all__ = ["LIMITS", "HttpLimits", "TrackingServerUnavailable", "apply_limits", "guard", "is_http", "transport_failure"]

"""What ``mlflow models serve`` answers when a request fails before, or outside, the model.

MLflow 3.17's scoring server (``mlflow.pyfunc.scoring_server.invocations``) parses the body and
calls the model; where it fails on its own it answers in ways a public endpoint must not:

- a CSV or Parquet body it cannot parse: HTTP 400 whose ``stack_trace`` holds server paths;
- a body that is not JSON: 400 whose message echoes the whole body back;
- an exception that is not an ``MlflowException`` (odd shapes that pandas refuses, a missing
  Content-Type): a bare HTTP 500; an exception inside the model: 400 with a stack trace;
- a bad ``params`` value: 400 whose message repeats the whole parsed request.

:func:`install` wraps that function, once per process, when the served model loads in the scoring
server: the body size is checked first (HTTP 413 over ``GGO_SERVE_MAX_BODY_MB``, before any
parsing), and every failure becomes ``{"error_code": ..., "message": <one short line>}`` with a
4xx for the client's mistakes and 500 for the server's; the trace goes to the server's log only.
The wrapper replaces a module attribute MLflow looks up at call time; if a later MLflow renames
it, the model still loads and says so in the log.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any, Callable

from mlflow.exceptions import MlflowException

from ggo.serving.limits import ENV, RequestLimits, million
from ggo.serving.request import REQUEST_SHAPE, RequestError

_log = logging.getLogger(__name__)
_MARK = "__ggo_guarded__"
_PATH = re.compile(r"(?:[A-Za-z]:)?[\\/](?:[\w.@+-]+[\\/])+[\w.@+-]*")  # /a/b/c.py, C:\a\b
_SHORT = 240  # characters of a reason taken from MLflow's own message


def install(limits: RequestLimits) -> bool:
    """Guard the scoring server's ``invocations`` with ``limits``; False where there is none to guard.

    Only a process that ``mlflow models serve`` started is guarded: its app module
    (``mlflow.pyfunc.scoring_server.app``) loads the model while it is being imported. Another
    process that merely imported ``mlflow.pyfunc.scoring_server`` keeps MLflow's function as it is.
    """
    import sys

    server = sys.modules.get("mlflow.pyfunc.scoring_server")
    if server is None or "mlflow.pyfunc.scoring_server.app" not in sys.modules:
        return False
    original = getattr(server, "invocations", None)
    if original is None or not callable(original):
        _log.warning("mlflow.pyfunc.scoring_server.invocations not found: ggo's request guard is not installed")
        return False
    if getattr(original, _MARK, False):
        return True

    def invocations(data: Any, content_type: Any, model: Any, input_schema: Any) -> Any:
        return guarded(original, server.InvocationsResponse, limits, data, content_type, model, input_schema)

    setattr(invocations, _MARK, True)
    server.invocations = invocations
    _log.info("ggo request guard installed: %s", limits.describe())
    return True


def installed() -> bool:
    """Is this process a scoring server whose requests go through the guard?"""
    import sys

    server = sys.modules.get("mlflow.pyfunc.scoring_server")
    return server is not None and getattr(getattr(server, "invocations", None), _MARK, False)


def guarded(
    original: Callable[..., Any], response: Callable[..., Any], limits: RequestLimits, data: Any, content_type: Any, *args: Any
) -> Any:
    """``original(data, content_type, *args)``, with every failure turned into a short JSON error ``response``."""
    if not content_type:
        return _error(response, 415, "BAD_REQUEST", "the request has no Content-Type: send it as Content-Type: application/json")
    size = len(data) if isinstance(data, (bytes, bytearray, str)) else 0
    if size > million(limits.max_body_mb):
        return _error(
            response, 413, "REQUEST_LIMIT_EXCEEDED",
            f"the request body is {size / 1e6:.1f} MB, over the limit of {limits.max_body_mb:g} MB "
            f"({ENV['max_body_mb']}): send fewer images per request",
        )  # fmt: skip
    try:
        return original(data, content_type, *args)
    except RequestError as exc:
        return _error(response, exc.status, exc.error_code, exc.message)
    except MlflowException as exc:
        status = exc.get_http_status_code()
        if status >= 500:
            _log.error("the scoring server failed: %s", exc.message, exc_info=True)
            return _error(response, 500, "INTERNAL_ERROR", "the server failed to answer; its log has the details")
        _log.info("request refused by MLflow's parser: %s", _first_line(exc.message))
        return _error(response, 400, "BAD_REQUEST", client_reason(exc.message))
    except Exception as exc:  # noqa: BLE001 - raised by MLflow's or pandas' parsing: the client's input
        _log.warning("request refused: %s", type(exc).__name__, exc_info=True)
        return _error(response, 400, "BAD_REQUEST", f"the request could not be read ({type(exc).__name__}): send {REQUEST_SHAPE}")


def client_reason(message: str) -> str:
    """MLflow's message for a request it refused, cut to one short line without echoes or paths."""
    if "valid JSON" in message:
        return f"the request body is not valid JSON (UTF-8): send {REQUEST_SHAPE}"
    if message.startswith("Failed to predict data") and "\nError: " in message:
        message = message.rsplit("\nError: ", 1)[1]  # drop the echo of the whole request
    return f"{_first_line(message)} (send {REQUEST_SHAPE})"


def _first_line(message: str) -> str:
    line = next((part.strip() for part in str(message).split("\n") if part.strip()), "bad request")
    line = _PATH.sub("<path>", line)
    return line if len(line) <= _SHORT else line[: _SHORT - 3] + "..."


def _error(response: Callable[..., Any], status: int, code: str, message: str) -> Any:
    return response(response=json.dumps({"error_code": code, "message": message}), status=status, mimetype="application/json")


__all__ = ["client_reason", "guarded", "install", "installed"]

"""The requests a hostile client sends to a served ggo model, and a probe that reports what a live
server answers to each and what it cost the server's memory.

Tests import :data:`CASES`, :func:`send` and :func:`tree_rss`. By hand, against a running
``mlflow models serve`` (its pid is the ``mlflow`` command's, or uvicorn's)::

    python tests/serve_probe.py --url http://127.0.0.1:5001 --pid 12345 [--case NAME ...] [--json out.json]

prints, per case, the HTTP status, the start of the answer, and the resident memory of the
server's whole process tree before and after (psutil).
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import sys
import tempfile
import time
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run as a script: hostile_images beside it

from hostile_images import damaged_chunk_png, png_chunk, radiance_hdr, zero_png  # noqa: E402

JSON = "application/json"
PARQUET = "application/vnd.apache.parquet"


@dataclass(frozen=True)
class Case:
    """One request: how to build its body, its content type, and what the server must answer."""

    build: Callable[[], bytes]
    content_type: str | None = JSON
    status: int = 400  # the status a guarded server answers


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def split(column: str, *cells: object) -> bytes:
    return json.dumps({"dataframe_split": {"columns": [column], "data": [[c] for c in cells]}}).encode()


def films(*files: bytes) -> bytes:
    return split("image_b64", *(b64(f) for f in files))


def declared_only(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` pixels and holds no pixel data."""
    import struct

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IEND", b"")


def parquet_of(column: str, value: str) -> bytes:
    import pandas as pd

    out = io.BytesIO()
    pd.DataFrame({column: [value]}).to_parquet(out)
    return out.getvalue()


#: A PNG the server can read on its own disk (created on import, so a path case has a real file).
SERVER_FILE = Path(tempfile.gettempdir()) / "ggo-serve-probe.png"
SERVER_FILE.write_bytes(zero_png(64, 64))

CASES: dict[str, Case] = {
    # A path column, whatever it names, gets one answer (nothing tells whether the file exists).
    "path to a PNG on the server": Case(lambda: split("path", str(SERVER_FILE))),
    "path to /etc/passwd": Case(lambda: split("path", "/etc/passwd")),
    "path to a missing file": Case(lambda: split("path", "/no/such/file.png")),
    "path as inputs": Case(lambda: json.dumps({"inputs": {"path": ["/etc/passwd"]}}).encode()),
    "path as instances": Case(lambda: json.dumps({"instances": [{"path": "/etc/passwd"}]}).encode()),
    "path beside a good film": Case(
        lambda: json.dumps({"dataframe_split": {"columns": ["image_b64", "path"], "data": [[b64(zero_png(8, 8)), "/etc/passwd"]]}}).encode()
    ),
    "path in CSV": Case(lambda: b"path\n/etc/passwd\n", "text/csv"),
    "path in Parquet": Case(lambda: parquet_of("path", "/etc/passwd"), PARQUET),
    # Bombs: refused from their headers (the row's error; the request answers 200).
    "20000 x 20000 zero PNG (0.4 MB)": Case(lambda: films(zero_png(20_000, 20_000)), status=200),
    "108 MP PNG behind a damaged chunk (105 KB)": Case(lambda: films(damaged_chunk_png(10_400, 10_400)), status=200),
    "PNG declaring 40000 x 40000": Case(lambda: films(declared_only(40_000, 40_000)), status=200),
    "Radiance HDR 8000 x 8000": Case(lambda: films(radiance_hdr(8_000, 8_000)), status=200),
    # The budget: refused before decoding.
    "40 zero 3000 x 3000 PNGs (rows)": Case(lambda: films(*[zero_png(3000, 3000)] * 40), status=413),
    "23 zero 3000 x 3000 PNGs (207 MP)": Case(lambda: films(*[zero_png(3000, 3000)] * 23), status=413),
    "22 zero 3000 x 3000 PNGs (198 MP, within)": Case(lambda: films(*[zero_png(3000, 3000)] * 22), status=200),
    "16-bit RGBA 10000 x 10000 PNG (100 MP)": Case(lambda: films(zero_png(10_000, 10_000, "rgba", 16)), status=200),
    "one cell of 45 MB": Case(lambda: split("image_b64", "A" * 45_000_000), status=413),
    # Shapes MLflow or the model cannot read: 400, a short reason, no trace.
    "inputs [[[[1]]]]": Case(lambda: b'{"inputs": [[[[1]]]]}'),
    "inputs of strings": Case(lambda: b'{"inputs": ["/etc/passwd"]}'),
    "malformed JSON": Case(lambda: b'{"dataframe_split": {"columns": ["image_b64"], "data": [['),
    "not UTF-8": Case(lambda: b'{"inputs": "\xff\xfe"}'),
    "a JSON list": Case(lambda: b"[1, 2, 3]"),
    "rows wider than the columns": Case(lambda: b'{"dataframe_split": {"columns": ["image_b64"], "data": [["a", "b"]]}}'),
    "no rows": Case(lambda: b'{"dataframe_split": {"columns": ["image_b64"], "data": []}}'),
    "two input keys": Case(lambda: b'{"inputs": [1], "instances": [1]}'),
    "CSV that is not CSV": Case(lambda: b'"unterminated\n\x00\x01', "text/csv"),
    "Parquet that is not Parquet": Case(lambda: b"PAR1 not really", PARQUET),
    "no Content-Type": Case(lambda: films(zero_png(8, 8)), None, status=415),
    "threshold that is not a number": Case(
        lambda: json.dumps({"dataframe_split": {"columns": ["image_b64"], "data": [[b64(zero_png(8, 8))]]}, "params": {"threshold": "abc"}}).encode()
    ),
    "chat messages": Case(lambda: json.dumps({"messages": [{"role": "user", "content": "/etc/passwd"}]}).encode()),
}


#: What must never be in an answer: a trace, source files, server paths, a path a client named.
LEAKS = ("Traceback", "stack_trace", 'File "', ".py", "site-packages", "/tmp/", "/work/", "/home/", "/usr/", "/etc/passwd")


def assert_clean(text: str, what: str = "") -> None:
    """No :data:`LEAKS` in ``text``, and an error answer does not echo a film of the request."""
    found = [leak for leak in LEAKS if leak in text]
    assert not found, f"{what}: the answer holds {found}: {text[:300]}"
    if '"predictions"' not in text:
        assert "iVBOR" not in text, f"{what}: an error answer echoes the request: {text[:300]}"


def send(url: str, body: bytes, content_type: str | None = JSON, timeout: float = 300) -> tuple[int, str]:
    """POST ``body`` to ``url``/invocations (no Content-Type header when it is None); (HTTP status, answer text)."""
    import http.client
    from urllib.parse import urlparse

    where = urlparse(url)
    connection = http.client.HTTPConnection(where.hostname, where.port, timeout=timeout)
    try:
        connection.request("POST", "/invocations", body=body, headers={"Content-Type": content_type} if content_type else {})
        response = connection.getresponse()
        return response.status, response.read().decode("utf-8", "replace")
    finally:
        connection.close()


def tree_rss(pid: int) -> int:
    """Resident bytes of process ``pid`` and all its descendants."""
    import psutil

    root = psutil.Process(pid)
    total = 0
    for proc in [root, *root.children(recursive=True)]:
        try:
            total += proc.memory_info().rss
        except psutil.Error:
            pass
    return total


class PeakRss:
    """The highest :func:`tree_rss` of ``pid`` seen while the block runs (sampled every 20 ms)."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self._stop = pid, tree_rss(pid), threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, tree_rss(self.pid))

    def __enter__(self) -> "PeakRss":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def probe(url: str, pid: int, names: list[str]) -> list[dict[str, object]]:
    """Send each case once; its status, answer and the server tree's RSS before, at its peak during,
    and after the request (MB)."""
    results = []
    for name in names:
        case = CASES[name]
        body = case.build()
        before = tree_rss(pid)
        started = time.perf_counter()
        with PeakRss(pid) as peak:
            status, text = send(url, body, case.content_type)
        seconds = time.perf_counter() - started
        time.sleep(0.5)  # let the worker thread return its memory
        after = tree_rss(pid)
        results.append({"case": name, "body_kb": round(len(body) / 1e3, 1), "status": status, "seconds": round(seconds, 2),
                        "rss_before_mb": round(before / 1e6), "rss_peak_mb": round(peak.peak / 1e6),
                        "rss_after_mb": round(after / 1e6), "answer": text[:400]})  # fmt: skip
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--pid", type=int, required=True, help="the server's pid (its whole process tree is measured)")
    parser.add_argument("--case", action="append", default=None, help="only this case (repeatable); default all")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args(argv)
    results = probe(args.url, args.pid, args.case or list(CASES))
    for r in results:
        print(f"{r['status']}  RSS {r['rss_before_mb']:>5} / peak {r['rss_peak_mb']:>5} / after {r['rss_after_mb']:>5} MB"
              f"  {r['seconds']:>6}s  {r['case']} ({r['body_kb']} KB)\n      {r['answer'][:300]}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

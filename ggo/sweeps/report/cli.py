"""``python -m ggo.report PARENT``: write a sweep's report page (see :mod:`ggo.sweeps.report`)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Sequence

from ggo import tracking
from ggo.data.atomic import write_text
from ggo.sweeps.report import REPORT_ARTIFACT, ReportError, log_report, render, resolve_parent


DESCRIPTION = """\
Write the report of a sweep, cross-validation or Keras Tuner search: one HTML file with
every picture inside it (the ranking with paired 95% intervals, what differs between the
runs, their curves, the top run's films, folds, trials, and the command that reproduces it).
A sweep writes it to its parent run as report.html when it ends; this writes it again."""

EXAMPLES = """\
examples:
  python -m ggo.report <parent run id>                 # -> report.html here
  python -m ggo.report champion --out champion.html    # the promoted model's sweep or CV parent
  python -m ggo.report <parent run id> --log           # also (re)attach it to the parent run"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ggo.report", description=DESCRIPTION, epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("parent", metavar="PARENT", help="a sweep, cross-validation or search parent run id, or 'champion'")
    parser.add_argument("--out", default=REPORT_ARTIFACT, help="the HTML file to write (default: %(default)s)")
    parser.add_argument("--log", action="store_true", help=f"also log it to the parent run as {REPORT_ARTIFACT}")
    parser.add_argument("--name", default="ggo-segmenter", help="registered model that 'champion' refers to (default: %(default)s)")
    parser.add_argument("--tracking-uri", default=None, help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or the project store)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; returns the exit status (2 when no report can be made)."""
    args = build_parser().parse_args(argv)
    uri = tracking.resolve_uri(args.tracking_uri)
    started = time.perf_counter()
    try:
        tracking.check_store_exists(uri)
        run_id = resolve_parent(uri, args.parent, model_name=args.name)
        html = log_report(uri, run_id) if args.log else render(uri, run_id)
    except (ReportError, LookupError, FileNotFoundError) as exc:
        print(f"[ggo] report: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    if out.parent != Path(""):
        out.parent.mkdir(parents=True, exist_ok=True)
    write_text(out, html)  # whole, or not at all
    print(f"[ggo] report of run {run_id}: {out.resolve()} ({len(html) / 1e6:.1f} MB, {time.perf_counter() - started:.1f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

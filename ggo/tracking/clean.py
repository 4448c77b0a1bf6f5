"""``python -m ggo.runs clean``: end the runs that a hard kill left RUNNING forever.

A process killed with SIGKILL, by the OOM killer or a power cut cannot end its MLflow run, so the
UI shows it running for ever. Every ggo run records where it runs, and a heartbeat that a thread
renews every minute for as long as its process runs it (:mod:`ggo.tracking.liveness`). A RUNNING
run is

- alive, and never stale, when its process is alive on this host (the same kernel boot and pid
  namespace, the same pid, started at the same time), however old its heartbeat;
- stale when its process is gone from this host (or the pid now belongs to another process);
- otherwise (another host, another container) stale when its last sign of life (heartbeat, else
  its start) is older than ``--stale-after`` minutes.

``clean`` marks each stale run KILLED with the reason in ``ggo.error`` and prints what it changed;
``--dry-run`` only lists them. Promotion, sweep summaries and the ablation table read FINISHED
runs only, so a cleaned run never competes.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from typing import Any, Sequence

from ggo import tracking
from ggo.tracking.liveness import HEARTBEAT_TAG, HOST_TAG, PID_TAG, Host, process_state, this_host

STALE_AFTER_MINUTES = 60.0


def _float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class Stale:
    run_id: str
    name: str
    experiment_id: str
    reason: str


def stale_reason(run: Any, *, stale_after_minutes: float, host: Host, now: float) -> str | None:
    """Why ``run`` (RUNNING) is stale, or None if it is, or may still be, alive."""
    tags = run.data.tags
    state = process_state(tags, host)
    if state == "alive":
        return None
    if state == "gone":
        return f"process gone (host {tags.get(HOST_TAG)}, pid {tags.get(PID_TAG)})"
    last = _float(tags.get(HEARTBEAT_TAG)) or (run.info.start_time or 0) / 1000
    idle = (now - last) / 60
    if idle > stale_after_minutes:
        return f"no heartbeat for {idle:.0f} min (over --stale-after {stale_after_minutes:g})"
    return None


def find_stale(
    uri: str, *, stale_after_minutes: float = STALE_AFTER_MINUTES, experiments: Sequence[str] = (), host: Host | None = None
) -> list[Stale]:
    """Every RUNNING run of ``experiments`` (default: all) that is stale, seen from ``host`` (default this one)."""
    ids = tracking.experiment_ids(uri, experiments)
    host, now = host or this_host(), time.time()
    found = []
    for run in tracking.search_runs(uri, ids, "attributes.status = 'RUNNING'"):
        reason = stale_reason(run, stale_after_minutes=stale_after_minutes, host=host, now=now)
        if reason:
            found.append(Stale(run.info.run_id, run.info.run_name or "", run.info.experiment_id, reason))
    return found


def clean(uri: str, stale: Sequence[Stale]) -> None:
    """Mark each stale run KILLED with its reason (one that ended meanwhile is left as it ended)."""
    for run in stale:
        if tracking.get_run(uri, run.run_id).info.status != "RUNNING":
            continue
        tracking.set_run_tags(uri, run.run_id, {tracking.ERROR_TAG: f"stale run marked KILLED by ggo.tracking.clean clean: {run.reason}"})
        tracking.set_status(uri, run.run_id, "KILLED")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ggo.runs",
        description="Housekeeping for the MLflow store: `clean` ends runs left RUNNING by a hard kill.",
        epilog="examples:\n  python -m ggo.runs clean --dry-run\n  python -m ggo.runs clean --stale-after 30",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("clean", help="mark stale RUNNING runs KILLED (process gone on this host, or no heartbeat)")
    c.add_argument(
        "--stale-after", type=float, default=STALE_AFTER_MINUTES, metavar="MIN",
        help="a run of another host with no heartbeat for this many minutes is stale; a run whose process is "
        "alive on this host never is (default: %(default)s)",
    )
    c.add_argument("--dry-run", action="store_true", help="only list the stale runs")
    c.add_argument("--experiment", action="append", default=[], help="only this experiment (repeatable; default: all)")
    c.add_argument("--tracking-uri", default=None, help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or the project store)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point."""
    args = build_parser().parse_args(argv)
    uri = tracking.resolve_uri(args.tracking_uri)
    if args.stale_after <= 0:
        print(f"[ggo] runs: --stale-after {args.stale_after:g}: give a positive number of minutes", file=sys.stderr)
        return 2
    try:
        tracking.check_store_exists(uri)
        stale = find_stale(uri, stale_after_minutes=args.stale_after, experiments=args.experiment)
    except (FileNotFoundError, LookupError, tracking.TrackingServerUnavailable) as exc:
        print(f"[ggo] runs: {exc}", file=sys.stderr)
        return 2
    verb = "would mark" if args.dry_run else "marked"
    for run in stale:
        print(f"[ggo] {verb} KILLED: {run.run_id} ({run.name}): {run.reason}")
    if not args.dry_run:
        clean(uri, stale)
    print(f"[ggo] {len(stale)} stale run(s){' (dry run: nothing changed)' if args.dry_run else ''}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Promote the best finished run to the model registry: ``python -m ggo.promote``.

The best run is chosen among the FINISHED runs of an experiment (or of one sweep) that logged a
``model``: a sweep's child runs, single runs, and cross-validation parent runs that carry a
fold-ensemble model all count; FAILED and KILLED runs, and runs without a model, never do. The
folds of a cross-validation ensemble compete only as that ensemble (its ``val/*`` are the fold
means; one fold's score is not comparable with them). Its
model becomes a new version of a registered model (``ggo-segmenter``) and the alias
``champion`` moves to it, so ``python -m ggo.predict`` and
``mlflow models serve -m models:/ggo-segmenter@champion`` pick it up.

A champion that scores better than the best candidate is kept (exit status 1) unless
``--force`` is given. The new version is tagged with the run's ``val/*`` and ``test/*`` metrics,
its run id, run name and git commit.

Examples::

    python -m ggo.promote                                  # best val/dice in experiment "ggo"
    python -m ggo.promote --sweep <parent run id>          # best run of one sweep
    python -m ggo.promote --metric test/dice               # another criterion
    python -m ggo.promote --metric val/loss --mode min     # lower is better
    python -m ggo.promote --force                          # replace a better champion anyway
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

from ggo import tracking
from ggo.evaluation import compare
from ggo.sweeps.candidates import Candidate, PromotionError, better, describe_skipped, find_candidates, finite

METRIC_PREFIXES = ("val/", "test/")


@dataclass
class PromotionResult:
    """What :func:`promote` did.

    ``action`` is ``"promoted"`` (the alias moved to ``version``), ``"unchanged"`` (the best run is
    already the champion, or ties with it) or ``"refused"`` (the champion scores better; nothing
    changed: pass ``force=True`` to replace it).
    """

    action: str
    name: str
    metric: str
    mode: str
    run_id: str
    run_name: str
    value: float
    version: str | None = None
    previous_version: str | None = None
    previous_run_id: str | None = None
    previous_value: float | None = None
    candidates: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    forced: bool = False
    reason: str = ""
    reused: bool = False
    versus_previous: str = ""  # the paired difference to the champion it replaces (ggo.evaluation.compare)
    paired: Any = None

    @property
    def promoted(self) -> bool:
        return self.action == "promoted"

    @property
    def model_uri(self) -> str:
        return f"models:/{self.name}@{tracking.CHAMPION}"


def _champion_value(uri: str, version: Any, metric: str) -> float | None:
    """The champion's score: its run's metric, else the tag promote wrote on the version."""
    if version.run_id:
        try:
            value = tracking.get_run(uri, version.run_id).data.metrics.get(metric)
            if finite(value):
                return float(value)
        except LookupError:
            pass
    value = (version.tags or {}).get(metric)
    return float(value) if finite(value) else None


def version_tags(best: Candidate, *, metric: str, mode: str, forced: bool, previous: str | None) -> dict[str, str]:
    """What a promoted version records: every val/* and test/* metric, where it came from, and why."""
    tags = {k: repr(float(v)) for k, v in sorted(best.metrics.items()) if k.startswith(METRIC_PREFIXES)}
    tags.update(
        {
            "ggo.run_id": best.run_id,
            "ggo.run_name": best.run_name,
            "ggo.git_commit": best.tags.get("ggo.git_commit", "unknown"),
            "ggo.git_dirty": best.tags.get("ggo.git_dirty", "unknown"),
            "ggo.promoted_by": f"{metric} ({mode})",
            "ggo.promoted_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "ggo.forced": str(forced).lower(),
        }
    )
    if previous:
        tags["ggo.previous_champion"] = previous
    for key in ("gen", "disc", "loss", "resolution", "fold", tracking.SWEEP_TAG):
        if key in best.tags:
            tags[f"ggo.{key}" if not key.startswith("ggo.") else key] = best.tags[key]
    return tags


def promote(
    uri: str | None,
    *,
    metric: str = "val/dice",
    mode: str = "max",
    experiment: str = "ggo",
    parent_run_id: str | None = None,
    name: str = "ggo-segmenter",
    force: bool = False,
) -> PromotionResult:
    """Register the best eligible run's model as ``name`` and point alias ``champion`` at it.

    Args:
        uri: MLflow tracking URI (None: ``MLFLOW_TRACKING_URI`` or the project's store).
        metric: the run metric that ranks runs (``val/dice``; ``test/*`` is for reporting, not selection).
        mode: ``max`` (higher is better) or ``min``.
        experiment: the experiment searched when ``parent_run_id`` is not given.
        parent_run_id: only this sweep's runs (its children, and the parent if it logged a model).
            A sweep id (tag ``ggo.sweep_id``) works too.
        name: the registered model.
        force: replace a champion even when it scores better.

    Raises:
        PromotionError: when the experiment or sweep is missing or no run qualifies.
        ValueError: for a bad ``mode``.
    """
    if mode not in ("max", "min"):
        raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
    uri = tracking.resolve_uri(uri)
    try:
        tracking.check_store_exists(uri)
    except FileNotFoundError as exc:
        raise PromotionError(str(exc)) from None
    candidates, skipped, scope = find_candidates(
        uri, metric=metric, mode=mode, experiment=experiment, parent_run_id=parent_run_id
    )
    if not candidates:
        raise PromotionError(
            f"no run in {scope} at {uri} qualifies for promotion: it needs status FINISHED, a logged "
            f"'{tracking.MODEL_NAME}' model and a {metric} metric (runs left out: {describe_skipped(skipped)}). "
            f"Train one (python -m ggo.train), or choose another --metric, --experiment or --sweep"
        )
    best = candidates[0]
    result = PromotionResult(
        action="promoted", name=name, metric=metric, mode=mode, run_id=best.run_id, run_name=best.run_name,
        value=best.value, candidates=len(candidates), skipped=skipped, forced=force,
    )

    if _keeps_champion(uri, result, force=force):
        return result

    # Re-use a version already registered from this run (e.g. a champion that was replaced before).
    sources = {f"models:/{best.model_id}", f"runs:/{best.run_id}/{tracking.MODEL_NAME}"}
    existing = [v for v in tracking.model_versions_of_run(uri, name, best.run_id) if v.source in sources]
    # By model id: exactly the READY model checked above (``runs:/<id>/model`` would let MLflow pick
    # by name, possibly a FAILED upload of the same name).
    version = existing[0] if existing else tracking.register_model(uri, f"models:/{best.model_id}", name)
    result.version, result.reused = str(version.version), bool(existing)
    tracking.set_model_version_tags(
        uri, name, result.version,
        {**version_tags(best, metric=metric, mode=mode, forced=force, previous=result.previous_version), **_paired_tags(result)},
    )
    tracking.set_alias(uri, name, result.version)
    return result


def _keeps_champion(uri: str, result: PromotionResult, *, force: bool) -> bool:
    """Compare ``result``'s run with the current champion (recorded on ``result``, with the paired
    difference of their per-image scores); True when the champion stays (unchanged or refused)."""
    current = tracking.model_version_by_alias(uri, result.name)
    if current is None:
        return False
    result.previous_version, result.previous_run_id = str(current.version), current.run_id
    result.previous_value = _champion_value(uri, current, result.metric)
    if current.run_id == result.run_id:
        result.action, result.version = "unchanged", str(current.version)
        result.reason = "the best run is already the champion"
        return True
    result.paired, result.versus_previous = compare.versus(uri, current.run_id, result.run_id)
    if force or result.previous_value is None:
        return False
    if better(result.previous_value, result.value, result.mode):
        result.action = "refused"
        return True
    if result.previous_value == result.value:
        result.action, result.version = "unchanged", str(current.version)
        result.reason = "the best run ties with the champion, which is kept (--force replaces it)"
        return True
    return False


def _paired_tags(result: PromotionResult) -> dict[str, str]:
    """The paired difference to the replaced champion, as version tags (when there was one)."""
    if not result.versus_previous:
        return {}
    tags = {"ggo.vs_previous_champion": result.versus_previous}
    if result.paired is not None:
        tags.update({f"ggo.vs_previous.{k}": str(v) for k, v in result.paired.as_dict().items() if k not in ("a", "b")})
    return tags


def _short(text: str, limit: int = 90) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def report(result: PromotionResult) -> str:
    """A few lines for people: what was chosen, what changed, how to use or override it."""
    m = result.metric
    prev = ""
    if result.previous_version:
        score = "no " + m if result.previous_value is None else f"{m} {result.previous_value:.5g}"
        prev = f"version {result.previous_version} (run {result.previous_run_id}, {score})"
    lines = [
        f"best of {result.candidates} eligible run(s) by {m} ({result.mode}): {_short(result.run_name)!r} "
        f"(run {result.run_id}) {m} {result.value:.5g}"
        + (f"; left out: {describe_skipped(result.skipped)}" if result.skipped else "")
    ]
    if result.versus_previous:
        lines.append(f"against the champion {prev}: {result.versus_previous}")
    if result.action == "promoted":
        lines.append(
            ("re-used" if result.reused else "registered") + f" {result.name} version {result.version}; alias {tracking.CHAMPION}: "
            + (f"{prev} -> version {result.version}" if prev else f"(none) -> version {result.version}")
            + (" (forced)" if result.forced and prev else "")
        )
        lines.append(f"use it: python -m ggo.predict <images or folder>   (--model {result.model_uri})")
    elif result.action == "unchanged":
        lines.append(f"nothing to do: {result.reason}: {result.name} {prev}")
    else:
        lines.append(
            f"refused: the current champion {prev} scores better than this run "
            f"({m} {result.value:.5g}); nothing changed. Run with --force to replace it anyway"
        )
    return "\n".join("[ggo] " + line for line in lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ggo.promote",
        description=(
            "Register the model of the best FINISHED run that logged a 'model' (sweep children,\n"
            "single runs, cross-validation parents with a fold ensemble) and point the registry\n"
            "alias 'champion' at it. A champion that scores better is kept unless --force.\n"
            "Exit status: 0 promoted (or already champion), 1 refused or nothing to promote."
        ),
        epilog=(
            "examples:\n"
            "  python -m ggo.promote\n"
            "  python -m ggo.promote --sweep <parent run id> --metric val/dice\n"
            "  python -m ggo.promote --metric val/loss --mode min --force\n"
            "then: python -m ggo.predict <images>  or  "
            "mlflow models serve -m models:/ggo-segmenter@champion --env-manager local"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--metric", default="val/dice", help="run metric that ranks the runs (default: %(default)s)")
    parser.add_argument(
        "--mode", choices=("max", "min"), default="max", help="max: higher is better; min: lower is better (default: %(default)s)"
    )
    parser.add_argument("--experiment", default="ggo", help="MLflow experiment to search (default: %(default)s)")
    parser.add_argument(
        "--sweep", "--parent", dest="parent", metavar="RUN_ID", default=None,
        help="only this sweep's runs (and its parent, if it logged a model): the parent run id printed by "
        "'python -m ggo.train -m', or the sweep's ggo.sweep_id tag (looked up in --experiment)",
    )
    parser.add_argument("--name", default="ggo-segmenter", help="registered model name (default: %(default)s)")
    parser.add_argument(
        "--tracking-uri", default=None,
        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or the project store; here %s)"
        % tracking.resolve_uri(None).replace("%", "%%"),
    )
    parser.add_argument("--force", action="store_true", help="replace the champion even if it scores better")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; returns the exit status."""
    args = build_parser().parse_args(argv)
    uri = tracking.resolve_uri(args.tracking_uri)
    try:
        result = promote(
            uri, metric=args.metric, mode=args.mode, experiment=args.experiment,
            parent_run_id=args.parent, name=args.name, force=args.force,
        )
    except PromotionError as exc:
        print(f"[ggo] promote: {exc}", file=sys.stderr)
        return 1
    print(report(result), flush=True)
    return 1 if result.action == "refused" else 0


if __name__ == "__main__":
    sys.exit(main())

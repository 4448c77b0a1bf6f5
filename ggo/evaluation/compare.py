"""``python -m ggo.compare A B [C ...]``: is B really better than A, or is it noise?

Pairs the films two runs both scored (their ``scores/per_image.csv``), and for each run against
the first prints the mean dice of each, the paired mean difference, a 95% bootstrap interval that
resamples patients, and a Wilcoxon signed-rank p-value on per-patient mean differences
(:mod:`ggo.evaluation.stats`). A run is a run id, a sweep or cross-validation parent id, or ``champion``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import dataclass
from typing import Sequence

import pandas as pd

from ggo import tracking
from ggo.data.atomic import write_text
from ggo.evaluation.scores import ARTIFACT, read_table
from ggo.evaluation.stats import N_RESAMPLES, SEED, Paired, paired_difference

SPLITS = ("oof", "test", "val")


class CompareError(RuntimeError):
    """A comparison that cannot be made; the message says why and what to do."""


@dataclass(frozen=True)
class Scored:
    """A run resolved to the per-image scores it logged."""

    ref: str  # what the user typed
    run_id: str
    label: str  # run name (and how it was resolved)
    table: pd.DataFrame


def _artifact_table(uri: str, run_id: str) -> pd.DataFrame | None:
    try:
        path = tracking.download_artifact(uri, run_id, ARTIFACT, tempfile.mkdtemp(prefix="ggo-compare-"))
    except Exception:  # MLflow raises its own or OSError for a missing artifact
        return None
    return read_table(str(path))


def _best_child_with_scores(uri: str, run_id: str, objective: str) -> tuple[object, pd.DataFrame] | None:
    children = [c for c in tracking.child_runs(uri, run_id) if c.info.status == "FINISHED"]
    children.sort(key=lambda c: c.data.metrics.get(objective, float("-inf")), reverse=True)
    for child in children:
        table = _artifact_table(uri, child.info.run_id)
        if table is not None:
            return child, table
    return None


def resolve(uri: str, ref: str, *, model_name: str, objective: str = "val/dice") -> Scored:
    """Turn ``ref`` (run id, sweep/CV parent id, or ``champion``) into its per-image scores."""
    how = ""
    run_id = ref
    if ref == tracking.CHAMPION:
        version = tracking.model_version_by_alias(uri, model_name, tracking.CHAMPION)
        if version is None:
            raise CompareError(f"no '{model_name}@champion' in the registry at {uri}: promote a run first (python -m ggo.promote)")
        run_id, how = version.run_id, f"champion = {model_name} v{version.version}"
    try:
        run = tracking.get_run(uri, run_id)
    except LookupError as exc:
        raise CompareError(f"{exc}. Pass a run id from the MLflow UI or the sweep's printed parent id.") from None
    name = run.info.run_name or run_id[:8]
    table = _artifact_table(uri, run_id)
    if table is None:  # a grid sweep's parent: stand for its best run
        found = _best_child_with_scores(uri, run_id, objective)
        if found is None:
            raise CompareError(
                f"run {run_id} ({name}) has no per-image scores ({ARTIFACT}) and no finished child run that has: "
                "runs trained before ggo logged per-image scores cannot be compared; train them again"
            )
        child, table = found
        how = f"best run of sweep {name} by {objective}"
        run_id, name = child.info.run_id, child.info.run_name or child.info.run_id[:8]
    label = f"{name} ({how})" if how else name
    return Scored(ref=ref, run_id=run_id, label=label, table=table)


def choose_split(runs: Sequence[Scored], split: str | None) -> str:
    """The requested split, else out-of-fold where every run has it, else test."""
    if split is not None:
        for run in runs:
            if not (run.table["split"] == split).any():
                have = sorted(set(run.table["split"]))
                raise CompareError(f"run {run.label} has no '{split}' scores (it has: {', '.join(have)}); choose --split from those")
        return split
    return "oof" if all((r.table["split"] == "oof").any() for r in runs) else "test"


def compare_pair(a: Scored, b: Scored, split: str, *, n_resamples: int = N_RESAMPLES, seed: int = SEED) -> Paired:
    """``b`` against ``a`` on the films both scored in ``split``."""
    left = a.table[a.table["split"] == split][["image", "patient", "dice"]]
    right = b.table[b.table["split"] == split][["image", "dice"]]
    both = left.merge(right, on="image", suffixes=("_a", "_b"))
    if both.empty:
        raise CompareError(
            f"runs {a.label} and {b.label} share no '{split}' films: compare runs scored on the same data "
            "(the same dataset, resolution-independent names), or use --split test"
        )
    return paired_difference(
        both["dice_a"], both["dice_b"], both["patient"], a=a.run_id, b=b.run_id, split=split,
        n_resamples=n_resamples, seed=seed,
    )  # fmt: skip


def versus(uri: str, baseline_run_id: str, run_id: str) -> tuple[Paired | None, str]:
    """``run_id`` against ``baseline_run_id`` (default split), and one line saying what it means;
    ``(None, why not)`` when they cannot be paired (e.g. runs logged before per-image scores)."""
    try:
        runs = [resolve(uri, baseline_run_id, model_name=""), resolve(uri, run_id, model_name="")]
        r = compare_pair(runs[0], runs[1], choose_split(runs, None))
    except CompareError as exc:
        return None, f"no paired comparison: {exc}"
    verdict = "a real difference" if r.distinguishable else "inside the noise"
    return r, (
        f"{r.delta_dice:+.3f} dice, 95% CI [{r.ci_low:+.3f}, {r.ci_high:+.3f}], Wilcoxon p = {r.p_value:.3g} "
        f"on {r.n_images} {r.split} films of {r.n_patients} patients: {verdict}"
    )


def report(first: Scored, others: Sequence[Scored], results: Sequence[Paired]) -> str:
    lines = [f"A = {first.label} [{first.run_id}]"]
    for other, r in zip(others, results):
        verdict = "a real difference" if r.distinguishable else "inside the noise"
        lines += [
            f"B = {other.label} [{other.run_id}]",
            f"  {r.split}: {r.n_images} films of {r.n_patients} patients scored by both",
            f"  dice A {r.dice_a:.3f}, B {r.dice_b:.3f}; B - A = {r.delta_dice:+.3f}, "
            f"95% CI [{r.ci_low:+.3f}, {r.ci_high:+.3f}] (patients resampled), Wilcoxon p = {r.p_value:.3g}: {verdict}",
        ]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ggo.compare",
        description=(
            "Compare runs on the films they both scored: mean dice, paired difference with a 95%\n"
            "bootstrap interval over patients, and a Wilcoxon signed-rank p-value (per patient).\n"
            "Each run is compared against the first. A difference whose interval contains 0 is noise."
        ),
        epilog=(
            "examples:\n"
            "  python -m ggo.compare champion <run id>\n"
            "  python -m ggo.compare <cv parent A> <cv parent B> --split oof --json cmp.json"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("runs", nargs="+", metavar="RUN", help="run id, sweep/CV parent id, or 'champion' (2 or more)")
    parser.add_argument(
        "--split", choices=SPLITS, default=None,
        help="which films: oof (out-of-fold, CV parents), test, val (default: oof where all runs have it, else test)",
    )
    parser.add_argument("--resamples", type=int, default=N_RESAMPLES, help="bootstrap resamples (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=SEED, help="bootstrap seed (default: %(default)s)")
    parser.add_argument("--json", metavar="FILE", default=None, help="also write the comparisons as a JSON list")
    parser.add_argument("--name", default="ggo-segmenter", help="registered model that 'champion' refers to (default: %(default)s)")
    parser.add_argument("--tracking-uri", default=None, help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or the project store)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; returns the exit status (2 on a comparison that cannot be made)."""
    args = build_parser().parse_args(argv)
    if len(args.runs) < 2:
        print("[ggo] compare: give at least two runs (the first is the baseline)", file=sys.stderr)
        return 2
    uri = tracking.resolve_uri(args.tracking_uri)
    try:
        tracking.check_store_exists(uri)
        runs = [resolve(uri, ref, model_name=args.name) for ref in args.runs]
        split = choose_split(runs, args.split)
        results = [compare_pair(runs[0], other, split, n_resamples=args.resamples, seed=args.seed) for other in runs[1:]]
    except (CompareError, FileNotFoundError, ValueError) as exc:
        print(f"[ggo] compare: {exc}", file=sys.stderr)
        return 2
    print(report(runs[0], runs[1:], results), flush=True)
    if args.json:
        write_text(args.json, json.dumps([r.as_dict() for r in results], indent=2))  # whole, or not at all
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The ablation table from the MLflow store: one row per cross-validation parent (``tags.fold =
'ensemble'``: a ``+sweeps=cv`` row, a preset's, or a ``python -m ggo join`` run), best val/dice first,
as a markdown table.

The column "vs pix2pix recipe" is each row's paired difference to the pix2pix recipe row (the
newest one in the store), from ``ggo.evaluation.compare``: mean dice difference on the films both scored
(out of fold where both have per-image scores, else test) with its 95% bootstrap interval over
patients; "noise" when the interval contains 0. Rows logged before per-image scores show "-".
"GGO-free area (oof)" is the parent's ``oof/ggo_free_area``: the mean predicted GGO fraction on
the GGO-free films, out of fold (lower is better); "-" for parents logged before it was scored
(``python -m ggo ggo-free`` computes it for them).

``--resummarize`` first re-scores, with the current ggo, the fold ensembles of parents logged
before the ensemble's threshold was chosen on the validation folds (no ``ggo.threshold`` tag):
their ``test/*`` metrics, postprocess choice and ensemble model are logged again, so every row
follows the same protocol. The children and their numbers are not touched. Without it the
command only reads.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from ggo import tracking
from ggo.sweeps.folds import JOINED_TAG

PROG = "python -m ggo table"

EXAMPLES = f"""examples:
  scripts/ablation.sh                                  # train the rows (experiment "ablation")
  {PROG}                                   # experiment "ablation"
  {PROG} --experiment ablation --experiment ggo   # with the champion (experiment "ggo")
  {PROG} --resummarize --tracking-uri sqlite:///mlruns/mlflow.db
"""


def children_of(uri: str, run: Any) -> list[Any]:
    """The child runs of ``run``, newest first; of a ``python -m ggo join`` run, its parents' children."""
    joined = run.data.tags.get(JOINED_TAG)
    if joined:
        return [kid for pid in joined.split(",") for kid in children_of(uri, tracking.get_run(uri, pid))]
    return tracking.search_runs(uri, [run.info.experiment_id], f"tags.mlflow.parentRunId = '{run.info.run_id}'")


def wall_minutes(uri: str, run: Any) -> float:
    """From the first child's start to the last child's end; a joined run's: the sum of its parents'."""
    joined = run.data.tags.get(JOINED_TAG)
    if joined:
        return sum(wall_minutes(uri, tracking.get_run(uri, pid)) for pid in joined.split(","))
    kids = children_of(uri, run)
    return (max(k.info.end_time or 0 for k in kids) - min(k.info.start_time for k in kids)) / 60000 if kids else float("nan")


def command_of(run: Any) -> str:
    """The command that made the row."""
    joined = run.data.tags.get(JOINED_TAG)
    if joined:
        return f"python -m ggo.join {joined.replace(',', ' ')}"
    return f"python -m ggo.train -m {run.data.tags.get('ggo.overrides', '')}"


def resummarize(uri: str, run: Any) -> None:
    """Score the fold ensemble of ``run`` again with the current protocol (logged to the run)."""
    from ggo.sweeps.cv import summarize_cv
    from ggo.sweeps.folds import cross_validation_groups

    groups = cross_validation_groups(children_of(uri, run))
    if len(groups) != 1:
        print(f"skip {run.info.run_id}: {len(groups)} configurations under it")
        return
    summarize_cv(uri, run.info.run_id, groups)
    # Keep the run's original status and end time (its wall time), whatever re-logging changed.
    tracking.set_status(uri, run.info.run_id, run.info.status, end_time=run.info.end_time)


BASELINE = "pix2pix recipe"
SKIPPED = ("+sweeps", "preprocess=res128", "train.epochs=", "train.patience=", "tracking.")


def variant_of(overrides: str) -> str:
    """The row's name: the preset and the overrides that change the recipe."""
    words = overrides.split()
    rest = " ".join(o for o in words if not o.startswith(SKIPPED))
    preset = next((o.split("=", 1)[1] for o in words if o.startswith("+sweeps=") and o != "+sweeps=cv"), None)
    return f"{preset} preset {rest}".strip() if preset else (rest or BASELINE)


def versus_baseline(uri: str, baseline: Any, run: Any) -> str:
    """``+0.031 [+0.010, +0.052]`` (and ``noise`` when the interval holds 0), or ``-``."""
    from ggo.evaluation.compare import versus

    if baseline is None:
        return "-"
    if run.info.run_id == baseline.info.run_id:
        return "baseline"
    result, _ = versus(uri, baseline.info.run_id, run.info.run_id)
    if result is None:
        return "-"
    verdict = "" if result.distinguishable else " noise"
    return f"{result.delta_dice:+.3f} [{result.ci_low:+.3f}, {result.ci_high:+.3f}] {result.split}{verdict}"


HEADER = (
    "| variant | gen | disc | loss | px | val/dice (5-fold mean +- std) | vs pix2pix recipe: dice difference, 95% CI "
    "| test dice (ensemble) | test precision | test recall | GGO-free area (oof) | threshold / min px (chosen on val) "
    "| wall time | command |"
)


def table_runs(uri: str, experiments: Sequence[str], *, resummarize_old: bool = False) -> list[Any]:
    """The finished CV parents of ``experiments``, best val/dice first; with ``resummarize_old``,
    parents without a val-chosen threshold are re-scored first. A LookupError names an experiment
    the store lacks."""
    ids = []
    for name in experiments:
        exp = tracking.find_experiment(uri, name)
        if exp is None:
            raise LookupError(f"no experiment {name!r} at {uri}: train its rows first (scripts/ablation.sh for 'ablation')")
        ids.append(exp.experiment_id)
    query = "tags.fold = 'ensemble'"
    if resummarize_old:
        for run in tracking.search_runs(uri, ids, query):
            if "ggo.threshold" not in run.data.tags:
                resummarize(uri, run)
    runs = [r for r in tracking.search_runs(uri, ids, query) if r.info.status == "FINISHED"]
    return sorted(runs, key=lambda r: -r.data.metrics.get("val/dice", 0))


def row(uri: str, baseline: Any, run: Any) -> str:
    """One markdown row of the table."""
    m, t = run.data.metrics, run.data.tags
    free = f"{m['oof/ggo_free_area']:.4f}" if "oof/ggo_free_area" in m else "-"
    loss = t.get("loss", "") if t.get("disc") != "none" else t.get("loss", "").replace("+adv_bce", "")
    return (
        f"| {variant_of(t.get('ggo.overrides', ''))} | {t.get('gen', '')} | {t.get('disc', '')} | {loss} | {t.get('resolution', '')} "
        f"| {m['val/dice']:.3f} +- {m.get('val/dice_std', float('nan')):.3f} | {versus_baseline(uri, baseline, run)} | {m['test/dice']:.3f} "
        f"| {m['test/precision']:.3f} | {m['test/recall']:.3f} | {free} | {t.get('ggo.threshold', '0.5')} / {t.get('ggo.min_component_px', '')} "
        f"| {wall_minutes(uri, run):.0f} min | `{command_of(run)}` |"
    )


def table(uri: str, runs: list[Any]) -> list[str]:
    """The markdown table of ``runs`` (:func:`table_runs`): header, separator, one row each."""
    newest_first = sorted(runs, key=lambda r: -r.info.start_time)
    baseline = next((r for r in newest_first if variant_of(r.data.tags.get("ggo.overrides", "")) == BASELINE), None)
    return [HEADER, "|---" * HEADER.count(" | ") + "|---|", *(row(uri, baseline, r) for r in runs)]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__, epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiment", action="append", metavar="NAME", help="experiment(s) to read; repeat for several (default: ablation)")
    parser.add_argument("--tracking-uri", default=None, help="MLflow store (default: $MLFLOW_TRACKING_URI or the project store)")
    parser.add_argument("--resummarize", action="store_true", help="re-score ensembles logged before the val-chosen threshold (writes to the store)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; 2 when the store or an experiment is missing."""
    args = build_parser().parse_args(argv)
    try:
        uri = tracking.existing_store(args.tracking_uri)
        lines = table(uri, table_runs(uri, args.experiment or ["ablation"], resummarize_old=args.resummarize))
    except (LookupError, FileNotFoundError) as exc:
        print(f"[ggo] table: {exc}", file=sys.stderr)
        return 2
    print("\n".join(lines), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

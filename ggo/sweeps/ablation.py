"""Print the README's ablation table from the MLflow store: one row per cross-validation parent.

    python scripts/ablation_table.py [--experiment ablation [--experiment ggo ...]] [--tracking-uri URI] [--resummarize]

The column "vs pix2pix recipe" is each row's paired difference to the pix2pix recipe row (the
newest one in the store), from ``ggo.evaluation.compare``: mean dice difference on the films both scored
(out of fold where both have per-image scores, else test) with its 95% bootstrap interval over
patients; "noise" when the interval contains 0. Rows logged before per-image scores show "-".
"GGO-free area (oof)" is the parent's ``oof/ggo_free_area``: the mean predicted GGO fraction on
the GGO-free films, out of fold (lower is better); "-" for parents logged before it was scored
(``scripts/ggo_free_area.py`` computes it for them).

``--resummarize`` first re-scores, with the current ggo, the fold ensembles of parents logged
before the ensemble's threshold was chosen on the validation folds (no ``ggo.threshold`` tag):
their ``test/*`` metrics, postprocess choice and ensemble model are logged again, so every row
follows the same protocol. The children and their numbers are not touched.
"""

from __future__ import annotations

import argparse

from ggo import tracking
from ggo.sweeps.cv import JOINED_TAG


def children_of(uri: str, run) -> list:
    """The child runs of ``run``, newest first; of a ``python -m ggo.join`` run, its parents' children."""
    joined = run.data.tags.get(JOINED_TAG)
    if joined:
        return [kid for pid in joined.split(",") for kid in children_of(uri, tracking.get_run(uri, pid))]
    return tracking.search_runs(uri, [run.info.experiment_id], f"tags.mlflow.parentRunId = '{run.info.run_id}'")


def wall_minutes(uri: str, run) -> float:
    """From the first child's start to the last child's end; a joined run's: the sum of its parents'."""
    joined = run.data.tags.get(JOINED_TAG)
    if joined:
        return sum(wall_minutes(uri, tracking.get_run(uri, pid)) for pid in joined.split(","))
    kids = children_of(uri, run)
    return (max(k.info.end_time or 0 for k in kids) - min(k.info.start_time for k in kids)) / 60000 if kids else float("nan")


def command_of(run) -> str:
    joined = run.data.tags.get(JOINED_TAG)
    if joined:
        return f"python -m ggo.join {joined.replace(',', ' ')}"
    return f"python -m ggo.train -m {run.data.tags.get('ggo.overrides', '')}"


def resummarize(uri: str, run) -> None:
    from ggo.sweeps.cv import cross_validation_groups, summarize_cv

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


def versus_baseline(uri: str, baseline, run) -> str:
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiment", action="append", help="experiment(s) to read (default: ablation)")
    parser.add_argument("--tracking-uri", default=None)
    parser.add_argument("--resummarize", action="store_true", help="re-score ensembles logged before the val-chosen threshold")
    args = parser.parse_args()
    uri = tracking.resolve_uri(args.tracking_uri)
    ids = []
    for name in args.experiment or ["ablation"]:
        exp = tracking.find_experiment(uri, name)
        if exp is None:
            raise SystemExit(f"no experiment {name!r} at {uri}: run scripts/ablation.sh first")
        ids.append(exp.experiment_id)
    query = "tags.fold = 'ensemble'"
    if args.resummarize:
        for run in tracking.search_runs(uri, ids, query):
            if "ggo.threshold" not in run.data.tags:
                resummarize(uri, run)
    runs = [r for r in tracking.search_runs(uri, ids, query) if r.info.status == "FINISHED"]
    baseline = next((r for r in runs if variant_of(r.data.tags.get("ggo.overrides", "")) == BASELINE), None)  # newest first
    print("| variant | gen | disc | loss | px | val/dice (5-fold mean +- std) | vs pix2pix recipe: dice difference, 95% CI | test dice (ensemble) | test precision | test recall | GGO-free area (oof) | threshold / min px (chosen on val) | wall time | command |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for run in sorted(runs, key=lambda r: -r.data.metrics.get("val/dice", 0)):
        m, t = run.data.metrics, run.data.tags
        overrides = t.get("ggo.overrides", "")
        variant = variant_of(overrides)
        minutes = wall_minutes(uri, run)
        free = f"{m['oof/ggo_free_area']:.4f}" if "oof/ggo_free_area" in m else "-"
        loss = t.get("loss", "") if t.get("disc") != "none" else t.get("loss", "").replace("+adv_bce", "")
        print(
            f"| {variant} | {t.get('gen', '')} | {t.get('disc', '')} | {loss} | {t.get('resolution', '')} "
            f"| {m['val/dice']:.3f} +- {m.get('val/dice_std', float('nan')):.3f} | {versus_baseline(uri, baseline, run)} | {m['test/dice']:.3f} "
            f"| {m['test/precision']:.3f} | {m['test/recall']:.3f} | {free} | {t.get('ggo.threshold', '0.5')} / {t.get('ggo.min_component_px', '')} "
            f"| {minutes:.0f} min | `{command_of(run)}` |"
        )


if __name__ == "__main__":
    main()

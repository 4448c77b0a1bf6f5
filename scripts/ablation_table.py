"""Print the README's ablation table from the MLflow store: one row per cross-validation parent.

    python scripts/ablation_table.py [--experiment ablation] [--tracking-uri URI]
"""

from __future__ import annotations

import argparse

import mlflow

from ggo.tracking import resolve_uri


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiment", default="ablation")
    parser.add_argument("--tracking-uri", default=None)
    args = parser.parse_args()
    uri = resolve_uri(args.tracking_uri)
    client = mlflow.MlflowClient(uri)
    exp = client.get_experiment_by_name(args.experiment)
    if exp is None:
        raise SystemExit(f"no experiment {args.experiment!r} at {uri}: run scripts/ablation.sh first")
    runs = client.search_runs([exp.experiment_id], filter_string="tags.fold = 'ensemble'", max_results=500)
    print("| variant | gen | disc | loss | px | val/dice (5-fold mean +- std) | test dice (ensemble) | test precision | test recall | wall time | command |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for run in sorted(runs, key=lambda r: -r.data.metrics.get("val/dice", 0)):
        m, t = run.data.metrics, run.data.tags
        overrides = t.get("ggo.overrides", "")
        variant = " ".join(o for o in overrides.split() if not o.startswith(("+sweeps", "preprocess=res128", "train.", "tracking."))) or "pix2pix recipe"
        minutes = ((run.info.end_time or 0) - run.info.start_time) / 60000
        loss = t.get("loss", "") if t.get("disc") != "none" else t.get("loss", "").replace("+adv_bce", "")
        print(
            f"| {variant} | {t.get('gen', '')} | {t.get('disc', '')} | {loss} | {t.get('resolution', '')} "
            f"| {m['val/dice']:.3f} +- {m.get('val/dice_std', float('nan')):.3f} | {m['test/dice']:.3f} "
            f"| {m['test/precision']:.3f} | {m['test/recall']:.3f} | {minutes:.0f} min | `python -m ggo.train -m {overrides}` |"
        )


if __name__ == "__main__":
    main()

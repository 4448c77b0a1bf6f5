"""Score the GGO-free films for cross-validation parents trained before they were scored.

    python scripts/ggo_free_area.py PARENT_RUN_ID [PARENT_RUN_ID ...] [--tracking-uri URI] [--csv DIR]

A parent logged by the current ggo carries ``oof/ggo_free_area`` and ``test/ggo_free_area``
(README "Evaluation protocol"). For an older parent this computes the same figures the same way
(:func:`ggo.sweeps.cv.ggo_free_scores`): each fold's logged model predicts the GGO-free films of its val
patients (out of fold: it never trained on them), the fold ensemble those of the test patients,
with the threshold and minimum component size the parent chose on the validation folds (its
``ggo.threshold`` and ``ggo.min_component_px`` tags; the children's ``eval`` section when absent).
One line per parent. Read only: nothing is logged to the store; ``--csv DIR`` writes each parent's
per-film rows to ``DIR/<run id>_ggo_free.csv``. The data cache is built on first use, as
``python -m ggo.data prepare`` does.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

from ggo import tracking
from ggo.sweeps.cv import fold_generators, ggo_free_scores, parent_configuration
from ggo.evaluation.ggo_free import area_metrics


def parent_rows(uri: str, parent_run_id: str, workdir: str | Path) -> Any:
    """The GGO-free rows (``oof`` and ``test``) of one cross-validation parent."""
    from ggo.data import prepare_from_config
    from ggo.evaluation.evaluate import EvalSettings

    parent = tracking.get_run(uri, parent_run_id)
    runs, config = parent_configuration(uri, parent_run_id, workdir)
    section = dict(config.get("eval") or {})
    tags = parent.data.tags
    if "ggo.threshold" in tags:
        section["threshold"] = float(tags["ggo.threshold"])
    if "ggo.min_component_px" in tags:
        section["min_component_px"] = int(float(tags["ggo.min_component_px"]))
    cache = prepare_from_config(config["data"], config["preprocess"], progress=False)
    return ggo_free_scores(fold_generators(uri, runs, workdir), cache, EvalSettings.from_config(section))


def describe(parent_run_id: str, table: Any) -> str:
    """``<run id>: oof/ggo_free_area 0.0123 (5 films), test/ggo_free_area 0.0045 (2 films)``."""
    if not len(table):
        return f"{parent_run_id}: no GGO-free film in its data"
    metrics = area_metrics(table)
    parts = []
    for split in ("oof", "test"):
        n = int((table["split"] == split).sum())
        if n:
            parts.append(f"{split}/ggo_free_area {metrics[f'{split}/ggo_free_area']:.4f} ({n} films)")
    return f"{parent_run_id}: " + ", ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("parents", nargs="+", metavar="PARENT_RUN_ID")
    parser.add_argument("--tracking-uri", default=None)
    parser.add_argument("--csv", default=None, metavar="DIR", help="write each parent's per-film rows here")
    args = parser.parse_args()
    uri = tracking.resolve_uri(args.tracking_uri)
    for run_id in args.parents:
        with tempfile.TemporaryDirectory(prefix="ggo-free-") as tmp:
            table = parent_rows(uri, run_id, tmp)
        if args.csv:
            Path(args.csv).mkdir(parents=True, exist_ok=True)
            table.to_csv(Path(args.csv) / f"{run_id}_ggo_free.csv", index=False)
        print(describe(run_id, table), flush=True)


if __name__ == "__main__":
    main()

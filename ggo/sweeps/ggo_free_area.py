"""Score the GGO-free films of cross-validation parents trained before ggo scored them.

A parent logged by the current ggo carries ``oof/ggo_free_area`` and ``test/ggo_free_area``: over
the GGO-free films, the mean fraction of the film predicted GGO (lower is better). For an older
parent this computes the same figures the same way (:func:`ggo.sweeps.cv.ggo_free_scores`): each
fold's logged model predicts the GGO-free films of its val patients (out of fold: it never trained
on them), the fold ensemble those of the test patients, with the threshold and minimum component
size the parent chose on the validation folds (its ``ggo.threshold`` and ``ggo.min_component_px``
tags; the children's ``eval`` section when absent). One line per parent.

Read only: nothing is logged to the store; ``--csv DIR`` writes each parent's per-film rows to
``DIR/<run id>_ggo_free.csv``. The data cache is built on first use, as ``python -m ggo data
prepare`` does.

This is not ``python -m ggo rescore``: that one predicts every film again and chooses the
post-processing afresh for other ``eval`` settings; this one predicts only the GGO-free films,
with the post-processing the parent shipped, so its figures are the parent's own.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ggo import tracking
from ggo.config import EvalConfig
from ggo.data.atomic import write_text
from ggo.sweeps.cv import ggo_free_scores
from ggo.sweeps.folds import fold_generators, parent_configuration

if TYPE_CHECKING:
    import pandas as pd

PROG = "python -m ggo ggo-free"

EXAMPLES = f"""examples:
  {PROG} <CV parent> [<CV parent> ...]
  {PROG} <CV parent> --csv scores/ --tracking-uri sqlite:///mlruns/mlflow.db
"""


def shipped_eval(eval_section: EvalConfig, tags: dict[str, str]) -> EvalConfig:
    """The children's ``eval`` section with the post-processing the parent chose on the validation
    folds (its ``ggo.threshold`` / ``ggo.min_component_px`` tags) where it logged one, and its
    film-level call (``ggo.film_a`` / ``ggo.film_b`` / ``ggo.film_cut``) where it fitted one."""
    chosen = {key: float(tags[f"ggo.{key}"]) for key in ("film_a", "film_b", "film_cut") if f"ggo.{key}" in tags}
    if "ggo.threshold" in tags:
        chosen["threshold"] = float(tags["ggo.threshold"])
    if "ggo.min_component_px" in tags:
        chosen["min_component_px"] = int(float(tags["ggo.min_component_px"]))
    return dataclasses.replace(eval_section, **chosen)


def parent_rows(uri: str, parent_run_id: str, workdir: str | Path) -> pd.DataFrame:
    """The GGO-free rows (``oof`` and ``test``) of one cross-validation parent."""
    from ggo.data import prepare_from_config
    from ggo.evaluation.evaluate import EvalSettings

    parent = tracking.get_run(uri, parent_run_id)
    runs, config = parent_configuration(uri, parent_run_id, workdir)
    settings = EvalSettings.from_config(shipped_eval(config.eval, parent.data.tags))
    cache = prepare_from_config(config.data, config.preprocess, progress=False)
    return ggo_free_scores(fold_generators(uri, runs, workdir), cache, settings)


def describe(parent_run_id: str, table: pd.DataFrame) -> str:
    """``<run id>: oof/ggo_free_area 0.0123 (5 films), test/ggo_free_area 0.0045 (2 films)``."""
    from ggo.evaluation.ggo_free import area_metrics

    if not len(table):
        return f"{parent_run_id}: no GGO-free film in its data"
    metrics = area_metrics(table)
    parts = []
    for split in ("oof", "test"):
        n = int((table["split"] == split).sum())
        if n:
            parts.append(f"{split}/ggo_free_area {metrics[f'{split}/ggo_free_area']:.4f} ({n} films)")
    return f"{parent_run_id}: " + ", ".join(parts)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__, epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("parents", nargs="+", metavar="PARENT_RUN_ID", help="CV parent runs (or python -m ggo join runs)")
    parser.add_argument("--tracking-uri", default=None, help="MLflow store (default: $MLFLOW_TRACKING_URI or the project store)")
    parser.add_argument("--csv", default=None, metavar="DIR", help="write each parent's per-film rows here")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; 2 when a run is not a CV parent or the store is missing."""
    args = build_parser().parse_args(argv)
    for run_id in args.parents:
        try:
            uri = tracking.existing_store(args.tracking_uri)
            with tempfile.TemporaryDirectory(prefix="ggo-free-") as tmp:
                table = parent_rows(uri, run_id, tmp)
        except (ValueError, LookupError, FileNotFoundError) as exc:
            print(f"[ggo] ggo-free: {exc}", file=sys.stderr)
            return 2
        if args.csv:
            Path(args.csv).mkdir(parents=True, exist_ok=True)
            write_text(Path(args.csv) / f"{run_id}_ggo_free.csv", table.to_csv(index=False))  # whole, or not at all
        print(describe(run_id, table), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

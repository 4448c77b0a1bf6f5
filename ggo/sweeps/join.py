"""Join cross-validation rows of one recipe, trained with different seeds, into one ensemble run:
``python -m ggo.join <seed-0 parent> <seed-1 parent> [...]``.

More ensemble members per fold (docs/configuration.md, ``train.seed``) need not retrain the seed already trained:
train the recipe again with ``train.seed=1``, then join the two CV parents. The new run is what
one ``train.seed=0,1`` sweep's parent would have been: every fold's model the mean of its seeds,
the threshold and component size chosen on the validation folds, ``val/*`` fold means (a fold's
seeds averaged first), ``oof/*`` and ``test/*`` of the joined ensemble, the GGO-free areas, the
per-image scores, ``cv_summary.csv`` and, as its ``model``, the ensemble of every member. It is a
CV parent like any other: ``python -m ggo.compare`` and ``python -m ggo.promote --sweep <it>``
take it, and its tag ``ggo.joined_from`` lists the parents whose fold runs it joined (they stay
where they are). Nothing is trained; the parents' logged probability maps and models are read.

One parent alone is scored again the same way: a row trained by an older ggo gets today's
protocol as a new run (the film-level answer, ``ggo_present``, with its out-of-fold choice; the
GGO-free areas), ready to promote, without training it again. The parent is not changed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence

from ggo import tracking
from ggo.sweeps.cv import summarize_cv
from ggo.sweeps.folds import JOINED_TAG, join_seeds
from ggo.tracking.liveness import process_tags


def join(uri: str, parent_run_ids: Sequence[str], *, run_name: str | None = None) -> str:
    """A new run in the first parent's experiment: the joined ensemble of ``parent_run_ids``
    (CV parents of one recipe, other ``train.seed`` values; one parent: that row scored again
    with this ggo's protocol). Returns its run id.

    Raises ValueError, before anything is written, when no parent is given or
    :func:`ggo.sweeps.folds.join_seeds` refuses them (other recipes, a fold's seed twice, not a CV parent).
    A failure while scoring ends the new run FAILED, with the error on it."""
    ids = list(dict.fromkeys(parent_run_ids))
    if not ids:
        raise ValueError("give one CV parent run to score again, or several of one recipe (trained with different train.seed values) to join")
    with tempfile.TemporaryDirectory(prefix="ggo-join-") as tmp:
        runs, _, _ = join_seeds(uri, ids, tmp)
    first = tracking.get_run(uri, ids[0])
    seeds = sorted({int(r.data.params.get("train.seed", 0)) for r in runs})
    overrides = " ".join(o for o in first.data.tags.get("ggo.overrides", "").split() if not o.startswith("train.seed="))
    action = "joined seeds " + ",".join(map(str, seeds)) if len(ids) > 1 else "scored again"
    name = run_name or f"{action}: {overrides or 'defaults'}"
    run_id = tracking.create_run(
        uri,
        tracking.experiment_name_of(uri, ids[0]),
        run_name=name,
        tags={
            tracking.ROLE_TAG: "parent",
            JOINED_TAG: ",".join(ids),
            "ggo.overrides": f"{overrides} train.seed={','.join(map(str, seeds))}".strip(),
            "ggo.objective": first.data.tags.get("ggo.objective", "val/dice"),
            **tracking.git_state(),
            **process_tags(),
        },
    )
    try:
        with tracking.kept_alive(uri, run_id):
            summarize_cv(uri, run_id, [runs], objective=first.data.tags.get("ggo.objective", "val/dice"))
    except BaseException as exc:
        tracking.set_run_tags(uri, run_id, {tracking.ERROR_TAG: f"{type(exc).__name__}: {exc}"})
        tracking.set_status(uri, run_id, "FAILED")
        raise
    tracking.set_status(uri, run_id, "FINISHED")
    return run_id


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ggo.join",
        description=(
            "Join CV parent runs of one recipe, trained with different train.seed values, into one\n"
            "new CV parent run: each fold's model the mean of its seeds, scored and logged as one\n"
            "'train.seed=0,1' sweep's parent would be (no training). Compare or promote it like any run.\n"
            "One parent alone is scored again with this ggo's protocol (e.g. a row trained before the\n"
            "film-level answer gets its ggo_present call) as a new run; the parent is not changed."
        ),
        epilog=(
            "examples:\n"
            "  python -m ggo.train -m +sweeps=champion train.seed=1      # the recipe again, another seed\n"
            "  python -m ggo.join <seed-0 parent> <seed-1 parent>\n"
            "  python -m ggo.compare <seed-0 parent> <joined run>\n"
            "  python -m ggo.promote --sweep <joined run>\n"
            "  python -m ggo.join <old parent>                            # today's protocol, no training"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("parents", nargs="+", metavar="PARENT", help="CV parent run ids of one recipe (one: that row scored again)")
    parser.add_argument("--name", default=None, help="run name of the joined run (default: 'joined seeds ...: <overrides>')")
    parser.add_argument("--tracking-uri", default=None, help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or the project store)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; returns the exit status (2 when the parents cannot be joined)."""
    args = build_parser().parse_args(argv)
    uri = tracking.resolve_uri(args.tracking_uri)
    try:
        tracking.check_store_exists(uri)
        run_id = join(uri, args.parents, run_name=args.name)
    except (ValueError, LookupError, FileNotFoundError) as exc:
        print(f"[ggo] join: {exc}", file=sys.stderr)
        return 2
    print(f"[ggo] joined run {run_id} ({len(set(args.parents))} parent(s)); compare it: python -m ggo.compare "
          f"{args.parents[0]} {run_id}; promote it: python -m ggo.promote --sweep {run_id}", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())

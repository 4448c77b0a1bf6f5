"""Train one configuration, or sweep many: ``python -m ggo.train [-m] [group=option ...] [key=value ...]``.

Examples::

    python -m ggo.train                                   # the defaults (unet + 70 px PatchGAN, 256 px)
    python -m ggo.train train=quick data=synthetic        # a 1-minute smoke run
    python -m ggo.train -m gen=unet,attention_unet        # a sweep: one MLflow child run per job
    python -m ggo.train -m gen=unet,attention_unet hydra/launcher=joblib hydra.launcher.n_jobs=2

Config groups: gen, disc, loss, preprocess, data, train, tracking (see ``conf/`` or ``--help``).
Every run is tracked in MLflow (``sqlite:///<project>/mlruns/mlflow.db`` by default); the task
returns ``objective`` (``val/dice``) so any Hydra sweeper can optimise it.
"""

from __future__ import annotations

import os
import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from ggo import config as _config  # registers the schema
from ggo import tracking
from ggo.runtime import interrupts
from ggo.runtime.backend import select_backend
from ggo.sweeps import callback as sweep
from ggo.tracking.ui import print_ui_hint


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
def task(cfg: DictConfig) -> float:
    """Hydra task: one run. Returns the objective (NaN when the run failed inside a sweep)."""
    interrupts.install()  # again in a launcher's worker process: SIGTERM there ends its run KILLED
    select_backend(str(getattr(cfg.train.backend, "value", cfg.train.backend)))
    from ggo.training.experiment import run_job  # imports keras: only after the backend is chosen
    hc = HydraConfig.get()
    multirun = hc.mode == RunMode.MULTIRUN
    overrides = [o for o in hc.overrides.task]
    tags = {"ggo.overrides": " ".join(overrides), "ggo.job": hc.job.num if multirun else ""}
    if os.environ.get(tracking.SWEEP_ENV):
        tags[tracking.SWEEP_TAG] = os.environ[tracking.SWEEP_ENV]
    value = run_job(
        _config.typed(cfg),
        run_name=run_name(overrides, os.environ.get(tracking.SWEEP_OVERRIDES_ENV) if multirun else None),
        tags=tags,
        parent_run_id=os.environ.get(tracking.PARENT_ENV) if multirun else None,
        workdir=hc.runtime.output_dir,
        raise_errors=not multirun,
    )
    if not multirun and cfg.tracking.enabled:
        print_ui_hint(tracking.resolve_uri(cfg.tracking.uri))
    return value


def run_name(overrides: list[str], sweep_overrides: str | None) -> str:
    """A job's name: in a sweep, only the overrides that vary (``gen=unet``); else all of them."""
    if sweep_overrides is not None:
        shared = {o.replace("\\", "") for o in sweep_overrides.split("\n")}
        varying = [o for o in overrides if o.replace("\\", "") not in shared]
        if varying:
            return " ".join(varying)
    return " ".join(overrides) or "defaults"


def main() -> None:
    """Console entry point: run Hydra, then exit 1 if any job of a sweep failed; a signal ends it
    with status 128 + N (the run and a sweep's parent KILLED, the parent's summary written).

    A job whose error escapes it (one that could not even open its run, e.g. with the tracking
    server gone) fails in Hydra, which runs the rest of the batch and then raises it, or reports it
    and exits 1, without ending the sweep: the sweep's parent then ends FAILED here."""
    interrupts.install()
    try:
        task()
    except KeyboardInterrupt as exc:
        sweep.mark_interrupted()
        if isinstance(exc, interrupts.Terminated):
            print(f"[ggo] {exc}: stopped; the run (and sweep) marked KILLED", file=sys.stderr, flush=True)
            sys.exit(exc.exit_status)
        raise
    except (Exception, SystemExit) as exc:
        if not (isinstance(exc, SystemExit) and exc.code in (0, None)):
            sweep.end_unended("FAILED")
        raise
    if sweep.LAST_SWEEP.get("failed"):
        sys.exit(1)


if __name__ == "__main__":
    main()

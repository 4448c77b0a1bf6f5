"""A cross-validation row's fold runs, read back from the store: which runs are one recipe, its
folds and seeds, the config a run logged, a CV parent's runs (or a ``python -m ggo.join`` run's),
several seed parents joined, and each fold's logged generators.

:mod:`ggo.sweeps.cv` scores and logs the row; :mod:`ggo.sweeps.rescore`, :mod:`ggo.sweeps.floor`,
:mod:`ggo.sweeps.join` and :mod:`ggo.sweeps.ggo_free_area` read parents back through this module.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ggo import tracking
from ggo.config import Config, typed


#: Params that differ between the folds of one configuration (everything else must match), and
#: the per-head counts of a run's training films (``data.n_train_<head>``, e.g. ``data.n_train_lungs``:
#: the films that teach an auxiliary head, see :mod:`ggo.heads`).
FOLD_PARAMS = ("data.fold", "data.n_train", "data.n_val", "data.n_test", "trial_id")

#: Params that differ between the ensemble members of one fold (seeds of the same recipe).
MEMBER_PARAMS = ("train.seed",)

#: Tag of a run made by ``python -m ggo.join``: the CV parents whose fold runs it joined.
JOINED_TAG = "ggo.joined_from"


def _fold_specific(param: str) -> bool:
    return param in FOLD_PARAMS or param in MEMBER_PARAMS or param.startswith("data.n_train_")


#: Params that say how a job ran, not what it trained: runs that differ only in these are one recipe.
RUN_PARAMS = ("train.threads",)


def _recipe(run: Any) -> dict[str, str]:
    return {k: v for k, v in run.data.params.items() if not _fold_specific(k) and k not in RUN_PARAMS}


def fold_of(run: Any) -> int:
    return int(run.data.params.get("data.fold", 0))


def seed_of(run: Any) -> int:
    return int(run.data.params.get("train.seed", 0))


def by_fold(runs: list[Any]) -> dict[int, list[Any]]:
    """``runs`` (one configuration) grouped by ``data.fold``, each fold's seeds in order."""
    folds: dict[int, list[Any]] = {}
    for run in sorted(runs, key=lambda r: (fold_of(r), seed_of(r))):
        folds.setdefault(fold_of(run), []).append(run)
    return folds


def cross_validation_groups(children: list[Any]) -> list[list[Any]]:
    """FINISHED children grouped by config without ``data.fold``, ``train.seed`` and the params
    that say how a job ran (:data:`RUN_PARAMS`); groups that cover >= 2 folds, sorted by fold then
    seed. A fold trained again alone with another ``train.threads`` stays in its row.

    A ``data.fold=0,1,2,3,4`` sweep gives one group; crossing it with ``gen=unet,attention_unet``
    gives two; crossing it with ``train.seed=0,1`` gives one group of ten runs (two per fold).
    """
    groups: dict[tuple, list[Any]] = {}
    for run in children:
        if run.info.status != "FINISHED":
            continue
        key = tuple(sorted(_recipe(run).items()))
        groups.setdefault(key, []).append(run)
    return [
        sorted(runs, key=lambda r: (fold_of(r), seed_of(r)))
        for runs in groups.values()
        if len({fold_of(r) for r in runs}) >= 2
    ]


def run_config(uri: str, run_id: str, workdir: str | Path) -> Config:
    """The typed config a run logged (``config.yaml``, downloaded under ``workdir``); keys of another
    ggo version that the schema lacks are ignored, keys it lacks take the schema's defaults."""
    import yaml

    path = tracking.download_artifact(uri, run_id, "config.yaml", Path(workdir) / "config")
    return typed(yaml.safe_load(Path(path).read_text()), lenient=True)


def parent_configuration(uri: str, parent_run_id: str, workdir: str | Path) -> tuple[list[Any], Config]:
    """The fold runs of the one cross-validation configuration under ``parent_run_id`` and their
    config (the first run's ``config.yaml``, downloaded under ``workdir``). A parent with no
    configuration or several raises a ValueError that says how many. A run made by ``python -m
    ggo.join`` has no children: its runs are those of the parents it joined."""
    joined = tracking.get_run(uri, parent_run_id).data.tags.get(JOINED_TAG)
    if joined:
        runs, config, _ = join_seeds(uri, joined.split(","), workdir)
        return runs, config
    groups = cross_validation_groups(tracking.child_runs(uri, parent_run_id))
    if len(groups) != 1:
        raise ValueError(f"run {parent_run_id} has {len(groups)} cross-validation configurations under it; need exactly 1")
    return groups[0], run_config(uri, groups[0][0].info.run_id, workdir)


def join_seeds(uri: str, parent_run_ids: list[str], workdir: str | Path) -> tuple[list[Any], Config, list[str]]:
    """The fold runs of several cross-validation parents of one recipe, each trained with other
    ``train.seed`` values, joined as more ensemble members per fold: what one ``train.seed=0,1``
    sweep would have given (:func:`fold_generators` then averages each fold's seeds). Returns the
    runs, the first parent's config (:func:`parent_configuration`) and the params that only some
    parents logged (a newer ggo logs more; those are not compared).

    Raises ValueError, naming the runs and the param, when the parents' recipes differ in a param
    they all logged, or when a fold has the same seed in two parents (the same member twice)."""
    runs, config = parent_configuration(uri, parent_run_ids[0], workdir)
    first = _recipe(runs[0])
    one_sided: set[str] = set()
    for other_id in parent_run_ids[1:]:
        other, _ = parent_configuration(uri, other_id, workdir)
        theirs = _recipe(other[0])
        differ = sorted(k for k in first.keys() & theirs.keys() if first[k] != theirs[k])
        if differ:
            shown = ", ".join(f"{k}: {first[k]!r} vs {theirs[k]!r}" for k in differ)
            raise ValueError(
                f"runs {parent_run_ids[0]} and {other_id} are not one recipe ({shown}): join parents "
                "that differ only in train.seed"
            )
        one_sided |= first.keys() ^ theirs.keys()
        runs = runs + other
    members = [(fold_of(r), seed_of(r)) for r in runs]
    twice = sorted({m for m in members if members.count(m) > 1})
    if twice:
        raise ValueError(
            f"fold/seed {', '.join(f'{f}/{s}' for f, s in twice)} appear in more than one of runs "
            f"{', '.join(parent_run_ids)}: join parents trained with different train.seed values"
        )
    return sorted(runs, key=lambda r: (fold_of(r), seed_of(r))), config, sorted(one_sided)


def fold_generators(uri: str, runs: list[Any], workdir: str | Path) -> list[tuple[int, list[Path]]]:
    """``(data.fold, generator files)`` per fold: the generators of every seed run of that fold's
    logged ``model`` (one fold model = the mean of its seeds), downloaded under ``workdir``."""
    out = []
    for fold, members in by_fold(runs).items():
        paths: list[Path] = []
        for run in members:
            local = tracking.download_model(uri, run.info.run_id, Path(workdir) / f"m-{run.info.run_id}")
            paths.extend(sorted((local / "artifacts").glob("generator*.keras")))
        out.append((fold, paths))
    return out

"""Cross-validation sweeps: fold statistics and the fold ensemble on the parent run."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import mlflow
import numpy as np
import pytest

from helpers import tiny_overrides

pytestmark = pytest.mark.slow


def test_cv_sweep_reports_fold_mean_std_and_scores_the_fold_ensemble(tmp_path: Path, tracking_uri: str) -> None:
    # Six GGO-free films ride along: scored for predicted area, never in the GGO metrics.
    args = [sys.executable, "-m", "ggo.train", "-m", "data.fold=0,1,2", "data.n_ggo_free=6", *tiny_overrides(tmp_path, tracking_uri)]
    proc = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=600, env=dict(os.environ))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "cross-validation" in proc.stdout

    client = mlflow.MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name("ggo")
    runs = client.search_runs([exp.experiment_id])
    parent = next(r for r in runs if r.data.tags.get("ggo.role") == "parent")
    children = sorted((r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id), key=lambda r: r.data.params["data.fold"])
    assert [c.data.params["data.fold"] for c in children] == ["0", "1", "2"]

    m = parent.data.metrics
    folds = [c.data.metrics["val/dice"] for c in children]
    assert m["val/dice"] == pytest.approx(np.mean(folds))
    assert m["val/dice_std"] == pytest.approx(np.std(folds))
    assert m["test/dice_fold_mean"] == pytest.approx(np.mean([c.data.metrics["test/dice"] for c in children]))
    assert parent.data.tags["fold"] == "ensemble"

    # The ensemble score is the mean of the three folds' test probability maps, scored afresh.
    from ggo.data import prepare_from_config
    from ggo.evaluation.metrics import evaluate

    probs = []
    for child in children:
        path = mlflow.artifacts.download_artifacts(
            run_id=child.info.run_id, artifact_path="predictions/probabilities.npz", dst_path=str(tmp_path / child.info.run_id), tracking_uri=tracking_uri
        )
        with np.load(path) as npz:
            probs.append(npz["test_probs"].astype(np.float32))
    import yaml

    cfg = yaml.safe_load(Path(mlflow.artifacts.download_artifacts(run_id=children[0].info.run_id, artifact_path="config.yaml", dst_path=str(tmp_path / "cfg"), tracking_uri=tracking_uri)).read_text())
    test = prepare_from_config(cfg["data"], cfg["preprocess"], progress=False).split(0)["test"]
    # ... after the threshold and small-component removal chosen on the validation folds (never on test).
    from ggo.evaluation.postprocess import THRESHOLDS

    choice = mlflow.artifacts.load_dict(f"{parent.info.artifact_uri}/postprocess_choice.json")
    scores = {(float(k.split("/")[0]), int(k.split("/")[1])): v for k, v in choice["mean_val_dice_by_threshold_and_min_component_px"].items()}
    assert {t for t, _ in scores} == set(THRESHOLDS)
    best = max(scores.values())
    assert scores[(choice["chosen_threshold"], choice["chosen_min_component_px"])] == best
    threshold, min_px = choice["chosen_threshold"], choice["chosen_min_component_px"]
    assert parent.data.tags["ggo.threshold"] == str(threshold)
    # The film-level answer, chosen out of fold on the same maps (the GGO-free films make it possible):
    # a film it calls GGO-free gets an empty mask, in every score below as in the shipped model.
    from ggo.evaluation.evaluate import EvalSettings, postprocess

    film = mlflow.artifacts.load_dict(f"{parent.info.artifact_uri}/film_choice.json")
    assert film["negatives"] == sum(len(prepare_from_config(cfg["data"], cfg["preprocess"], progress=False).ggo_free_split(int(c.data.params["data.fold"]))["val"]) for c in children)
    assert film["dice_cost"] <= 0.01 and film["ggo_free_area_after"] <= film["ggo_free_area_before"]
    assert m["oof/film_specificity"] == pytest.approx(film["specificity"]) and m["oof/film_specificity_low"] <= film["specificity"] <= m["oof/film_specificity_high"]
    assert 0.0 <= m["test/film_sensitivity_low"] <= m["test/film_sensitivity"] <= m["test/film_sensitivity_high"] <= 1.0
    settings = EvalSettings(threshold=threshold, min_component_px=min_px, film_a=film["film_a"], film_b=film["film_b"], film_cut=film["film_cut"])
    expected = evaluate(test.masks, postprocess(np.mean(probs, axis=0), settings), threshold)
    assert m["test/dice"] == pytest.approx(expected["dice"], abs=1e-6)
    assert m["test/precision"] == pytest.approx(expected["precision"], abs=1e-6)

    # Per-image scores: the ensemble's test films, and out of fold every fold's val films, each
    # scored by the fold model that did not train on it, with the post-processing val chose.
    import pandas as pd

    table = pd.read_csv(mlflow.artifacts.download_artifacts(
        run_id=parent.info.run_id, artifact_path="scores/per_image.csv", dst_path=str(tmp_path / "scores"), tracking_uri=tracking_uri))  # fmt: skip
    test_rows, oof = table[table["split"] == "test"], table[table["split"] == "oof"]
    assert list(test_rows["image"]) == list(test.names) and test_rows["dice"].mean() == pytest.approx(m["test/dice"], abs=1e-6)
    cache = prepare_from_config(cfg["data"], cfg["preprocess"], progress=False)
    vals = [cache.split(int(c.data.params["data.fold"]))["val"] for c in children]
    assert list(oof["image"]) == [n for v in vals for n in v.names]
    assert set(oof["image"]).isdisjoint(test.names)
    first = vals[0]
    with np.load(mlflow.artifacts.download_artifacts(run_id=children[0].info.run_id, artifact_path="predictions/probabilities.npz",
                                                     dst_path=str(tmp_path / "oof0"), tracking_uri=tracking_uri)) as npz:  # fmt: skip
        fold0 = evaluate(first.masks, postprocess(npz["val_probs"].astype(np.float32), settings), threshold)
    assert oof["dice"].iloc[: len(first.names)].mean() == pytest.approx(fold0["dice"], abs=1e-6)
    assert m["oof/dice"] == pytest.approx(oof["dice"].mean())
    summary = pd.read_csv(mlflow.artifacts.download_artifacts(
        run_id=parent.info.run_id, artifact_path="cv_summary.csv", dst_path=str(tmp_path / "cvs"), tracking_uri=tracking_uri))  # fmt: skip
    assert summary.loc[0, "oof vs top (paired 95% CI)"] == "top" and summary.loc[0, "oof dice 95% CI"].startswith("[")

    # GGO-free films: out of fold by the fold model that did not train on them, test by the ensemble,
    # with the post-processing val chose; the same figure python -m ggo ggo-free computes for old parents.
    assert not any(str(n).startswith("synthetic-free-") for n in table["image"])
    free = pd.read_csv(mlflow.artifacts.download_artifacts(
        run_id=parent.info.run_id, artifact_path="scores/ggo_free.csv", dst_path=str(tmp_path / "free"), tracking_uri=tracking_uri))  # fmt: skip
    negatives = [cache.ggo_free_split(int(c.data.params["data.fold"]))["val"] for c in children]
    assert list(free.loc[free["split"] == "oof", "image"]) == [n for v in negatives for n in v.names]
    assert list(free.loc[free["split"] == "test", "image"]) == cache.ggo_free_split(0)["test"].names
    assert m["oof/ggo_free_area"] == pytest.approx(free.loc[free["split"] == "oof", "pred_fraction"].mean())
    for child, val in zip(children, negatives):
        assert ("val/ggo_free_area" in child.data.metrics) == bool(len(val))
    from ggo.sweeps.ggo_free_area import describe, parent_rows

    again = parent_rows(tracking_uri, parent.info.run_id, tmp_path / "again")
    pd.testing.assert_frame_equal(again.reset_index(drop=True), free, check_dtype=False)
    assert describe(parent.info.run_id, again).startswith(f"{parent.info.run_id}: oof/ggo_free_area")

    arts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"cv_summary.csv", "cv_summary.md", "summary.csv"} <= arts

    # The parent carries the ensemble as a model: three generators behind one predict.
    mlflow.set_tracking_uri(tracking_uri)
    model = mlflow.pyfunc.load_model(f"runs:/{parent.info.run_id}/model")
    assert len(model.unwrap_python_model().generators) == 3
    assert model.unwrap_python_model().config["threshold"] == threshold  # ships what val chose
    assert model.unwrap_python_model().config["film_cut"] == film["film_cut"]  # and the film-level answer
    gray16 = (np.random.default_rng(1).random((120, 90)) * 65535).astype(np.uint16)
    assert model.predict(gray16)[0].shape == (120, 90)
    (answer,) = model.predict(gray16, params={"output": "film"})
    assert answer["ggo_present"] == bool(answer["mask"].any()) and 0.0 <= answer["ggo_probability"] <= 1.0


def _probs(client_uri: str, run, key: str, dst: Path) -> np.ndarray:
    path = mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="predictions/probabilities.npz", dst_path=str(dst / run.info.run_id), tracking_uri=client_uri)
    with np.load(path) as npz:
        return npz[key].astype(np.float32)


def test_seeds_per_fold_join_one_ensemble_whose_fold_models_average_their_seeds_and_ggo_join_rebuilds_it_from_one_seed_rows_or_scores_one_again(
    tmp_path: Path, tracking_uri: str, capsys: pytest.CaptureFixture[str]
) -> None:
    import pandas as pd
    import yaml

    from ggo.data import prepare_from_config
    from ggo.evaluation.metrics import evaluate
    from ggo.evaluation.postprocess import postprocess_probs

    # With the generator's weight average on, so the whole run path (best epoch, scores, model) runs with it.
    args = [sys.executable, "-m", "ggo.train", "-m", "data.fold=0,1", "train.seed=0,1", "train.ema=0.9", *tiny_overrides(tmp_path, tracking_uri)]
    proc = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=900, env=dict(os.environ))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    client = mlflow.MlflowClient(tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name("ggo").experiment_id])
    parent = next(r for r in runs if r.data.tags.get("ggo.role") == "parent")
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    fold = {f: sorted((c for c in children if c.data.params["data.fold"] == str(f)), key=lambda c: c.data.params["train.seed"]) for f in (0, 1)}
    assert [[c.data.params["train.seed"] for c in fold[f]] for f in (0, 1)] == [["0", "1"], ["0", "1"]]
    assert {c.data.params["train.ema"] for c in children} == {"0.9"}

    # val/* over folds: each fold counts once, with its seeds' mean (a single model's score).
    m = parent.data.metrics
    per_fold = [np.mean([c.data.metrics["val/dice"] for c in fold[f]]) for f in (0, 1)]
    assert m["val/dice"] == pytest.approx(np.mean(per_fold)) and m["val/dice_std"] == pytest.approx(np.std(per_fold))
    assert parent.data.tags["ggo.cv_folds"] == "0,1" and parent.data.tags["ggo.cv_seeds"] == "0,1"

    # Each fold's model is the mean of its seeds' maps: test ensemble and out-of-fold scores.
    choice = mlflow.artifacts.load_dict(f"{parent.info.artifact_uri}/postprocess_choice.json")
    threshold, min_px = choice["chosen_threshold"], choice["chosen_min_component_px"]
    test_maps = [np.mean([_probs(tracking_uri, c, "test_probs", tmp_path) for c in fold[f]], axis=0) for f in (0, 1)]
    cfg = yaml.safe_load(Path(mlflow.artifacts.download_artifacts(run_id=children[0].info.run_id, artifact_path="config.yaml", dst_path=str(tmp_path / "cfg"), tracking_uri=tracking_uri)).read_text())
    cache = prepare_from_config(cfg["data"], cfg["preprocess"], progress=False)
    test = cache.split(0)["test"]
    expected = evaluate(test.masks, postprocess_probs(np.mean(test_maps, axis=0), min_px, threshold), threshold)
    assert m["test/dice"] == pytest.approx(expected["dice"], abs=1e-6)
    table = pd.read_csv(mlflow.artifacts.download_artifacts(
        run_id=parent.info.run_id, artifact_path="scores/per_image.csv", dst_path=str(tmp_path / "scores"), tracking_uri=tracking_uri))  # fmt: skip
    oof = table[table["split"] == "oof"]
    vals = [cache.split(f)["val"] for f in (0, 1)]
    assert list(oof["image"]) == [n for v in vals for n in v.names]  # every film once, not once per seed
    fold0 = np.mean([_probs(tracking_uri, c, "val_probs", tmp_path) for c in fold[0]], axis=0)
    expected0 = evaluate(vals[0].masks, postprocess_probs(fold0, min_px, threshold), threshold)
    assert oof["dice"].iloc[: len(vals[0].names)].mean() == pytest.approx(expected0["dice"], abs=1e-6)

    # One configuration in the CV table (the seed is no axis of it), and all four members shipped.
    summary = pd.read_csv(mlflow.artifacts.download_artifacts(
        run_id=parent.info.run_id, artifact_path="cv_summary.csv", dst_path=str(tmp_path / "cvs"), tracking_uri=tracking_uri))  # fmt: skip
    assert len(summary) == 1 and summary.loc[0, "folds"] == 2 and str(summary.loc[0, "seeds"]) == "2"
    assert "train.seed" not in summary.loc[0, "config"]
    mlflow.set_tracking_uri(tracking_uri)
    assert len(mlflow.pyfunc.load_model(f"runs:/{parent.info.run_id}/model").unwrap_python_model().generators) == 4

    # The sweep's own row scored afresh from its logged models (python -m ggo rescore's library), for
    # rescore --with-seeds-of below, once its runs belong to two one-seed rows.
    from ggo.evaluation.evaluate import EvalSettings
    from ggo.sweeps.rescore import load_parent, rescore

    sweep_row = load_parent(tracking_uri, parent.info.run_id, tmp_path / "sweep-row")
    assert [len(members) for _, members in sweep_row.folds] == [2, 2]
    whole = rescore(sweep_row, EvalSettings.from_config(sweep_row.config.eval))

    # python -m ggo.join: the same run from two one-seed rows. The sweep's seed-0 and seed-1 runs
    # become the children of two CV parents (what two `train.seed=N` sweeps would have made).
    from ggo import tracking
    from ggo.sweeps.join import main as join_main
    from ggo.ship.promote import main as promote_main

    rows = []
    for seed in (0, 1):
        row = tracking.create_run(tracking_uri, "ggo", run_name=f"seed {seed}", tags={"ggo.role": "parent", "ggo.overrides": f"data.fold=0,1 train.seed={seed}"})
        for f in (0, 1):
            client.set_tag(fold[f][seed].info.run_id, "mlflow.parentRunId", row)
        tracking.set_status(tracking_uri, row, "FINISHED")
        rows.append(row)
    capsys.readouterr()
    assert join_main([*rows, "--tracking-uri", tracking_uri]) == 0
    joined = client.get_run(re.search(r"joined run ([0-9a-f]{32})", capsys.readouterr().out).group(1))
    assert joined.info.status == "FINISHED" and joined.data.tags["ggo.joined_from"] == ",".join(rows)
    assert joined.data.tags["ggo.cv_seeds"] == "0,1" and joined.data.tags["ggo.threshold"] == parent.data.tags["ggo.threshold"]
    scored = {k: v for k, v in m.items() if k.startswith(("val/", "oof/", "test/"))}
    assert {k: v for k, v in joined.data.metrics.items() if k.startswith(("val/", "oof/", "test/"))} == pytest.approx(scored, abs=1e-6)
    assert len(mlflow.pyfunc.load_model(f"runs:/{joined.info.run_id}/model").unwrap_python_model().generators) == 4
    assert promote_main(["--sweep", joined.info.run_id, "--tracking-uri", tracking_uri]) == 0
    assert client.get_model_version_by_alias("ggo-segmenter", "champion").run_id == joined.info.run_id

    # The joined run stands for its parents' runs, so joining it with one of them repeats a seed:
    # refused, naming the fold/seed, and no run is made.
    before = len(client.search_runs([joined.info.experiment_id]))
    capsys.readouterr()
    assert join_main([rows[0], joined.info.run_id, "--tracking-uri", tracking_uri]) == 2
    assert "fold/seed 0/0, 1/0 appear in more than one" in capsys.readouterr().err
    assert len(client.search_runs([joined.info.experiment_id])) == before

    # python -m ggo rescore --with-seeds-of: the seed-1 row's fold models join the seed-0 row's,
    # scored afresh from the logged models without writing anything: what the train.seed=0,1
    # sweep's own parent scores the same way. (Its logged metrics come from the maps the runs
    # computed in their mixed precision; the loaded models predict in float32: close, not equal.)
    from ggo.sweeps.rescore import main as rescore_main

    capsys.readouterr()
    assert rescore_main([rows[0], "--with-seeds-of", rows[1], "--tracking-uri", tracking_uri]) == 0
    printed = capsys.readouterr().out
    seeds = re.search(r"^  \+ seeds \(2 per fold\)\s+val/dice [0-9.]+ \+- [0-9.]+  oof/dice ([0-9.]+)  test dice ([0-9.]+) "
                      r"precision ([0-9.]+) recall ([0-9.]+)", printed, re.M)  # fmt: skip
    assert seeds, printed
    same = (whole.oof["dice"].mean(), whole.test["dice"], whole.test["precision"], whole.test["recall"])
    assert tuple(map(float, seeds.groups())) == pytest.approx(same, abs=6e-4)
    want = (m["oof/dice"], m["test/dice"], m["test/precision"], m["test/recall"])
    assert tuple(map(float, seeds.groups())) == pytest.approx(want, abs=0.02)
    assert "+ seeds (2 per fold) minus as trained:" in printed and len(client.search_runs([joined.info.experiment_id])) == before

    # python -m ggo table: both ensembles (the sweep's parent as the pix2pix recipe row, the joined
    # run paired against it on the same films: no difference), the joined run's command its own.
    from ggo.sweeps.ablation import main as table_main

    client.set_tag(parent.info.run_id, "ggo.overrides", "+sweeps=cv train.epochs=2 train.patience=0")
    capsys.readouterr()
    assert table_main(["--experiment", "ggo", "--tracking-uri", tracking_uri]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    table = {r["command"]: r for r in (dict(zip(header, (c.strip() for c in line.strip("|").split("|")))) for line in lines[1:])}
    versus = "vs pix2pix recipe: dice difference, 95% CI"
    assert set(table) == {f"`python -m ggo.train -m +sweeps=cv train.epochs=2 train.patience=0`", f"`python -m ggo.join {' '.join(rows)}`"}
    baseline, joined_row = (table[c] for c in sorted(table, key=lambda c: "join" in c))
    assert baseline["variant"] == "pix2pix recipe" and baseline[versus] == "baseline"
    assert joined_row["variant"] == "data.fold=0,1 train.seed=0,1" and joined_row[versus] == "+0.000 [+0.000, +0.000] oof noise"
    assert baseline["test dice (ensemble)"] == joined_row["test dice (ensemble)"] == f"{m['test/dice']:.3f}"

    # One parent alone: that row scored again as a new run (how a row trained by an older ggo gets
    # today's protocol, the film-level answer among it); its fold models are the seed-0 runs, so its
    # val/dice is their mean, and the parent itself is left as it was.
    capsys.readouterr()
    assert join_main([rows[0], "--tracking-uri", tracking_uri]) == 0
    again = client.get_run(re.search(r"joined run ([0-9a-f]{32})", capsys.readouterr().out).group(1))
    assert again.info.status == "FINISHED" and again.info.run_name.startswith("scored again")
    assert again.data.tags["ggo.joined_from"] == rows[0] and again.data.tags["ggo.cv_seeds"] == "0"
    assert again.data.metrics["val/dice"] == pytest.approx(np.mean([fold[f][0].data.metrics["val/dice"] for f in (0, 1)]))
    assert len(mlflow.pyfunc.load_model(f"runs:/{again.info.run_id}/model").unwrap_python_model().generators) == 2
    assert client.get_run(rows[0]).data.metrics == {}


@pytest.fixture(scope="module")
def lung_cv(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """A 2-fold CV of a tiny lung-head recipe (trained once per module), with GGO-free films scored
    beside the GGO ones: its directory, store, parent run and children by fold."""
    tmp_path = tmp_path_factory.mktemp("lung_cv")
    tracking_uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    overrides = [*tiny_overrides(tmp_path, tracking_uri), "gen.lung_head=true", "train.epochs=6", "train.g_lr=3e-3", "data.n_ggo_free=6"]
    proc = subprocess.run([sys.executable, "-m", "ggo.train", "-m", "data.fold=0,1", *overrides],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600, env=dict(os.environ))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    client = mlflow.MlflowClient(tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name("ggo").experiment_id])
    parent = next(r for r in runs if r.data.tags.get("ggo.role") == "parent")
    children = {int(r.data.params["data.fold"]): r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id}
    return SimpleNamespace(path=tmp_path, uri=tracking_uri, parent=parent, children=children)


@pytest.mark.xdist_group("lung_cv")
def test_floor_scores_the_lungs_predicted_out_of_fold_and_by_the_fold_ensemble(lung_cv: SimpleNamespace) -> None:
    import yaml

    from ggo.data import prepare_from_config
    from ggo.evaluation.inference import sigmoid
    from ggo.evaluation.metrics import evaluate

    tmp_path, tracking_uri, parent, children = lung_cv.path, lung_cv.uri, lung_cv.parent, lung_cv.children
    proc = subprocess.run([sys.executable, "-m", "ggo", "floor", "--lungs-from", parent.info.run_id, "--tracking-uri", tracking_uri],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300, env=dict(os.environ))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    printed = {m[0]: (int(m[1]), *map(float, m[2:])) for m in re.findall(
        r"^\s*(test|oof|all) \((\d+) films\): dice ([0-9.]+), precision ([0-9.]+), recall ([0-9.]+)", proc.stdout, re.M)}
    assert set(printed) == {"test", "oof", "all"} and "lung head" in proc.stdout

    # The same numbers from the fold models loaded as shipped: each fold's lungs on its own val
    # films (out of fold), the mean of the folds' lung maps on the test films, at 0.5.
    cfg_path = mlflow.artifacts.download_artifacts(run_id=children[0].info.run_id, artifact_path="config.yaml",
                                                   dst_path=str(tmp_path / "cfg"), tracking_uri=tracking_uri)
    cfg = yaml.safe_load(Path(cfg_path).read_text())
    cache = prepare_from_config(cfg["data"], cfg["preprocess"], progress=False)
    mlflow.set_tracking_uri(tracking_uri)
    test, maps, oof_masks, oof_maps = cache.split(0)["test"], [], [], []
    for fold, child in sorted(children.items()):
        (generator,) = mlflow.pyfunc.load_model(f"runs:/{child.info.run_id}/model").unwrap_python_model().generators
        maps.append(sigmoid(generator(test.images))[..., 1:2])
        val = cache.split(fold)["val"]
        oof_masks.append(val.masks)
        oof_maps.append(sigmoid(generator(val.images))[..., 1:2])
    want = {"test": evaluate(test.masks, np.mean(maps, axis=0), 0.5), "oof": evaluate(np.concatenate(oof_masks), np.concatenate(oof_maps), 0.5)}
    for split, m in want.items():
        n = len(test.masks) if split == "test" else sum(len(x) for x in oof_masks)
        assert printed[split][:4] == pytest.approx((n, m["dice"], m["precision"], m["recall"]), abs=1e-3), split
    assert printed["all"][0] == printed["test"][0] + printed["oof"][0]


@pytest.mark.xdist_group("lung_cv")
def test_rescore_reproduces_the_parents_numbers_and_scores_the_hard_lung_gate_beside_them(lung_cv: SimpleNamespace) -> None:
    proc = subprocess.run([sys.executable, "-m", "ggo", "rescore", lung_cv.parent.info.run_id, "--set", "eval.lung_gate=hard",
                           "--tracking-uri", lung_cv.uri], cwd=lung_cv.path, capture_output=True, text=True,
                          timeout=300, env=dict(os.environ))  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = {m[0].strip(): tuple(map(float, m[1:])) for m in re.findall(
        r"^  (as trained|lung_gate=hard)\s+val/dice ([0-9.]+) \+- [0-9.]+  oof/dice ([0-9.]+)  test dice ([0-9.]+) "
        r"precision ([0-9.]+) recall ([0-9.]+)  \(threshold [0-9.]+, min px \d+\)  GGO-free area oof ([0-9.]+)", proc.stdout, re.M)}  # fmt: skip
    assert set(rows) == {"as trained", "lung_gate=hard"}, proc.stdout
    # "As trained" is what the parent logged: the fold mean of val/dice, the out-of-fold dice, the
    # ensemble's test scores and the GGO-free films' area after the post-processing chosen on the
    # validation folds.
    m = mlflow.MlflowClient(lung_cv.uri).get_run(lung_cv.parent.info.run_id).data.metrics
    logged = (m["val/dice_fold_mean"], m["oof/dice"], m["test/dice"], m["test/precision"], m["test/recall"], m["oof/ggo_free_area"])
    assert rows["as trained"] == pytest.approx(logged, abs=1e-3)
    assert all(0.0 <= v <= 1.0 for v in rows["lung_gate=hard"])
    assert re.search(r"^  lung_gate=hard minus as trained:\n  oof: [+-][0-9.]+ dice, 95% CI \[", proc.stdout, re.M), proc.stdout
    assert re.search(r"^  test: [+-][0-9.]+ dice, 95% CI \[", proc.stdout, re.M), proc.stdout


@pytest.mark.xdist_group("lung_cv")
def test_ggo_free_reproduces_the_parents_logged_ggo_free_area_and_writes_its_films(lung_cv: SimpleNamespace) -> None:
    import pandas as pd

    out = lung_cv.path / "ggo-free-csv"
    proc = subprocess.run([sys.executable, "-m", "ggo", "ggo-free", lung_cv.parent.info.run_id, "--tracking-uri", lung_cv.uri,
                           "--csv", str(out)], cwd=lung_cv.path, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ))  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    m = mlflow.MlflowClient(lung_cv.uri).get_run(lung_cv.parent.info.run_id).data.metrics
    printed = {s: (float(v), int(n)) for s, v, n in re.findall(r"(oof|test)/ggo_free_area ([0-9.]+) \((\d+) films\)", proc.stdout)}
    assert "oof" in printed, proc.stdout
    table = pd.read_csv(out / f"{lung_cv.parent.info.run_id}_ggo_free.csv")
    for split, (value, n) in printed.items():
        assert value == pytest.approx(m[f"{split}/ggo_free_area"], abs=1e-4), split
        rows = table[table["split"] == split]
        assert len(rows) == n and rows["pred_fraction"].mean() == pytest.approx(value, abs=1e-4)
        assert rows["pred_fraction"].between(0, 1).all()
    assert len(table) == sum(n for _, n in printed.values())  # each film once: out of fold, or a test patient's


@pytest.mark.xdist_group("lung_cv")
def test_table_prints_one_row_per_cv_parent_with_the_numbers_it_logged(lung_cv: SimpleNamespace) -> None:
    proc = subprocess.run([sys.executable, "-m", "ggo", "table", "--experiment", "ggo", "--tracking-uri", lung_cv.uri],
                          cwd=lung_cv.path, capture_output=True, text=True, timeout=300, env=dict(os.environ))  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = [line for line in proc.stdout.splitlines() if line.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert header[0] == "variant" and len(header) == 14 and set(lines[1].replace("|", "")) == {"-"}
    assert len(lines) == 3, proc.stdout  # one CV parent in the store
    row = dict(zip(header, (c.strip() for c in lines[2].strip("|").split("|"))))
    run = mlflow.MlflowClient(lung_cv.uri).get_run(lung_cv.parent.info.run_id)
    m, tags = run.data.metrics, run.data.tags
    assert row["val/dice (5-fold mean +- std)"] == f"{m['val/dice']:.3f} +- {m['val/dice_std']:.3f}"
    assert row["test dice (ensemble)"] == f"{m['test/dice']:.3f}" and row["test recall"] == f"{m['test/recall']:.3f}"
    assert row["GGO-free area (oof)"] == f"{m['oof/ggo_free_area']:.4f}"
    assert row["threshold / min px (chosen on val)"] == f"{tags['ggo.threshold']} / {tags['ggo.min_component_px']}"
    assert "gen.lung_head=true" in row["variant"] and row["command"] == f"`python -m ggo.train -m {tags['ggo.overrides']}`"
    assert row["vs pix2pix recipe: dice difference, 95% CI"] == "-"  # no pix2pix recipe row in this store
    assert re.fullmatch(r"\d+ min", row["wall time"])

    missing = subprocess.run([sys.executable, "-m", "ggo", "table", "--experiment", "nope", "--tracking-uri", lung_cv.uri],
                             capture_output=True, text=True, timeout=120, env=dict(os.environ))  # fmt: skip
    assert missing.returncode == 2 and "no experiment 'nope'" in missing.stderr


def test_floor_refuses_a_run_that_is_not_a_cross_validation_parent(tmp_path: Path, tracking_uri: str) -> None:
    from ggo import tracking

    tracking.ensure_store(tracking_uri)
    run = tracking.create_run(tracking_uri, "ggo", run_name="lonely", tags={})
    proc = subprocess.run([sys.executable, "-m", "ggo", "floor", "--lungs-from", run, "--tracking-uri", tracking_uri],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300, env=dict(os.environ))
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "0 cross-validation configurations" in proc.stderr and "gen.lung_head=true" in proc.stderr


def test_folds_that_teach_their_heads_with_different_film_counts_or_ran_on_other_threads_are_one_configuration() -> None:
    """A lung-head fold logs how many of its training films teach the head (data.n_train_lungs):
    that count differs between folds and must not split the folds into configurations; nor does
    train.threads (a fold trained again alone, say with `data.fold=4 train.threads=0`)."""
    from types import SimpleNamespace

    from ggo.sweeps.folds import cross_validation_groups

    def run(fold: int, n_lungs: int, lr: str = "0.0002", threads: str = "1") -> SimpleNamespace:
        params = {"data.fold": str(fold), "data.n_train": "60", "data.n_train_lungs": str(n_lungs), "train.g_lr": lr,
                  "train.threads": threads}
        return SimpleNamespace(info=SimpleNamespace(status="FINISHED"), data=SimpleNamespace(params=params))

    groups = cross_validation_groups(
        [run(0, 58), run(1, 59), run(2, 60, threads="0"), run(0, 58, "0.001"), run(1, 59, "0.001")]
    )
    assert sorted(len(g) for g in groups) == [2, 3]  # two recipes (g_lr), each across its folds
    assert [int(r.data.params["data.fold"]) for r in max(groups, key=len)] == [0, 1, 2]


def test_join_seeds_makes_the_folds_of_two_parents_one_ensemble_and_refuses_other_recipes_or_the_same_seed_twice(
    tmp_path: Path, tracking_uri: str
) -> None:
    """python -m ggo rescore --with-seeds-of and python -m ggo join: parents of one recipe trained
    with other seeds join as more members per fold; a param both logged must match (but for the
    job's thread count); a fold's seed may come once."""
    from ggo import tracking
    from ggo.sweeps.folds import by_fold, join_seeds

    client = mlflow.MlflowClient(tracking_uri)
    experiment = tracking.experiment_id(tracking_uri, "ggo")

    def parent(seed: int, g_lr: str = "0.0002", extra: dict[str, str] | None = None, threads: str = "0") -> str:
        run_id = client.create_run(experiment, run_name=f"seed {seed}").info.run_id
        for fold in (0, 1):
            child = client.create_run(experiment, tags={"mlflow.parentRunId": run_id}).info.run_id
            params = {"data.fold": str(fold), "train.seed": str(seed), "train.g_lr": g_lr, "gen.lung_head": "True",
                      "train.threads": threads, **(extra or {})}  # fmt: skip
            for key, value in params.items():
                client.log_param(child, key, value)
            client.log_text(child, f"train:\n  seed: {seed}\n", "config.yaml")
            client.set_terminated(child)
        client.set_terminated(run_id)
        return run_id

    # A newer ggo logs train.ema too; train.threads says how the job ran, not what it trained.
    seed0, seed1 = parent(0), parent(1, extra={"train.ema": "0.0"}, threads="1")
    runs, config, one_sided = join_seeds(tracking_uri, [seed0, seed1], tmp_path)
    members = {fold: [r.data.params["train.seed"] for r in rs] for fold, rs in by_fold(runs).items()}
    assert members == {0: ["0", "1"], 1: ["0", "1"]}
    assert config.train.seed == 0 and one_sided == ["train.ema"]

    with pytest.raises(ValueError, match=r"not one recipe \(train.g_lr: '0.0002' vs '0.001'\)"):
        join_seeds(tracking_uri, [seed0, parent(1, g_lr="0.001")], tmp_path)
    with pytest.raises(ValueError, match=r"fold/seed 0/0, 1/0 appear in more than one"):
        join_seeds(tracking_uri, [seed0, parent(0)], tmp_path)

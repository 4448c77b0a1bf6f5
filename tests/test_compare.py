"""python -m ggo.compare on real MLflow stores: pairing, splits, sweep parents, every error."""

import json

import pandas as pd

from sweep_fixture import tiny_sweep  # noqa: F401 - fixture
import pytest

from ggo import tracking
from ggo.evaluation.compare import main

FILMS = [(f"film{i}.png", f"p{i // 2}") for i in range(12)]  # 12 films of 6 patients


@pytest.fixture()
def store(tracking_uri: str) -> str:
    """An empty MLflow store (conftest's ``tracking_uri``: a copy of one migrated store)."""
    return tracking_uri


def _run(uri, tmp_path, name, dice_by_split=None, *, parent=None, val_dice=None):
    tags = {"mlflow.parentRunId": parent} if parent else {}
    run_id = tracking.create_run(uri, "ggo", run_name=name, tags=tags)
    if dice_by_split is not None:
        rows = [
            {"image": img, "patient": pat, "split": split, "dice": dice(i)}
            for split, dice in dice_by_split.items()
            for i, (img, pat) in enumerate(FILMS)
        ]
        path = tmp_path / name / "per_image.csv"
        path.parent.mkdir(parents=True)
        pd.DataFrame(rows).to_csv(path, index=False)
        tracking.client_for(uri).log_artifact(run_id, str(path), "scores")
    if val_dice is not None:
        tracking.client_for(uri).log_metric(run_id, "val/dice", val_dice)
    tracking.set_status(uri, run_id, "FINISHED")
    return run_id


def test_compare_pairs_films_and_prefers_out_of_fold(store, tmp_path, capsys):
    a = _run(store, tmp_path, "a", {"oof": lambda i: 0.5, "test": lambda i: 0.4})
    b = _run(store, tmp_path, "b", {"oof": lambda i: 0.6 + 0.01 * (i % 3), "test": lambda i: 0.4})
    out = tmp_path / "cmp.json"
    assert main([a, b, "--tracking-uri", store, "--json", str(out)]) == 0
    (row,) = json.loads(out.read_text())
    assert set(row) == {"a", "b", "split", "n_images", "n_patients", "dice_a", "dice_b", "delta_dice", "ci_low", "ci_high", "p_value"}
    assert (row["a"], row["b"], row["split"], row["n_images"], row["n_patients"]) == (a, b, "oof", 12, 6)
    assert row["delta_dice"] == pytest.approx(0.11)
    assert 0 < row["ci_low"] <= row["delta_dice"] <= row["ci_high"]
    assert "a real difference" in capsys.readouterr().out
    # the same runs on test: identical scores, no difference
    assert main([a, b, "--tracking-uri", store, "--split", "test", "--json", str(out)]) == 0
    (row,) = json.loads(out.read_text())
    assert (row["split"], row["delta_dice"], row["p_value"]) == ("test", 0.0, 1.0)
    assert "inside the noise" in capsys.readouterr().out


def test_single_runs_fall_back_to_test_and_a_sweep_parent_stands_for_its_best_child(store, tmp_path, capsys):
    cv = _run(store, tmp_path, "cv", {"oof": lambda i: 0.5, "test": lambda i: 0.5})
    sweep = _run(store, tmp_path, "sweep")
    _run(store, tmp_path, "worse", {"val": lambda i: 0.1, "test": lambda i: 0.1}, parent=sweep, val_dice=0.1)
    best = _run(store, tmp_path, "better", {"val": lambda i: 0.2, "test": lambda i: 0.7}, parent=sweep, val_dice=0.2)
    out = tmp_path / "cmp.json"
    assert main([cv, sweep, "--tracking-uri", store, "--json", str(out)]) == 0
    (row,) = json.loads(out.read_text())
    assert (row["b"], row["split"], row["delta_dice"]) == (best, "test", pytest.approx(0.2))
    assert "best run of sweep sweep" in capsys.readouterr().out


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing run", "no MLflow run"),
        ("no scores", "no per-image scores"),
        ("no shared films", "share no 'test' films"),
        ("no such split", "has no 'oof' scores"),
        ("no champion", "promote a run first"),
        ("one run", "at least two runs"),
    ],
)
def test_errors_name_the_problem(store, tmp_path, capsys, case, message):
    a = _run(store, tmp_path, "a", {"test": lambda i: 0.5})
    args = {
        "missing run": [a, "0123456789abcdef0123456789abcdef"],
        "no scores": [a, _run(store, tmp_path, "bare")],
        "no such split": [a, a, "--split", "oof"],
        "no champion": ["champion", a],
        "one run": [a],
    }.get(case)
    if case == "no shared films":
        global FILMS
        saved, FILMS = FILMS, [(f"other{i}.png", f"q{i}") for i in range(3)]
        try:
            args = [a, _run(store, tmp_path, "other", {"test": lambda i: 0.5})]
        finally:
            FILMS = saved
    assert main([*args, "--tracking-uri", store]) == 2
    assert message in capsys.readouterr().err


def test_missing_store_is_named(tmp_path, capsys):
    uri = f"sqlite:///{tmp_path / 'nowhere.db'}"
    assert main(["x", "y", "--tracking-uri", uri]) == 2
    assert "no MLflow store" in capsys.readouterr().err


@pytest.mark.slow
def test_real_runs_log_per_image_scores_that_compare_pairs(tiny_sweep, tmp_path, capsys):
    from ggo.evaluation.scores import ARTIFACT, read_table

    runs = list(tiny_sweep.children.values())
    for run in runs:
        table = read_table(str(tracking.download_artifact(tiny_sweep.uri, run.info.run_id, ARTIFACT, tmp_path / run.info.run_id)))
        assert set(table["split"]) == {"val", "test"}
        # the per-image rows are what the run's metrics average: no second scoring path
        for split in ("val", "test"):
            rows = table[table["split"] == split]
            assert int(run.data.params[f"data.n_{split}"]) == len(rows)
            assert rows["dice"].mean() == pytest.approx(run.data.metrics[f"{split}/dice"], abs=1e-5)
        assert ((table["tp"] + table["fn"] > 0) == (table["truth_fraction"] > 0)).all()
    out = tmp_path / "cmp.json"
    assert main([runs[0].info.run_id, runs[1].info.run_id, "--tracking-uri", tiny_sweep.uri, "--json", str(out)]) == 0
    (row,) = json.loads(out.read_text())
    assert row["split"] == "test" and row["n_images"] == int(runs[0].data.params["data.n_test"])
    assert row["dice_b"] - row["dice_a"] == pytest.approx(row["delta_dice"], abs=1e-9)
    assert row["ci_low"] <= row["delta_dice"] <= row["ci_high"]
    # the sweep's summary ranks with intervals
    summary = pd.read_csv(tracking.download_artifact(tiny_sweep.uri, tiny_sweep.parent_run_id, "summary.csv", tmp_path / "s"))
    assert {"val/dice 95% CI", "vs top (paired 95% CI)"} <= set(summary.columns)
    assert summary.loc[0, "vs top (paired 95% CI)"] == "top"
    assert summary.loc[1, "vs top (paired 95% CI)"].split(":")[0] in ("noise", "worse", "better")

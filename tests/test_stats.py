"""Known answers for the patient bootstrap and the paired test (ggo.evaluation.stats)."""

import itertools

import numpy as np
import pytest
from scipy.stats import wilcoxon

from ggo.evaluation.stats import paired_difference, patient_bootstrap_ci, wilcoxon_patients


def test_bootstrap_resamples_patients_not_films():
    # P1 has five films at 1, three other patients one film at 0 each. Drawing 4 patients, k of
    # them P1 (k ~ Binomial(4, 1/4)), gives mean 5k / (5k + 4 - k): P(k=0) = 0.316 puts the 2.5%
    # quantile at 0; P(k<=2) = 0.949 < 0.975 <= P(k<=3) puts the 97.5% quantile at 15/16.
    values = [1, 1, 1, 1, 1, 0, 0, 0]
    patients = ["P1"] * 5 + ["P2", "P3", "P4"]
    mean, low, high = patient_bootstrap_ci(values, patients)
    assert mean == pytest.approx(5 / 8)
    assert low == pytest.approx(0.0)
    assert high == pytest.approx(15 / 16)
    # Treating the films as independent would give a far narrower interval.
    _, film_low, film_high = patient_bootstrap_ci(values, [f"f{i}" for i in range(8)])
    assert film_low > 0.2 and film_high < 0.95


def test_bootstrap_matches_exact_enumeration_on_three_patients():
    values = np.array([0.2, 0.4, 0.9, 0.5])
    patients = ["a", "a", "b", "c"]
    sums, counts = {"a": 0.6, "b": 0.9, "c": 0.5}, {"a": 2, "b": 1, "c": 1}
    exact = sorted(
        sum(sums[p] for p in draw) / sum(counts[p] for p in draw) for draw in itertools.product("abc", repeat=3)
    )  # 27 equally likely resamples
    mean, low, high = patient_bootstrap_ci(values, patients, n_resamples=20_000)
    assert mean == pytest.approx(values.mean())
    # the percentile interval lands on the exact distribution's 2.5% / 97.5% points
    assert low == pytest.approx(np.quantile(exact, 0.025, method="inverted_cdf"), abs=0.02)
    assert high == pytest.approx(np.quantile(exact, 0.975, method="inverted_cdf"), abs=0.02)


def test_bootstrap_is_seeded():
    rng = np.random.default_rng(3)
    values, patients = rng.random(30), [str(i // 3) for i in range(30)]
    assert patient_bootstrap_ci(values, patients, seed=1) == patient_bootstrap_ci(values, patients, seed=1)
    assert patient_bootstrap_ci(values, patients, seed=1) != patient_bootstrap_ci(values, patients, seed=2)


def test_identical_runs_give_zero_difference_and_no_evidence():
    dice = [0.3, 0.5, 0.7, 0.2]
    r = paired_difference(dice, dice, ["a", "a", "b", "c"])
    assert (r.delta_dice, r.ci_low, r.ci_high, r.p_value) == (0.0, 0.0, 0.0, 1.0)
    assert not r.distinguishable


def test_wilcoxon_runs_on_per_patient_means_with_ties():
    # patient means of the differences: a = (0.1 + 0.3) / 2 = 0.2, b = 0.2 (a tie), c = -0.05, d = 0.4
    delta = [0.1, 0.3, 0.2, -0.05, 0.4]
    patients = ["a", "a", "b", "c", "d"]
    expected = wilcoxon([0.2, 0.2, -0.05, 0.4]).pvalue
    assert wilcoxon_patients(delta, patients) == pytest.approx(expected)
    # all positive over 5 patients: the exact two-sided p is 2 / 2**5
    assert wilcoxon_patients([1, 2, 3, 4, 5], list("abcde")) == pytest.approx(0.0625)


def test_a_clear_gain_is_distinguishable():
    rng = np.random.default_rng(0)
    a = rng.uniform(0.3, 0.6, 40)
    b = a + 0.1 + rng.normal(0, 0.01, 40)
    r = paired_difference(a, b, [str(i // 2) for i in range(40)], a="A", b="B", split="oof")
    assert r.delta_dice == pytest.approx(0.1, abs=0.01)
    assert 0 < r.ci_low < 0.1 < r.ci_high
    assert r.p_value < 1e-3 and r.distinguishable
    assert r.n_images == 40 and r.n_patients == 20
    assert set(r.as_dict()) == {"a", "b", "split", "n_images", "n_patients", "dice_a", "dice_b", "delta_dice", "ci_low", "ci_high", "p_value"}


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="empty"):
        patient_bootstrap_ci([], [])
    with pytest.raises(ValueError, match="one length"):
        patient_bootstrap_ci([0.1, 0.2], ["a"])
    with pytest.raises(ValueError, match="align"):
        paired_difference([0.1, 0.2], [0.1], ["a", "b"])


def test_ranking_uncertainty_marks_rows_inside_the_noise():
    import pandas as pd

    from ggo.evaluation.scores import ranking_uncertainty

    def table(dice):
        return pd.DataFrame({"image": [f"i{k}" for k in range(20)], "patient": [f"p{k // 2}" for k in range(20)],
                             "split": "val", "dice": dice})  # fmt: skip

    rng = np.random.default_rng(1)
    base = rng.uniform(0.4, 0.6, 20)
    tables = {"top": table(base + 0.2), "close": table(base + 0.2 + rng.normal(0, 0.02, 20)), "low": table(base), "none": None}
    ranked = ranking_uncertainty(tables, ["top", "close", "low", "none"], "val")
    assert list(ranked["vs_top"]) == ["top", "noise", "worse", "n/a"]
    assert ranked.loc["low", "delta_ci_high"] < 0 < ranked.loc["close", "delta_ci_high"]
    assert ranked.loc["top", "ci_low"] < (base + 0.2).mean() < ranked.loc["top", "ci_high"]
    # a sweep stopped before any run finished ranks nothing, and says so per row
    from ggo.evaluation.scores import uncertainty_columns

    empty = ranking_uncertainty({"a": None}, [], "val")
    assert uncertainty_columns(["a"], empty) == {"dice 95% CI": [""], "vs top (paired 95% CI)": ["n/a"]}

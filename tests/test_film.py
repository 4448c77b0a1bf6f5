"""The film-level answer: a probability that a film shows GGO at all, and a cut chosen out of fold
under which its mask is emptied."""

from __future__ import annotations

import numpy as np
import pytest

from ggo.evaluation.film import BUDGET, FilmCall, choose_call, exact_interval, fit_probability, shares


def test_the_probability_rises_with_the_share_the_mask_marks_and_is_unknown_unfitted() -> None:
    a, b = fit_probability([0.2, 0.3, 0.25, 0.15, 0.01, 0.02], [1, 1, 1, 1, 0, 0])
    call = FilmCall(a, b)
    p = call.probability(np.array([0.0, 0.01, 0.1, 0.3]))
    assert b > 0 and np.all(np.diff(p) > 0) and 0.0 < p[0] < p[-1] < 1.0
    assert np.isnan(FilmCall().probability(0.2)) and not FilmCall().fitted
    assert fit_probability([0.1, 0.2], [1, 1]) == (0.0, 0.0)  # no GGO-free film: nothing to learn


def test_the_cut_empties_ggo_free_films_only_within_the_dice_budget() -> None:
    rng = np.random.default_rng(0)
    ggo = rng.uniform(0.05, 0.3, 60)  # GGO films mark 5-30% of the film
    dice = rng.uniform(0.3, 0.9, 60)
    free = np.array([0.001, 0.002, 0.004, 0.12, 0.2])  # three nearly clean GGO-free films, two false alarms
    choice = choose_call(ggo, dice, free)
    assert choice.call.fitted and choice.call.cut > 0
    assert choice.specificity == (3, 5) and choice.sensitivity == (60, 60) and choice.dice_cost == 0.0
    assert choice.area_after == pytest.approx((0.12 + 0.2) / 5) and choice.area_before == pytest.approx(free.mean())
    # GGO films as small as the GGO-free ones: emptying them would cost more dice than the budget allows.
    small = np.concatenate([ggo, np.full(3, 0.002)])
    costly = choose_call(small, np.concatenate([dice, np.full(3, 0.9)]), free, budget=BUDGET)
    assert costly.dice_cost <= BUDGET and costly.sensitivity[0] >= 61


def test_without_ggo_free_films_no_film_is_called_ggo_free() -> None:
    choice = choose_call([0.1, 0.2], [0.5, 0.6], [])
    assert not choice.call.fitted and choice.specificity == (0, 0) and list(choice.call.present(np.array([0.0, 0.1]))) == [False, True]


def test_exact_intervals_are_wide_for_seven_negatives() -> None:
    low, high = exact_interval(5, 7)
    assert low == pytest.approx(0.2904, abs=1e-3) and high == pytest.approx(0.9633, abs=1e-3)
    assert np.isnan(exact_interval(0, 0)[0])


def test_a_film_called_ggo_free_gets_an_empty_mask_and_the_default_settings_call_none() -> None:
    from ggo.evaluation.evaluate import EvalSettings, film_probabilities, masks_of

    probs = np.zeros((2, 32, 32, 1), np.float32)
    probs[0, 4:20, 4:20] = 0.9  # a quarter of the film
    probs[1, 0:2, 0:2] = 0.9  # a speck
    a, b = fit_probability([0.25, 0.3, 0.2, 0.004, 0.002], [1, 1, 1, 0, 0])
    gated = EvalSettings(film_a=a, film_b=b, film_cut=0.5)
    assert shares(masks_of(probs, gated)).tolist() == [0.25, 0.0]
    assert shares(masks_of(probs, EvalSettings())).tolist() == pytest.approx([0.25, 4 / 1024])
    p = film_probabilities(probs, gated)
    assert p[0] > 0.5 > p[1] and np.isnan(film_probabilities(probs, EvalSettings())).all()
    assert EvalSettings.from_config(gated.as_config()) == gated  # what a shipped model's preprocess.json holds


def test_a_ggo_film_whose_mask_is_already_empty_costs_nothing_when_called_ggo_free() -> None:
    """A tiny annotation can vanish at the model's resolution: its empty prediction scores dice 1,
    and the call, which cannot empty it further, must not count that as a loss."""
    ggo = np.concatenate([np.random.default_rng(1).uniform(0.1, 0.3, 40), [0.0]])
    dice = np.concatenate([np.full(40, 0.6), [1.0]])
    choice = choose_call(ggo, dice, np.array([0.001, 0.002, 0.2]))
    assert choice.dice_cost == 0.0 and choice.specificity == (2, 3) and choice.sensitivity == (40, 41)

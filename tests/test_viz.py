"""Pictures: where a prediction meets the truth (TP / FP / FN), per film and in a grid."""

from __future__ import annotations

import numpy as np
import pytest

from ggo.evaluation import viz
from helpers import assert_outcomes_painted

GRAY = 100
ALPHA = 0.45  # outcome_overlay's default


def known_masks(h: int = 120, w: int = 120) -> tuple[np.ndarray, np.ndarray]:
    """Truth and prediction that overlap: each of TP, FP and FN is a large rectangle."""
    truth, pred = np.zeros((h, w), bool), np.zeros((h, w), bool)
    truth[10:70, 10:70] = True
    pred[40:110, 40:110] = True
    return truth, pred


def test_outcome_overlay_paints_tp_fp_fn_where_the_masks_say() -> None:
    truth, pred = known_masks()
    gray = np.full(truth.shape, GRAY, np.uint8)
    picture = viz.outcome_overlay(np.repeat(gray[..., None], 3, axis=-1), truth, pred, ALPHA)
    assert picture.shape == (*truth.shape, 3)
    assert assert_outcomes_painted(picture, truth, pred, gray) > 0.8 * truth.size


def test_outcome_colours_are_three_distinct_okabe_ito_colours_named_in_the_legend() -> None:
    assert set(viz.OUTCOME_RGB) == set(viz.OUTCOME_LABELS) == {"TP", "FP", "FN"}
    assert viz.OUTCOME_RGB == {"TP": (240, 228, 66), "FP": (213, 94, 0), "FN": (86, 180, 233)}
    band = viz.legend_band(600)
    for colour in viz.OUTCOME_RGB.values():
        assert (band == np.array(colour, np.uint8)).all(axis=-1).sum() > 20, f"a swatch of {colour} in the key"
    assert (band.sum(axis=-1) < 150).sum() > 50, "the key has dark text"


def test_film_dice_is_the_protocols_per_image_dice() -> None:
    truth, pred = known_masks()
    tp = (truth & pred).sum()
    assert viz.film_dice(truth, pred) == pytest.approx(2 * tp / (truth.sum() + pred.sum()))
    empty = np.zeros((8, 8), bool)
    assert viz.film_dice(empty, empty) == 1.0
    assert viz.film_dice(empty, ~empty) == 0.0


def test_outcome_picture_puts_the_title_above_and_the_key_below_the_film() -> None:
    truth, pred = known_masks()
    gray = np.full(truth.shape, GRAY, np.uint8)
    picture = viz.outcome_picture(np.repeat(gray[..., None], 3, axis=-1), truth, pred, "film.png  dice 0.3")
    legend = viz.legend_band(truth.shape[1], viz.caption_scale(truth.shape[1]))
    top = picture.shape[0] - truth.shape[0] - legend.shape[0]
    assert top > 0 and (picture[:top].sum(axis=-1) < 150).any(), "a title band with dark text"
    np.testing.assert_array_equal(picture[top + truth.shape[0]:], legend)
    assert_outcomes_painted(picture[top : top + truth.shape[0]], truth, pred, gray)


def test_outcome_figure_lays_films_in_a_grid_with_one_key() -> None:
    truth, pred = known_masks()
    gray = np.full(truth.shape, GRAY, np.uint8)
    rgb = np.repeat(gray[..., None], 3, axis=-1)
    size = truth.shape[0]  # no resizing: the films' pixels can be checked exactly
    films = [(rgb, truth, pred, "a.png  dice 0.3"), (rgb, pred, truth, "b.png  dice 0.3"), (rgb, truth, truth, "c.png  dice 1.0")]
    figure = viz.outcome_figure(films, columns=2, size=size)
    legend = viz.legend_band(figure.shape[1], viz.caption_scale(size))
    np.testing.assert_array_equal(figure[-legend.shape[0]:], legend)
    grid = figure[: -legend.shape[0]]
    tile_h = (grid.shape[0] - 6) // 2
    assert grid.shape[1] == 2 * size + 6 and grid.shape[0] == 2 * tile_h + 6, "2 columns, 2 rows, 6 px gutters"
    for k, (_, t, p, _) in enumerate(films):
        row, col = divmod(k, 2)
        y, x = row * (tile_h + 6) + tile_h - size, col * (size + 6)
        assert_outcomes_painted(grid[y : y + size, x : x + size], t, p, gray)
    assert (grid[tile_h + 6 :, size + 6 :] == 255).all(), "the empty cell stays white"


def test_outcome_figure_fits_films_of_any_shape_into_square_cells() -> None:
    wide = viz.to_rgb_uint8(np.zeros((50, 200, 1)))
    tall_truth = np.zeros((300, 100), bool)
    tall_truth[100:200, 20:80] = True
    figure = viz.outcome_figure([(wide, np.zeros((50, 200)), np.ones((50, 200)), "wide"),
                                 (viz.to_rgb_uint8(np.zeros((300, 100, 1))), tall_truth, tall_truth, "tall")], columns=2, size=64)
    assert figure.shape[1] == 2 * 64 + 6
    fp = np.array(viz.OUTCOME_RGB["FP"], np.uint8)
    assert (figure == fp).all(axis=-1).any(), "the all-FP wide film is outlined in the FP colour"


def test_validation_overlays_end_with_the_tp_fp_fn_tile() -> None:
    truth, pred = known_masks(32, 32)
    images = np.zeros((2, 32, 32, 1), np.float32)
    grid = viz.overlay_grid(images, truth[None, ..., None].repeat(2, 0), pred[None, ..., None].repeat(2, 0).astype(np.float32))
    assert grid.shape == (2 * 32 + 2, 4 * 32 + 6, 3)
    np.testing.assert_array_equal(grid[:32, 3 * 34 :], viz.outcome_overlay(viz.to_rgb_uint8(images[0]), truth, pred))


def test_outcome_overlay_paints_blobs_and_specks_that_touch_the_border() -> None:
    import cv2

    rng = np.random.default_rng(0)
    for _ in range(30):
        gray = rng.integers(0, 256, (80, 72)).astype(np.uint8)
        truth, pred = np.zeros((80, 72), np.uint8), np.zeros((80, 72), np.uint8)
        for m in (truth, pred):
            centre, axes = (int(rng.integers(0, 72)), int(rng.integers(0, 80))), (int(rng.integers(3, 25)), int(rng.integers(3, 25)))
            cv2.ellipse(m, centre, axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
        pred |= (rng.random(pred.shape) > 0.97).astype(np.uint8)  # specks, as a weak model leaves
        picture = viz.outcome_overlay(cv2.cvtColor(gray, cv2.COLOR_GRAY2RGB), truth.astype(bool), pred.astype(bool), ALPHA)
        assert_outcomes_painted(picture, truth.astype(bool), pred.astype(bool), gray)

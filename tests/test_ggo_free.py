"""GGO-free films: the predicted-area figure, and data.train_ggo_free choosing what trains."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from ggo.evaluation.evaluate import EvalSettings
from ggo.evaluation.ggo_free import COLUMNS, area_metrics, area_table, score_ggo_free
from helpers import tiny_overrides


def _films() -> SimpleNamespace:
    """Two preprocessed 16 x 16 films: a bright band over the top quarter and one bright pixel
    on the first, nothing on the second."""
    images = -np.ones((2, 16, 16, 1), np.float32)
    images[0, :4] = 1.0  # 64 of 256 pixels
    images[0, 10, 10] = 1.0  # a 1-pixel component
    return SimpleNamespace(images=images, names=["a.png", "b.png"], patients=["1", "2"])


def _generator(x, training: bool = False) -> np.ndarray:
    return 20.0 * np.asarray(x)  # logits: bright pixels are GGO with probability ~1


def test_ggo_free_area_is_the_mean_predicted_fraction_after_the_metrics_postprocessing() -> None:
    films = _films()
    settings = EvalSettings(threshold=0.5, min_component_px=2, tta_flip=False)
    table = score_ggo_free(_generator, {"val": films, "test": None}, settings)
    assert list(table.columns) == COLUMNS and list(table["image"]) == ["a.png", "b.png"]
    assert list(table["pred_fraction"]) == [0.25, 0.0]  # the lone pixel is removed, as for dice
    assert area_metrics(table) == {"val/ggo_free_area": 0.125}
    kept = score_ggo_free(_generator, {"test": films}, EvalSettings(threshold=0.5, min_component_px=0, tta_flip=False))
    assert area_metrics(kept) == {"test/ggo_free_area": pytest.approx((65 / 256) / 2)}
    ensemble = score_ggo_free([_generator, lambda x, training=False: -20.0 * np.ones_like(x)], {"test": films}, settings)
    assert list(ensemble["pred_fraction"]) == [0.0, 0.0]  # mean probability 0.5 is not > 0.5


def test_area_table_of_no_film_is_empty_and_has_no_metric() -> None:
    table = area_table([], [], "val", np.zeros((0, 8, 8, 1)))
    assert list(table.columns) == COLUMNS and area_metrics(table) == {}
    assert score_ggo_free(_generator, {"val": SimpleNamespace(images=np.zeros((0, 8, 8, 1)), names=[], patients=[])}, EvalSettings()).empty


@pytest.mark.parametrize("train_ggo_free", [False, True])
def test_train_ggo_free_adds_only_the_train_patients_ggo_free_films_to_training(tmp_path: Path, train_ggo_free: bool) -> None:
    from ggo.config import compose, typed
    from ggo.tracking import Tracker
    from ggo.training.experiment import Run, prepare

    cfg = typed(compose([*tiny_overrides(tmp_path), "data.n_ggo_free=6", f"data.train_ggo_free={str(train_ggo_free).lower()}"]))
    data = prepare(Run.of(cfg, Tracker()))
    free = [n for n in data.train.names if n.startswith("synthetic-free-")]
    scored = set(data.val_ggo_free.names) | set(data.test_ggo_free.names)
    assert len(data.val_ggo_free.names) > 0 and not any(n.startswith("synthetic-free-") for n in data.val.names + data.test.names)
    if train_ggo_free:
        assert len(free) + len(scored) == 6 and not set(free) & scored
        assert not np.asarray(data.train.masks[[data.train.names.index(n) for n in free]]).any()  # empty targets
    else:
        assert free == []
    ggo_only = prepare(Run.of(compose(tiny_overrides(tmp_path)), Tracker()))
    assert [n for n in data.train.names if n not in free] == ggo_only.train.names  # the GGO films are the same
    assert data.val.names == ggo_only.val.names and data.test.names == ggo_only.test.names

"""Auxiliary heads' targets from the cache (``Split.targets(aux_heads=...)``): which films teach
each head, what a missing annotation means per class, and the channel layout."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from ggo.data import prepare_cache
from ggo.data.cache import CLASS_HEADS

GGO = "Ground Glass Opacities"
HEADS = ("lungs", "heart", "airways", "consolidation", "devices")
SQUARE = np.ones((8, 8), bool)


def _film(builder, name: str, patient: str, templates: dict[str, tuple[int, int]]) -> None:
    builder.add_image(name, np.full((40, 40), 90, np.uint8), patient=patient)
    builder.add_crop(name, GGO, 16, 16, SQUARE)
    for template, (top, left) in templates.items():
        builder.add_crop(name, template, top, left, SQUARE)


@pytest.fixture()
def hand_made(builder) -> dict[str, dict[str, tuple[np.ndarray, float]]]:
    """Six films with known annotations, read through the cache: name -> head -> (target, weight)."""
    lungs = {"Left Lung": (8, 24), "Right Lung": (8, 4)}
    _film(builder, "full.png", "1", {**lungs, "Cardiomediastinum": (20, 16), "Airways": (0, 16),
                                     "Consolidation": (28, 4), "Tubings": (0, 0), "Central Venous Line": (32, 32)})  # fmt: skip
    _film(builder, "anatomy.png", "2", {**lungs, "Cardiomediastinum": (20, 16)})
    _film(builder, "one-side.png", "3", {"Right Lung": (8, 4), "Cardiomediastinum": (20, 16)})
    _film(builder, "probes.png", "4", {"Monitoring Probes": (0, 0)})
    _film(builder, "no-heart.png", "5", lungs)
    _film(builder, "undrawn.png", "6", {**lungs, "Cardiomediastinum": (20, 16)})
    builder.structure.append({**builder.structure[-1], "Template Name": "Monitoring Probes", "Mask": None})  # marked, not drawn
    root = builder.write()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cache = prepare_cache(root, resolution=40, folds=2, test_fraction=0.2, cache_dir=root.parent / "cache")
    out: dict[str, dict[str, tuple[np.ndarray, float]]] = {}
    for split in cache.split(0, aux_heads=HEADS).values():
        targets = split.targets(aux_heads=HEADS)
        assert targets.shape == (len(split), 40, 40, 1 + 2 * len(HEADS)) and targets.dtype == np.float32
        np.testing.assert_array_equal(targets[..., :1], split.masks)
        for name, film in zip(split.names, targets):
            weights = {h: np.unique(film[..., 2 + 2 * k]) for k, h in enumerate(HEADS)}
            assert all(len(w) == 1 for w in weights.values())  # one weight per film and head
            out[name] = {h: (film[..., 1 + 2 * k], float(weights[h][0])) for k, h in enumerate(HEADS)}
    return out


def test_missing_annotations_are_unknown_for_anatomy_and_none_for_findings_on_annotated_films(hand_made) -> None:
    weights = {name: {h: int(w) for h, (_, w) in heads.items()} for name, heads in hand_made.items()}
    assert weights == {
        "full.png": dict(lungs=1, heart=1, airways=1, consolidation=1, devices=1),
        # No airways: unknown. No consolidation or device on a film whose heart and lungs are annotated: none.
        "anatomy.png": dict(lungs=1, heart=1, airways=0, consolidation=1, devices=1),
        # One lung side: the lung head learns nothing from it (as gen.lung_head always did).
        "one-side.png": dict(lungs=0, heart=1, airways=0, consolidation=1, devices=1),
        # Neither heart nor lungs: not fully annotated, so its absent consolidation is unknown too.
        "probes.png": dict(lungs=0, heart=0, airways=0, consolidation=0, devices=1),
        "no-heart.png": dict(lungs=1, heart=0, airways=0, consolidation=0, devices=0),
        # Probes marked without a mask: the devices are there but not drawn, so unknown.
        "undrawn.png": dict(lungs=1, heart=1, airways=0, consolidation=1, devices=0),
    }


def test_targets_are_the_class_masks_and_devices_are_the_union_of_their_classes(hand_made) -> None:
    full = hand_made["full.png"]
    expected_devices = np.zeros((40, 40), np.float32)
    expected_devices[0:8, 0:8] = expected_devices[32:40, 32:40] = 1  # Tubings + Central Venous Line
    np.testing.assert_array_equal(full["devices"][0], expected_devices)
    assert full["consolidation"][0][28:36, 4:12].all() and full["consolidation"][0].sum() == 64
    assert full["heart"][0][20:28, 16:24].all() and full["heart"][0].sum() == 64
    empty_negative = hand_made["anatomy.png"]
    assert empty_negative["consolidation"][0].sum() == 0 and empty_negative["devices"][0].sum() == 0


def test_only_the_requested_heads_are_loaded_and_lung_head_targets_are_unchanged(synthetic_root: Path, tmp_path: Path) -> None:
    cache = prepare_cache(synthetic_root, resolution=32, folds=2, cache_dir=tmp_path)
    assert {f"class_{h}.npy" for h in CLASS_HEADS} <= {p.name for p in cache.path.iterdir()}
    plain = cache.split(0)["train"]
    assert plain.aux == {} and plain.targets() is plain.masks
    with pytest.raises(KeyError, match="aux_heads"):
        plain.targets(aux_heads=["heart"])
    train = cache.split(0, aux_heads=["lungs", "heart"])["train"]
    assert set(train.aux) == {"heart"}  # the lungs have their own arrays; nothing else is read
    np.testing.assert_array_equal(train.targets(lung_head=True), train.targets(aux_heads=["lungs"]))
    np.testing.assert_array_equal(train.targets(lung_head=True), plain.targets(lung_head=True))
    both = train.targets(lung_head=True, aux_heads=["heart"])  # lungs first, then heart
    assert both.shape[-1] == 5
    np.testing.assert_array_equal(both[..., :3], train.targets(lung_head=True))
    assert train.known_counts(aux_heads=["lungs", "heart"])["heart"] == len(train)  # the cartoon heart is on every film

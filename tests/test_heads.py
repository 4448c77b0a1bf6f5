"""``ggo.heads``: which heads a config asks for, when a film's target is known, and how a saved
generator names its heads."""

from __future__ import annotations

import pytest

from ggo.heads import head_known, heads_from_layer, output_layer_name, resolve_heads


def test_lung_head_is_shorthand_for_lungs_first_among_the_aux_heads() -> None:
    assert resolve_heads(True) == ("lungs",)
    assert resolve_heads(True, ["heart"]) == ("lungs", "heart")
    assert resolve_heads(True, ["heart", "lungs"]) == ("heart", "lungs")  # already there: order kept
    assert resolve_heads(False, ["devices", "heart"]) == ("devices", "heart")
    assert resolve_heads() == ()


def test_unknown_or_repeated_heads_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match="hearts.*choose from"):
        resolve_heads(False, ["hearts"])
    with pytest.raises(ValueError, match="more than once"):
        resolve_heads(False, ["heart", "heart"])


@pytest.mark.parametrize("heads", [(), ("lungs",), ("heart", "lungs"), ("lungs", "heart", "consolidation", "devices")])
def test_the_output_layer_name_gives_the_heads_back(heads) -> None:
    assert heads_from_layer(output_layer_name(heads), 1 + len(heads)) == heads


def test_models_saved_before_aux_heads_read_as_ggo_or_ggo_and_lungs() -> None:
    assert output_layer_name(("lungs",)) == output_layer_name(()) == "logits"  # the old layout, unchanged
    assert heads_from_layer("logits", 1) == ()
    assert heads_from_layer("logits", 2) == ("lungs",)
    assert heads_from_layer("logits", 3) is None
    assert heads_from_layer("conv2d_7", 1) is None


# (annotated classes, lung sides) -> known per head
CASES = {
    "fully annotated": ({"heart", "airways"}, ("left", "right"), dict(lungs=1, heart=1, airways=1, consolidation=1, devices=1)),
    "one lung side": ({"heart"}, ("right",), dict(lungs=0, heart=1, airways=0, consolidation=1, devices=1)),
    "no heart": (set(), ("left", "right"), dict(lungs=1, heart=0, airways=0, consolidation=0, devices=0)),
    "nothing but devices": ({"devices"}, (), dict(lungs=0, heart=0, airways=0, consolidation=0, devices=1)),
    "probes without a mask": ({"heart"}, ("left", "right"), dict(lungs=1, heart=1, airways=0, consolidation=1, devices=0)),
}


@pytest.mark.parametrize("case", CASES)
def test_a_missing_annotation_is_unknown_or_none_by_class(case: str) -> None:
    annotated, sides, expected = CASES[case]
    unmasked = {"devices"} if case == "probes without a mask" else set()
    assert {h: int(head_known(h, annotated, sides, unmasked)) for h in expected} == expected

"""PatchGAN discriminators: receptive fields, aliases, inputs and outputs."""

import keras
import numpy as np
import pytest

from ggo.models import build_discriminator, receptive_field


@pytest.mark.parametrize("n_layers, expected", [(1, 16), (2, 34), (3, 70), (4, 142)])
def test_receptive_field_matches_pix2pix_n_layer_discriminator(n_layers, expected):
    model = build_discriminator("patchgan", 64, n_layers=n_layers, base_filters=4)
    assert receptive_field(model) == expected


@pytest.mark.parametrize(
    "name, expected", [("patchgan", 70), ("patchgan_small", 34), ("patchgan_large", 142)]
)
def test_named_variants_have_their_documented_receptive_field(name, expected):
    assert receptive_field(build_discriminator(name, 64, base_filters=4)) == expected


def test_receptive_field_is_computed_from_the_conv_layers():
    x = keras.Input((32, 32, 1))
    y = keras.layers.Conv2D(1, 3, strides=2, padding="same")(x)
    y = keras.layers.Conv2D(1, 3, padding="same")(y)
    y = keras.layers.Conv2D(1, 5, dilation_rate=2, padding="same")(y)
    # 1 + 2*1 = 3; + 2*2 = 7; + 4*2*2 = 23
    assert receptive_field(keras.Model(x, y)) == 23


def test_none_discriminator_is_none():
    assert build_discriminator("none", 64) is None


@pytest.mark.parametrize("n_layers", [1, 2, 3, 4])
def test_patchgan_scores_image_mask_pairs_as_float32_patch_logits(n_layers):
    model = build_discriminator("patchgan", 64, n_layers=n_layers, base_filters=4)
    assert len(model.inputs) == 2
    image = np.zeros((2, 64, 64, 1), np.float32)
    mask = np.ones((2, 64, 64, 1), np.float32)
    out = model([image, mask])
    side = 64 // 2**n_layers
    assert tuple(out.shape) == (2, side, side, 1)
    assert keras.backend.standardize_dtype(out.dtype) == "float32"


def test_patchgan_first_layer_has_no_norm_and_filters_are_capped():
    model = build_discriminator("patchgan", 64, n_layers=4, base_filters=4, max_filters=16, norm="instance")
    names = [layer.name for layer in model.layers]
    assert "down0_norm" not in names and "down1_norm" in names
    assert model.get_layer("down0_conv").filters == 4
    assert model.get_layer("down3_conv").filters == 16
    assert model.get_layer("penultimate_conv").filters == 16


def test_alias_with_conflicting_n_layers_is_rejected():
    with pytest.raises(ValueError, match="n_layers=2"):
        build_discriminator("patchgan_small", 64, n_layers=3)


def test_unknown_discriminator_name_lists_valid_names():
    with pytest.raises(ValueError, match="none, patchgan, patchgan_small, patchgan_large"):
        build_discriminator("stylegan", 64)


def test_discriminator_too_deep_for_resolution_is_rejected():
    with pytest.raises(ValueError, match="resolution 8"):
        build_discriminator("patchgan", 8, n_layers=4)

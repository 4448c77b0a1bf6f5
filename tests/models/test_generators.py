"""Generators: shapes, dtypes, options, validation errors, saving."""

import keras
import numpy as np
import pytest

from ggo.models import GENERATORS, build_generator

TINY = dict(depth=3, base_filters=4)


@pytest.mark.parametrize("name", GENERATORS)
@pytest.mark.parametrize("norm", ["batch", "instance", "none"])
@pytest.mark.parametrize("upsampling", ["transpose", "bilinear"])
def test_generator_returns_float32_one_channel_logits_at_input_size(name, norm, upsampling):
    model = build_generator(name, 32, norm=norm, upsampling=upsampling, dropout=0.1, **TINY)
    out = model(np.zeros((2, 32, 32, 1), np.float32), training=False)
    assert model.name == name
    assert tuple(out.shape) == (2, 32, 32, 1)
    assert keras.backend.standardize_dtype(out.dtype) == "float32"


def test_generator_output_is_unbounded_logits_not_probabilities():
    keras.utils.set_random_seed(0)
    model = build_generator("unet", 32, norm="none", **TINY)
    out = np.asarray(model(np.random.default_rng(0).normal(size=(2, 32, 32, 1)).astype("float32")))
    assert model.layers[-1].activation.__name__ == "linear"
    assert out.min() < 0 or out.max() > 1


def test_generator_accepts_any_multiple_of_two_to_the_depth():
    assert build_generator("unet", 48, **TINY).output_shape == (None, 48, 48, 1)
    assert build_generator("unet", 64, depth=4, base_filters=4).output_shape == (None, 64, 64, 1)


def test_generator_takes_multichannel_input():
    model = build_generator("attention_unet", 32, in_channels=3, **TINY)
    assert model.input_shape == (None, 32, 32, 3)
    assert model.output_shape == (None, 32, 32, 1)


def test_depth_too_large_for_resolution_names_resolution_depth_and_valid_sizes():
    with pytest.raises(ValueError) as info:
        build_generator("unet", 64, depth=7, base_filters=4)
    message = str(info.value)
    assert "64" in message and "depth=7" in message and "128" in message
    assert "depth <= 6" in message


def test_resolution_not_a_multiple_suggests_nearest_sizes():
    with pytest.raises(ValueError, match="96 or 112"):
        build_generator("unet", 100, depth=4, base_filters=4)


@pytest.mark.parametrize("depth", [2, 8])
def test_depth_outside_3_to_7_is_rejected(depth):
    with pytest.raises(ValueError, match="depth"):
        build_generator("unet", 256, depth=depth, base_filters=4)


def test_unknown_generator_name_lists_valid_names():
    with pytest.raises(ValueError, match="unet, attention_unet"):
        build_generator("resnet", 64, **TINY)


@pytest.mark.parametrize(
    "option", [{"norm": "layer"}, {"upsampling": "nearest"}, {"dropout": 1.5}, {"max_filters": 2}]
)
def test_invalid_generator_options_are_rejected(option):
    with pytest.raises(ValueError):
        build_generator("unet", 32, **{**TINY, **option})


def test_attention_unet_gates_every_skip_connection():
    model = build_generator("attention_unet", 64, depth=4, base_filters=4)
    gates = [layer for layer in model.layers if layer.name.endswith("_alpha")]
    assert len(gates) == 4
    plain = build_generator("unet", 64, depth=4, base_filters=4)
    assert not [layer for layer in plain.layers if layer.name.endswith("_alpha")]


def test_filters_double_per_level_up_to_max_filters():
    model = build_generator("unet", 64, depth=4, base_filters=4, max_filters=16)
    assert model.get_layer("enc0_1_conv").filters == 4
    assert model.get_layer("enc1_1_conv").filters == 8
    assert model.get_layer("enc3_1_conv").filters == 16
    assert model.get_layer("bottleneck_1_conv").filters == 16


def test_dropout_is_only_in_the_decoder():
    model = build_generator("unet", 32, dropout=0.3, **TINY)
    dropouts = [layer.name for layer in model.layers if isinstance(layer, keras.layers.Dropout)]
    assert dropouts and all(name.startswith("dec") for name in dropouts)
    assert not [
        layer for layer in build_generator("unet", 32, **TINY).layers
        if isinstance(layer, keras.layers.Dropout)
    ]


def test_instance_norm_is_group_norm_with_one_group_per_channel():
    model = build_generator("unet", 32, norm="instance", **TINY)
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.GroupNormalization)]
    # groups=-1 resolves to one group per channel when built.
    assert norms and all(layer.groups == layer.input.shape[-1] for layer in norms)
    x = np.random.default_rng(0).normal(size=(1, 32, 32, 1)).astype("float32")
    # Instance norm: a batch of one gives the same output as the same image inside a batch.
    batch = np.concatenate([x, 5 * x + 3], axis=0)
    np.testing.assert_allclose(model(x)[0], model(batch)[0], atol=1e-4)


def test_generator_saves_and_loads_without_custom_objects(tmp_path):
    model = build_generator("attention_unet", 32, upsampling="bilinear", **TINY)
    path = tmp_path / "generator.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    x = np.random.default_rng(1).normal(size=(2, 32, 32, 1)).astype("float32")
    np.testing.assert_allclose(model(x), loaded(x), atol=1e-5)


@pytest.mark.parametrize("name", ["unet", "attention_unet"])
def test_lung_head_adds_a_second_float32_logit_channel(name):
    model = build_generator(name, 32, **TINY, lung_head=True)
    assert model.output_shape == (None, 32, 32, 2) and model.output.dtype == "float32"

"""Postprocessing and test-time augmentation used by evaluation and the shipped model."""

from __future__ import annotations

import numpy as np
import pytest

from ggo.evaluation.inference import ensemble_probs, predict_probs, sigmoid
from ggo.evaluation.evaluate import choose_min_component, choose_postprocess
from ggo.evaluation.postprocess import candidate_sizes, postprocess_probs, remove_small_components


def test_small_components_are_removed_and_large_ones_kept() -> None:
    mask = np.zeros((32, 32), bool)
    mask[2:4, 2:4] = True  # 4 px speck
    mask[10:20, 10:20] = True  # 100 px lesion
    out = remove_small_components(mask, 5)
    assert not out[2:4, 2:4].any()
    assert out[10:20, 10:20].all()
    assert remove_small_components(mask, 0).sum() == mask.sum()


def test_postprocess_zeroes_the_probabilities_of_removed_components_only() -> None:
    probs = np.full((1, 16, 16, 1), 0.2, np.float32)
    probs[0, 1, 1, 0] = 0.9  # a 1-pixel component
    probs[0, 8:12, 8:12, 0] = 0.8
    out = postprocess_probs(probs, 4)
    assert out[0, 1, 1, 0] == 0.0
    assert np.all(out[0, 8:12, 8:12, 0] == pytest.approx(0.8))
    assert out[0, 0, 0, 0] == pytest.approx(0.2)


def test_min_component_size_is_chosen_to_maximise_validation_dice() -> None:
    truth = np.zeros((4, 64, 64, 1), np.float32)
    truth[:, 20:40, 20:40] = 1
    probs = truth * 0.9
    probs[:, 2:4, 2:4] = 0.9  # specks the truth does not have: removing them helps
    size, scores = choose_min_component([(truth, probs)], 64)
    assert size > 4 and scores[size] > scores[0]
    assert scores[size] == pytest.approx(1.0)
    assert candidate_sizes(64)[0] == 0


def test_threshold_is_chosen_on_validation_with_the_component_size() -> None:
    # An over-confident halo: the truth is a 20x20 square at p=0.9, a 4-px ring around it at 0.45.
    truth = np.zeros((3, 64, 64, 1), np.float32)
    truth[:, 20:40, 20:40] = 1
    probs = np.zeros_like(truth)
    probs[:, 16:44, 16:44] = 0.45
    probs[:, 20:40, 20:40] = 0.9
    probs[:, 2:4, 2:4] = 0.95  # a speck no threshold removes
    t, size, scores = choose_postprocess([(truth, probs)], 64, thresholds=(0.3, 0.5, 0.7))
    assert t in (0.5, 0.7) and t == 0.5  # both drop the halo; the tie keeps the one nearest 0.5
    assert size > 4 and scores[f"0.5/{size}"] == pytest.approx(1.0)
    assert scores["0.3/0"] < scores["0.5/0"] < 1.0  # the halo costs at 0.3, the speck at any size 0
    # With a calibrated halo (the truth really is the larger square) the lower threshold wins.
    truth[:, 16:44, 16:44] = 1
    t, size, _ = choose_postprocess([(truth, probs)], 64, thresholds=(0.3, 0.5, 0.7))
    assert t == 0.3


def test_sigmoid_is_stable_for_extreme_logits() -> None:
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        values = sigmoid(np.array([-1e4, 0.0, 1e4]))
    assert values.tolist() == pytest.approx([0.0, 0.5, 1.0])


def test_flip_tta_averages_the_flipped_back_prediction() -> None:
    def model(x, training=False):  # a deliberately asymmetric "generator": logits grow to the right
        ramp = np.linspace(-3, 3, x.shape[2], dtype=np.float32)[None, None, :, None]
        return np.asarray(x) * 0 + ramp

    images = np.zeros((3, 8, 8, 1), np.float32)
    plain = predict_probs(model, images)
    tta = predict_probs(model, images, tta_flip=True)
    np.testing.assert_allclose(tta, 0.5 * (plain + plain[:, :, ::-1]), atol=1e-6)
    np.testing.assert_allclose(tta, 0.5, atol=1e-6)  # the ramp and its mirror cancel
    np.testing.assert_allclose(ensemble_probs([model, model], images), plain, atol=1e-6)


def test_lung_probs_read_the_second_channel_of_a_lung_head_and_refuse_other_generators() -> None:
    from ggo.evaluation.inference import lung_probs

    images = np.zeros((3, 4, 4, 1), np.float32)
    ggo_logits, lung_logits = np.float32(-3.0), np.float32(2.0)

    def lung_head(x, training=False):
        return np.concatenate([np.full_like(x, ggo_logits), np.full_like(x, lung_logits)], axis=-1)  # (B, H, W, 2)

    np.testing.assert_allclose(lung_probs(lung_head, images, batch_size=2), sigmoid(lung_logits), rtol=1e-6)
    assert lung_probs(lung_head, images).shape == (3, 4, 4, 1)
    with pytest.raises(ValueError, match="gen.lung_head=true"):
        lung_probs(lambda x, training=False: np.zeros_like(x), images)


def test_lung_probs_find_the_lungs_channel_among_auxiliary_heads() -> None:
    import keras

    from ggo.heads import output_layer_name
    from ggo.evaluation.inference import lung_probs

    inputs = keras.Input((4, 4, 1))
    logits = keras.layers.Conv2D(
        3, 1, name=output_layer_name(("heart", "lungs")), kernel_initializer="zeros",
        bias_initializer=keras.initializers.Constant([-3.0, 1.0, 2.0]),
    )(inputs)  # fmt: skip
    model = keras.Model(inputs, logits)  # GGO, heart, lungs: the lungs are the third channel
    np.testing.assert_allclose(lung_probs(model, np.zeros((2, 4, 4, 1), np.float32)), sigmoid(np.float32(2.0)), rtol=1e-5)
    plain = keras.Model(inputs, keras.layers.Conv2D(2, 1, name=output_layer_name(("heart",)))(inputs))
    with pytest.raises(ValueError, match="no lung head"):
        lung_probs(plain, np.zeros((1, 4, 4, 1), np.float32))

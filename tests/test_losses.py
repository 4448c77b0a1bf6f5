"""Losses against hand-computed numpy values."""

import keras
import numpy as np
import pytest

from ggo.training.losses import (
    adversarial_loss,
    bce_from_logits,
    l1_loss,
    segmentation_loss,
    soft_dice_loss,
)


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


Y = np.array([[[[1.0], [0.0]], [[1.0], [0.0]]]], np.float32)  # (1, 2, 2, 1)
LOGITS = np.array([[[[2.0], [-1.0]], [[0.0], [3.0]]]], np.float32)


def test_bce_from_logits_matches_the_definition():
    p = sigmoid(LOGITS.astype(np.float64))
    expected = -np.mean(Y * np.log(p) + (1 - Y) * np.log(1 - p))
    assert float(bce_from_logits(Y, LOGITS)) == pytest.approx(expected, rel=1e-6)


def test_bce_is_finite_and_exact_for_huge_logits():
    y = np.array([1.0, 0.0, 1.0, 0.0], np.float32)
    x = np.array([100.0, -100.0, -100.0, 100.0], np.float32)
    # Two perfect predictions (~0 loss) and two confident mistakes (100 each).
    assert float(bce_from_logits(y, x)) == pytest.approx(50.0, rel=1e-6)


def test_l1_is_mean_absolute_error_of_probabilities():
    expected = np.mean(np.abs(Y - sigmoid(LOGITS)))
    assert float(l1_loss(Y, LOGITS)) == pytest.approx(expected, rel=1e-6)


def test_soft_dice_loss_is_one_minus_mean_per_image_soft_dice():
    y = np.concatenate([Y, 1 - Y])  # (2, 2, 2, 1)
    x = np.concatenate([LOGITS, LOGITS])
    p = sigmoid(x)
    per_image = [
        (2 * np.sum(y[i] * p[i]) + 1.0) / (np.sum(y[i]) + np.sum(p[i]) + 1.0) for i in range(2)
    ]
    assert float(soft_dice_loss(y, x)) == pytest.approx(1 - np.mean(per_image), rel=1e-6)


def test_soft_dice_loss_of_empty_prediction_on_empty_mask_is_zero():
    y = np.zeros((2, 4, 4, 1), np.float32)
    x = np.full((2, 4, 4, 1), -30.0, np.float32)
    assert float(soft_dice_loss(y, x)) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("target_is_real", [True, False])
def test_bce_adversarial_loss_targets_ones_or_zeros(target_is_real):
    x = np.array([[-2.0, 0.5], [1.0, 4.0]], np.float32)
    target = 1.0 if target_is_real else 0.0
    p = sigmoid(x.astype(np.float64))
    expected = -np.mean(target * np.log(p) + (1 - target) * np.log(1 - p))
    assert float(adversarial_loss(x, target_is_real)) == pytest.approx(expected, rel=1e-6)


def test_label_smoothing_softens_only_real_targets():
    x = np.array([0.3, -1.2, 2.0], np.float32)
    p = sigmoid(x.astype(np.float64))
    expected_real = -np.mean(0.9 * np.log(p) + 0.1 * np.log(1 - p))
    assert float(adversarial_loss(x, True, label_smoothing=0.1)) == pytest.approx(expected_real, rel=1e-6)
    assert float(adversarial_loss(x, False, label_smoothing=0.1)) == pytest.approx(
        float(adversarial_loss(x, False)), rel=1e-6
    )


def test_lsgan_loss_is_mean_squared_distance_to_target():
    x = np.array([0.0, 1.0, 3.0], np.float32)
    assert float(adversarial_loss(x, True, mode="lsgan")) == pytest.approx((1 + 0 + 4) / 3)
    assert float(adversarial_loss(x, False, mode="lsgan")) == pytest.approx((0 + 1 + 9) / 3)


def test_segmentation_loss_is_the_weighted_sum_of_unweighted_parts():
    total, parts = segmentation_loss(Y, LOGITS, bce=2.0, l1=100.0, dice=0.5)
    assert set(parts) == {"bce", "l1", "dice_loss"}
    assert float(parts["l1"]) == pytest.approx(float(l1_loss(Y, LOGITS)))
    expected = 2.0 * float(parts["bce"]) + 100.0 * float(parts["l1"]) + 0.5 * float(parts["dice_loss"])
    assert float(total) == pytest.approx(expected, rel=1e-6)


def test_segmentation_loss_default_is_pix2pix_100_l1():
    total, parts = segmentation_loss(Y, LOGITS)
    assert float(total) == pytest.approx(100.0 * float(parts["l1"]), rel=1e-6)


def test_losses_return_float32_for_float16_and_bfloat16_inputs():
    for dtype in ("float16", "bfloat16"):
        x = keras.ops.cast(LOGITS, dtype)
        for value in (
            bce_from_logits(Y, x),
            l1_loss(Y, x),
            soft_dice_loss(Y, x),
            adversarial_loss(x, True),
            segmentation_loss(Y, x)[0],
        ):
            assert keras.backend.standardize_dtype(value.dtype) == "float32"


def test_invalid_loss_arguments_are_rejected():
    with pytest.raises(ValueError, match="bce, lsgan"):
        adversarial_loss(LOGITS, True, mode="wgan")
    with pytest.raises(ValueError, match="label_smoothing"):
        adversarial_loss(LOGITS, True, label_smoothing=1.0)
    with pytest.raises(ValueError, match="l1=-1"):
        segmentation_loss(Y, LOGITS, l1=-1)


def test_lung_loss_counts_only_weighted_images_and_adds_to_the_ggo_loss():
    from ggo.training.losses import heads_loss, lung_loss, segmentation_loss

    rng = np.random.default_rng(0)
    ggo = (rng.random((2, 8, 8, 1)) > 0.5).astype(np.float32)
    lungs = (rng.random((2, 8, 8, 1)) > 0.5).astype(np.float32)
    logits = rng.normal(size=(2, 8, 8, 2)).astype(np.float32)
    weight = np.zeros((2, 8, 8, 1), np.float32)
    weight[0] = 1  # image 1 has no lung annotation
    targets = np.concatenate([ggo, lungs, weight], -1)
    x, y = logits[0, ..., 1], lungs[0, ..., 0]
    expected = np.mean(np.maximum(x, 0) - x * y + np.log1p(np.exp(-np.abs(x))))
    assert float(lung_loss(targets, logits)) == pytest.approx(expected, rel=1e-5)
    changed = targets.copy()
    changed[1, ..., 1] = 1 - changed[1, ..., 1]  # image 1's (unweighted) lungs do not matter
    assert float(lung_loss(changed, logits)) == pytest.approx(expected, rel=1e-5)
    assert float(lung_loss(np.concatenate([ggo, lungs, 0 * weight], -1), logits)) == 0.0

    total, parts = heads_loss(targets, logits, l1=100.0, dice=1.0, lung=10.0)
    seg, _ = segmentation_loss(ggo, logits[..., :1], l1=100.0, dice=1.0)
    assert float(total) == pytest.approx(float(seg) + 10.0 * expected, rel=1e-5)
    one_total, one_parts = heads_loss(ggo, logits[..., :1], l1=100.0, dice=1.0, lung=10.0)
    assert float(one_total) == pytest.approx(float(seg), rel=1e-6) and float(one_parts["lung"]) == 0.0
    with pytest.raises(ValueError, match="3\\) targets"):
        heads_loss(ggo, logits, lung=1.0)


def test_each_aux_head_adds_its_own_weighted_bce_in_channel_order():
    from ggo.training.losses import head_loss, heads_loss, segmentation_loss

    rng = np.random.default_rng(1)
    ggo, heart, lungs = ((rng.random((3, 8, 8, 1)) > 0.5).astype(np.float32) for _ in range(3))
    logits = rng.normal(size=(3, 8, 8, 3)).astype(np.float32)  # GGO, heart, lungs
    heart_w, lung_w = np.ones_like(ggo), np.ones_like(ggo)
    heart_w[2] = 0  # film 2: heart unknown
    lung_w[0] = 0  # film 0: lungs unknown
    targets = np.concatenate([ggo, heart, heart_w, lungs, lung_w], -1)

    def bce(x, y):
        return np.mean(np.maximum(x, 0) - x * y + np.log1p(np.exp(-np.abs(x))))

    heart_expected = bce(logits[:2, ..., 1], heart[:2, ..., 0])  # films 0 and 1
    lung_expected = bce(logits[1:, ..., 2], lungs[1:, ..., 0])  # films 1 and 2
    assert float(head_loss(targets, logits, 1)) == pytest.approx(heart_expected, rel=1e-5)
    assert float(head_loss(targets, logits, 2)) == pytest.approx(lung_expected, rel=1e-5)
    total, parts = heads_loss(targets, logits, l1=100.0, lung=10.0, aux={"heart": 3.0}, heads=("heart", "lungs"))
    seg, _ = segmentation_loss(ggo, logits[..., :1], l1=100.0)
    assert float(parts["heart"]) == pytest.approx(heart_expected, rel=1e-5)
    assert float(parts["lung"]) == pytest.approx(lung_expected, rel=1e-5)
    assert float(total) == pytest.approx(float(seg) + 3.0 * heart_expected + 10.0 * lung_expected, rel=1e-5)
    with pytest.raises(ValueError, match="no loss weight for head 'heart'"):
        heads_loss(targets, logits, lung=1.0, heads=("heart", "lungs"))
    with pytest.raises(ValueError, match="5\\) targets"):
        heads_loss(targets[..., :3], logits, aux={"heart": 1.0}, heads=("heart", "lungs"))

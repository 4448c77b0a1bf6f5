"""Metrics as the evaluation protocol (docs/evaluation.md) defines them, against hand counts."""

import numpy as np
import pytest

from ggo.evaluation.metrics import (
    METRIC_NAMES,
    SegmentationMetrics,
    dice,
    dice_pooled,
    evaluate,
    iou,
    precision,
    recall,
    specificity,
)


def masks(*rows):
    """(N, H, W, 1) float32 from nested lists of 0/1."""
    return np.asarray(rows, np.float32)[..., None]


# Image 0: truth 4 px, prediction finds 2 of them and adds 1 false positive.
# Image 1: truth empty, prediction empty.
TRUTH = masks(
    [[1, 1, 0, 0], [1, 1, 0, 0]],
    [[0, 0, 0, 0], [0, 0, 0, 0]],
)
PROB = masks(
    [[0.9, 0.2, 0.0, 0.7], [0.6, 0.1, 0.0, 0.0]],
    [[0.1, 0.0, 0.4, 0.0], [0.0, 0.0, 0.0, 0.2]],
)
# Pooled counts: TP 2, FP 1, FN 2, TN 11 (16 px).
TP, FP, FN, TN = 2, 1, 2, 11


def test_per_image_dice_averages_images_and_scores_empty_pairs_one():
    per_image = [2 * TP / (2 * TP + FP + FN), 1.0]
    assert float(dice(TRUTH, PROB)) == pytest.approx(np.mean(per_image))


def test_pooled_dice_differs_from_per_image_dice_on_crafted_set():
    pooled = 2 * TP / (2 * TP + FP + FN)
    assert float(dice_pooled(TRUTH, PROB)) == pytest.approx(pooled)
    assert float(dice(TRUTH, PROB)) != pytest.approx(pooled)


def test_pooled_metrics_match_hand_counts():
    assert float(iou(TRUTH, PROB)) == pytest.approx(TP / (TP + FP + FN))
    assert float(precision(TRUTH, PROB)) == pytest.approx(TP / (TP + FP))
    assert float(recall(TRUTH, PROB)) == pytest.approx(TP / (TP + FN))
    assert float(specificity(TRUTH, PROB)) == pytest.approx(TN / (TN + FP))


def test_empty_prediction_and_empty_truth_score_one_everywhere():
    empty = np.zeros((3, 4, 4, 1), np.float32)
    result = evaluate(empty, empty)
    assert result["dice"] == 1.0 and result["dice_pooled"] == 1.0
    assert result["iou"] == 1.0 and result["precision"] == 1.0
    assert result["recall"] == 1.0 and result["specificity"] == 1.0


def test_empty_prediction_on_lesions_scores_zero_precision_and_recall():
    result = evaluate(TRUTH[:1], np.zeros_like(TRUTH[:1]))
    assert result["precision"] == 0.0 and result["recall"] == 0.0 and result["dice"] == 0.0
    assert result["specificity"] == 1.0


def test_threshold_is_strict_so_probability_one_half_is_negative():
    truth = np.ones((1, 1, 2, 1), np.float32)
    prob = np.array([[[[0.5], [0.5001]]]], np.float32)
    assert float(recall(truth, prob)) == pytest.approx(0.5)


def test_stateful_metric_over_batches_equals_whole_set_scores():
    rng = np.random.default_rng(0)
    truth = (rng.random((6, 8, 8, 1)) > 0.7).astype(np.float32)
    truth[2] = 0  # an image without lesion
    prob = rng.random((6, 8, 8, 1)).astype(np.float32)
    prob[2] = 0
    metric = SegmentationMetrics(from_logits=False)
    for start in (0, 1, 4):  # uneven batches: 1, 3, 2 images
        stop = {0: 1, 1: 4, 4: 6}[start]
        metric.update_state(truth[start:stop], prob[start:stop])
    result = {k: float(v) for k, v in metric.result().items()}
    assert set(result) == set(METRIC_NAMES)
    for name, fn in [("dice", dice), ("dice_pooled", dice_pooled), ("iou", iou),
                     ("precision", precision), ("recall", recall), ("specificity", specificity)]:
        assert result[name] == pytest.approx(float(fn(truth, prob)), rel=1e-6), name
    # Averaging per-batch pooled dice is NOT the set's pooled dice: accumulation matters.
    batch_means = np.mean([float(dice_pooled(truth[a:b], prob[a:b])) for a, b in ((0, 1), (1, 4), (4, 6))])
    assert batch_means != pytest.approx(result["dice_pooled"], rel=1e-3)


def test_stateful_metric_from_logits_thresholds_at_logit_zero_and_resets():
    truth = masks([[1, 1, 0, 0]])
    logits = masks([[3.0, -3.0, 2.0, -2.0]])
    metric = SegmentationMetrics()  # from_logits=True
    metric.update_state(truth, logits)
    assert float(metric.result()["dice"]) == pytest.approx(0.5)
    metric.reset_state()
    assert float(metric.result()["dice"]) == 0.0
    metric.update_state(truth, masks([[5.0, 5.0, -5.0, -5.0]]))
    assert float(metric.result()["dice"]) == 1.0


def test_evaluate_returns_python_floats_for_every_metric_and_accepts_nhw_arrays():
    result = evaluate(TRUTH[..., 0], PROB[..., 0], batch_size=1)
    assert list(result) == list(METRIC_NAMES)
    assert all(isinstance(v, float) for v in result.values())
    assert result["dice"] == pytest.approx(float(dice(TRUTH, PROB)))


def test_evaluate_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="shape"):
        evaluate(TRUTH, PROB[:1])

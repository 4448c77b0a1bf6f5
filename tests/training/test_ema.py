"""BatchNorm statistics for averaged weights (ggo.training.ema): known answers on a tiny model."""

from __future__ import annotations

import keras
import numpy as np

from ggo.training.numpy_pipeline import make_dataset as array_dataset
from ggo.training.pipeline import make_dataset as tf_dataset
from ggo.training.ema import batchnorm_layers, batchnorm_statistics, reestimate_batchnorm, training_batches


def _scaled_batchnorm(scale: float = 3.0) -> keras.Model:
    """x -> BatchNorm(scale * x), the scale a weight, as in a conv layer before its norm."""
    inputs = keras.Input((2,))
    x = keras.layers.Dense(2, use_bias=False, kernel_initializer=keras.initializers.Constant(np.eye(2) * scale))(inputs)
    nested = keras.Sequential([keras.Input((2,)), keras.layers.BatchNormalization(momentum=0.9)])
    return keras.Model(inputs, nested(x))


def test_reestimated_statistics_are_the_average_of_the_batch_statistics_for_the_weights_in_the_model():
    rng = np.random.default_rng(0)
    batches = [rng.normal(loc, 1.0 + loc, (16, 2)).astype("float32") for loc in (0.0, 1.0, 2.0, 5.0)]
    model = _scaled_batchnorm(3.0)
    layers = batchnorm_layers(model)
    assert len(layers) == 1  # found inside the nested model
    assert reestimate_batchnorm(model, [(b, None) for b in batches]) == 4
    mean, var = batchnorm_statistics(layers)
    np.testing.assert_allclose(mean, np.mean([(3 * b).mean(0) for b in batches], axis=0), rtol=1e-5)
    np.testing.assert_allclose(var, np.mean([(3 * b).var(0) for b in batches], axis=0), rtol=1e-4)
    assert layers[0].momentum == 0.9  # the layer's own momentum is back
    # inference now normalises data like the batches: mean ~0, std ~1 over all of them
    out = np.asarray(model(np.concatenate(batches), training=False))
    assert abs(out.mean()) < 0.05 and 0.8 < out.std() < 1.3


def test_reestimation_without_batches_or_batchnorm_changes_nothing():
    model = _scaled_batchnorm()
    before = batchnorm_statistics(batchnorm_layers(model))
    assert reestimate_batchnorm(model, []) == 0
    for a, b in zip(before, batchnorm_statistics(batchnorm_layers(model))):
        np.testing.assert_array_equal(a, b)
    plain = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    assert batchnorm_layers(plain) == [] and reestimate_batchnorm(plain, [np.ones((4, 2))]) == 0


def test_training_batches_reads_datasets_iterables_and_arrays_up_to_the_limit():
    images, masks = np.zeros((10, 8, 8, 1), "float32"), np.zeros((10, 8, 8, 1), "float32")
    for ds in (array_dataset(images, masks, batch_size=4), tf_dataset(images, masks, batch_size=4)):
        assert [b[0].shape[0] for b in training_batches(ds, 64)] == [4, 4, 2]
        assert len(list(training_batches(ds, 2))) == 2
    assert [b.shape[0] for b in training_batches(images, 64, batch_size=3)] == [3, 3, 3, 1]
    assert len(list(training_batches(images, 2, batch_size=3))) == 2
    assert len(list(training_batches(iter([1, 2, 3]), 2))) == 2

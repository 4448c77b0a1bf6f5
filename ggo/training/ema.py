"""The generator's weight average during ``fit``, and the BatchNorm statistics that go with it.

An exponential moving average of the weights (``use_ema=True`` on the generator's optimizer)
averages the trainable weights only. A BatchNorm layer's moving mean and variance are not
trainable: they describe the activations of the *raw* network, and the averaged weights produce
different ones. Running the average on the raw network's statistics can ruin it (on the
champion recipe its val/dice fell to ~0 while the raw network learned). So, like PyTorch's
``torch.optim.swa_utils.update_bn``, :func:`reestimate_batchnorm` recomputes the statistics for
the weights in the model with one pass over training batches, and :class:`GeneratorEMA` does
that whenever it swaps the average in after new training steps.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import keras
import numpy as np


def batchnorm_layers(model: keras.Model) -> list[keras.layers.BatchNormalization]:
    """The model's BatchNormalization layers, those of nested models included, each once."""
    found: list[keras.layers.BatchNormalization] = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            found.append(layer)
        elif hasattr(layer, "layers"):
            found.extend(batchnorm_layers(layer))
    return list({id(layer): layer for layer in found}.values())


def _statistic_variables(layers: list[keras.layers.BatchNormalization]) -> list[Any]:
    return [v for layer in layers for v in (layer.moving_mean, layer.moving_variance)]


def batchnorm_statistics(layers: list[keras.layers.BatchNormalization]) -> list[np.ndarray]:
    """Copies of the layers' moving means and variances, in order."""
    return [np.array(v) for v in _statistic_variables(layers)]


def set_batchnorm_statistics(layers: list[keras.layers.BatchNormalization], values: list[np.ndarray]) -> None:
    """Inverse of :func:`batchnorm_statistics`."""
    for variable, value in zip(_statistic_variables(layers), values, strict=True):
        variable.assign(value)


def reestimate_batchnorm(model: keras.Model, batches: Iterable[Any]) -> int:
    """Recompute every BatchNorm layer's moving mean and variance for the weights now in ``model``.

    The statistics become the plain average of the batch statistics over ``batches`` (model
    inputs, or ``(inputs, targets)`` tuples), computed by forward passes in training mode, as
    ``torch.optim.swa_utils.update_bn`` does; the weights do not change. Returns the number of
    batches used (0: no BatchNorm layer, or no batch; then nothing changed).
    """
    layers = batchnorm_layers(model)
    if not layers:
        return 0
    momenta = [layer.momentum for layer in layers]
    n = 0
    try:
        for batch in batches:
            inputs = batch[0] if isinstance(batch, (tuple, list)) else batch
            n += 1
            for layer in layers:  # new = old * (n-1)/n + batch / n: the running plain average
                layer.momentum = (n - 1) / n
            model(inputs, training=True)
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
    return n


def training_batches(data: Any, limit: int, batch_size: int = 32) -> Iterator[Any]:
    """Up to ``limit`` batches of what ``fit`` trains on: a ``keras.utils.PyDataset``, a
    ``tf.data.Dataset`` or any iterable of batches, or an array of inputs (cut into ``batch_size``)."""
    if isinstance(data, np.ndarray):
        for start in range(0, min(len(data), limit * batch_size), batch_size):
            yield data[start : start + batch_size]
    elif isinstance(data, keras.utils.PyDataset):
        for index in range(min(len(data), limit)):
            yield data[index]
    else:
        for index, batch in enumerate(data):
            if index >= limit:
                break
            yield batch


class GeneratorEMA(keras.callbacks.SwapEMAWeights):
    """Keras' ``SwapEMAWeights(swap_on_epoch=True)`` for a GAN whose generator optimizer has
    ``use_ema=True``: the generator's exponential moving average (kept by that optimizer, updated
    after every generator step) is what validation scores and what the ``on_epoch_end`` callbacks
    after this one see (the best-epoch copy, checkpoints, overlays); training continues from the
    raw weights at the next epoch. :meth:`GANBase.fit <ggo.training.gan_base.GANBase.fit>` puts
    it first in the callback list.

    BatchNorm: when the averaged weights come in after new training steps, their moving
    statistics are re-estimated (:func:`reestimate_batchnorm`) over up to ``bn_batches`` batches
    of ``bn_data`` (the training data); the raw network's statistics come back with the raw
    weights. Without ``bn_data`` the average runs on the raw network's statistics.

    At the end of ``fit`` the generator holds the averaged weights and their statistics (as
    Keras' own ``finalize_variable_values`` leaves a model), also when early stopping ends it
    before the last epoch.
    """

    def __init__(self, generator: keras.Model | None = None, bn_data: Any = None, bn_batches: int = 64) -> None:
        super().__init__(swap_on_epoch=True)
        self.bn_layers = batchnorm_layers(generator) if generator is not None and bn_data is not None else []
        self.generator, self.bn_data, self.bn_batches = generator, bn_data, int(bn_batches)
        self._raw_stats: list[np.ndarray] | None = None
        self._average_stats: tuple[int, list[np.ndarray]] | None = None  # (optimizer step, statistics)

    def _optimizer_step(self) -> int:
        optimizer = getattr(self.model.optimizer, "inner_optimizer", self.model.optimizer)
        return int(optimizer.iterations)

    def _swap_variables(self) -> None:
        super()._swap_variables()
        if not self.bn_layers:
            return
        if not self._ema_weights_in_model:  # the average just came in (the caller flips the flag after)
            self._raw_stats = batchnorm_statistics(self.bn_layers)
            step = self._optimizer_step()
            if self._average_stats is not None and self._average_stats[0] == step:
                set_batchnorm_statistics(self.bn_layers, self._average_stats[1])
            else:
                reestimate_batchnorm(self.generator, training_batches(self.bn_data, self.bn_batches))
                self._average_stats = (step, batchnorm_statistics(self.bn_layers))
        elif self._raw_stats is not None:  # the raw weights just came back
            set_batchnorm_statistics(self.bn_layers, self._raw_stats)

    def on_train_end(self, logs: dict | None = None) -> None:
        if not self._ema_weights_in_model and self._optimizer_step() > 0:
            self._swap_variables()  # no epoch completed: the averages go in now
            self._ema_weights_in_model = True
        if self._ema_weights_in_model:
            self._finalize_ema_values()  # averages := the weights now in the model (the averages)
            self._ema_weights_in_model = False  # nothing left to swap back


__all__ = [
    "GeneratorEMA",
    "batchnorm_layers",
    "batchnorm_statistics",
    "reestimate_batchnorm",
    "set_batchnorm_statistics",
    "training_batches",
]

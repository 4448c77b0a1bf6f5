"""Training callbacks."""

from __future__ import annotations

import math

import keras
import numpy as np


class NonFiniteLossError(RuntimeError):
    """A loss became NaN or infinite during training."""


class RaiseOnNonFinite(keras.callbacks.Callback):
    """Stop training with ``NonFiniteLossError`` as soon as a logged value is NaN or Inf.

    Unlike ``keras.callbacks.TerminateOnNaN``, which ends ``fit`` quietly, this raises, so a run
    (or a sweep job) is recorded as failed with the reason. It checks the logs after every
    training batch and at the end of every epoch (where validation values are included).

    Args:
        keys: the log keys to watch; None watches every numeric value.
    """

    def __init__(self, keys: tuple[str, ...] | None = None):
        super().__init__()
        self.keys = tuple(keys) if keys is not None else None
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def _check(self, logs, where: str):
        if not logs:
            return
        bad = []
        for key, value in logs.items():
            if self.keys is not None and key not in self.keys:
                continue
            try:
                number = float(np.asarray(value))
            except (TypeError, ValueError):
                continue
            if not math.isfinite(number):
                bad.append((key, number))
        if bad:
            key, number = bad[0]
            others = ", ".join(f"{k}={v}" for k, v in bad[1:])
            raise NonFiniteLossError(
                f"Non-finite {key}={number} at epoch {self._epoch}, {where}"
                + (f" (also {others})" if others else "")
                + ". Training diverged: lower the learning rate, or use precision float32 "
                "if it runs in mixed precision; check the inputs for NaN/Inf values."
            )

    def on_train_batch_end(self, batch, logs=None):
        self._check(logs, f"batch {batch}")

    def on_epoch_end(self, epoch, logs=None):
        self._check(logs, "epoch end")


__all__ = ["NonFiniteLossError", "RaiseOnNonFinite"]

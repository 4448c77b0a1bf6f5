"""Learning-rate schedules: constant, cosine and step decay, each with optional linear warmup."""

from __future__ import annotations

import keras
from keras import ops

SCHEDULES = ("constant", "cosine", "step")


@keras.saving.register_keras_serializable(package="ggo")
class WarmupThen(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warmup from ``peak / warmup_steps`` to ``peak`` over ``warmup_steps`` steps, then
    ``after`` (a float or a schedule) evaluated at ``step - warmup_steps``."""

    def __init__(self, peak: float, warmup_steps: int, after):
        self.peak = float(peak)
        self.warmup_steps = int(warmup_steps)
        self.after = after

    def __call__(self, step):
        step = ops.cast(step, "float32")
        warm = self.peak * (step + 1.0) / float(max(self.warmup_steps, 1))
        if callable(self.after):
            rest = self.after(ops.maximum(step - self.warmup_steps, 0.0))
        else:
            rest = ops.convert_to_tensor(float(self.after), "float32")
        return ops.where(step < self.warmup_steps, warm, ops.cast(rest, "float32"))

    def get_config(self):
        after = self.after
        if isinstance(after, keras.optimizers.schedules.LearningRateSchedule):
            after = keras.saving.serialize_keras_object(after)
        return {"peak": self.peak, "warmup_steps": self.warmup_steps, "after": after}

    @classmethod
    def from_config(cls, config):
        after = config["after"]
        if isinstance(after, dict):
            after = keras.saving.deserialize_keras_object(after)
        return cls(config["peak"], config["warmup_steps"], after)


def make_schedule(
    lr: float,
    kind: str = "constant",
    total_steps: int | None = None,
    warmup_steps: int = 0,
    *,
    step_boundaries: tuple[float, ...] = (0.5, 0.75),
    step_factor: float = 0.1,
):
    """A learning rate for a Keras optimizer.

    Args:
        lr: peak learning rate.
        kind: ``constant``; ``cosine`` (cosine decay to 0 over the steps after warmup); ``step``
            (multiply by ``step_factor`` at each fraction ``step_boundaries`` of the steps after
            warmup: by default x0.1 at 50% and x0.01 at 75%).
        total_steps: optimizer steps of the whole training (epochs x steps per epoch); needed for
            ``cosine`` and ``step``.
        warmup_steps: linear warmup steps before the schedule starts.

    Returns:
        ``lr`` itself for a constant rate without warmup, else a ``LearningRateSchedule``.
    """
    if kind not in SCHEDULES:
        raise ValueError(f"Unknown learning-rate schedule {kind!r}; valid: {', '.join(SCHEDULES)}")
    if lr <= 0:
        raise ValueError(f"Learning rate must be > 0, got {lr}")
    if warmup_steps < 0:
        raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps}")
    if kind != "constant":
        if total_steps is None or total_steps <= warmup_steps:
            raise ValueError(
                f"Schedule {kind!r} needs total_steps > warmup_steps, got total_steps={total_steps}, "
                f"warmup_steps={warmup_steps}"
            )
    if kind == "constant":
        after = float(lr)
    elif kind == "cosine":
        after = keras.optimizers.schedules.CosineDecay(lr, decay_steps=total_steps - warmup_steps)
    else:
        decay_steps = total_steps - warmup_steps
        boundaries = [max(1, int(round(f * decay_steps))) for f in step_boundaries]
        values = [lr * step_factor**i for i in range(len(boundaries) + 1)]
        after = keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)
    if warmup_steps == 0:
        return after
    return WarmupThen(lr, warmup_steps, after)


__all__ = ["SCHEDULES", "WarmupThen", "make_schedule"]

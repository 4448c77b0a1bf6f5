"""Training callbacks: stop on a non-finite loss, keep the best generator, log every epoch."""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

import keras
import numpy as np
from tqdm.auto import tqdm

if TYPE_CHECKING:
    from ggo.tracking import Tracker

# Keras log keys of the GAN model -> our metric names (``val_`` prefix -> ``val/``).
_SHOW = ("g_loss", "d_loss", "dice", "val_dice")


def metric_name(keras_key: str) -> str:
    """``val_dice`` -> ``val/dice``; ``g_loss`` -> ``train/g_loss``."""
    if keras_key.startswith("val_"):
        return "val/" + keras_key[4:]
    return "train/" + keras_key


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


def validation_epochs(initial_epoch: int, epochs: int, val_every: int) -> list[int]:
    """The 1-based epochs ``fit`` validates at (its ``validation_freq``): every ``val_every``-th
    epoch and always the last one, for a fit running epochs ``initial_epoch + 1`` .. ``epochs``."""
    if val_every < 1:
        raise ValueError(f"val_every must be >= 1, got {val_every}")
    return [e for e in range(initial_epoch + 1, epochs + 1) if e % val_every == 0 or e == epochs]


class EarlyStoppingOnValidation(keras.callbacks.EarlyStopping):
    """``EarlyStopping`` on ``val_dice`` (max) whose patience counts EPOCHS when validation is
    sparse (``val_every`` > 1): training stops after ``ceil(patience_epochs / val_every)``
    validations without improvement. Epochs without validation are skipped silently."""

    def __init__(self, patience_epochs: int, val_every: int = 1, monitor: str = "val_dice") -> None:
        super().__init__(monitor=monitor, mode="max", patience=math.ceil(patience_epochs / max(1, val_every)))

    def get_monitor_value(self, logs):
        return (logs or {}).get(self.monitor)


class BestGenerator(keras.callbacks.Callback):
    """Keeps the generator weights of the best ``val_dice`` epoch in memory; :meth:`restore` puts them back."""

    def __init__(self, generator: Any) -> None:
        super().__init__()
        self.generator = generator
        self.best = -math.inf
        self.best_epoch = 0
        self.weights: list[np.ndarray] | None = None

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        value = float((logs or {}).get("val_dice", float("nan")))
        if math.isfinite(value) and value > self.best:
            self.best, self.best_epoch = value, epoch + 1
            self.weights = [np.array(w) for w in self.generator.get_weights()]

    def restore(self) -> None:
        if self.weights is not None:
            self.generator.set_weights(self.weights)


class EpochLogger(keras.callbacks.Callback):
    """Per-epoch tracking and progress: metrics as ``split/name``, val overlays, a bar and a line."""

    def __init__(
        self, tracker: Tracker, *, epochs: int, steps: int, images: np.ndarray, masks: np.ndarray, image_every: int,
        lung_gate: str | None = None,
    ) -> None:  # fmt: skip
        super().__init__()
        self.tracker, self.epochs, self.steps, self.lung_gate = tracker, epochs, steps, lung_gate
        self.images, self.masks, self.image_every = images, masks, max(1, image_every)
        self.history: dict[str, list[float]] = {}
        self.epochs_run = 0
        self.bar: Any = None
        self.started = 0.0
        self.best = -math.inf
        self.last_image_step = 0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.started = time.perf_counter()
        self.bar = tqdm(total=self.steps, desc=f"epoch {epoch + 1}/{self.epochs}", leave=False, unit="batch", disable=None)

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if self.bar is not None:
            self.bar.update(1)
            logs = logs or {}
            self.bar.set_postfix({k: f"{float(logs[k]):.3f}" for k in ("g_loss", "dice") if k in logs})

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if self.bar is not None:
            self.bar.close()
        logs = logs or {}
        step = epoch + 1
        self.epochs_run = step
        metrics = {metric_name(k): float(v) for k, v in logs.items() if np.ndim(v) == 0}
        metrics["train/epoch_seconds"] = time.perf_counter() - self.started
        self._record(metrics)
        self.tracker.log_metrics(metrics, step=step)
        self.tracker.heartbeat()
        val = metrics.get("val/dice", float("nan"))
        mark = ""
        if math.isfinite(val) and val > self.best:
            self.best, mark = val, "  *best"
        shown = "  ".join(f"{metric_name(k)} {float(logs[k]):.4f}" for k in _SHOW if k in logs)
        print(f"epoch {step:3d}/{self.epochs}  {shown}  ({metrics['train/epoch_seconds']:.1f}s){mark}", flush=True)
        if len(self.images) and (step == 1 or step % self.image_every == 0):
            self.log_overlays(step)

    def _record(self, metrics: dict[str, float]) -> None:
        """Append one entry per series for this epoch: NaN where the epoch has no value (no
        validation that epoch, with ``val_every`` > 1), so every series has one entry per epoch."""
        done = max((len(v) for v in self.history.values()), default=0)  # epochs recorded before
        for k in metrics.keys() | self.history.keys():
            series = self.history.setdefault(k, [])
            series.extend([math.nan] * (done - len(series)))
            series.append(metrics.get(k, math.nan))

    def on_train_end(self, logs: dict | None = None) -> None:
        if len(self.images) and self.epochs_run and self.last_image_step != self.epochs_run:
            self.log_overlays(self.epochs_run)

    def log_overlays(self, step: int, tag: str = "") -> None:
        """Input | truth | prediction | both, for the fixed val images, at ``step``."""
        from ggo.evaluation.inference import predict_probs
        from ggo.evaluation.viz import overlay_grid

        gate = {"lung_gate": self.lung_gate} if self.lung_gate else {}
        probs = predict_probs(self.model.generator, self.images, **gate)
        key = "val_overlays" + (f"_{tag}" if tag else "")
        self.tracker.log_image(overlay_grid(self.images, self.masks, probs), key=key, step=step)
        self.last_image_step = step


__all__ = [
    "BestGenerator",
    "EarlyStoppingOnValidation",
    "EpochLogger",
    "NonFiniteLossError",
    "RaiseOnNonFinite",
    "metric_name",
    "validation_epochs",
]

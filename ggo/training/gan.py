"""The adversarial segmentation model: a ``keras.Model`` owning a generator and a discriminator.

Follows keras-io's ``dcgan_overriding_train_step``: ``compile`` takes one optimizer per network
and the loss weights, ``train_step`` does the discriminator steps then the generator step with
``tf.GradientTape``, and every loss and segmentation metric is a Keras metric behind the
``metrics`` property. So ``fit``, ``evaluate``, ``predict``, ``EarlyStopping(monitor="val_dice")``
and ``ModelCheckpoint`` work unchanged.

With ``discriminator=None`` the generator trains on its segmentation loss alone (the supervised
baseline every adversarial result is compared with); ``d_loss`` and ``adv`` are then logged as 0
so every run has the same keys.

The update order per batch is pix2pix's: one generator forward pass; ``d_steps`` discriminator
updates on (image, truth) vs (image, detached prediction); then the generator update through
the UPDATED discriminator (non-saturating adversarial loss) plus the weighted segmentation loss.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops

from ggo.losses import ADVERSARIAL_MODES, adversarial_loss, segmentation_loss
from ggo.metrics import SegmentationMetrics
from ggo.training.callbacks import RaiseOnNonFinite

LOSS_NAMES = ("g_loss", "d_loss", "adv", "l1", "bce", "dice_loss")


def _uses_float16(model: keras.Model | None) -> bool:
    if model is None:
        return False
    return any(layer.compute_dtype == "float16" for layer in model.layers)


@keras.saving.register_keras_serializable(package="ggo")
class GAN(keras.Model):
    """Conditional GAN for segmentation (pix2pix style), or a plain supervised generator.

    Args:
        generator: model mapping images (B, R, R, C) to mask logits (B, R, R, 1).
        discriminator: model mapping ``[image, mask]`` to patch logits, or None for
            supervised-only training.

    ``gan(images)`` and ``gan.predict(...)`` return the generator's logits (apply a sigmoid for
    probabilities). Save the generator alone with ``gan.generator.save("generator.keras")``.

    Logged metrics (``val_`` prefixed on validation data): ``g_loss`` (the total generator
    loss), ``d_loss``, ``adv`` (the generator's adversarial term, unweighted), ``l1``, ``bce``,
    ``dice_loss`` (unweighted segmentation terms), and ``dice``, ``dice_pooled``, ``iou``,
    ``precision``, ``recall``, ``specificity`` accumulated over the epoch at threshold 0.5.
    """

    def __init__(self, generator: keras.Model, discriminator: keras.Model | None = None, **kwargs):
        kwargs.setdefault("name", "gan")
        super().__init__(**kwargs)
        self.generator = generator
        self.discriminator = discriminator
        self.loss_trackers = {name: keras.metrics.Mean(name=name) for name in LOSS_NAMES}
        self.segmentation_metrics = SegmentationMetrics(name="segmentation", from_logits=True)
        self.g_optimizer = None
        self.d_optimizer = None
        # The sub-models are built functional models, so the GAN is built too (saving and
        # checkpoints need ``built`` before the first call).
        self.built = True

    # ---------------------------------------------------------------- compile
    def compile(
        self,
        g_optimizer: keras.optimizers.Optimizer,
        d_optimizer: keras.optimizers.Optimizer | None = None,
        *,
        adversarial_weight: float = 1.0,
        l1_weight: float = 100.0,
        bce_weight: float = 0.0,
        dice_weight: float = 0.0,
        adversarial_mode: str = "bce",
        label_smoothing: float = 0.0,
        d_steps: int = 1,
        jit_compile: bool = False,
        raise_on_non_finite: bool = True,
        **kwargs,
    ):
        """Configure training.

        Args:
            g_optimizer: generator optimizer. Wrapped in ``keras.optimizers.LossScaleOptimizer``
                automatically when the model computes in float16 (``mixed_float16``).
            d_optimizer: discriminator optimizer; required with a discriminator, ignored without.
            adversarial_weight: weight of the generator's adversarial term.
            l1_weight, bce_weight, dice_weight: segmentation loss weights (pix2pix: L1 100).
            adversarial_mode: ``bce`` or ``lsgan``.
            label_smoothing: one-sided smoothing of D's real targets (1 -> 1 - s).
            d_steps: discriminator updates per generator update (on the same batch).
            jit_compile: compile the train step with XLA.
            raise_on_non_finite: ``fit`` adds a ``RaiseOnNonFinite`` callback unless one is
                given, so a NaN/Inf loss stops training with ``NonFiniteLossError``.
            **kwargs: passed to ``keras.Model.compile`` (e.g. ``steps_per_execution``).
        """
        if adversarial_mode not in ADVERSARIAL_MODES:
            raise ValueError(
                f"Unknown adversarial_mode {adversarial_mode!r}; valid: {', '.join(ADVERSARIAL_MODES)}"
            )
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        if int(d_steps) < 1:
            raise ValueError(f"d_steps must be >= 1, got {d_steps}")
        for term, weight in (
            ("adversarial_weight", adversarial_weight),
            ("l1_weight", l1_weight),
            ("bce_weight", bce_weight),
            ("dice_weight", dice_weight),
        ):
            if weight < 0:
                raise ValueError(f"{term} must be >= 0, got {weight}")
        if self.discriminator is not None and d_optimizer is None:
            raise ValueError("A GAN with a discriminator needs d_optimizer")
        if d_optimizer is not None and d_optimizer is g_optimizer:
            raise ValueError("g_optimizer and d_optimizer must be different optimizer objects")
        if any(k in kwargs for k in ("loss", "metrics", "optimizer")):
            raise ValueError("GAN.compile takes g_optimizer/d_optimizer and loss weights, not "
                             "optimizer/loss/metrics")

        super().compile(jit_compile=jit_compile, **kwargs)
        self.adversarial_weight = float(adversarial_weight)
        self.l1_weight = float(l1_weight)
        self.bce_weight = float(bce_weight)
        self.dice_weight = float(dice_weight)
        self.adversarial_mode = adversarial_mode
        self.label_smoothing = float(label_smoothing)
        self.d_steps = int(d_steps)
        self.raise_on_non_finite = bool(raise_on_non_finite)

        loss_scaling = _uses_float16(self.generator) or (
            keras.mixed_precision.global_policy().name == "mixed_float16"
        )
        self.g_optimizer = self._prepare_optimizer(g_optimizer, self.generator, loss_scaling)
        self.d_optimizer = None
        if self.discriminator is not None:
            self.d_optimizer = self._prepare_optimizer(d_optimizer, self.discriminator, loss_scaling)
        # Callbacks that adjust "the" optimizer (ReduceLROnPlateau, LearningRateScheduler) act on
        # the generator's. It is built on the generator's variables only.
        self.optimizer = self.g_optimizer

    @staticmethod
    def _prepare_optimizer(optimizer, model, loss_scaling: bool):
        optimizer = keras.optimizers.get(optimizer)
        if loss_scaling and not isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        if not optimizer.built:
            # Build now, outside any tf.function (needed for XLA, and keeps slots per network).
            optimizer.build(model.trainable_variables)
        return optimizer

    def get_compile_config(self):
        if not getattr(self, "g_optimizer", None):
            return None
        ser = keras.saving.serialize_keras_object
        return {
            "g_optimizer": ser(self.g_optimizer),
            "d_optimizer": ser(self.d_optimizer) if self.d_optimizer is not None else None,
            "adversarial_weight": self.adversarial_weight,
            "l1_weight": self.l1_weight,
            "bce_weight": self.bce_weight,
            "dice_weight": self.dice_weight,
            "adversarial_mode": self.adversarial_mode,
            "label_smoothing": self.label_smoothing,
            "d_steps": self.d_steps,
            "jit_compile": bool(self.jit_compile),
            "raise_on_non_finite": self.raise_on_non_finite,
        }

    def compile_from_config(self, config):
        config = dict(config)
        de = keras.saving.deserialize_keras_object
        config["g_optimizer"] = de(config["g_optimizer"])
        if config.get("d_optimizer") is not None:
            config["d_optimizer"] = de(config["d_optimizer"])
        self.compile(**config)

    # ---------------------------------------------------------------- model
    @property
    def metrics(self):
        return [*self.loss_trackers.values(), self.segmentation_metrics]

    def call(self, images, training=False):
        """Generator logits (B, R, R, 1) for images (B, R, R, C)."""
        return self.generator(images, training=training)

    def get_config(self):
        ser = keras.saving.serialize_keras_object
        return {
            "name": self.name,
            "generator": ser(self.generator),
            "discriminator": ser(self.discriminator) if self.discriminator is not None else None,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        de = keras.saving.deserialize_keras_object
        config["generator"] = de(config["generator"])
        if config.get("discriminator") is not None:
            config["discriminator"] = de(config["discriminator"])
        return cls(**config)

    def fit(self, x=None, *args, callbacks=None, **kwargs):
        """``keras.Model.fit``, plus a ``RaiseOnNonFinite`` callback (see ``compile``).

        ``shuffle`` defaults to False for a ``tf.data.Dataset`` (``make_dataset`` shuffles
        itself; Keras would ignore the flag and warn)."""
        if isinstance(x, tf.data.Dataset):
            kwargs.setdefault("shuffle", False)
        callbacks = list(callbacks or [])
        if getattr(self, "raise_on_non_finite", True) and not any(
            isinstance(c, RaiseOnNonFinite) for c in callbacks
        ):
            callbacks.append(RaiseOnNonFinite())
        return super().fit(x, *args, callbacks=callbacks, **kwargs)

    # ---------------------------------------------------------------- steps
    def _segmentation_loss(self, masks, logits):
        return segmentation_loss(
            masks, logits, bce=self.bce_weight, l1=self.l1_weight, dice=self.dice_weight
        )

    def _d_loss(self, real_logits, fake_logits):
        real = adversarial_loss(
            real_logits, True, self.adversarial_mode, label_smoothing=self.label_smoothing
        )
        fake = adversarial_loss(fake_logits, False, self.adversarial_mode)
        return 0.5 * (real + fake)

    def _discriminator_steps(self, images, masks, fake):
        """``d_steps`` discriminator updates on real (image, truth) vs (image, ``fake``) pairs."""
        d = self.discriminator
        total = 0.0
        for _ in range(self.d_steps):
            with tf.GradientTape() as tape:
                d_loss = self._d_loss(
                    d([images, masks], training=True), d([images, fake], training=True)
                )
                scaled = self.d_optimizer.scale_loss(d_loss)
            grads = tape.gradient(scaled, d.trainable_variables)
            self.d_optimizer.apply_gradients(zip(grads, d.trainable_variables))
            total += d_loss
        return total / self.d_steps

    def _update_metrics(self, masks, logits, losses: dict):
        for name, value in losses.items():
            self.loss_trackers[name].update_state(value)
        self.segmentation_metrics.update_state(masks, logits)
        return self.get_metrics_result()

    def train_step(self, data):
        images, masks, _ = keras.utils.unpack_x_y_sample_weight(data)
        masks = ops.cast(masks, "float32")
        g = self.generator
        with tf.GradientTape() as g_tape:
            logits = g(images, training=True)  # (B, R, R, 1) float32
            seg_total, parts = self._segmentation_loss(masks, logits)
            if self.discriminator is None:
                d_loss = ops.zeros(())
                adv = ops.zeros(())
                g_loss = seg_total
            else:
                fake = ops.sigmoid(logits)  # (B, R, R, 1) probabilities
                with g_tape.stop_recording():
                    d_loss = self._discriminator_steps(images, masks, ops.stop_gradient(fake))
                # Non-saturating G loss through the just-updated discriminator.
                adv = adversarial_loss(
                    self.discriminator([images, fake], training=True), True, self.adversarial_mode
                )
                g_loss = self.adversarial_weight * adv + seg_total
            scaled = self.g_optimizer.scale_loss(g_loss)
        grads = g_tape.gradient(scaled, g.trainable_variables)
        self.g_optimizer.apply_gradients(zip(grads, g.trainable_variables))
        return self._update_metrics(
            masks, logits, {"g_loss": g_loss, "d_loss": d_loss, "adv": adv, **parts}
        )

    def test_step(self, data):
        images, masks, _ = keras.utils.unpack_x_y_sample_weight(data)
        masks = ops.cast(masks, "float32")
        logits = self.generator(images, training=False)
        seg_total, parts = self._segmentation_loss(masks, logits)
        if self.discriminator is None:
            d_loss = ops.zeros(())
            adv = ops.zeros(())
            g_loss = seg_total
        else:
            fake = ops.sigmoid(logits)
            fake_logits = self.discriminator([images, fake], training=False)
            d_loss = self._d_loss(self.discriminator([images, masks], training=False), fake_logits)
            adv = adversarial_loss(fake_logits, True, self.adversarial_mode)
            g_loss = self.adversarial_weight * adv + seg_total
        return self._update_metrics(
            masks, logits, {"g_loss": g_loss, "d_loss": d_loss, "adv": adv, **parts}
        )


def make_gan(
    gen_name: str,
    disc_name: str,
    resolution: int,
    gen_options: dict | None = None,
    disc_options: dict | None = None,
) -> GAN:
    """Build generator and discriminator by name and wrap them in an (uncompiled) ``GAN``.

    Set the precision policy first (``ggo.training.set_precision``): layers take the global
    policy when they are built.
    """
    from ggo.models import build_discriminator, build_generator

    gen_options = dict(gen_options or {})
    disc_options = dict(disc_options or {})
    generator = build_generator(gen_name, resolution, **gen_options)
    in_channels = gen_options.get("in_channels", 1)
    disc_options.setdefault("in_channels", in_channels)
    discriminator = build_discriminator(disc_name, resolution, **disc_options)
    return GAN(generator, discriminator)


__all__ = ["GAN", "LOSS_NAMES", "make_gan"]

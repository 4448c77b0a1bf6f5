"""The adversarial segmentation model: a ``keras.Model`` owning a generator and a discriminator.

Follows keras-io's ``dcgan_overriding_train_step``: ``compile`` takes one optimizer per network
and the loss weights, ``train_step`` does the discriminator steps then the generator step with
``tf.GradientTape``, and every loss and segmentation metric is a Keras metric behind the
``metrics`` property. So ``fit``, ``evaluate``, ``predict``, ``EarlyStopping(monitor="val_dice")``
and ``ModelCheckpoint`` work unchanged.

With ``discriminator=None`` the generator trains on its segmentation loss alone (the supervised
baseline every adversarial result is compared with); ``d_loss`` and ``adv`` are then logged as 0
so every run has the same keys.

The update order per batch is ``compile(adversarial_update=...)``'s. ``sequential`` (the
default, the original PyTorch pix2pix's order): one generator forward pass; ``d_steps``
discriminator updates on (image, truth) vs (image, detached prediction); then the generator
update through the UPDATED discriminator (non-saturating adversarial loss) plus the weighted
segmentation loss. ``same_pass`` (TensorFlow's pix2pix tutorial): one generator pass and one
discriminator pass per pair; the discriminator's loss and the generator's adversarial loss both
come from those logits, so the generator's gradient goes through the discriminator as it was
BEFORE this batch's update, and each batch costs one discriminator pass less.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops

from ggo.training.losses import adversarial_loss
from ggo.training.gan_base import LOSS_NAMES, GANBase  # noqa: F401  (LOSS_NAMES re-exported)


@keras.saving.register_keras_serializable(package="ggo")
class GAN(GANBase):
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

    ``compile(g_optimizer, d_optimizer, *, adversarial_weight=1, l1_weight=100, bce_weight=0,
    dice_weight=0, lung_weight=0, adversarial_mode="bce", label_smoothing=0, d_steps=1,
    adversarial_update="sequential", jit_compile=False, raise_on_non_finite=True)``: see :meth:`GANBase.compile`.
    """

    @staticmethod
    def _shuffles_itself(x) -> bool:
        return isinstance(x, tf.data.Dataset)

    # ---------------------------------------------------------------- steps
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

    def _same_pass_step(self, images, targets, masks):
        """Both updates from one forward pass (``adversarial_update="same_pass"``)."""
        g, d = self.generator, self.discriminator
        with tf.GradientTape() as g_tape:
            heads = g(images, training=True)  # (B, R, R, 1 + K) float32: GGO, then K auxiliary heads
            seg_total, parts = self._segmentation_loss(targets, heads)
            logits = heads[..., :1]  # GGO: what the discriminator and the metrics see
            fake = ops.sigmoid(logits)  # (B, R, R, 1) probabilities, NOT detached
            with tf.GradientTape() as d_tape:  # records D's passes only (not the generator's)
                real_logits = d([images, masks], training=True)  # (B, P, P, 1)
                fake_logits = d([images, fake], training=True)
                d_loss = self._d_loss(real_logits, fake_logits)
                d_scaled = self.d_optimizer.scale_loss(d_loss)
            adv = adversarial_loss(fake_logits, True, self.adversarial_mode)  # through D before its update
            g_loss = self.adversarial_weight * adv + seg_total
            g_scaled = self.g_optimizer.scale_loss(g_loss)
        g_grads = g_tape.gradient(g_scaled, g.trainable_variables)
        d_grads = d_tape.gradient(d_scaled, d.trainable_variables)
        self.d_optimizer.apply_gradients(zip(d_grads, d.trainable_variables))
        self.g_optimizer.apply_gradients(zip(g_grads, g.trainable_variables))
        return self._update_metrics(
            masks, logits, {"g_loss": g_loss, "d_loss": d_loss, "adv": adv, **parts}
        )

    def train_step(self, data):
        images, targets, _ = keras.utils.unpack_x_y_sample_weight(data)
        targets = ops.cast(targets, "float32")
        masks = targets[..., :1]  # GGO (each auxiliary head's mask and weight follow it)
        if self.discriminator is not None and self.adversarial_update == "same_pass":
            return self._same_pass_step(images, targets, masks)
        g = self.generator
        with tf.GradientTape() as g_tape:
            heads = g(images, training=True)  # (B, R, R, 1 + K) float32: GGO, then K auxiliary heads
            seg_total, parts = self._segmentation_loss(targets, heads)
            logits = heads[..., :1]  # GGO: what the discriminator and the metrics see
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
        images, targets, _ = keras.utils.unpack_x_y_sample_weight(data)
        targets = ops.cast(targets, "float32")
        masks = targets[..., :1]
        heads = self.generator(images, training=False)
        seg_total, parts = self._segmentation_loss(targets, heads)
        logits = heads[..., :1]
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


#: ``make_gan(gen_name, disc_name, resolution, gen_options, disc_options)``: see ``GANBase.from_names``.
make_gan = GAN.from_names


__all__ = ["GAN", "LOSS_NAMES", "make_gan"]

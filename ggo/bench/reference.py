"""The yardstick: a plain pix2pix training step, as in TensorFlow's pix2pix tutorial.

One ``tf.function``, two ``GradientTape``s over ONE forward pass: the generator runs once, the
discriminator twice (real pair, generated pair), and both networks get their gradients from
those same activations. Generator loss ``BCE(1, D(x, G(x))) + 100 * L1``, discriminator loss
``BCE(1, D(x, y)) + BCE(0, D(x, G(x)))``, Adam(2e-4, beta_1=0.5) for both.

The only adaptations to segmentation: the generator emits mask logits, so the "generated image"
the discriminator sees and the L1 compares is ``sigmoid(logits)``; and under ``mixed_float16``
the optimizers scale the loss (as any float16 Keras training must). Written for the benchmark,
not for training: no metrics, no callbacks, nothing ggo's ``GAN`` adds.
"""

from __future__ import annotations

from typing import Any, Callable

import keras
import tensorflow as tf


def _adam(float16: bool) -> keras.optimizers.Optimizer:
    opt = keras.optimizers.Adam(learning_rate=2e-4, beta_1=0.5)
    return keras.optimizers.LossScaleOptimizer(opt) if float16 else opt


def make_reference_step(
    generator: keras.Model,
    discriminator: keras.Model,
    *,
    l1_weight: float = 100.0,
    jit_compile: bool = False,
) -> Callable[[Any, Any], tuple[tf.Tensor, tf.Tensor]]:
    """A compiled ``step(images, masks) -> (g_loss, d_loss)`` training both networks once.

    Build the models under the precision policy to test; the step keeps its own optimizers.
    """
    float16 = keras.mixed_precision.global_policy().name == "mixed_float16"
    g_opt, d_opt = _adam(float16), _adam(float16)
    # Build the optimizer slots eagerly (XLA cannot create variables inside the step).
    g_opt.build(generator.trainable_variables)
    d_opt.build(discriminator.trainable_variables)
    bce = keras.losses.BinaryCrossentropy(from_logits=True)

    @tf.function(jit_compile=jit_compile)
    def step(images, masks):
        masks = tf.cast(masks, tf.float32)
        with tf.GradientTape() as g_tape, tf.GradientTape() as d_tape:
            logits = generator(images, training=True)  # (B, R, R, 1)
            generated = tf.sigmoid(tf.cast(logits, tf.float32))
            real_out = tf.cast(discriminator([images, masks], training=True), tf.float32)  # (B, P, P, 1)
            fake_out = tf.cast(discriminator([images, generated], training=True), tf.float32)
            g_loss = bce(tf.ones_like(fake_out), fake_out) + l1_weight * tf.reduce_mean(tf.abs(masks - generated))
            d_loss = bce(tf.ones_like(real_out), real_out) + bce(tf.zeros_like(fake_out), fake_out)
            g_scaled, d_scaled = g_opt.scale_loss(g_loss), d_opt.scale_loss(d_loss)
        g_grads = g_tape.gradient(g_scaled, generator.trainable_variables)
        d_grads = d_tape.gradient(d_scaled, discriminator.trainable_variables)
        g_opt.apply_gradients(zip(g_grads, generator.trainable_variables))
        d_opt.apply_gradients(zip(d_grads, discriminator.trainable_variables))
        return g_loss, d_loss

    return step


__all__ = ["make_reference_step"]

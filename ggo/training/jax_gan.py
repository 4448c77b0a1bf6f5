"""The adversarial segmentation model for the JAX backend: :class:`JaxGAN`.

The twin of :class:`ggo.training.gan.GAN` (same constructor, ``compile`` arguments, attribute
names, update order and logged metrics), with a ``train_step(state, data)`` in the Keras 3 JAX
custom-training style: pure functions of the variables' values, ``stateless_call`` for both
networks, ``jax.value_and_grad`` for the gradients and ``stateless_apply`` for both optimizers.
So ``fit``, ``evaluate``, ``predict``, callbacks, ``EarlyStopping`` and ``ModelCheckpoint`` work
as they do on TensorFlow, and a ``.weights.h5`` file saved by either class loads into the other.

One step, per batch, in the order ``compile(adversarial_update=...)`` asks for, as in the
TensorFlow step. ``sequential`` (pix2pix's order, the default):

1. the generator's forward pass (training mode: BatchNorm statistics update once);
2. ``d_steps`` discriminator updates on (image, truth) vs (image, detached prediction), the
   real target smoothed to ``1 - label_smoothing``;
3. the generator's update through the UPDATED discriminator (non-saturating adversarial loss)
   plus the weighted segmentation loss.

Step 2 runs inside the generator's loss function on ``stop_gradient(prediction)``, as the
TensorFlow step runs it inside its tape with recording stopped: the generator's gradient sees
the updated discriminator, never the discriminator's own updates.

``same_pass`` (TensorFlow's pix2pix tutorial): one function of both networks' weights computes
the generator pass and one discriminator pass per pair and returns both losses; ``jax.vjp``
takes each network's gradient of its own loss from that one forward pass (the generator's
through the discriminator as it was before this batch's update), then both optimizers apply.

Mixed precision: under ``mixed_float16`` both optimizers are wrapped in Keras'
``LossScaleOptimizer`` (dynamic loss scaling, as on TensorFlow: the loss is multiplied by the
scale, 2**15 at first; a step whose gradients are not finite is skipped and the scale halved;
after 2000 finite steps it doubles). Pass your own ``LossScaleOptimizer`` to change those
numbers. ``mixed_bfloat16`` and ``float32`` need no scaling.

NaN/Inf: every loss is a logged metric, so ``fit``'s ``RaiseOnNonFinite`` callback (added
automatically) stops training with ``NonFiniteLossError`` at the first non-finite batch.

XLA: JAX compiles the step with ``jax.jit`` always (``compile(jit_compile=...)`` is accepted for
the TensorFlow signature and recorded; pass ``run_eagerly=True`` to step through the Python).
"""

from __future__ import annotations

import warnings

import jax
import keras
from keras import ops

from ggo.runtime.backend import require_backend
from ggo.training.losses import adversarial_loss
from ggo.training.gan_base import LOSS_NAMES, GANBase  # noqa: F401  (LOSS_NAMES re-exported)

# SegmentationMetrics asks for float64 counters; JAX (without jax_enable_x64) keeps them in
# float32, exact up to 2**24 pixels per counter, and warns at every creation and update of
# one. The accuracy note is here; the warnings would only repeat it.
warnings.filterwarnings(
    "ignore", message="Explicitly requested dtype float64", category=UserWarning, module=r"keras\.src\.backend\.jax"
)


def _positions(part: list, whole: list, what: str) -> list[int]:
    """Where each variable of ``part`` sits in ``whole`` (by identity)."""
    where = {id(v): i for i, v in enumerate(whole)}
    missing = [v.path for v in part if id(v) not in where]
    if missing:
        raise ValueError(f"JaxGAN: {what} variables {missing[:3]} are not the GAN's own")
    return [where[id(v)] for v in part]


def _take(values: list, positions: list[int]) -> list:
    return [values[i] for i in positions]


def _put(values: list, positions: list[int], new: list) -> list:
    values = list(values)
    for i, v in zip(positions, new):
        values[i] = v
    return values


@keras.saving.register_keras_serializable(package="ggo")
class JaxGAN(GANBase):
    """Conditional GAN for segmentation (pix2pix style), or a plain supervised generator, on JAX.

    Args:
        generator: model mapping images (B, R, R, C) to mask logits (B, R, R, 1).
        discriminator: model mapping ``[image, mask]`` to patch logits, or None for
            supervised-only training (``d_loss`` and ``adv`` are then logged as 0).

    Logged metrics (``val_`` prefixed on validation data), as ``GAN``'s: ``g_loss``, ``d_loss``,
    ``adv``, ``l1``, ``bce``, ``dice_loss``, and ``dice``, ``dice_pooled``, ``iou``,
    ``precision``, ``recall``, ``specificity`` accumulated over the epoch at threshold 0.5.
    """

    def __init__(self, generator: keras.Model, discriminator: keras.Model | None = None, **kwargs):
        require_backend("jax", by="JaxGAN needs the JAX backend")
        super().__init__(generator, discriminator, **kwargs)

    # ---------------------------------------------------------------- compile
    def _keras_compile(self, jit_compile: bool, **kwargs) -> None:
        # JAX compiles the step with jax.jit always; the request is kept for the saved config.
        super()._keras_compile(True, **kwargs)
        self._jit_requested = jit_compile

    def _requested_jit_compile(self) -> bool:
        return bool(getattr(self, "_jit_requested", False))

    def _compiled(self) -> None:
        self._index_variables()

    @staticmethod
    def _shuffles_itself(x) -> bool:
        return isinstance(x, keras.utils.PyDataset)

    def _index_variables(self):
        """Where each network's variables sit in the GAN's state lists (the step splits them)."""
        trainable, non_trainable = self.trainable_variables, self.non_trainable_variables
        nets = {"g": self.generator} if self.discriminator is None else {"g": self.generator, "d": self.discriminator}
        self._slots = {}
        for key, net in nets.items():
            self._slots[key] = (
                _positions(net.trainable_variables, trainable, f"{net.name} trainable"),
                _positions(net.non_trainable_variables, non_trainable, f"{net.name} non-trainable"),
            )
        owned = sum(len(t) for t, _ in self._slots.values())
        if owned != len(trainable):
            raise ValueError(
                f"JaxGAN: {len(trainable) - owned} trainable variables belong to neither network; "
                "a GAN's only trainable layers are its generator and discriminator"
            )

    # ------------------------------------------- JAX state with two optimizers
    # Keras' JAX trainer moves "the" optimizer's variables in and out of the step; a GAN has
    # two. These overrides make the state's optimizer slot hold both: the generator's variables
    # first, then the discriminator's.
    def _optimizer_variables(self) -> list:
        return [v for opt in (self.g_optimizer, self.d_optimizer) if opt is not None for v in opt.variables]

    def _get_jax_state(
        self,
        trainable_variables=False,
        non_trainable_variables=False,
        optimizer_variables=False,
        metrics_variables=False,
        purge_model_variables=False,
    ):
        state = list(
            super()._get_jax_state(
                trainable_variables=trainable_variables,
                non_trainable_variables=non_trainable_variables,
                optimizer_variables=False,
                metrics_variables=metrics_variables,
                purge_model_variables=purge_model_variables,
            )
        )
        if optimizer_variables:
            variables = self._optimizer_variables()
            state.insert(int(trainable_variables) + int(non_trainable_variables), [v.value for v in variables])
            if purge_model_variables:
                for v in variables:
                    v._value = None  # as Keras does: the step owns the values until the next sync
        return tuple(state)

    def _purge_model_variables(
        self,
        trainable_variables=False,
        non_trainable_variables=False,
        optimizer_variables=False,
        metrics_variables=False,
    ):
        super()._purge_model_variables(
            trainable_variables=trainable_variables,
            non_trainable_variables=non_trainable_variables,
            optimizer_variables=False,
            metrics_variables=metrics_variables,
        )
        if optimizer_variables:
            for v in self._optimizer_variables():
                v._value = None

    def jax_state_sync(self):
        state = getattr(self, "_jax_state", None)
        if not state or self._jax_state_synced:
            return
        for key, refs in (
            ("trainable_variables", self.trainable_variables),
            ("non_trainable_variables", self.non_trainable_variables),
            ("optimizer_variables", self._optimizer_variables()),
            ("metrics_variables", self.metrics_variables),
        ):
            values = state.get(key)
            if values:
                for ref, value in zip(refs, values):
                    ref.assign(value)
        self._jax_state_synced = True

    # ---------------------------------------------------------------- losses
    @staticmethod
    def _scale_loss(optimizer, optimizer_values, loss):
        """``loss`` times the optimizer's current loss scale (unchanged without scaling)."""
        if not isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
            return loss
        with keras.StatelessScope(state_mapping=list(zip(optimizer.variables, optimizer_values))):
            return optimizer.scale_loss(loss)

    # ---------------------------------------------------------------- steps
    def _discriminator_steps(self, d, images, masks, fake):
        """``d_steps`` discriminator updates on real (image, truth) vs (image, ``fake``) pairs.

        ``d`` is ``(trainable, non_trainable, optimizer)`` value lists; returns the updated
        triple and the mean unscaled loss."""
        disc = self.discriminator

        def loss_fn(trainable, non_trainable, opt_values):
            real_logits, non_trainable = disc.stateless_call(trainable, non_trainable, [images, masks], training=True)
            fake_logits, non_trainable = disc.stateless_call(trainable, non_trainable, [images, fake], training=True)
            d_loss = self._d_loss(real_logits, fake_logits)
            return self._scale_loss(self.d_optimizer, opt_values, d_loss), (d_loss, non_trainable)

        grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
        trainable, non_trainable, opt_values = d
        total = 0.0
        for _ in range(self.d_steps):  # unrolled: d_steps is a small Python int
            (_, (d_loss, non_trainable)), grads = grad_fn(trainable, non_trainable, opt_values)
            trainable, opt_values = self.d_optimizer.stateless_apply(opt_values, grads, trainable)
            total += d_loss
        return (trainable, non_trainable, opt_values), total / self.d_steps

    def _update_metrics(self, metrics_values, masks, logits, losses: dict):
        """Stateless metric update: returns (logs, new metric variable values)."""
        refs = self.metrics_variables
        with keras.StatelessScope(state_mapping=list(zip(refs, metrics_values))) as scope:
            for name, value in losses.items():
                self.loss_trackers[name].update_state(value)
            self.segmentation_metrics.update_state(masks, logits)
            logs = self.get_metrics_result()
        new_values = []
        for ref in refs:
            value = scope.get_current_value(ref)
            new_values.append(ref.value if value is None else value)
        return logs, new_values

    def _same_pass_update(self, images, targets, masks, g, d):
        """Both updates from one forward pass (``adversarial_update="same_pass"``).

        ``g`` is the generator's ``(trainable, non_trainable, optimizer)`` value lists, ``d`` the
        discriminator's; returns both updated triples, the GGO logits and the losses."""
        gen, disc = self.generator, self.discriminator
        (g_trainable, g_nontrainable, g_opt), (d_trainable, d_nontrainable, d_opt) = g, d

        def losses_fn(g_tr, d_tr):
            heads, g_nt = gen.stateless_call(g_tr, g_nontrainable, images, training=True)  # (B, R, R, 1 + K) f32
            seg_total, parts = self._segmentation_loss(targets, heads)
            logits = heads[..., :1]
            fake = ops.sigmoid(logits)  # (B, R, R, 1) probabilities, NOT detached
            real_logits, d_nt = disc.stateless_call(d_tr, d_nontrainable, [images, masks], training=True)
            fake_logits, d_nt = disc.stateless_call(d_tr, d_nt, [images, fake], training=True)
            d_loss = self._d_loss(real_logits, fake_logits)
            adv = adversarial_loss(fake_logits, True, self.adversarial_mode)  # through D before its update
            g_loss = self.adversarial_weight * adv + seg_total
            scaled = (self._scale_loss(self.g_optimizer, g_opt, g_loss), self._scale_loss(self.d_optimizer, d_opt, d_loss))
            losses = {"g_loss": g_loss, "d_loss": d_loss, "adv": adv, **parts}
            return scaled, (logits, g_nt, d_nt, losses)

        (g_scaled, d_scaled), backward, (logits, g_nt, d_nt, losses) = jax.vjp(
            losses_fn, g_trainable, d_trainable, has_aux=True
        )
        # Each network's gradient of its own loss only: G's of g_loss, D's of d_loss.
        g_grads, _ = backward((ops.ones_like(g_scaled), ops.zeros_like(d_scaled)))
        _, d_grads = backward((ops.zeros_like(g_scaled), ops.ones_like(d_scaled)))
        g_trainable, g_opt = self.g_optimizer.stateless_apply(g_opt, g_grads, g_trainable)
        d_trainable, d_opt = self.d_optimizer.stateless_apply(d_opt, d_grads, d_trainable)
        return (g_trainable, g_nt, g_opt), (d_trainable, d_nt, d_opt), logits, losses

    def _sequential_update(self, images, targets, masks, g, d):
        """D first, then G through the updated D (``adversarial_update="sequential"``, or no
        discriminator: ``d`` is None). Arguments and result as :meth:`_same_pass_update`'s."""
        gen, disc = self.generator, self.discriminator
        g_trainable, g_nontrainable, g_opt = g

        def g_loss_fn(g_tr):
            heads, g_nt = gen.stateless_call(g_tr, g_nontrainable, images, training=True)  # (B, R, R, 1 + K) f32
            seg_total, parts = self._segmentation_loss(targets, heads)
            logits = heads[..., :1]  # GGO: what the discriminator and the metrics see
            if disc is None:
                d_out, d_loss, adv = d, ops.zeros(()), ops.zeros(())
                g_loss = seg_total
            else:
                fake = ops.sigmoid(logits)  # (B, R, R, 1) probabilities
                d_out, d_loss = self._discriminator_steps(d, images, masks, jax.lax.stop_gradient(fake))
                d_trainable, d_nt, d_opt_values = d_out
                # Non-saturating G loss through the just-updated discriminator.
                adv_logits, d_nt = disc.stateless_call(d_trainable, d_nt, [images, fake], training=True)
                d_out = (d_trainable, d_nt, d_opt_values)
                adv = adversarial_loss(adv_logits, True, self.adversarial_mode)
                g_loss = self.adversarial_weight * adv + seg_total
            losses = {"g_loss": g_loss, "d_loss": d_loss, "adv": adv, **parts}
            return self._scale_loss(self.g_optimizer, g_opt, g_loss), (logits, g_nt, d_out, losses)

        (_, (logits, g_nt, d_out, losses)), g_grads = jax.value_and_grad(g_loss_fn, has_aux=True)(g_trainable)
        g_trainable, g_opt = self.g_optimizer.stateless_apply(g_opt, g_grads, g_trainable)
        return (g_trainable, g_nt, g_opt), d_out, logits, losses

    def train_step(self, state, data):
        trainable, non_trainable, optimizer_values, metrics_values = state
        images, targets, _ = keras.utils.unpack_x_y_sample_weight(data)
        targets = ops.cast(targets, "float32")
        masks = targets[..., :1]  # GGO (each auxiliary head's mask and weight follow it)
        n_g_opt = len(self.g_optimizer.variables)
        g_opt, d_opt = optimizer_values[:n_g_opt], optimizer_values[n_g_opt:]
        nets = {"g": (*(_take(v, i) for v, i in zip((trainable, non_trainable), self._slots["g"])), g_opt)}
        if self.discriminator is not None:
            nets["d"] = (*(_take(v, i) for v, i in zip((trainable, non_trainable), self._slots["d"])), d_opt)
        same_pass = self.discriminator is not None and self.adversarial_update == "same_pass"
        update = self._same_pass_update if same_pass else self._sequential_update
        g_out, d_out, logits, losses = update(images, targets, masks, nets["g"], nets.get("d"))
        new_opt = list(g_out[2])
        for key, out in (("g", g_out), ("d", d_out)):
            if key in nets:
                (tr, ntr), (new_tr, new_ntr, _) = self._slots[key], out
                trainable, non_trainable = _put(trainable, tr, new_tr), _put(non_trainable, ntr, new_ntr)
        if "d" in nets:
            new_opt += list(d_out[2])
        logs, metrics_values = self._update_metrics(metrics_values, masks, logits, losses)
        return logs, (trainable, non_trainable, new_opt, metrics_values)

    def test_step(self, state, data):
        trainable, non_trainable, metrics_values = state
        images, targets, _ = keras.utils.unpack_x_y_sample_weight(data)
        targets = ops.cast(targets, "float32")
        masks = targets[..., :1]
        g_tr, g_ntr = self._slots["g"]
        heads, _ = self.generator.stateless_call(
            _take(trainable, g_tr), _take(non_trainable, g_ntr), images, training=False
        )
        seg_total, parts = self._segmentation_loss(targets, heads)
        logits = heads[..., :1]
        if self.discriminator is None:
            d_loss, adv = ops.zeros(()), ops.zeros(())
            g_loss = seg_total
        else:
            d_tr, d_ntr = self._slots["d"]
            d_vars = (_take(trainable, d_tr), _take(non_trainable, d_ntr))
            fake = ops.sigmoid(logits)
            fake_logits, _ = self.discriminator.stateless_call(*d_vars, [images, fake], training=False)
            real_logits, _ = self.discriminator.stateless_call(*d_vars, [images, masks], training=False)
            d_loss = self._d_loss(real_logits, fake_logits)
            adv = adversarial_loss(fake_logits, True, self.adversarial_mode)
            g_loss = self.adversarial_weight * adv + seg_total
        losses = {"g_loss": g_loss, "d_loss": d_loss, "adv": adv, **parts}
        logs, metrics_values = self._update_metrics(metrics_values, masks, logits, losses)
        return logs, (trainable, non_trainable, metrics_values)


#: ``make_gan(gen_name, disc_name, resolution, gen_options, disc_options)``: see ``GANBase.from_names``.
make_gan = JaxGAN.from_names


__all__ = ["JaxGAN", "LOSS_NAMES", "make_gan"]

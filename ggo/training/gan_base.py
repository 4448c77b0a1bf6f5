"""What the TensorFlow and the JAX GAN share: construction, ``compile`` and its checks, saving,
metrics, ``fit`` and the loss functions. Backend-neutral (``keras.ops`` only, no TensorFlow).

:class:`ggo.training.gan.GAN` adds the TensorFlow ``train_step``/``test_step`` (GradientTape),
:class:`ggo.training.jax_gan.JaxGAN` the JAX ones (``stateless_call`` and ``jax.value_and_grad``).
"""

from __future__ import annotations

import keras

from ggo.heads import LUNGS, model_heads
from ggo.training.losses import ADVERSARIAL_MODES, adversarial_loss, heads_loss, loss_term
from ggo.evaluation.metrics import SegmentationMetrics
from ggo.training.callbacks import RaiseOnNonFinite
from ggo.training.ema import GeneratorEMA

LOSS_NAMES = ("g_loss", "d_loss", "adv", "l1", "bce", "dice_loss", "lung")

#: How one batch updates the two networks (``GANBase.compile(adversarial_update=...)``):
#: ``sequential`` updates D, then G through the UPDATED D (the original PyTorch pix2pix; three
#: discriminator passes); ``same_pass`` takes both losses from ONE pass of D over (image, truth)
#: and (image, prediction) and updates both networks from it (TensorFlow's pix2pix tutorial; two
#: passes, so cheaper).
ADVERSARIAL_UPDATES = ("sequential", "same_pass")


def _uses_float16(model: keras.Model | None) -> bool:
    if model is None:
        return False
    return any(layer.compute_dtype == "float16" for layer in model.layers)


def ema_optimizer(optimizer: keras.optimizers.Optimizer | None) -> keras.optimizers.Optimizer | None:
    """The optimizer that keeps ``optimizer``'s weight averages (``use_ema=True``; the inner one
    of a ``LossScaleOptimizer``), or None when it keeps none."""
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    return inner if getattr(inner, "use_ema", False) else None


def _skip_finalize(var_list) -> None:
    """Stands in for Keras' ``finalize_variable_values`` during a GAN's ``fit`` (see ``GANBase.fit``)."""


def _check_compile_args(
    weights: dict, adversarial_mode: str, label_smoothing: float, d_steps: int, adversarial_update: str,
    adversarial: bool = True,
) -> None:
    """The checks of ``GANBase.compile`` (``adversarial``: the GAN has a discriminator)."""
    if adversarial_update not in ADVERSARIAL_UPDATES:
        raise ValueError(
            f"Unknown adversarial_update {adversarial_update!r}; valid: {', '.join(ADVERSARIAL_UPDATES)}"
        )
    if adversarial and adversarial_update == "same_pass" and int(d_steps) != 1:
        raise ValueError(
            f"adversarial_update='same_pass' takes both updates from one discriminator pass, so it "
            f"makes one discriminator update per batch; got d_steps={d_steps}. Use d_steps=1, or "
            "adversarial_update='sequential' for several discriminator updates per generator update"
        )
    if adversarial_mode not in ADVERSARIAL_MODES:
        raise ValueError(
            f"Unknown adversarial_mode {adversarial_mode!r}; valid: {', '.join(ADVERSARIAL_MODES)}"
        )
    if not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
    if int(d_steps) < 1:
        raise ValueError(f"d_steps must be >= 1, got {d_steps}")
    for term, weight in weights.items():
        if weight < 0:
            raise ValueError(f"{term} must be >= 0, got {weight}")


class GANBase(keras.Model):
    """A generator and an optional discriminator trained together; see ``GAN`` for the API.

    Subclasses implement ``train_step`` and ``test_step`` for their backend.
    """

    def __init__(self, generator: keras.Model, discriminator: keras.Model | None = None, **kwargs):
        kwargs.setdefault("name", "gan")
        super().__init__(**kwargs)
        self.generator = generator
        self.discriminator = discriminator
        # The generator's auxiliary heads, from its output layer (None: a generator ggo did not
        # build; its 1 or 2 channels are read as GGO and lungs). Each head but the lungs (logged
        # as "lung", in LOSS_NAMES) adds its own loss term.
        self.heads = model_heads(generator)
        extra = [loss_term(h) for h in (self.heads or ()) if h != LUNGS]
        self.loss_trackers = {name: keras.metrics.Mean(name=name) for name in (*LOSS_NAMES, *extra)}
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
        lung_weight: float = 0.0,
        aux_weights: dict[str, float] | None = None,
        adversarial_mode: str = "bce",
        label_smoothing: float = 0.0,
        d_steps: int = 1,
        adversarial_update: str = "sequential",
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
            lung_weight: weight of the lung head's BCE (a generator with ``lung_head``, trained
                on (B, R, R, 3) targets: GGO, lungs, lung weight; see ``ggo.training.losses``).
            aux_weights: the BCE weight of each other auxiliary head of the generator, by name
                (``{"heart": 100.0}``; see ``ggo.heads``); the lungs' is ``lung_weight``.
            adversarial_mode: ``bce`` or ``lsgan``.
            label_smoothing: one-sided smoothing of D's real targets (1 -> 1 - s).
            d_steps: discriminator updates per generator update (on the same batch;
                ``sequential`` only).
            adversarial_update: ``sequential`` (D first, then G through the updated D) or
                ``same_pass`` (both from one D pass, as TensorFlow's pix2pix tutorial); see
                :data:`ADVERSARIAL_UPDATES`. Without a discriminator both are the same.
            jit_compile: compile the train step with XLA.
            raise_on_non_finite: ``fit`` adds a ``RaiseOnNonFinite`` callback unless one is
                given, so a NaN/Inf loss stops training with ``NonFiniteLossError``.
            **kwargs: passed to ``keras.Model.compile`` (e.g. ``steps_per_execution``).
        """
        weights = {
            "adversarial_weight": adversarial_weight,
            "l1_weight": l1_weight,
            "bce_weight": bce_weight,
            "dice_weight": dice_weight,
            "lung_weight": lung_weight,
        }
        aux_weights = {str(k): float(v) for k, v in (aux_weights or {}).items()}
        self._check_aux_weights(aux_weights)
        _check_compile_args(
            {**weights, **{f"aux_weights[{k!r}]": v for k, v in aux_weights.items()}},
            adversarial_mode, label_smoothing, d_steps, adversarial_update, self.discriminator is not None,
        )
        self._check_optimizer_args(g_optimizer, d_optimizer, kwargs)
        self._keras_compile(bool(jit_compile), **kwargs)
        for term, weight in weights.items():
            setattr(self, term, float(weight))
        self.aux_weights = aux_weights
        self.adversarial_mode = adversarial_mode
        self.label_smoothing = float(label_smoothing)
        self.d_steps = int(d_steps)
        self.adversarial_update = adversarial_update
        self.raise_on_non_finite = bool(raise_on_non_finite)
        self._set_optimizers(g_optimizer, d_optimizer)
        self._compiled()

    def _check_aux_weights(self, aux_weights: dict[str, float]) -> None:
        """Every head of the generator but the lungs needs a weight; no weight for a head it lacks."""
        heads = [h for h in (self.heads or ()) if h != LUNGS]
        missing = [h for h in heads if h not in aux_weights]
        unknown = [h for h in aux_weights if h not in heads]
        if missing or unknown:
            raise ValueError(
                f"aux_weights {aux_weights} do not match the generator's auxiliary heads {heads} "
                f"(missing {missing}, not heads {unknown}); the lung head's weight is lung_weight"
            )

    def _check_optimizer_args(self, g_optimizer, d_optimizer, kwargs: dict) -> None:
        if self.discriminator is not None and d_optimizer is None:
            raise ValueError("A GAN with a discriminator needs d_optimizer")
        if d_optimizer is not None and d_optimizer is g_optimizer:
            raise ValueError("g_optimizer and d_optimizer must be different optimizer objects")
        if ema_optimizer(d_optimizer) is not None:
            raise ValueError(
                "d_optimizer has use_ema=True: ggo averages the generator's weights only (the "
                "discriminator is neither evaluated nor shipped); create it without use_ema"
            )
        if any(k in kwargs for k in ("loss", "metrics", "optimizer")):
            raise ValueError("GAN.compile takes g_optimizer/d_optimizer and loss weights, not "
                             "optimizer/loss/metrics")

    def _set_optimizers(self, g_optimizer, d_optimizer) -> None:
        """One optimizer per network, loss-scaled under float16 and built on its variables."""
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

    def _keras_compile(self, jit_compile: bool, **kwargs) -> None:
        """``keras.Model.compile`` with the backend's idea of ``jit_compile``."""
        super().compile(jit_compile=jit_compile, **kwargs)

    def _compiled(self) -> None:
        """Called at the end of ``compile`` (the JAX model indexes its variables here)."""

    def _requested_jit_compile(self) -> bool:
        return bool(self.jit_compile)

    @staticmethod
    def _prepare_optimizer(optimizer, model, loss_scaling: bool):
        optimizer = keras.optimizers.get(optimizer)
        if loss_scaling and not isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        if not optimizer.built:
            # Build now, outside any compiled step (XLA cannot create variables; slots per network).
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
            "lung_weight": self.lung_weight,
            "aux_weights": dict(self.aux_weights),
            "adversarial_mode": self.adversarial_mode,
            "label_smoothing": self.label_smoothing,
            "d_steps": self.d_steps,
            "adversarial_update": self.adversarial_update,
            "jit_compile": self._requested_jit_compile(),
            "raise_on_non_finite": self.raise_on_non_finite,
        }

    def compile_from_config(self, config):
        config = dict(config)
        de = keras.saving.deserialize_keras_object
        config["g_optimizer"] = de(config["g_optimizer"])
        if config.get("d_optimizer") is not None:
            config["d_optimizer"] = de(config["d_optimizer"])
        self.compile(**config)

    @staticmethod
    def _shuffles_itself(x) -> bool:
        """Whether ``x`` is an input pipeline that shuffles itself (per backend)."""
        return False

    @classmethod
    def from_names(
        cls,
        gen_name: str,
        disc_name: str,
        resolution: int,
        gen_options: dict | None = None,
        disc_options: dict | None = None,
    ):
        """Build generator and discriminator by name (:func:`build_pair`) and wrap them in an
        uncompiled model of this class.

        Set the precision policy first (``ggo.training.set_precision``): layers take the global
        policy when they are built.
        """
        return cls(*build_pair(gen_name, disc_name, resolution, gen_options, disc_options))

    # ---------------------------------------------------------------- model
    @property
    def metrics(self):
        return [*self.loss_trackers.values(), self.segmentation_metrics]

    def call(self, images, training=False):
        """Generator logits (B, R, R, 1 + K: GGO, then its auxiliary heads) for images (B, R, R, C)."""
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

        ``shuffle`` defaults to False for what ``make_dataset`` returns (it shuffles itself,
        seeded; Keras would ignore the flag and warn, or reorder batches unseeded).

        When the generator's optimizer keeps an exponential moving average of the weights
        (``keras.optimizers.Adam(..., use_ema=True, ema_momentum=0.99)``), a
        :class:`~ggo.training.ema.GeneratorEMA` callback goes first: validation, the
        ``on_epoch_end`` callbacks and the model after ``fit`` see the averaged generator, with
        BatchNorm statistics re-estimated for it on the training batches (``x``)."""
        if self._shuffles_itself(x):
            kwargs.setdefault("shuffle", False)
        callbacks = list(callbacks or [])
        if getattr(self, "raise_on_non_finite", True) and not any(
            isinstance(c, RaiseOnNonFinite) for c in callbacks
        ):
            callbacks.append(RaiseOnNonFinite())
        ema = ema_optimizer(self.g_optimizer)
        if ema is None:
            return super().fit(x, *args, callbacks=callbacks, **kwargs)
        if any(isinstance(c, keras.callbacks.SwapEMAWeights) for c in callbacks):
            raise ValueError("GAN.fit swaps the generator's EMA weights itself (GeneratorEMA); pass no SwapEMAWeights callback")
        # Keras ends fit with model.optimizer.finalize_variable_values(model.trainable_weights):
        # it writes the averages over ALL the model's weights, and a GAN's are the generator's
        # and the discriminator's (Keras refuses the length mismatch). GeneratorEMA finalizes
        # the generator itself (on_train_end), so Keras' call does nothing during this fit.
        ema.finalize_variable_values = _skip_finalize
        average = GeneratorEMA(self.generator, bn_data=x, bn_batches=int(kwargs.get("steps_per_epoch") or 64))
        try:
            return super().fit(x, *args, callbacks=[average, *callbacks], **kwargs)
        finally:
            del ema.finalize_variable_values

    # ---------------------------------------------------------------- losses
    def _segmentation_loss(self, targets, heads):
        """Weighted supervised loss of the GGO head and of the auxiliary heads, if any."""
        return heads_loss(
            targets, heads, bce=self.bce_weight, l1=self.l1_weight, dice=self.dice_weight, lung=self.lung_weight,
            aux=self.aux_weights, heads=self.heads,
        )  # fmt: skip

    def _d_loss(self, real_logits, fake_logits):
        real = adversarial_loss(
            real_logits, True, self.adversarial_mode, label_smoothing=self.label_smoothing
        )
        fake = adversarial_loss(fake_logits, False, self.adversarial_mode)
        return 0.5 * (real + fake)


def build_pair(
    gen_name: str,
    disc_name: str,
    resolution: int,
    gen_options: dict | None = None,
    disc_options: dict | None = None,
) -> tuple[keras.Model, keras.Model | None]:
    """The generator and discriminator (None for ``"none"``) a ``make_gan`` wraps: what
    :func:`ggo.models.build_models` builds from the sections ``{"name": gen_name, **gen_options}``
    and ``{"name": disc_name, **disc_options}``."""
    from ggo.models import build_models

    return build_models({"name": gen_name, **(gen_options or {})}, {"name": disc_name, **(disc_options or {})}, resolution)


__all__ = ["ADVERSARIAL_UPDATES", "GANBase", "LOSS_NAMES", "build_pair", "ema_optimizer"]

"""Building blocks shared by the generators and discriminators.

Everything here is ``keras.layers`` / ``keras.ops`` only, so the models run on any Keras backend.
Blocks are plain functions that take a symbolic tensor and return one (functional API), which
keeps the built models plain functional ``keras.Model`` objects that save and load without
custom objects.
"""

from __future__ import annotations

from keras import layers

NORMS = ("batch", "instance", "none")
UPSAMPLINGS = ("transpose", "bilinear")


def check_choice(value: str, valid: tuple[str, ...], what: str) -> str:
    """Return ``value`` if it is one of ``valid``, else raise a ValueError listing them."""
    if value not in valid:
        raise ValueError(f"Unknown {what} {value!r}; valid: {', '.join(valid)}")
    return value


def norm_layer(norm: str, name: str) -> layers.Layer | None:
    """A normalisation layer: ``batch``, ``instance`` (GroupNorm with one group per channel) or
    ``none`` (returns None)."""
    check_choice(norm, NORMS, "norm")
    if norm == "batch":
        # momentum 0.9 (PyTorch's and pix2pix's default) rather than Keras' 0.99: the moving
        # statistics used at validation follow the weights within tens of steps, which matters
        # on small medical datasets with few steps per epoch.
        return layers.BatchNormalization(momentum=0.9, name=name)
    if norm == "instance":
        # groups=-1: one group per channel == instance normalisation.
        return layers.GroupNormalization(groups=-1, name=name)
    return None


def conv_norm_act(
    x,
    filters: int,
    *,
    kernel_size: int = 3,
    strides: int = 1,
    norm: str = "batch",
    activation: str = "relu",
    name: str,
):
    """Conv2D -> optional norm -> activation. The conv has no bias when a norm follows (the
    norm's offset makes it redundant)."""
    nl = norm_layer(norm, f"{name}_norm")
    x = layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding="same",
        use_bias=nl is None,
        kernel_initializer="he_normal",
        name=f"{name}_conv",
    )(x)
    if nl is not None:
        x = nl(x)
    if activation == "leaky_relu":
        return layers.LeakyReLU(0.2, name=f"{name}_act")(x)
    return layers.Activation(activation, name=f"{name}_act")(x)


def double_conv(x, filters: int, *, norm: str = "batch", dropout: float = 0.0, name: str):
    """The U-Net unit: two 3x3 conv-norm-ReLU layers, optional dropout after them."""
    x = conv_norm_act(x, filters, norm=norm, name=f"{name}_1")
    x = conv_norm_act(x, filters, norm=norm, name=f"{name}_2")
    if dropout > 0:
        x = layers.Dropout(dropout, name=f"{name}_dropout")(x)
    return x


def upsample(x, filters: int, *, mode: str = "transpose", name: str):
    """Double the spatial size and set the channel count to ``filters``.

    ``transpose``: a learned 2x2 stride-2 transposed conv. ``bilinear``: bilinear resize then a
    3x3 conv (no checkerboard artefacts, slightly more compute).
    """
    check_choice(mode, UPSAMPLINGS, "upsampling")
    if mode == "transpose":
        return layers.Conv2DTranspose(
            filters, 2, strides=2, padding="same", kernel_initializer="he_normal", name=f"{name}_tconv"
        )(x)
    x = layers.UpSampling2D(2, interpolation="bilinear", name=f"{name}_resize")(x)
    return layers.Conv2D(
        filters, 3, padding="same", kernel_initializer="he_normal", name=f"{name}_conv"
    )(x)


def attention_gate(skip, gating, inter_filters: int, *, name: str):
    """Additive attention gate (Oktay et al. 2018, "Attention U-Net").

    ``skip`` is the encoder feature map (B, H, W, Fs); ``gating`` the coarser decoder feature
    map (B, H/2, W/2, Fg). The gate computes a per-pixel coefficient
    ``alpha = sigmoid(psi(relu(W_x * skip + W_g * gating)))`` at the coarse resolution,
    resamples it to (H, W) and returns ``skip * alpha``: skip features outside the region the
    decoder attends to are suppressed before concatenation.
    """
    theta_x = layers.Conv2D(
        inter_filters, 2, strides=2, padding="same", use_bias=False, name=f"{name}_theta_x"
    )(skip)  # (B, H/2, W/2, Fi)
    phi_g = layers.Conv2D(inter_filters, 1, padding="same", name=f"{name}_phi_g")(gating)
    f = layers.Activation("relu", name=f"{name}_relu")(layers.Add(name=f"{name}_add")([theta_x, phi_g]))
    psi = layers.Conv2D(1, 1, padding="same", name=f"{name}_psi")(f)  # (B, H/2, W/2, 1)
    alpha = layers.Activation("sigmoid", name=f"{name}_alpha")(psi)
    alpha = layers.UpSampling2D(2, interpolation="bilinear", name=f"{name}_alpha_up")(alpha)  # (B, H, W, 1)
    return layers.Multiply(name=f"{name}_gated")([skip, alpha])  # (B, H, W, Fs), broadcast over channels


def float32_logits(x, filters: int = 1, *, kernel_size: int = 1, name: str = "logits"):
    """The output conv, computed in float32 even under a mixed precision policy, with no
    activation: models return logits and losses/metrics apply the sigmoid themselves."""
    return layers.Conv2D(filters, kernel_size, padding="same", dtype="float32", name=name)(x)


__all__ = [
    "NORMS",
    "UPSAMPLINGS",
    "attention_gate",
    "check_choice",
    "conv_norm_act",
    "double_conv",
    "float32_logits",
    "norm_layer",
    "upsample",
]

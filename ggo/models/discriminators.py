"""Conditional PatchGAN discriminators (pix2pix, Isola et al. 2017).

The discriminator sees the X-ray and a mask (the ground truth or the generator's probability
map) side by side and scores every overlapping patch as real or fake. Its receptive field sets
the patch size: 16, 34, 70 and 142 px for 1, 2, 3 and 4 stride-2 layers.
"""

from __future__ import annotations

import keras
from keras import layers

from ggo.models.blocks import NORMS, check_choice, conv_norm_act, float32_logits

# name -> n_layers it implies (None: take the n_layers argument, default 3).
DISCRIMINATORS: dict[str, int | None] = {
    "none": None,
    "patchgan": None,
    "patchgan_small": 2,
    "patchgan_large": 4,
}
DEFAULT_N_LAYERS = 3


def build_discriminator(
    name: str,
    resolution: int,
    *,
    n_layers: int | None = None,
    base_filters: int = 64,
    max_filters: int = 512,
    norm: str = "batch",
    in_channels: int = 1,
) -> keras.Model | None:
    """Build a conditional PatchGAN, or return None for ``name="none"``.

    Args:
        name: ``"patchgan"`` (``n_layers`` default 3: 70 px patches), ``"patchgan_small"``
            (n_layers 2: 34 px), ``"patchgan_large"`` (n_layers 4: 142 px) or ``"none"``.
        resolution: image height and width.
        n_layers: stride-2 conv layers; receptive field 16, 34, 70, 142 px for 1..4. Only
            needed for ``"patchgan"``; an alias with a different explicit value is an error.
        base_filters: filters of the first layer, doubled per layer up to ``max_filters``.
        norm: ``batch``, ``instance`` or ``none`` (never on the first layer, as in pix2pix).
        in_channels: image channels.

    Returns:
        A functional model taking ``[image, mask]`` — image (B, R, R, in_channels), mask
        (B, R, R, 1) with values in [0, 1] — and returning (B, R/2^n, R/2^n, 1) float32 patch
        logits (positive = "real"), or None.

    Layout (all 4x4 convs, LeakyReLU 0.2): ``n_layers`` stride-2 convs, one stride-1 conv,
    one stride-1 conv to a single channel. The mask is rescaled from [0, 1] to [-1, 1] inside
    the model so both inputs are centred like the normalised image.
    """
    if name not in DISCRIMINATORS:
        raise ValueError(f"Unknown discriminator {name!r}; valid: {', '.join(DISCRIMINATORS)}")
    if name == "none":
        return None
    check_choice(norm, NORMS, "norm")
    n_layers = _n_layers(name, n_layers)
    if resolution < 2**n_layers:
        raise ValueError(
            f"Discriminator resolution {resolution} is smaller than 2**n_layers = {2**n_layers}; "
            f"use fewer layers or a larger resolution"
        )
    if base_filters < 1 or max_filters < base_filters:
        raise ValueError(
            f"Need 1 <= base_filters <= max_filters, got base_filters={base_filters}, "
            f"max_filters={max_filters}"
        )
    return _patchgan(resolution, n_layers, base_filters, max_filters, norm, in_channels)


def _n_layers(name: str, n_layers: int | None) -> int:
    """The stride-2 layers ``name`` means, checked against an explicit ``n_layers``."""
    implied = DISCRIMINATORS[name]
    if implied is not None and n_layers is not None and n_layers != implied:
        raise ValueError(
            f"Discriminator {name!r} means n_layers={implied}, got n_layers={n_layers}; "
            f"use name='patchgan' with n_layers={n_layers} instead"
        )
    n_layers = n_layers if n_layers is not None else (implied or DEFAULT_N_LAYERS)
    if n_layers < 1:
        raise ValueError(f"n_layers must be >= 1, got {n_layers}")
    return n_layers


def _patchgan(resolution: int, n_layers: int, base_filters: int, max_filters: int, norm: str, in_channels: int) -> keras.Model:
    """The PatchGAN's layers (arguments already checked); see :func:`build_discriminator`."""
    image = keras.Input((resolution, resolution, in_channels), name="image")
    mask = keras.Input((resolution, resolution, 1), name="mask")
    mask_centred = layers.Rescaling(2.0, offset=-1.0, name="mask_to_pm1")(mask)
    x = layers.Concatenate(name="image_mask")([image, mask_centred])  # (B, R, R, C + 1)

    # First layer without normalisation (pix2pix).
    x = conv_norm_act(
        x, base_filters, kernel_size=4, strides=2, norm="none", activation="leaky_relu", name="down0"
    )  # (B, R/2, R/2, F)
    for i in range(1, n_layers):
        filters = min(base_filters * 2**i, max_filters)
        x = conv_norm_act(
            x, filters, kernel_size=4, strides=2, norm=norm, activation="leaky_relu", name=f"down{i}"
        )  # (B, R/2^(i+1), ..., F_i)
    x = conv_norm_act(
        x,
        min(base_filters * 2**n_layers, max_filters),
        kernel_size=4,
        strides=1,
        norm=norm,
        activation="leaky_relu",
        name="penultimate",
    )  # (B, R/2^n, R/2^n, F_n)
    patch_logits = float32_logits(x, 1, kernel_size=4, name="patch_logits")  # (B, R/2^n, R/2^n, 1)
    return keras.Model([image, mask], patch_logits, name=f"patchgan_n{n_layers}")


def receptive_field(model: keras.Model) -> int:
    """Receptive field in input pixels of one output unit of a chain of convolutions.

    Computed from the model's Conv2D (and pooling) layers in order:
    ``rf += (kernel - 1) * dilation * jump; jump *= stride``. Valid for models whose
    convolutions form a single chain, such as the PatchGAN.
    """
    rf, jump = 1, 1
    for layer in _layers_in_order(model):
        if isinstance(layer, layers.Conv2D) and not isinstance(layer, layers.Conv2DTranspose):
            kernel, stride, dilation = layer.kernel_size[0], layer.strides[0], layer.dilation_rate[0]
        elif isinstance(layer, (layers.MaxPooling2D, layers.AveragePooling2D)):
            kernel, stride, dilation = layer.pool_size[0], layer.strides[0], 1
        else:
            continue
        rf += (kernel - 1) * dilation * jump
        jump *= stride
    return rf


def _layers_in_order(model: keras.Model):
    """The model's layers in topological order, nested models expanded."""
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _layers_in_order(layer)
        else:
            yield layer


__all__ = ["DISCRIMINATORS", "build_discriminator", "receptive_field"]

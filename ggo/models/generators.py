"""Segmentation generators: U-Net and Attention U-Net, returning GGO logits (and auxiliary heads').

Read top to bottom: ``build_generator`` validates the arguments and builds the encoder, the
bottleneck and the decoder. Each encoder level halves the resolution and doubles the filters
(capped at ``max_filters``); each decoder level doubles the resolution and concatenates the
matching encoder features (through an attention gate for ``attention_unet``).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import keras
from keras import layers

from ggo.models.blocks import (
    NORMS,
    UPSAMPLINGS,
    attention_gate,
    check_choice,
    double_conv,
    float32_logits,
    upsample,
)
from ggo.heads import output_layer_name, resolve_heads

GENERATORS = ("unet", "attention_unet")
MIN_DEPTH, MAX_DEPTH = 3, 7


def valid_resolutions(resolution: int, depth: int) -> tuple[int, int]:
    """The nearest resolutions below and above ``resolution`` that a generator of ``depth``
    accepts (multiples of 2**depth; the lower one is at least 2**depth)."""
    step = 2**depth
    lower = max(step, (resolution // step) * step)
    upper = max(step, -(-resolution // step) * step)
    return lower, upper


def check_resolution(resolution: int, depth: int) -> None:
    """Raise a ValueError unless ``resolution`` is a positive multiple of 2**depth."""
    step = 2**depth
    if resolution <= 0 or resolution % step != 0:
        lower, upper = valid_resolutions(resolution, depth)
        max_depth = 0
        while resolution > 0 and resolution % (2 ** (max_depth + 1)) == 0:
            max_depth += 1
        sizes = f"{lower}" if lower == upper else f"{lower} or {upper}"
        hint = f"; or use depth <= {max_depth} at resolution {resolution}" if max_depth >= 1 else ""
        raise ValueError(
            f"Generator resolution {resolution} is not a multiple of 2**depth = {step} "
            f"(depth={depth}): use resolution {sizes}{hint}"
        )


def _check_generator_args(
    name: str, resolution: int, depth: int, base_filters: int, max_filters: int, norm: str, dropout: float, upsampling: str
) -> None:
    """Raise a ValueError naming the first of :func:`build_generator`'s arguments that is out of range."""
    check_choice(name, GENERATORS, "generator")
    check_choice(norm, NORMS, "norm")
    check_choice(upsampling, UPSAMPLINGS, "upsampling")
    if not MIN_DEPTH <= depth <= MAX_DEPTH:
        raise ValueError(f"Generator depth must be in {MIN_DEPTH}..{MAX_DEPTH}, got {depth}")
    check_resolution(resolution, depth)
    if base_filters < 1 or max_filters < base_filters:
        raise ValueError(
            f"Need 1 <= base_filters <= max_filters, got base_filters={base_filters}, "
            f"max_filters={max_filters}"
        )
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")


def build_generator(
    name: str,
    resolution: int,
    *,
    depth: int = 4,
    base_filters: int = 16,
    max_filters: int = 256,
    norm: str = "batch",
    dropout: float = 0.0,
    upsampling: str = "transpose",
    in_channels: int = 1,
    lung_head: bool = False,
    aux_heads: Sequence[str] = (),
) -> keras.Model:
    """Build a U-Net style segmentation generator.

    Args:
        name: ``"unet"`` or ``"attention_unet"`` (additive attention gates on every skip
            connection, Oktay et al. 2018).
        resolution: input height and width; a multiple of ``2**depth``.
        depth: number of 2x downsamplings (3 to 7).
        base_filters: filters at full resolution; doubled per level up to ``max_filters``.
        norm: ``batch``, ``instance`` or ``none``.
        dropout: dropout rate after each decoder block (0 disables it).
        upsampling: ``transpose`` (learned) or ``bilinear`` (resize + conv).
        in_channels: input channels (1 for grayscale X-rays).
        lung_head: also predict the lungs: a second logit channel from the same decoder,
            trained on the lung annotations and used at inference as a prior that suppresses
            GGO outside the lungs (``ggo.evaluation.inference.predict_probs``). The same as
            ``aux_heads=["lungs"]``.
        aux_heads: auxiliary outputs, one logit channel each after GGO, in this order (names in
            :data:`ggo.heads.AUX_HEADS`: lungs, heart, airways, consolidation, devices). They
            share the decoder and only shape its features; of them only ``lungs`` changes the
            GGO prediction (the gate).

    Returns:
        A functional ``keras.Model`` named ``name`` mapping (B, R, R, in_channels) images to
        (B, R, R, 1 + K) float32 logits (float32 also under mixed precision): GGO, then the K
        heads of :func:`ggo.heads.resolve_heads`. Its output layer's name records the heads
        (:func:`ggo.heads.model_heads` reads them back). Apply a sigmoid for probabilities.
    """
    _check_generator_args(name, resolution, depth, base_filters, max_filters, norm, dropout, upsampling)
    attention = name == "attention_unet"
    heads = resolve_heads(lung_head, aux_heads)

    def filters_at(level: int) -> int:
        return min(base_filters * 2**level, max_filters)

    inputs = keras.Input((resolution, resolution, in_channels), name="image")
    x = inputs

    # Encoder: keep each level's features for the skip connections.
    skips = []
    for level in range(depth):
        x = double_conv(x, filters_at(level), norm=norm, name=f"enc{level}")  # (B, R/2^l, R/2^l, F_l)
        skips.append(x)
        x = layers.MaxPooling2D(2, name=f"enc{level}_pool")(x)  # (B, R/2^(l+1), ..., F_l)

    x = double_conv(x, filters_at(depth), norm=norm, name="bottleneck")  # (B, R/2^depth, ..., F_depth)

    # Decoder: upsample, (gate the skip), concatenate, convolve.
    for level in reversed(range(depth)):
        skip = skips[level]
        if attention:
            # The gating signal is the coarser decoder map, before upsampling (Oktay et al.).
            skip = attention_gate(skip, x, max(filters_at(level) // 2, 1), name=f"att{level}")
        x = upsample(x, filters_at(level), mode=upsampling, name=f"dec{level}_up")  # (B, R/2^l, ..., F_l)
        x = layers.Concatenate(name=f"dec{level}_concat")([x, skip])  # (B, R/2^l, ..., 2 F_l)
        x = double_conv(x, filters_at(level), norm=norm, dropout=dropout, name=f"dec{level}")

    logits = float32_logits(x, 1 + len(heads), name=output_layer_name(heads))  # (B, R, R, 1 + K) float32
    return keras.Model(inputs, logits, name=name)


def generator_from_config(gen: Mapping[str, Any], resolution: int) -> keras.Model:
    """The generator of a config's ``gen`` section (``{"name": ..., **build_generator options}``)."""
    return build_generator(gen["name"], resolution, **{k: v for k, v in gen.items() if k != "name"})


__all__ = ["GENERATORS", "build_generator", "check_resolution", "generator_from_config", "valid_resolutions"]

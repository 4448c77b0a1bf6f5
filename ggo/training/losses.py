"""Losses for the generator and the discriminator, all from logits.

``keras.ops`` only. Every function casts its inputs to float32 first, so the losses stay in
float32 under a mixed precision policy, and works on logits with the numerically stable forms
(no ``log(sigmoid(x))``). Masks ``y_true`` are (B, H, W, 1) with values in [0, 1].

A generator with auxiliary heads (``gen.aux_heads``; ``gen.lung_head`` is the lung head) emits
(B, H, W, 1 + K) logits, GGO then one channel per head, and trains on (B, H, W, 1 + 2K) targets:
the GGO mask, then per head its mask and its weight (0 where the film's annotation of it is
unknown; see :mod:`ggo.heads`). :func:`heads_loss` splits them; every other loss sees one channel.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from keras import ops

from ggo.heads import LUNGS

ADVERSARIAL_MODES = ("bce", "lsgan")


def _f32(x):
    return ops.cast(x, "float32")


def _spatial_axes(x) -> tuple[int, ...]:
    return tuple(range(1, len(x.shape)))


def bce_elementwise(y_true, logits):
    """Per-element binary cross-entropy from logits:
    ``max(x, 0) - x * y + log(1 + exp(-|x|))`` (stable for any x)."""
    y, x = _f32(y_true), _f32(logits)
    return ops.relu(x) - x * y + ops.log1p(ops.exp(-ops.abs(x)))


def bce_from_logits(y_true, logits):
    """Mean binary cross-entropy between targets in [0, 1] and logits."""
    return ops.mean(bce_elementwise(y_true, logits))


def l1_loss(y_true, logits):
    """pix2pix L1 term: mean |y - sigmoid(logits)|."""
    return ops.mean(ops.abs(_f32(y_true) - ops.sigmoid(_f32(logits))))


def soft_dice_loss(y_true, logits, smooth: float = 1.0):
    """1 - mean over images of the soft Dice ``(2 sum(y p) + s) / (sum(y) + sum(p) + s)``,
    with ``p = sigmoid(logits)``. The smoothing term ``s`` makes an image with an empty mask and
    an empty prediction score 1 and keeps the gradient finite."""
    y, p = _f32(y_true), ops.sigmoid(_f32(logits))
    axes = _spatial_axes(y)
    inter = ops.sum(y * p, axis=axes)  # (B,)
    denom = ops.sum(y, axis=axes) + ops.sum(p, axis=axes)  # (B,)
    return 1.0 - ops.mean((2.0 * inter + smooth) / (denom + smooth))


def adversarial_loss(logits, target_is_real: bool, mode: str = "bce", label_smoothing: float = 0.0):
    """GAN loss of discriminator ``logits`` against an all-real or all-fake target.

    For D use ``target_is_real=True`` on real pairs and ``False`` on fakes; for G use
    ``target_is_real=True`` on fakes (the non-saturating generator loss).

    Args:
        logits: discriminator patch logits, any shape.
        target_is_real: whether the target is "real" (1) or "fake" (0).
        mode: ``"bce"`` (pix2pix) or ``"lsgan"`` (least squares on the raw logits, Mao et al.).
        label_smoothing: one-sided smoothing: real targets become ``1 - label_smoothing``; fake
            targets stay 0 (Salimans et al. 2016). Pass it only for D's loss on real pairs.
    """
    if mode not in ADVERSARIAL_MODES:
        raise ValueError(f"Unknown adversarial mode {mode!r}; valid: {', '.join(ADVERSARIAL_MODES)}")
    if not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
    x = _f32(logits)
    target = (1.0 - label_smoothing) if target_is_real else 0.0
    if mode == "bce":
        return ops.mean(bce_elementwise(ops.full_like(x, target), x))
    return ops.mean(ops.square(x - target))


def segmentation_loss(y_true, logits, *, bce: float = 0.0, l1: float = 100.0, dice: float = 0.0):
    """Weighted supervised loss ``bce * BCE + l1 * L1 + dice * (1 - soft Dice)``.

    Returns:
        ``(total, parts)``: ``total`` the weighted sum (float32 scalar); ``parts`` a dict of the
        UNWEIGHTED terms ``{"bce", "l1", "dice_loss"}``. All three are always computed (they are
        cheap) so every run logs comparable curves whatever its weights.
    """
    for term, weight in (("bce", bce), ("l1", l1), ("dice", dice)):
        if weight < 0:
            raise ValueError(f"Loss weight {term}={weight} must be >= 0")
    parts = {
        "bce": bce_from_logits(y_true, logits),
        "l1": l1_loss(y_true, logits),
        "dice_loss": soft_dice_loss(y_true, logits),
    }
    total = bce * parts["bce"] + l1 * parts["l1"] + dice * parts["dice_loss"]
    return total, parts


def head_loss(targets, logits, k: int = 1):
    """Weighted BCE of auxiliary head ``k`` (1-based): logit channel ``k`` against target channel
    ``2k - 1`` weighted by channel ``2k`` (``targets`` (B, H, W, 1 + 2K), ``logits`` (B, H, W, 1 + K)).
    The mean over pixels of weight 1 (0 when every weight is 0)."""
    t, x = _f32(targets), _f32(logits)
    weight = t[..., 2 * k : 2 * k + 1]
    per_pixel = bce_elementwise(t[..., 2 * k - 1 : 2 * k], x[..., k : k + 1]) * weight
    return ops.sum(per_pixel) / ops.maximum(ops.sum(weight), 1.0)


def lung_loss(targets, logits):
    """Weighted BCE of the lung head: ``targets`` (B, H, W, 3) = GGO, lung, weight; ``logits``
    (B, H, W, 2). The mean over pixels of weight 1 (0 when every weight is 0)."""
    return head_loss(targets, logits, 1)


def loss_term(head: str) -> str:
    """The name a head's loss term is logged under: ``lung`` for the lungs (as before
    ``gen.aux_heads``), the head's name for the others."""
    return "lung" if head == LUNGS else head


def heads_loss(
    targets, logits, *, bce: float = 0.0, l1: float = 100.0, dice: float = 0.0, lung: float = 0.0,
    aux: Mapping[str, float] | None = None, heads: Sequence[str] | None = None,
):  # fmt: skip
    """:func:`segmentation_loss` on the GGO channel, plus each auxiliary head's weighted
    :func:`head_loss`: ``lung`` x the lung head's, ``aux[name]`` x any other head's.

    ``heads``: the logits' heads in channel order (None: 1 channel is GGO alone, 2 are GGO and
    lungs). Returns ``(total, parts)``: ``parts["lung"]`` the unweighted lung term (0 without a
    lung head) and ``parts[name]`` each other head's.
    """
    weights = {LUNGS: lung, **(aux or {})}
    for name, weight in weights.items():
        if weight < 0:
            raise ValueError(f"Loss weight {loss_term(name)}={weight} must be >= 0")
    channels = logits.shape[-1]
    if heads is None:
        if channels not in (1, 2):
            raise ValueError(f"generator logits must have 1 (GGO) or 2 (GGO, lungs) channels without heads=, got {channels}")
        heads = (LUNGS,) if channels == 2 else ()
    heads = tuple(heads)
    if channels != 1 + len(heads) or targets.shape[-1] != 1 + 2 * len(heads):
        raise ValueError(
            f"heads {heads} need (B, H, W, {1 + len(heads)}) logits and (B, H, W, {1 + 2 * len(heads)}) targets "
            f"(GGO, then each head's mask and weight), got {tuple(logits.shape)} and {tuple(targets.shape)}"
        )
    total, parts = segmentation_loss(targets[..., :1], logits[..., :1], bce=bce, l1=l1, dice=dice)
    parts["lung"] = ops.zeros((), "float32")
    for k, name in enumerate(heads, start=1):
        if name not in weights:
            raise ValueError(f"no loss weight for head {name!r}: pass aux={{{name!r}: weight}}")
        parts[loss_term(name)] = head_loss(targets, logits, k)
        total = total + weights[name] * parts[loss_term(name)]
    return total, parts


__all__ = [
    "ADVERSARIAL_MODES",
    "head_loss",
    "heads_loss",
    "loss_term",
    "lung_loss",
    "adversarial_loss",
    "bce_elementwise",
    "bce_from_logits",
    "l1_loss",
    "segmentation_loss",
    "soft_dice_loss",
]

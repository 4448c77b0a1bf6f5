"""A TensorFlow-free input pipeline: numpy batches with the tf.data pipeline's augmentation.

The JAX backend (``train.backend=jax``) trains from this module; ``ggo.training.make_dataset``
returns it whenever Keras runs on a backend other than TensorFlow. ``make_dataset`` has the
signature of :func:`ggo.training.pipeline.make_dataset` and returns a ``keras.utils.PyDataset``
of float32 ``(images (B, R, R, C), masks (B, R, R, 1))`` numpy batches, which ``fit`` feeds to
any backend.

Augmentation has the tf.data pipeline's semantics: one random affine transform per sample
(horizontal flip, rotation, zoom, shift, the same ranges and the same matrix), applied to the
image and its mask together, bilinear, with the mask re-binarised at 0.5; then contrast and
brightness jitter on the image only. OpenCV's ``warpAffine`` does the resampling (imported
only when geometric augmentation is on). It maps every output pixel to the input point it
samples, like ``ImageProjectiveTransformV3``, but rounds that point to 1/32 pixel, so the two
pipelines agree to about 1% of the local intensity step, not bit for bit.

Randomness is seeded: batch ``i`` of epoch ``e`` draws from ``default_rng([seed, e, i])``, so
the same seed gives the same batches in any worker order, and every epoch draws new transforms.
The epoch counter advances in ``on_epoch_end`` (``fit`` calls it after every epoch).
"""

from __future__ import annotations

import math

import keras
import numpy as np

from ggo.training.augment import FILL_MODES, AugmentConfig, BatchSource, check_source  # noqa: F401  (re-exported)

# Stream ids, so shuffling and augmentation never draw from the same numbers.
_SHUFFLE, _AUGMENT = 0, 1


def affine_transforms(batch: int, height: int, width: int, cfg: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """Random per-sample transforms (B, 8), rows in ``ImageProjectiveTransformV3``'s layout.

    Each row maps an OUTPUT pixel (x, y) to the INPUT point it samples:
    ``p_in = c + M (p_out - c) + t`` with c the image centre, ``M = R(theta) diag(f, 1) / z``
    (rotation theta, flip f = +-1, zoom z) and t the shift in pixels; the tf.data pipeline's
    formula, term for term.
    """
    ones = np.ones(batch)
    theta = rng.uniform(-1.0, 1.0, batch) * (cfg.rotation_deg * math.pi / 180.0)
    zoom = rng.uniform(1.0 - cfg.scale, 1.0 + cfg.scale, batch) if cfg.scale else ones
    flip = np.where(rng.uniform(0.0, 1.0, batch) < 0.5, -ones, ones) if cfg.flip else ones
    tx = rng.uniform(-1.0, 1.0, batch) * (cfg.shift * width)
    ty = rng.uniform(-1.0, 1.0, batch) * (cfg.shift * height)
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    cos, sin = np.cos(theta) / zoom, np.sin(theta) / zoom
    a0, a1 = cos * flip, -sin
    b0, b1 = sin * flip, cos
    a2 = cx + tx - a0 * cx - a1 * cy
    b2 = cy + ty - b0 * cx - b1 * cy
    zeros = np.zeros(batch)
    return np.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1).astype(np.float32)  # (B, 8)


def warp_batch(
    images: np.ndarray,
    masks: np.ndarray,
    transforms: np.ndarray,
    *,
    fill_mode: str = "constant",
    fill_value: float = -1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Apply one affine transform (a row of ``transforms``, (B, 8)) to each image and its mask.

    Bilinear; pixels from outside the input are filled per ``fill_mode`` (``constant``: the
    image gets ``fill_value``, the mask 0). Masks come back binary (> 0.5).
    """
    import cv2  # only geometric augmentation needs OpenCV

    borders = {
        "constant": cv2.BORDER_CONSTANT,
        "reflect": cv2.BORDER_REFLECT,  # (d c b a | a b c d | d c b a), as tf.image's REFLECT
        "nearest": cv2.BORDER_REPLICATE,
        "wrap": cv2.BORDER_WRAP,
    }
    if fill_mode not in borders:
        raise ValueError(f"Unknown fill_mode {fill_mode!r}; valid: {', '.join(FILL_MODES)}")
    height, width, channels = images.shape[1:]
    offset = fill_value if fill_mode == "constant" else 0.0
    # Shift the image so the zero fill becomes fill_value for the image and 0 for the mask;
    # bilinear resampling commutes with the shift (the tf.data pipeline's trick).
    stacked = np.concatenate([images - offset, masks], axis=-1).astype(np.float32)  # (B, H, W, C + M)
    out = np.empty_like(stacked)
    for i in range(len(stacked)):
        matrix = transforms[i, :6].reshape(2, 3).astype(np.float64)
        out[i] = cv2.warpAffine(
            stacked[i],
            matrix,
            (width, height),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,  # matrix maps output -> input
            borderMode=borders[fill_mode],
            borderValue=0.0,
        ).reshape(height, width, stacked.shape[-1])  # (a 2-D result when one channel)
    images = out[..., :channels] + np.float32(offset)  # (B, H, W, C)
    masks = (out[..., channels:] > 0.5).astype(masks.dtype)  # (B, H, W, M), binary again
    return images, masks


def augment_batch(
    images: np.ndarray, masks: np.ndarray, cfg: AugmentConfig | dict | None, rng: np.random.Generator | int
) -> tuple[np.ndarray, np.ndarray]:
    """Augment a batch: the same geometric transform for each image and its mask, photometric
    jitter on the image only. ``rng`` is a numpy Generator or a seed."""
    cfg = AugmentConfig.from_any(cfg)
    rng = np.random.default_rng(rng)
    images = np.asarray(images, np.float32)
    masks = np.asarray(masks, np.float32)
    batch, height, width = images.shape[:3]
    if cfg.geometric:
        transforms = affine_transforms(batch, height, width, cfg, rng)
        images, masks = warp_batch(images, masks, transforms, fill_mode=cfg.fill_mode, fill_value=cfg.fill_value)
    if cfg.photometric:
        if cfg.contrast:
            factor = rng.uniform(1.0 - cfg.contrast, 1.0 + cfg.contrast, (batch, 1, 1, 1)).astype(np.float32)
            mean = images.mean(axis=(1, 2, 3), keepdims=True)
            images = (images - mean) * factor + mean
        if cfg.brightness:
            images = images + rng.uniform(-cfg.brightness, cfg.brightness, (batch, 1, 1, 1)).astype(np.float32)
    return images.astype(np.float32), masks


class ArrayDataset(keras.utils.PyDataset):
    """Batches of ``(image, mask)`` from a source (:class:`~ggo.training.augment.BatchSource`: a
    cached split read a batch at a time, or in-memory arrays): seeded shuffling and augmentation.

    Build it with :func:`make_dataset`. Iterating it directly gives one epoch; call
    ``on_epoch_end()`` to move to the next (new order, new transforms), as ``fit`` does.
    """

    def __init__(
        self,
        source: BatchSource,
        *,
        batch_size: int,
        shuffle: bool = False,
        augment: AugmentConfig | None = None,
        seed: int = 0,
        drop_remainder: bool = False,
        workers: int = 1,
        max_queue_size: int = 10,
    ):
        super().__init__(workers=workers, use_multiprocessing=False, max_queue_size=max_queue_size)
        self.source = source
        self.batch_size = int(batch_size)
        self.shuffle, self.seed, self.drop_remainder = bool(shuffle), int(seed), bool(drop_remainder)
        self.augment = AugmentConfig.from_any(augment)
        self.epoch = 0
        self._order: tuple[int, np.ndarray] | None = None

    def __len__(self) -> int:
        n = len(self.source)
        return n // self.batch_size if self.drop_remainder else math.ceil(n / self.batch_size)

    def order(self) -> np.ndarray:
        """This epoch's sample order (a seeded permutation per epoch when shuffling)."""
        if self._order is None or self._order[0] != self.epoch:
            n = len(self.source)
            perm = np.random.default_rng([self.seed, _SHUFFLE, self.epoch]).permutation(n) if self.shuffle else np.arange(n)
            self._order = (self.epoch, perm)
        return self._order[1]

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        if not 0 <= index < len(self):
            raise IndexError(f"batch {index} out of range: the dataset has {len(self)} batches")
        picked = self.order()[index * self.batch_size : (index + 1) * self.batch_size]
        images, masks = self.source.read(picked)  # new arrays: the source stays intact
        if self.augment.enabled:
            rng = np.random.default_rng([self.seed, _AUGMENT, self.epoch, index])
            images, masks = augment_batch(images, masks, self.augment, rng)
        return images, masks

    def on_epoch_end(self) -> None:
        self.epoch += 1


def make_dataset(
    images: np.ndarray | BatchSource,
    masks: np.ndarray | None = None,
    *,
    batch_size: int,
    shuffle: bool = False,
    augment: AugmentConfig | dict | None = None,
    seed: int = 0,
    drop_remainder: bool = False,
    workers: int = 1,
) -> ArrayDataset:
    """Batches of ``(image, mask)`` from a source or in-memory arrays, without TensorFlow.

    Args:
        images: (N, R, R, C) float32 (or (N, R, R)); or, with ``masks`` None, a source whose
            ``read(positions)`` gives both (``Split.source()``: the films are read from the cache
            a batch at a time, never the whole split into memory).
        masks: (N, R, R, 1) float32 in {0, 1} (or (N, R, R)); None with a source.
        batch_size: images per batch.
        shuffle: a new seeded order every epoch (the same ``seed`` gives the same orders).
        augment: ``AugmentConfig`` (this module's or the tf.data pipeline's), a dict of its
            fields, or None for no augmentation.
        seed: seed of shuffling and augmentation.
        drop_remainder: drop the last incomplete batch.
        workers: threads preparing batches ahead of the step (1: in the training loop's thread).

    Returns:
        An :class:`ArrayDataset` (a ``keras.utils.PyDataset``) yielding float32
        ``(images (B, R, R, C), masks (B, R, R, 1))`` numpy arrays.
    """
    return ArrayDataset(
        check_source(images, masks, batch_size),
        batch_size=batch_size,
        shuffle=shuffle,
        augment=AugmentConfig.from_any(augment),
        seed=seed,
        drop_remainder=drop_remainder,
        workers=workers,
    )


__all__ = [
    "FILL_MODES",
    "ArrayDataset",
    "AugmentConfig",
    "affine_transforms",
    "augment_batch",
    "make_dataset",
    "warp_batch",
]

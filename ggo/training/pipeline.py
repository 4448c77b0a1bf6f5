"""The tf.data input pipeline with joint image/mask augmentation.

``make_dataset`` turns a training split (read from the cache a batch at a time:
``Split.source()``) or in-memory numpy arrays into batches of ``(image, mask)``. Augmentation runs
inside the pipeline on whole batches (never on the cached arrays): one random affine transform
per sample — horizontal flip, rotation, zoom, shift — is applied to the image and its mask
together with ``ImageProjectiveTransformV3`` (bilinear), then the mask is re-binarised at 0.5;
brightness and contrast jitter touch the image only.

Randomness is stateless and seeded: the same ``seed`` gives the same batches and the same
transforms, epoch by epoch, while each epoch draws new transforms.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from ggo.training.augment import FILL_MODES, ArraySource, AugmentConfig, BatchSource, check_source  # noqa: F401  (re-exported)


def _uniform(shape, seed, low, high):
    return tf.random.stateless_uniform(shape, seed=seed, minval=low, maxval=high, dtype=tf.float32)


def affine_transforms(batch: tf.Tensor, height: int, width: int, cfg: AugmentConfig, seed) -> tf.Tensor:
    """Random per-sample transforms (B, 8) for ``ImageProjectiveTransformV3``.

    Each row maps an OUTPUT pixel (x, y) to the INPUT point it samples:
    ``p_in = c + M (p_out - c) + t`` with c the image centre, ``M = R(theta) diag(f, 1) / z``
    (rotation theta, flip f = +-1, zoom z) and t the shift in pixels.
    """
    seeds = tf.random.experimental.stateless_split(seed, num=5)
    ones = tf.ones((batch,), tf.float32)
    theta = _uniform((batch,), seeds[0], -1.0, 1.0) * (cfg.rotation_deg * math.pi / 180.0)
    zoom = _uniform((batch,), seeds[1], 1.0 - cfg.scale, 1.0 + cfg.scale) if cfg.scale else ones
    flip = (
        tf.where(_uniform((batch,), seeds[2], 0.0, 1.0) < 0.5, -ones, ones) if cfg.flip else ones
    )
    tx = _uniform((batch,), seeds[3], -1.0, 1.0) * (cfg.shift * width)
    ty = _uniform((batch,), seeds[4], -1.0, 1.0) * (cfg.shift * height)
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    cos, sin = tf.cos(theta) / zoom, tf.sin(theta) / zoom
    a0, a1 = cos * flip, -sin
    b0, b1 = sin * flip, cos
    a2 = cx + tx - a0 * cx - a1 * cy
    b2 = cy + ty - b0 * cx - b1 * cy
    zeros = tf.zeros_like(a0)
    return tf.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)  # (B, 8)


def augment_batch(images: tf.Tensor, masks: tf.Tensor, cfg: AugmentConfig, seed) -> tuple:
    """Augment a batch: the same geometric transform for each image and its mask, photometric
    jitter on the image only. ``seed`` is a shape-(2,) int tensor (stateless randomness)."""
    geo_seed, photo_seed = tf.unstack(tf.random.experimental.stateless_split(seed, num=2))
    batch = tf.shape(images)[0]
    height, width = images.shape[1], images.shape[2]
    channels = images.shape[3]
    if cfg.geometric:
        offset = cfg.fill_value if cfg.fill_mode == "constant" else 0.0
        # Shift the image so the transform's zero fill becomes fill_value for the image and 0
        # for the mask; bilinear resampling commutes with the shift.
        stacked = tf.concat([images - offset, masks], axis=-1)  # (B, H, W, C + 1)
        warped = tf.raw_ops.ImageProjectiveTransformV3(
            images=stacked,
            transforms=affine_transforms(batch, height, width, cfg, geo_seed),
            output_shape=tf.constant([height, width], tf.int32),
            fill_value=0.0,
            interpolation="BILINEAR",
            fill_mode=cfg.fill_mode.upper(),
        )
        images = warped[..., :channels] + offset  # (B, H, W, C)
        masks = tf.cast(warped[..., channels:] > 0.5, masks.dtype)  # (B, H, W, 1), binary again
    if cfg.photometric:
        s_b, s_c = tf.unstack(tf.random.experimental.stateless_split(photo_seed, num=2))
        if cfg.contrast:
            factor = _uniform((batch, 1, 1, 1), s_c, 1.0 - cfg.contrast, 1.0 + cfg.contrast)
            mean = tf.reduce_mean(images, axis=(1, 2, 3), keepdims=True)
            images = (images - mean) * factor + mean
        if cfg.brightness:
            images = images + _uniform((batch, 1, 1, 1), s_b, -cfg.brightness, cfg.brightness)
    return images, masks


def _batches_of_arrays(images: np.ndarray, masks: np.ndarray, batch_size: int, shuffle: bool, seed: int, drop_remainder: bool) -> tf.data.Dataset:
    ds = tf.data.Dataset.from_tensor_slices((images, masks)).cache()
    if shuffle:
        ds = ds.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size, drop_remainder=drop_remainder)


def _batches_of_source(source: BatchSource, batch_size: int, shuffle: bool, seed: int, drop_remainder: bool) -> tf.data.Dataset:
    """Batches read from ``source`` by position: the positions are shuffled and batched (the same
    order, with the same ``seed``, as in-memory arrays get), then each batch is read."""
    image_shape, target_shape = source.shapes
    ds = tf.data.Dataset.range(len(source))
    if shuffle:
        ds = ds.shuffle(len(source), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)

    def read(positions: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        images, masks = tf.numpy_function(source.read, [positions], (tf.float32, tf.float32), stateful=False)
        return tf.ensure_shape(images, (None, *image_shape)), tf.ensure_shape(masks, (None, *target_shape))

    return ds.map(read, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def make_dataset(
    images: np.ndarray | BatchSource,
    masks: np.ndarray | None = None,
    *,
    batch_size: int,
    shuffle: bool = False,
    augment: AugmentConfig | dict | None = None,
    seed: int = 0,
    drop_remainder: bool = False,
) -> tf.data.Dataset:
    """Batches of ``(image, mask)`` from a source or in-memory arrays.

    Args:
        images: (N, R, R, C) float32 (or (N, R, R)); or, with ``masks`` None, a source whose
            ``read(positions)`` gives both (``Split.source()``: the films are read from the cache
            a batch at a time, never the whole split into memory).
        masks: (N, R, R, 1) float32 in {0, 1} (or (N, R, R)); None with a source.
        batch_size: images per batch.
        shuffle: reshuffle every epoch (seeded: the same ``seed`` gives the same orders).
        augment: ``AugmentConfig``, a dict of its fields, or None for no augmentation.
        seed: seed of shuffling and augmentation.
        drop_remainder: drop the last incomplete batch.

    Returns:
        A ``tf.data.Dataset`` yielding float32 ``(images (B, R, R, C), masks (B, R, R, 1))``,
        prefetched; arrays are cached in memory before the random stages. A source and the same
        arrays give the same batches.
    """
    source = check_source(images, masks, batch_size)
    cfg = AugmentConfig.from_any(augment)
    if isinstance(source, ArraySource):
        ds = _batches_of_arrays(source.images, source.masks, batch_size, shuffle, seed, drop_remainder)
    else:
        ds = _batches_of_source(source, batch_size, shuffle, seed, drop_remainder)
    if cfg.enabled:
        # One int64 per batch from a seeded stream that changes every epoch, deterministically.
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
        ds = tf.data.Dataset.zip((ds, seeds))

        def _augment(batch, rand):
            image, mask = batch
            op_seed = tf.stack([tf.cast(seed, tf.int64), rand])
            return augment_batch(image, mask, cfg, op_seed)

        ds = ds.map(_augment, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE)


__all__ = ["AugmentConfig", "FILL_MODES", "affine_transforms", "augment_batch", "make_dataset"]

"""Tiny segmentation data for training tests: bright disks on noise (no Keras, any backend)."""

from __future__ import annotations

import numpy as np


def blobs(n=16, size=32, seed=0):
    """Noisy background with one bright disk per image; the mask is the disk."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    images, masks = [], []
    for _ in range(n):
        cx, cy = rng.uniform(size / 4, 3 * size / 4, 2)
        r = rng.uniform(size / 8, size / 4)
        mask = ((xx - cx) ** 2 + (yy - cy) ** 2 <= r * r).astype(np.float32)
        images.append(rng.normal(-0.5, 0.2, (size, size)).astype(np.float32) + mask)
        masks.append(mask)
    return np.stack(images)[..., None], np.stack(masks)[..., None]

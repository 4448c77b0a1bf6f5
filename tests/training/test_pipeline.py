"""Input pipeline: batching, seeded shuffling and joint image/mask augmentation."""

import numpy as np
import pytest

from ggo.training.pipeline import AugmentConfig, make_dataset


def disks(n=8, size=32, seed=0):
    """Binary disks at random places; returns (images, masks) with image == mask."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    out = []
    for _ in range(n):
        cx, cy, r = rng.uniform(8, size - 8, 2).tolist() + [rng.uniform(3, 7)]
        out.append(((xx - cx) ** 2 + (yy - cy) ** 2 <= r * r).astype(np.float32))
    m = np.stack(out)[..., None]
    return m.copy(), m


def collect(ds):
    images, masks = zip(*[(x.numpy(), y.numpy()) for x, y in ds])
    return np.concatenate(images), np.concatenate(masks)


GEOMETRIC = AugmentConfig(rotation_deg=20, scale=0.15, shift=0.1, brightness=0, contrast=0, fill_value=0.0)


def test_batches_are_float32_image_mask_pairs_with_a_short_last_batch():
    images, masks = disks(10)
    batches = list(make_dataset(images, masks, batch_size=4))
    assert [int(x.shape[0]) for x, _ in batches] == [4, 4, 2]
    x, y = batches[0]
    assert x.dtype.name == "float32" and y.dtype.name == "float32"
    assert tuple(x.shape[1:]) == (32, 32, 1) and tuple(y.shape[1:]) == (32, 32, 1)
    assert len(list(make_dataset(images, masks, batch_size=4, drop_remainder=True))) == 2


def test_without_augmentation_the_arrays_come_back_unchanged_and_in_order():
    images, masks = disks(6)
    x, y = collect(make_dataset(images * 2 - 1, masks[..., 0], batch_size=4))
    np.testing.assert_array_equal(x, images * 2 - 1)
    np.testing.assert_array_equal(y, masks)


def test_shuffle_is_seeded_and_reshuffles_each_epoch():
    images, masks = disks(16)
    order = np.arange(16, dtype=np.float32)[:, None, None, None] * np.ones_like(images)
    ds = make_dataset(order, masks, batch_size=16, shuffle=True, seed=1)
    first, second = collect(ds)[0][:, 0, 0, 0], collect(ds)[0][:, 0, 0, 0]
    again = collect(make_dataset(order, masks, batch_size=16, shuffle=True, seed=1))[0][:, 0, 0, 0]
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, second)
    assert sorted(first.tolist()) == list(range(16))


@pytest.mark.parametrize("fill_mode", ["constant", "reflect"])
def test_geometric_augmentation_moves_image_and_mask_together(fill_mode):
    images, masks = disks(8)
    cfg = AugmentConfig(**{**GEOMETRIC.__dict__, "fill_mode": fill_mode})
    x, y = collect(make_dataset(images, masks, batch_size=4, augment=cfg, seed=3))
    # The image went through the same bilinear warp; thresholding it gives the mask exactly.
    np.testing.assert_array_equal((x > 0.5).astype(np.float32), y)
    assert not np.array_equal(y, masks)  # something did move
    assert set(np.unique(y).tolist()) <= {0.0, 1.0}


def test_flip_alone_mirrors_image_and_mask_left_right_exactly():
    images, masks = disks(16)
    images = images + np.linspace(0, 0.1, 32, dtype=np.float32)[None, None, :, None]  # asymmetric
    cfg = AugmentConfig(flip=True, rotation_deg=0, scale=0, shift=0, brightness=0, contrast=0)
    x, y = collect(make_dataset(images, masks, batch_size=16, augment=cfg, seed=0))
    flipped = [not np.allclose(x[i], images[i]) for i in range(16)]
    assert 0 < sum(flipped) < 16
    for i in range(16):
        ref_x, ref_y = (images[i, :, ::-1], masks[i, :, ::-1]) if flipped[i] else (images[i], masks[i])
        np.testing.assert_allclose(x[i], ref_x, atol=1e-5)
        np.testing.assert_array_equal(y[i], ref_y)


def test_augmentation_is_deterministic_per_seed_and_new_each_epoch():
    images, masks = disks(8)
    ds = make_dataset(images, masks, batch_size=4, shuffle=True, augment=AugmentConfig(), seed=5)
    epoch1, epoch2 = collect(ds), collect(ds)
    rebuilt = collect(make_dataset(images, masks, batch_size=4, shuffle=True, augment=AugmentConfig(), seed=5))
    other = collect(make_dataset(images, masks, batch_size=4, shuffle=True, augment=AugmentConfig(), seed=6))
    np.testing.assert_array_equal(epoch1[0], rebuilt[0])
    np.testing.assert_array_equal(epoch1[1], rebuilt[1])
    assert not np.array_equal(epoch1[0], epoch2[0])
    assert not np.array_equal(epoch1[0], other[0])


def test_photometric_jitter_changes_the_image_only():
    images, masks = disks(8)
    cfg = AugmentConfig(flip=False, rotation_deg=0, scale=0, shift=0, brightness=0.2, contrast=0.2)
    x, y = collect(make_dataset(images, masks, batch_size=8, augment=cfg))
    np.testing.assert_array_equal(y, masks)
    assert not np.allclose(x, images)


def test_constant_fill_uses_fill_value_for_the_image_and_zero_for_the_mask():
    images = np.ones((4, 32, 32, 1), np.float32)
    masks = np.ones((4, 32, 32, 1), np.float32)
    cfg = AugmentConfig(flip=False, rotation_deg=0, scale=0, shift=0.2, brightness=0, contrast=0, fill_value=-1.0)
    x, y = collect(make_dataset(images, masks, batch_size=4, augment=cfg))
    assert x.min() == pytest.approx(-1.0) and y.min() == 0.0
    # Image = -1 + 2 * (inside fraction), mask = inside fraction > 0.5: they agree at 0.
    np.testing.assert_array_equal(x > 0.0, y == 1.0)


def test_augment_config_accepts_dicts_and_rejects_unknown_options():
    images, masks = disks(4)
    make_dataset(images, masks, batch_size=2, augment={"flip": False, "rotation_deg": 5})
    with pytest.raises(ValueError, match="rotation"):
        make_dataset(images, masks, batch_size=2, augment={"rotate": 5})
    assert not AugmentConfig.none().enabled and AugmentConfig().enabled


def test_mismatched_images_and_masks_are_rejected():
    images, masks = disks(4)
    with pytest.raises(ValueError, match="do not match"):
        make_dataset(images, masks[:3], batch_size=2)

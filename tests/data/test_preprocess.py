"""The shared preprocessing: geometry, intensity, input formats, and restoring masks."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from ggo.data import preprocess, preprocess_mask, restore_mask, square_geometry, to_grayscale_uint8


def _gray(h: int = 37, w: int = 53, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w)).astype(np.uint8)


def _ellipse_mask(h: int, w: int) -> np.ndarray:
    mask = np.zeros((h, w), np.uint8)
    cv2.ellipse(mask, (w // 3, h // 2), (w // 5, h // 4), 20, 0, 360, 1, -1)
    return mask.astype(bool)


def test_pad_centres_a_wide_image_and_pads_with_black() -> None:
    out = preprocess(np.full((50, 100), 255, np.uint8), 20, fit="pad")
    assert out.shape == (20, 20) and out.dtype == np.float32
    np.testing.assert_allclose(out[5:15], 1.0)
    np.testing.assert_allclose(out[:5], -1.0)
    np.testing.assert_allclose(out[15:], -1.0)


def test_pad_centres_a_tall_image_horizontally() -> None:
    geom = square_geometry((100, 50), 20, "pad")
    assert (geom.content_height, geom.content_width, geom.top, geom.left) == (20, 10, 0, 5)


def test_stretch_fills_the_square() -> None:
    out = preprocess(np.full((50, 100), 255, np.uint8), 20, fit="stretch")
    np.testing.assert_allclose(out, 1.0)
    assert square_geometry((50, 100), 20, "stretch").content == (slice(0, 20), slice(0, 20))


def test_output_is_float32_in_minus_one_to_one_and_matches_torchxrayvision() -> None:
    import torchxrayvision as xrv

    gray = _gray(32, 32)
    out = preprocess(gray, 32, fit="stretch")  # same size: the resize is the identity
    np.testing.assert_allclose(out, xrv.datasets.normalize(gray, 255) / 1024, atol=1e-6)
    assert out.min() >= -1.0 and out.max() <= 1.0


def test_bit_depth_and_channel_layout_give_the_same_result() -> None:
    gray = _gray()
    variants = {
        "gray8": gray,
        "gray16": gray.astype(np.uint16) * 257,
        "gray_hw1": gray[:, :, None],
        "bgr": np.dstack([gray] * 3),
        "bgra": np.dstack([gray] * 3 + [np.full_like(gray, 255)]),
        "bgr16": np.dstack([gray.astype(np.uint16) * 257] * 3),
        "float01": gray.astype(np.float32) / 255.0,
    }
    expected = preprocess(gray, 24)
    for label, image in variants.items():
        np.testing.assert_array_equal(to_grayscale_uint8(image), gray, err_msg=label)
        np.testing.assert_array_equal(preprocess(image, 24), expected, err_msg=label)


@pytest.mark.parametrize("fit", ["pad", "stretch"])
def test_restore_mask_round_trip_matches_original_shape_and_content(fit: str) -> None:
    mask = _ellipse_mask(123, 201)
    small = preprocess_mask(mask, 64, fit=fit)
    assert set(np.unique(small)) <= {0.0, 1.0} and small.dtype == np.float32
    restored = restore_mask(small, mask.shape, fit=fit)
    assert restored.shape == mask.shape and restored.dtype == np.float32
    back = restored > 0.5
    iou = (back & mask).sum() / (back | mask).sum()
    assert iou > 0.9


def test_restore_mask_drops_the_padding_exactly() -> None:
    geom = square_geometry((30, 90), 64, "pad")
    values = np.zeros((64, 64), np.float32)
    values[geom.content] = 1.0  # ones exactly where the image sits, zeros on the padding
    restored = restore_mask(values[:, :, None], (30, 90), fit="pad")
    np.testing.assert_allclose(restored, 1.0)


def test_clahe_raises_the_contrast_of_a_flat_image() -> None:
    low = (100 + _gray(64, 64) // 16).astype(np.uint8)  # 16 grey levels
    plain = preprocess(low, 64, fit="stretch")
    equalised = preprocess(low, 64, fit="stretch", clahe=True, clahe_clip=4.0)
    assert equalised.std() > plain.std() * 1.5


@pytest.mark.parametrize("resolution", [0, -3, 2.5, "256", True, None])
def test_bad_resolution_is_named_in_the_error(resolution) -> None:
    with pytest.raises(ValueError, match=repr(resolution).replace("(", r"\(")):
        preprocess(_gray(), resolution)


def test_bad_fit_and_bad_images_are_named_in_the_error() -> None:
    with pytest.raises(ValueError, match="'crop'"):
        preprocess(_gray(), 32, fit="crop")
    with pytest.raises(ValueError, match="empty"):
        preprocess(np.zeros((0, 5), np.uint8), 32)
    with pytest.raises(ValueError, match=r"\(1, 5\).*2 x 2"):
        preprocess(np.zeros((1, 5), np.uint8), 32)
    with pytest.raises(ValueError, match="5 channels|\\(4, 4, 5\\)"):
        preprocess(np.zeros((4, 4, 5), np.uint8), 32)
    with pytest.raises(ValueError, match="square"):
        restore_mask(np.zeros((8, 9)), (10, 10))


def test_intensity_normalisation_is_torchxrayvisions_normalize() -> None:
    import torchxrayvision as xrv

    from ggo.data.preprocess import xrv_normalize

    image = np.arange(256, dtype=np.uint8).reshape(16, 16)
    np.testing.assert_allclose(xrv_normalize(image, 255), xrv.datasets.normalize(image, 255), rtol=0, atol=1e-4)
    with pytest.raises(ValueError, match="higher than expected bound"):
        xrv_normalize(image.astype(np.uint16) * 2, 255)


def test_preprocess_is_the_formula_exactly_while_keeping_its_temporaries_small() -> None:
    """The lookup table and the banded 16-to-8-bit conversion give the formula's values bit for bit
    (training caches made before them stay valid)."""
    from ggo.data.preprocess import _BAND_ROWS, _to_uint8_values, xrv_normalize

    rng = np.random.default_rng(0)
    film16 = rng.integers(0, 65536, (2 * _BAND_ROWS + 37, 300, 4), dtype=np.uint16)
    assert np.array_equal(_to_uint8_values(film16), ((film16.astype(np.uint32) + 128) // 257).astype(np.uint8))
    gray = rng.integers(0, 256, (200, 150), dtype=np.uint8)
    gray[0, :] = np.arange(150)  # with every value below 150, and the rest from the noise
    out = preprocess(gray, 200, fit="stretch")  # 200 x 150 -> 200 x 200: a resize, but no value leaves [0, 255]
    expected = cv2.resize(xrv_normalize(gray, 255).astype(np.float32) / 1024.0, (200, 200), interpolation=cv2.INTER_AREA)
    assert out.dtype == np.float32 and np.array_equal(out, np.clip(expected, -1.0, 1.0))

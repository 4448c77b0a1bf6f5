"""What both input pipelines (tf.data and numpy) share: augmentation settings and input checks.
No TensorFlow here."""

from __future__ import annotations

import dataclasses

import numpy as np

FILL_MODES = ("constant", "reflect", "nearest", "wrap")


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """Joint image/mask augmentation settings (0 or False disables a component).

    Attributes:
        flip: random horizontal flip with probability 0.5. Chest X-rays are not left/right
            symmetric (heart, aortic arch), so this trades anatomical realism for more data;
            turn it off to keep the anatomy.
        rotation_deg: maximum absolute rotation in degrees.
        scale: maximum relative zoom: the factor is drawn from [1 - scale, 1 + scale].
        shift: maximum shift as a fraction of the image size, per axis.
        brightness: maximum absolute offset added to the image (in image units; the cache holds
            images in [-1, 1]).
        contrast: maximum relative contrast change around each image's mean: the factor is
            drawn from [1 - contrast, 1 + contrast].
        fill_mode: how to fill pixels that come from outside the image: ``constant``,
            ``reflect``, ``nearest`` or ``wrap``. The mask is filled the same way (with 0 for
            ``constant``), so image and mask stay aligned.
        fill_value: the image value for ``constant`` fill (-1: black in [-1, 1] images).
    """

    flip: bool = True
    rotation_deg: float = 10.0
    scale: float = 0.1
    shift: float = 0.05
    brightness: float = 0.1
    contrast: float = 0.1
    fill_mode: str = "constant"
    fill_value: float = -1.0

    def __post_init__(self):
        if self.fill_mode not in FILL_MODES:
            raise ValueError(f"Unknown fill_mode {self.fill_mode!r}; valid: {', '.join(FILL_MODES)}")
        for name in ("rotation_deg", "scale", "shift", "brightness", "contrast"):
            if getattr(self, name) < 0:
                raise ValueError(f"Augmentation {name} must be >= 0, got {getattr(self, name)}")
        if self.scale >= 1 or self.contrast >= 1:
            raise ValueError("Augmentation scale and contrast must be < 1")

    @classmethod
    def none(cls) -> AugmentConfig:
        """No augmentation at all."""
        return cls(flip=False, rotation_deg=0.0, scale=0.0, shift=0.0, brightness=0.0, contrast=0.0)

    @classmethod
    def from_any(cls, augment) -> AugmentConfig:
        """An AugmentConfig from None (no augmentation), a dict of its fields, or itself."""
        if augment is None:
            return cls.none()
        if isinstance(augment, cls):
            return augment
        if dataclasses.is_dataclass(augment) and not isinstance(augment, type):
            augment = dataclasses.asdict(augment)
        if isinstance(augment, dict):
            unknown = set(augment) - {f.name for f in dataclasses.fields(cls)}
            if unknown:
                raise ValueError(
                    f"Unknown augmentation options {sorted(unknown)}; valid: "
                    f"{', '.join(f.name for f in dataclasses.fields(cls))}"
                )
            return cls(**augment)
        raise TypeError(f"augment must be None, a dict or an AugmentConfig, got {type(augment)}")

    @property
    def geometric(self) -> bool:
        return bool(self.flip or self.rotation_deg or self.scale or self.shift)

    @property
    def photometric(self) -> bool:
        return bool(self.brightness or self.contrast)

    @property
    def enabled(self) -> bool:
        return self.geometric or self.photometric


def _as_nhwc(array: np.ndarray, what: str) -> np.ndarray:
    array = np.asarray(array, dtype=np.float32)
    if array.ndim == 3:
        array = array[..., None]
    if array.ndim != 4:
        raise ValueError(f"{what} must be (N, H, W) or (N, H, W, C), got shape {array.shape}")
    return array


def check_arrays(images: np.ndarray, masks: np.ndarray, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """``make_dataset``'s inputs as float32 (N, H, W, C) arrays, or a ValueError saying what is wrong.

    Masks have 1 channel (GGO) or 1 + 2K (GGO, then each auxiliary head's mask and weight: the
    targets of K heads, ``ggo.data.cache.Split.targets``). Every channel is warped alike; a weight
    channel becomes 0 where the warp fills from outside the image (unknown there)."""
    images, masks = _as_nhwc(images, "images"), _as_nhwc(masks, "masks")
    if images.shape[0] != masks.shape[0] or images.shape[1:3] != masks.shape[1:3]:
        raise ValueError(f"images {images.shape} and masks {masks.shape} do not match")
    if masks.shape[-1] % 2 != 1:
        raise ValueError(
            f"masks must have 1 channel (GGO) or 1 + 2K (GGO, then each auxiliary head's mask and weight), "
            f"got shape {masks.shape}"
        )
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    return images, masks


__all__ = ["FILL_MODES", "AugmentConfig", "check_arrays"]

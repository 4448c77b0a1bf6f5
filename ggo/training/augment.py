"""What both input pipelines (tf.data and numpy) share: augmentation settings, what they read
films from, and input checks. No TensorFlow here.

A pipeline reads from a *source*: anything with ``len()``, ``shapes`` (one film's image and target
shape) and ``read(positions)`` -> ``(images, targets)`` float32 batches. A training split is one
(:class:`ggo.data.cache_split.SplitSource`: the films are read from the cache's files a batch at a
time); in-memory arrays become one through :class:`ArraySource`."""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol, runtime_checkable

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


@runtime_checkable
class BatchSource(Protocol):
    """What an input pipeline reads films from: ``read(positions)`` gives their images
    (B, H, W, C) and targets (B, H, W, 1 + 2K), float32, in the order asked."""

    def __len__(self) -> int: ...

    @property
    def shapes(self) -> tuple[tuple[int, ...], tuple[int, ...]]: ...

    def read(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


@dataclasses.dataclass(frozen=True)
class ArraySource:
    """In-memory arrays as a :class:`BatchSource` (a batch is a copy: the arrays stay intact)."""

    images: np.ndarray
    masks: np.ndarray

    def __len__(self) -> int:
        return len(self.images)

    @property
    def shapes(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        return tuple(self.images.shape[1:]), tuple(self.masks.shape[1:])

    def read(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.images[positions], self.masks[positions]


def check_source(images: Any, masks: np.ndarray | None, batch_size: int) -> BatchSource:
    """``make_dataset``'s input as a :class:`BatchSource`: a source given alone, or ``images`` and
    ``masks`` arrays (:func:`check_arrays`); a ValueError says what is wrong."""
    if masks is None:
        if not isinstance(images, BatchSource):
            raise TypeError(
                f"make_dataset takes images and masks arrays, or one source with read(positions) "
                f"(e.g. Split.source()); got {type(images).__name__} without masks"
            )
        image_shape, target_shape = images.shapes
        if target_shape[-1] % 2 != 1:
            raise ValueError(f"the source's targets must have 1 + 2K channels, got shape {target_shape}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        return images
    return ArraySource(*check_arrays(images, masks, batch_size))


__all__ = ["FILL_MODES", "ArraySource", "AugmentConfig", "BatchSource", "check_arrays", "check_source"]

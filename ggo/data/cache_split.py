"""A split of a cache (:meth:`ggo.data.cache.Cache.split`): its films' arrays, read from the cache's
files when asked, and the source an input pipeline reads batches from without loading the split.

A :class:`Split` holds its films' names, patients and per-film flags in memory; its images and
masks (float32) are read from the cache's ``.npy`` files the first time they are used (evaluation
reads them whole). Training reads neither: :meth:`Split.source` gives a :class:`SplitSource`, whose
:meth:`~SplitSource.read` returns the images and training targets of the films a batch asks for,
straight from the files (:mod:`ggo.data.npyrows`), so a training epoch holds a few batches, not
the split.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ggo.data.npyrows import read_rows
from ggo.heads import LUNGS, resolve_heads


def _plane(head: str) -> str:
    """The cache file holding a head's masks."""
    return "lungs" if head == LUNGS else f"class_{head}"


@dataclass(frozen=True)
class SplitSource:
    """The films of a split as an input pipeline reads them: ``read(positions)`` gives their
    images (B, R, R, 1) float32 and training targets (B, R, R, 1 + 2K) float32 (GGO, then per
    head of ``heads`` its mask and its weight: 1 where the film's target is known), exactly what
    :meth:`Split.targets` holds at those positions. Picklable: it holds the cache's folder and
    row numbers, not arrays."""

    folder: Path
    index: np.ndarray  # (N,) rows of the cache's arrays, in the split's order
    heads: tuple[str, ...] = ()
    known: tuple[np.ndarray, ...] = ()  # (N,) bool per head

    def __len__(self) -> int:
        return len(self.index)

    @property
    def resolution(self) -> int:
        from ggo.data.npyrows import shape_of

        return int(shape_of(self.folder / "images.npy")[0][1])

    @property
    def shapes(self) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
        """(image shape, target shape) of one film: (R, R, 1) and (R, R, 1 + 2K)."""
        res = self.resolution
        return (res, res, 1), (res, res, 1 + 2 * len(self.heads))

    def read(self, positions: np.ndarray | list[int]) -> tuple[np.ndarray, np.ndarray]:
        """Images and targets of the films at ``positions`` (indices into this split), in that order."""
        positions = np.asarray(positions, dtype=np.int64)
        rows = self.index[positions]
        images = read_rows(self.folder / "images.npy", rows).astype(np.float32, copy=False)
        masks = read_rows(self.folder / "masks.npy", rows).astype(np.float32)
        if not self.heads:
            return images, masks
        channels = [masks]
        for head, known in zip(self.heads, self.known):
            channels.append(read_rows(self.folder / f"{_plane(head)}.npy", rows).astype(np.float32))
            channels.append(np.broadcast_to(known[positions].astype(np.float32)[:, None, None, None], masks.shape))
        return images, np.concatenate(channels, axis=-1)


@dataclass
class Split:
    """The films of one split: ``names`` and ``patients`` per film, ``has_lungs`` (N,) bool
    (False: ``lungs`` is all zeros because the image has no lung annotation), ``complete_lungs``
    (N,) bool (both lungs are annotated: a lung head learns only from those, a missing side would
    teach it that lung is background), and ``aux_known`` (N,) bool per auxiliary head asked of
    :meth:`~ggo.data.cache.Cache.split` (lungs aside): whether the film's target is known
    (:func:`ggo.heads.head_known`).

    ``images`` (N, R, R, 1) float32 in [-1, 1], ``masks`` and ``lungs`` (N, R, R, 1) float32 in
    {0, 1}, and ``aux`` (the heads' masks) are read from the cache when first used; an input
    pipeline reads :meth:`source` instead, a batch at a time."""

    names: list[str]
    patients: list[str]
    has_lungs: np.ndarray
    folder: Path
    index: np.ndarray  # (N,) rows of the cache's arrays
    complete_lungs: np.ndarray | None = None
    aux_known: dict[str, np.ndarray] = field(default_factory=dict)
    _loaded: dict[str, np.ndarray] = field(default_factory=dict, repr=False, compare=False)

    def _array(self, name: str) -> np.ndarray:
        if name not in self._loaded:
            self._loaded[name] = read_rows(self.folder / f"{name}.npy", self.index).astype(np.float32, copy=False)
        return self._loaded[name]

    @property
    def images(self) -> np.ndarray:
        return self._array("images")

    @property
    def masks(self) -> np.ndarray:
        return self._array("masks")

    @property
    def lungs(self) -> np.ndarray:
        return self._array("lungs")

    @property
    def aux(self) -> dict[str, np.ndarray]:
        return {head: self._array(_plane(head)) for head in self.aux_known}

    def head(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """``(target (N, R, R, 1) float32, known (N,) bool)`` of auxiliary head ``name``."""
        return self._array(_plane(name)), self._known(name)

    def _known(self, name: str) -> np.ndarray:
        if name == LUNGS:
            return self.has_lungs if self.complete_lungs is None else self.complete_lungs & self.has_lungs
        if name not in self.aux_known:
            raise KeyError(f"head {name!r} was not loaded: ask for it with Cache.split(fold, aux_heads=[{name!r}])")
        return self.aux_known[name]

    def targets(self, lung_head: bool = False, aux_heads: tuple[str, ...] | list[str] = ()) -> np.ndarray:
        """Training targets: ``masks`` (N, R, R, 1) without heads; else (N, R, R, 1 + 2K): GGO,
        then per head of :func:`ggo.heads.resolve_heads` (``lung_head``, ``aux_heads``) its target
        and its weight (1 on films whose target is known, else 0). ``lung_head`` alone gives
        (N, R, R, 3) = GGO, lungs, lung weight (1 where both lungs are annotated)."""
        heads = resolve_heads(lung_head, aux_heads)
        if not heads:
            return self.masks
        channels = [self.masks]
        for name in heads:
            target, known = self.head(name)
            channels += [target, np.broadcast_to(known.astype(np.float32)[:, None, None, None], self.masks.shape)]
        return np.concatenate(channels, axis=-1)

    def source(self, lung_head: bool = False, aux_heads: tuple[str, ...] | list[str] = ()) -> SplitSource:
        """What an input pipeline reads this split from, a batch at a time: the films' images and
        the targets :meth:`targets` gives for the same heads, never the whole split in memory."""
        heads = resolve_heads(lung_head, aux_heads)
        return SplitSource(self.folder, self.index, heads, tuple(self._known(h) for h in heads))

    def first(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Images and GGO masks of the first ``n`` films (without reading the others)."""
        return self.source().read(np.arange(min(n, len(self))))

    def known_counts(self, lung_head: bool = False, aux_heads: tuple[str, ...] | list[str] = ()) -> dict[str, int]:
        """How many films train each head (their target is known)."""
        return {name: int(self._known(name).sum()) for name in resolve_heads(lung_head, aux_heads)}

    def __len__(self) -> int:
        return len(self.names)

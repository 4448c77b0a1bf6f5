"""A film as every reader yields it: :class:`Record`, what reading had to work around
(:class:`LoadReport`, :class:`DataWarning`), and :func:`read_image`, the one way a film's pixels
are read. The GeneralBlockchain reader (:mod:`ggo.data.records`) and the folder reader
(:mod:`ggo.data.folder`) both build on this module.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ggo.data.imagefile import ImageFileError, read_image_file
from ggo.data.preprocess import to_grayscale_uint8

LUNG_SIDES = ("left", "right")


class DataWarning(UserWarning):
    """A problem in the dataset that was worked around (file skipped, crop clipped, ...)."""


@dataclass
class Record:
    """One image with its GGO annotation, all at the image's native size.

    ``image`` is (H, W) uint8 grayscale; ``mask`` (H, W) bool is the union of every GGO crop;
    ``lungs`` (H, W) bool is the union of the Left Lung and Right Lung crops, or None when neither
    side is annotated; ``lung_sides`` says which sides were ("left", "right"). ``source`` is the
    image file it was read from. ``ggo_free``: a film annotated without any GGO (``mask`` all
    False): a negative, kept out of the GGO metrics and scored for its predicted GGO area instead.
    ``classes`` holds the other annotated classes an auxiliary head
    can learn, (H, W) bool by head name (``heart``, ``airways``, ``consolidation``, ``devices``:
    see :data:`ggo.heads.HEAD_CLASSES`); a class the film has no annotation of is absent.
    ``unmasked``: the heads with a class marked on the film without a mask (structure.csv rows
    with no ``Mask``: 13 Monitoring Probes rows of GGO films): their target is unknown there.
    """

    name: str
    patient_id: str
    image: np.ndarray
    mask: np.ndarray
    lungs: np.ndarray | None = None
    lung_sides: tuple[str, ...] = ()
    source: Path | None = None
    ggo_free: bool = False
    classes: dict[str, np.ndarray] = field(default_factory=dict)
    unmasked: frozenset[str] = frozenset()

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width) of the image."""
        return self.image.shape[0], self.image.shape[1]


@dataclass
class LoadReport:
    """What :func:`load_records` had to work around. Pass one in to have it filled.

    ``skipped``: (file, reason) for every unreadable image or mask (an image whose GGO mask is
    unreadable is skipped as a whole: a partial target would be a wrong target).
    ``clipped``: (mask file, detail) for every crop cut to fit its image.
    ``own_patient``: images without a metadata row, each made its own patient.
    ``warnings``: (image, message) for everything else noticed (size disagreements, ...).
    ``ggo_free``: GGO-free films (folder layout: images without a mask; GeneralBlockchain: images
    annotated in structure.csv with other classes only). The folder layout adds: ``notes`` (one
    line each about the whole dataset), ``thresholded`` (masks with several grey levels, cut at half
    their maximum), ``ignored`` (files that are not images), ``lungs_expected`` (False when the
    dataset has no lung masks at all, so a missing side is no anomaly).
    """

    skipped: list[tuple[str, str]] = field(default_factory=list)
    clipped: list[tuple[str, str]] = field(default_factory=list)
    own_patient: list[str] = field(default_factory=list)
    warnings: list[tuple[str, str]] = field(default_factory=list)
    clipped_images: set[str] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)
    ggo_free: list[str] = field(default_factory=list)
    thresholded: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    lungs_expected: bool = True

    def for_one_film(self) -> LoadReport:
        """An empty report for one film read apart (in a worker process): it carries this
        report's dataset-wide settings, and :meth:`merge` adds what it collects back here."""
        return LoadReport(lungs_expected=self.lungs_expected)

    def merge(self, film: LoadReport) -> None:
        """Add what a one-film report (:meth:`for_one_film`) collected, in reading order."""
        for name in ("skipped", "clipped", "own_patient", "warnings", "notes", "ggo_free", "thresholded", "ignored"):
            getattr(self, name).extend(getattr(film, name))
        self.clipped_images |= film.clipped_images

    @property
    def n_skipped(self) -> int:
        return len(self.skipped)

    @property
    def n_clipped(self) -> int:
        return len(self.clipped)


def read_image(path: Path) -> np.ndarray:
    """An (H, W) uint8 grayscale image. Raises :class:`~ggo.data.imagefile.ImageFileError` (or
    FileNotFoundError) naming the file when it cannot be used: empty, truncated, not an image."""
    data = read_image_file(path, max_pixels=None)
    if data.ndim < 2 or data.shape[0] < 2 or data.shape[1] < 2:
        raise ImageFileError(str(path), f"an image of shape {data.shape} is too small: need at least 2 x 2 pixels")
    try:
        return to_grayscale_uint8(data)
    except (ValueError, TypeError) as exc:
        raise ImageFileError(str(path), f"cannot be made a grayscale image ({exc})") from None

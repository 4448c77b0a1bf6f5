"""Reading the dataset: one :class:`Record` (image, GGO mask, lung mask, patient) per annotated image.

On-disk layout (GeneralBlockchain covid-19-chest-xray-segmentations-dataset, or the synthetic copy):

- ``structure.csv``: one row per (image, class) annotation. ``Filename`` is the file in
  ``images/``, ``Template Name`` the class, ``Mask`` the PNG relative to the root, ``Top``,
  ``Left``, ``Width``, ``Height`` the bounding box the PNG covers, ``Resolution`` WIDTHxHEIGHT.
- ``masks/*.png``: RGBA crops of Width x Height; the mask is where any of R, G, B is non-zero.
- ``metadata.csv``: ieee8023 covid-chestxray metadata; ``patientid`` groups follow-up images.

:func:`iter_records` also reads the ``folder`` layout (images/, masks/, lungs/, patients.csv: the
user's own data, see :mod:`ggo.data.folder`) into the same records, so everything downstream is shared.

Bad input loses nothing silently: a corrupt or truncated file (:mod:`ggo.data.imagefile` refuses
a JPEG or PNG that would only partly decode) is skipped with a warning, a crop that overflows its
image is clipped with a warning, and both are counted in a :class:`LoadReport` (the audit lists them).
A ``Filename`` or ``Mask`` that points outside the dataset (``../``, an absolute path, a link out)
stops the read before any file is opened (:mod:`ggo.data.inside`).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ggo.data.film import LUNG_SIDES, DataWarning, LoadReport, Record, read_image  # noqa: F401  re-exported
from ggo.data.folder import FolderFilm, folder_films, index_folder, iter_folder_records, read_folder_film
from ggo.data.imagefile import ImageFileError, read_image_file
from ggo.data.inside import OutsideFolderError, resolve_inside
from ggo.data.patients import read_patient_ids
from ggo.heads import CLASS_HEADS, HEAD_CLASSES

GGO_CLASS = "Ground Glass Opacities"
LUNG_CLASSES = {"Left Lung": "left", "Right Lung": "right"}
STRUCTURE_COLUMNS = ("Template Name", "Filename", "Mask", "Top", "Left", "Width", "Height")
GENERALBLOCKCHAIN, FOLDER = "generalblockchain", "folder"
LAYOUTS = (GENERALBLOCKCHAIN, FOLDER)  # the on-disk layouts iter_records reads


def missing_data_message(root: Path, what: str = "GGO data") -> str:
    return (
        f"{what} not found at {root}: run 'python -m ggo.data fetch' to download it, "
        "or set GGO_DATA to the folder that holds images/, masks/ and structure.csv"
    )


def check_root(root: str | Path) -> Path:
    """The dataset root as a Path, or a FileNotFoundError that says how to get the data."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(missing_data_message(root))
    for part in ("structure.csv", "metadata.csv", "images"):
        if not (root / part).exists():
            message = missing_data_message(root / part, f"{part} of the GGO dataset")
            if (root / "images").is_dir() and not (root / "structure.csv").exists():
                message += f"; {root} holds images/ without structure.csv: for your own images and masks use data=folder"
            raise FileNotFoundError(message)
    return root


def dataset_layout(root: str | Path, layout: str | None = None) -> str:
    """``layout`` checked, or when None the layout ``root`` is in: ``generalblockchain`` when it
    holds structure.csv, ``folder`` when it holds images/ without one."""
    if layout is not None:
        if layout not in LAYOUTS:
            raise ValueError(f"unknown dataset layout {layout!r}; known: {', '.join(LAYOUTS)}")
        return layout
    root = Path(root).expanduser()
    if not (root / "structure.csv").is_file() and (root / "images").is_dir():
        return FOLDER
    return GENERALBLOCKCHAIN


def _warn(message: str) -> None:
    warnings.warn(message, DataWarning, stacklevel=3)


def read_structure(root: Path) -> pd.DataFrame:
    """structure.csv with the columns the loader needs checked."""
    path = root / "structure.csv"
    table = pd.read_csv(path)
    missing = [c for c in STRUCTURE_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"{path} lacks the columns {missing}; found {list(table.columns)}")
    return table


def read_crop(path: Path) -> np.ndarray:
    """A bool mask crop: any of R, G, B > 0 (gray PNGs: > 0). Raises like :func:`read_image`."""
    data = read_image_file(path, max_pixels=None)
    if data.ndim == 2:
        return data > 0
    return np.any(data[:, :, :3] > 0, axis=2)


def _crop_or_reason(path: Path | None) -> tuple[np.ndarray | None, str]:
    """(crop, "") or (None, why it cannot be read)."""
    if path is None or not path.is_file():
        return None, "unreadable mask (missing file)"
    try:
        return read_crop(path), ""
    except (ImageFileError, FileNotFoundError) as exc:
        return None, f"unreadable mask ({getattr(exc, 'reason', exc)})"


def _int_or_none(value: object) -> int | None:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return int(number) if math.isfinite(number) and number.is_integer() else None


def _paste_crops(
    rows: pd.DataFrame, root: Path, shape: tuple[int, int], report: LoadReport, image_name: str
) -> tuple[np.ndarray, list[bool]]:
    """OR every crop of ``rows`` into an (H, W) bool canvas at (Top, Left); ok-flag per row."""
    height, width = shape
    canvas = np.zeros(shape, dtype=bool)
    ok: list[bool] = []
    for row in rows.itertuples(index=False):
        mask_rel = getattr(row, "Mask")
        mask_file = root / str(mask_rel)
        top, left = _int_or_none(getattr(row, "Top")), _int_or_none(getattr(row, "Left"))
        crop, reason = None, "no Top/Left for its crop"
        if top is not None and left is not None:
            crop, reason = _crop_or_reason(mask_file if isinstance(mask_rel, str) else None)
        if crop is None or top is None or left is None:
            report.skipped.append((str(mask_rel), f"{reason} (image {image_name})"))
            _warn(f"skipped mask {mask_file}: {reason} for image {image_name}")
            ok.append(False)
            continue
        w_row, h_row = _int_or_none(getattr(row, "Width")), _int_or_none(getattr(row, "Height"))
        if (h_row, w_row) != crop.shape:
            msg = f"mask {mask_rel} is {crop.shape[1]}x{crop.shape[0]} but structure.csv says {w_row}x{h_row}; using the PNG"
            report.warnings.append((image_name, msg))
            _warn(msg)
        bottom, right = top + crop.shape[0], left + crop.shape[1]
        t0, l0, b0, r0 = max(top, 0), max(left, 0), min(bottom, height), min(right, width)
        if (t0, l0, b0, r0) != (top, left, bottom, right):
            detail = (
                f"crop rows {top}:{bottom}, cols {left}:{right} overflows the {width}x{height} image "
                f"{image_name}; clipped"
            )
            report.clipped.append((str(mask_rel), detail))
            report.clipped_images.add(image_name)
            _warn(f"mask {mask_rel}: {detail}")
        if b0 > t0 and r0 > l0:
            canvas[t0:b0, l0:r0] |= crop[t0 - top : b0 - top, l0 - left : r0 - left]
        ok.append(True)
    return canvas, ok


def annotated_names(root: str | Path, ggo_free: bool = False) -> list[str]:
    """Sorted names of the images with a GGO annotation in structure.csv; with ``ggo_free`` also
    the images annotated with other classes only (GGO-free films)."""
    table = read_structure(check_root(root))
    rows = table if ggo_free else table[table["Template Name"] == GGO_CLASS]
    return sorted(set(rows["Filename"].dropna().astype(str)))


def iter_records(root: str | Path, report: LoadReport | None = None, layout: str | None = None) -> Iterator[Record]:
    """Yield the records of :func:`load_records` one at a time (sorted by name), to save memory.

    ``layout`` is ``generalblockchain`` or ``folder``; None detects it (:func:`dataset_layout`).
    """
    if dataset_layout(root, layout) == FOLDER:
        return iter_folder_records(root, report)
    report = report if report is not None else LoadReport()
    films = dataset_films(root, report, GENERALBLOCKCHAIN)  # a missing dataset fails here, before any pixel
    return (record for film in films if (record := _read_generalblockchain(film, report)) is not None)


def check_structure_paths(root: Path, table: pd.DataFrame) -> None:
    """Every ``Filename`` (in images/) and ``Mask`` (under the root) of structure.csv inside its
    folder, or one :class:`~ggo.data.inside.OutsideFolderError` naming each one that is not."""
    bad = []
    for column, folder in (("Filename", root / "images"), ("Mask", root)):
        for index, value in table[column].items():
            if isinstance(value, str) and value:
                try:
                    resolve_inside(folder, value, what=f"line {int(index) + 2}, {column}")  # line 1 is the header
                except OutsideFolderError as exc:
                    bad.append(str(exc))
    if bad:
        more = f"\n  ... and {len(bad) - 10} more" if len(bad) > 10 else ""
        raise OutsideFolderError(f"{root / 'structure.csv'} names files outside the dataset, refused:\n  " + "\n  ".join(bad[:10]) + more)


@dataclass(frozen=True)
class GeneralBlockchainFilm:
    """One annotated film of a GeneralBlockchain dataset before any pixel is read: its structure.csv
    rows and its patient (None: no metadata row), all a worker process needs to read it."""

    root: Path
    name: str
    rows: pd.DataFrame
    patient: str | None


Film = GeneralBlockchainFilm | FolderFilm  # what dataset_films lists and read_film reads


def dataset_films(root: str | Path, report: LoadReport, layout: str | None = None) -> list[Film]:
    """Every film of the dataset in reading order (sorted by name), checked and matched up but not
    read; the dataset-wide lines of the audit go into ``report``. Cheap: no image is decoded."""
    if dataset_layout(root, layout) == FOLDER:
        return folder_films(index_folder(root), report)
    root = check_root(root)
    table = read_structure(root)
    check_structure_paths(root, table)
    patients = read_patient_ids(root)
    table = table[table["Filename"].notna()].copy()
    table["Filename"] = table["Filename"].astype(str)
    # every annotated film: those without a GGO row are GGO-free
    return [GeneralBlockchainFilm(root, name, rows, patients.get(name)) for name, rows in table.groupby("Filename", sort=True)]


def read_film(film: Film, report: LoadReport, problems: list[str]) -> Record | None:
    """The record of one film of :func:`dataset_films`, or None when it is skipped (GeneralBlockchain:
    with a warning, counted in ``report``) or unusable (folder: its problems added to ``problems``)."""
    if isinstance(film, FolderFilm):
        return read_folder_film(film, report, problems)
    return _read_generalblockchain(film, report)


def _read_generalblockchain(film: GeneralBlockchainFilm, report: LoadReport) -> Record | None:
    root, name, rows = film.root, film.name, film.rows
    image_path = root / "images" / name
    image, reason = None, "missing image"
    if image_path.is_file():
        try:
            image = read_image(image_path)
        except (ImageFileError, FileNotFoundError) as exc:
            reason = f"unreadable image ({getattr(exc, 'reason', exc)})"
    if image is None:
        report.skipped.append((f"images/{name}", reason))
        _warn(f"skipped image {image_path}: {reason}")
        return None
    shape = image.shape[:2]
    resolution = str(rows["Resolution"].iloc[0]) if "Resolution" in rows.columns else ""
    if "x" in resolution:
        w_csv, h_csv = (_int_or_none(v) for v in resolution.split("x", 1))
        if (h_csv, w_csv) != shape:
            msg = f"{name} is {shape[1]}x{shape[0]} but structure.csv says {resolution}; crops placed on the file's size"
            report.warnings.append((name, msg))
            _warn(msg)

    ggo_rows = rows[rows["Template Name"] == GGO_CLASS]
    mask, ok = _paste_crops(ggo_rows, root, shape, report, name)
    if ggo_rows.empty:
        report.ggo_free.append(name)
    if not all(ok):
        report.skipped.append((f"images/{name}", "its GGO mask is unreadable"))
        _warn(f"skipped image {image_path}: its GGO mask could not be read")
        return None

    lungs = np.zeros(shape, dtype=bool)
    sides: list[str] = []
    for template, side in LUNG_CLASSES.items():
        side_rows = rows[rows["Template Name"] == template]
        if side_rows.empty:
            continue
        side_mask, side_ok = _paste_crops(side_rows, root, shape, report, name)
        if any(side_ok):
            lungs |= side_mask
            sides.append(side)

    classes, unmasked = _class_masks(rows, root, shape, report, name)
    patient = film.patient
    if patient is None:
        patient = f"image:{name}"
        report.own_patient.append(name)
        _warn(f"{name} has no row in {root / 'metadata.csv'}; it becomes its own patient {patient!r}")

    return Record(
        name=name,
        patient_id=patient,
        image=image,
        mask=mask,
        lungs=lungs if sides else None,
        lung_sides=tuple(s for s in LUNG_SIDES if s in sides),
        source=image_path,
        ggo_free=ggo_rows.empty,
        classes=classes,
        unmasked=unmasked,
    )


def _class_masks(
    rows: pd.DataFrame, root: Path, shape: tuple[int, int], report: LoadReport, name: str
) -> tuple[dict[str, np.ndarray], frozenset[str]]:
    """The auxiliary heads' masks of one image (:data:`ggo.heads.CLASS_HEADS`): each the union of
    its classes' crops, for the heads with at least one readable crop; and the heads with a row
    that has no mask at all (marked present, not drawn), which are left out of the audit."""
    out: dict[str, np.ndarray] = {}
    unmasked: set[str] = set()
    for head in CLASS_HEADS:
        head_rows = rows[rows["Template Name"].isin(HEAD_CLASSES[head])]
        drawn = head_rows[head_rows["Mask"].notna()]
        if len(drawn) < len(head_rows):
            unmasked.add(head)
        if drawn.empty:
            continue
        mask, ok = _paste_crops(drawn, root, shape, report, name)
        if any(ok):
            out[head] = mask
    return out, frozenset(unmasked)


def load_records(root: str | Path, report: LoadReport | None = None, layout: str | None = None) -> list[Record]:
    """Every annotated image under ``root``, as :class:`Record` objects sorted by name: the GGO
    films and the GGO-free films (``Record.ggo_free``, an empty ``mask``).

    Pass ``report=LoadReport()`` to learn what was skipped (unreadable images or masks) and
    clipped (crops overflowing their image); each case also raises a :class:`DataWarning`.
    A missing root raises FileNotFoundError saying how to get the data. ``layout``: see
    :func:`iter_records`.
    """
    return list(iter_records(root, report, layout))

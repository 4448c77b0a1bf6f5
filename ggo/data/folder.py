"""Reading the user's own X-rays: the ``folder`` layout (``data=folder data.root=DIR``).

Layout of ``DIR``:

- ``images/``: the films (PNG, JPEG, TIFF, BMP, WebP; 8 or 16 bit; gray, RGB or RGBA).
- ``masks/``: one GGO mask per image, matched by file stem (``images/a.jpg`` -> ``masks/a.png``),
  the image's size; any non-zero pixel (of R, G or B) is GGO. A mask with several grey levels
  (anti-aliased or JPEG edges) is cut at half its maximum, and the audit lists it. An image
  without a mask is a GGO-free film.
- ``lungs/`` (optional): lung masks, matched the same way.
- ``patients.csv`` (optional): columns ``image`` (file name or stem) and ``patient``; follow-up
  films of one patient then stay in one split. An optional ``lung_sides`` column (``left``,
  ``right``, ``left+right``) says which lungs a lung mask covers (default: both). Without the
  file every image is its own patient.

Bad data is an error that names the files, raised before anything is cached: structural problems
(no images, two images with one stem, a mask without an image, a bad patients.csv) when the
folder is indexed, unreadable files (empty, not an image, or a JPEG/PNG cut short that would only
partly decode: :mod:`ggo.data.imagefile`) and size mismatches after one pass over the pixels.
:func:`iter_folder_records` yields the same :class:`~ggo.data.records.Record` as the
GeneralBlockchain reader, so cache, splits, audit and preprocessing are shared.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ggo.data.filehash import content_hashes
from ggo.data.imagefile import ImageFileError, read_image_file
from ggo.data.inside import is_inside
from ggo.data.film import LUNG_SIDES, LoadReport, Record, read_image

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")
PATIENTS_CSV = "patients.csv"
SUBFOLDERS = ("images", "masks", "lungs")
LAYOUT_HELP = (
    "data=folder needs data.root=DIR holding images/ (the X-rays) and masks/ (one GGO mask per image, "
    "same file stem, same size), optionally lungs/ and patients.csv (columns image, patient); "
    "'python -m ggo.data export --format folder --out DIR' writes an example (docs/data.md)"
)
SHOWN = 10  # names listed per problem before "and N more"


class FolderDataError(ValueError):
    """The folder's data cannot be used as it is; the message lists every problem and its files."""


@dataclass
class FolderIndex:
    """What a folder holds, by name, before any pixel is read.

    ``images``: image file name -> path, sorted; ``masks``, ``lungs``: image name -> mask path;
    ``patients``: image name -> patient id from patients.csv (None: no such file); ``lung_sides``:
    image name -> sides from its ``lung_sides`` column; ``ignored``: files that are not images.
    """

    root: Path
    images: dict[str, Path]
    masks: dict[str, Path]
    lungs: dict[str, Path]
    patients: dict[str, str] | None
    lung_sides: dict[str, tuple[str, ...]] = field(default_factory=dict)
    ignored: list[str] = field(default_factory=list)
    has_lungs_folder: bool = False


def _names(paths: list[str]) -> str:
    more = f" and {len(paths) - SHOWN} more" if len(paths) > SHOWN else ""
    return ", ".join(paths[:SHOWN]) + more


def _list_files(folder: Path, ignored: list[Path], links: list[Path]) -> list[Path]:
    """Image files directly in ``folder``, sorted (hidden files skipped; others go to ``ignored``);
    those that are symbolic links also go to ``links``. One directory scan: no call per file
    but for links (a folder of 35,000 films is listed in a fraction of a second)."""
    if not folder.is_dir():
        return []
    files = []
    with os.scandir(folder) as entries:
        for entry in sorted(entries, key=lambda e: e.name):
            if entry.name.startswith(".") or not entry.is_file():
                continue
            path = folder / entry.name
            (files if path.suffix.lower() in IMAGE_SUFFIXES else ignored).append(path)
            if entry.is_symlink():
                links.append(path)
    return files


def _by_stem(files: list[Path], root: Path, problems: list[str]) -> dict[str, Path]:
    stems: dict[str, list[Path]] = {}
    for path in files:
        stems.setdefault(path.stem, []).append(path)
    for stem, paths in stems.items():
        if len(paths) > 1:
            rel = [p.relative_to(root).as_posix() for p in paths]
            problems.append(f"two files share the stem {stem!r} ({', '.join(rel)}): masks match images by stem, rename one")
    return {stem: paths[0] for stem, paths in stems.items()}


def _read_patients(path: Path, images: dict[str, Path], problems: list[str]) -> tuple[dict[str, str], dict[str, tuple[str, ...]]]:
    """image name -> patient, image name -> lung sides, from patients.csv."""
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        problems.append(f"{path} cannot be read as CSV ({exc}): it needs the columns image, patient")
        return {}, {}
    table.columns = [str(c).strip() for c in table.columns]
    missing = [c for c in ("image", "patient") if c not in table.columns]
    if missing:
        problems.append(f"{path} lacks the column(s) {', '.join(missing)}; found {list(table.columns)}: it needs image, patient")
        return {}, {}
    stems = {p.stem: name for name, p in images.items()}
    patients: dict[str, str] = {}
    sides: dict[str, tuple[str, ...]] = {}
    unknown, blank, twice, bad_sides = [], [], [], []
    for i, row in enumerate(table.to_dict("records"), start=2):  # line 1 is the header
        key, patient = row["image"].strip(), row["patient"].strip()
        name = key if key in images else stems.get(key)
        if name is None:
            unknown.append(key or f"(empty, line {i})")
        elif not patient:
            blank.append(f"{key} (line {i})")
        elif patients.setdefault(name, patient) != patient:
            twice.append(f"{key} ({patients[name]!r} and {patient!r})")
        text = str(row.get("lung_sides", "")).strip()
        if name is not None and text:
            parts = tuple(s for s in LUNG_SIDES if s in text.split("+"))
            if set(text.split("+")) - set(LUNG_SIDES):
                bad_sides.append(f"{key} ({text!r})")
            sides[name] = parts
    for what, items in (
        ("names images that are not in images/", unknown),
        ("has rows without a patient", blank),
        ("gives one image two patients", twice),
        ("has lung_sides that are not left, right or left+right", bad_sides),
    ):
        if items:
            problems.append(f"{path} {what}: {_names(items)}")
    return patients, sides


def index_folder(root: str | Path) -> FolderIndex:
    """The folder's files matched up, or one :class:`FolderDataError` listing every structural
    problem (FileNotFoundError when there is no folder or no images/ at all)."""
    root = Path(root).expanduser()
    if not (root / "images").is_dir():
        what = f"no folder {root}" if not root.is_dir() else f"no images/ folder in {root}"
        raise FileNotFoundError(f"{what}: {LAYOUT_HELP}")
    problems: list[str] = []
    ignored: list[Path] = []
    links: dict[str, list[Path]] = {sub: [] for sub in SUBFOLDERS}
    files = {sub: _list_files(root / sub, ignored, links[sub]) for sub in SUBFOLDERS}
    if not files["images"]:
        raise FolderDataError(f"{root / 'images'} holds no images (PNG, JPEG, TIFF, BMP, WebP): {LAYOUT_HELP}")
    # only a link can lead out: a plain file lies in its folder, wherever that folder's own link points
    outside = [p.relative_to(root).as_posix() for sub in SUBFOLDERS for p in links[sub] if not is_inside(p, root / sub)]
    if outside:  # a link to a file elsewhere: the reader would open it, export would copy it
        problems.append(f"{len(outside)} file(s) are links that lead outside their folder (copy the files in instead): {_names(outside)}")
    stems = {sub: _by_stem(files[sub], root, problems) for sub in SUBFOLDERS}
    images = {p.name: p for p in files["images"]}
    name_of = {stem: path.name for stem, path in stems["images"].items()}
    matched: dict[str, dict[str, Path]] = {}
    for sub in ("masks", "lungs"):
        orphans = [p.relative_to(root).as_posix() for s, p in stems[sub].items() if s not in name_of]
        if orphans:
            hint = " (this folder holds structure.csv: for the GeneralBlockchain layout use data=generalblockchain)"
            hint = hint if (root / "structure.csv").is_file() else ""
            problems.append(f"{len(orphans)} file(s) in {sub}/ have no image of the same stem in images/: {_names(orphans)}{hint}")
        matched[sub] = {name_of[s]: p for s, p in stems[sub].items() if s in name_of}
    patients, sides = (None, {})
    if (root / PATIENTS_CSV).is_file():
        patients, sides = _read_patients(root / PATIENTS_CSV, images, problems)
    if problems:
        raise FolderDataError(f"the folder dataset {root} cannot be used:\n  " + "\n  ".join(problems))
    return FolderIndex(
        root=root, images=images, masks=matched["masks"], lungs=matched["lungs"], patients=patients,
        lung_sides=sides, ignored=[p.relative_to(root).as_posix() for p in ignored],
        has_lungs_folder=(root / "lungs").is_dir(),
    )  # fmt: skip


def read_mask(path: Path) -> tuple[np.ndarray, bool]:
    """(bool mask, thresholded) from a mask file. Any non-zero R, G or B (alpha ignored) is
    foreground; a mask with several non-zero levels is cut at half its maximum. Raises
    :class:`~ggo.data.imagefile.ImageFileError` naming the file when it cannot be read (empty,
    truncated, not an image)."""
    data = read_image_file(path, max_pixels=None)
    if data.ndim == 3:
        data = data[:, :, :3].max(axis=2)  # (H, W): the brightest colour channel
    top = data.max()
    if np.all((data == 0) | (data == top)):
        return data > 0, False
    return data > top / 2, True


def folder_digest(root: str | Path, hash_store: Path | None = None) -> str:
    """SHA-256 over the bytes of every file under images/, masks/, lungs/ and patients.csv, so an
    edited mask (even one copied with its old modification time) gives a new cache.

    ``hash_store``: a folder where each file's content hash is kept with its size and times
    (:mod:`ggo.data.filehash`): only the files that changed since are read again, so an untouched
    folder of any size gives its digest in the time it takes to list it."""
    root = Path(root).expanduser()
    digest = hashlib.sha256(b"folder\0")
    files = [rel for sub in SUBFOLDERS for rel in _files_under(root, sub)]
    if (root / PATIENTS_CSV).is_file():
        files.append(PATIENTS_CSV)
    for rel, content in content_hashes(root, files, hash_store).items():
        digest.update(f"{rel}\0{content}\n".encode())
    return digest.hexdigest()


def _files_under(root: Path, sub: str) -> list[str]:
    """Every file under ``root/sub``, at any depth, as a path relative to ``root``, in the order
    of their path parts (as sorted ``Path`` objects come: the digest depends on it)."""
    found: list[str] = []
    pending = [sub]
    while pending:
        folder = pending.pop()
        try:
            entries = list(os.scandir(root / folder))
        except (FileNotFoundError, NotADirectoryError):
            continue
        for entry in entries:
            rel = f"{folder}/{entry.name}"
            if entry.is_dir(follow_symlinks=False):
                pending.append(rel)
            elif entry.is_file():
                found.append(rel)
    return sorted(found, key=lambda rel: rel.split("/"))


def _audit_notes(index: FolderIndex, report: LoadReport) -> None:
    """The dataset-wide lines of the audit: patients, lungs, ignored files."""
    n = len(index.images)
    if index.patients is None:
        report.notes.append(
            f"no {PATIENTS_CSV}: each of the {n} images is its own patient, so follow-up films of one "
            "patient can land in different splits (add patients.csv with columns image, patient)"
        )
    if not index.has_lungs_folder:
        report.lungs_expected = False
        report.notes.append("no lungs/: lung checks skipped, and gen.lung_head has nothing to learn from")
    report.ignored.extend(index.ignored)


@dataclass(frozen=True)
class FolderFilm:
    """One image of a folder dataset before any pixel is read: its files, patient (None: not in
    patients.csv) and lung sides; all a worker process needs to read it."""

    root: Path
    name: str
    image: Path
    mask: Path | None
    lungs: Path | None
    patient: str | None
    lung_sides: tuple[str, ...]


def folder_films(index: FolderIndex, report: LoadReport) -> list[FolderFilm]:
    """The films of an indexed folder in reading order; the dataset-wide audit lines (patients,
    lungs, ignored files) go into ``report``."""
    _audit_notes(index, report)
    if index.patients is not None:
        unlisted = [n for n in index.images if n not in index.patients]
        if unlisted:
            report.notes.append(f"{len(unlisted)} image(s) missing from {PATIENTS_CSV}, each its own patient: {_names(unlisted)}")
    return [
        FolderFilm(
            root=index.root, name=name, image=path, mask=index.masks.get(name), lungs=index.lungs.get(name),
            patient=(index.patients or {}).get(name), lung_sides=index.lung_sides.get(name, LUNG_SIDES),
        )  # fmt: skip
        for name, path in index.images.items()
    ]


def _read_plane(path: Path, image: np.ndarray, film: FolderFilm, report: LoadReport, problems: list[str]) -> np.ndarray | None:
    """A mask or lung plane of ``film``, or None after adding its problem (unreadable, wrong size)."""
    try:
        plane, thresholded = read_mask(path)
    except ImageFileError as exc:
        problems.append(f"{path}: unreadable mask ({exc.reason})")
        return None
    if plane.shape != image.shape:
        problems.append(
            f"{path} is {plane.shape[1]}x{plane.shape[0]} but its image {film.image} is "
            f"{image.shape[1]}x{image.shape[0]}: a mask must be its image's size"
        )
        return None
    if thresholded:
        report.thresholded.append(path.relative_to(film.root).as_posix())
    return plane


def read_folder_film(film: FolderFilm, report: LoadReport, problems: list[str]) -> Record | None:
    """The record of one image, or None after adding its problems (unreadable, size mismatch)."""
    try:
        image = read_image(film.image)
    except ImageFileError as exc:
        problems.append(f"{film.image}: unreadable image ({exc.reason})")
        return None
    mask = _read_plane(film.mask, image, film, report, problems) if film.mask is not None else None
    lungs = _read_plane(film.lungs, image, film, report, problems) if film.lungs is not None else None
    if (film.mask is not None and mask is None) or (film.lungs is not None and lungs is None):
        return None
    if film.mask is None:
        report.ggo_free.append(film.name)
    patient = film.patient
    if patient is None:
        patient = f"image:{film.name}"
        report.own_patient.append(film.name)
    return Record(
        name=film.name, patient_id=patient, image=image, mask=mask if mask is not None else np.zeros(image.shape, bool),
        lungs=lungs, lung_sides=film.lung_sides if lungs is not None else (), source=film.image, ggo_free=film.mask is None,
    )  # fmt: skip


def unusable_files_error(root: Path, problems: list[str]) -> FolderDataError:
    """The error a folder dataset's unreadable files and size mismatches end its reading with."""
    return FolderDataError(f"the folder dataset {root} has unusable files:\n  " + "\n  ".join(problems))


def iter_folder_records(root: str | Path, report: LoadReport | None = None) -> Iterator[Record]:
    """Yield one :class:`Record` per image of a folder dataset, sorted by name; after the last,
    raise :class:`FolderDataError` listing every unreadable file and size mismatch, if any
    (so a cache build stops before it writes anything)."""
    report = report if report is not None else LoadReport()
    films = folder_films(index_folder(root), report)
    problems: list[str] = []
    for film in films:
        record = read_folder_film(film, report, problems)
        if record is not None and not problems:
            yield record
    if problems:
        raise unusable_files_error(films[0].root, problems)

"""Write a dataset in the ``folder`` layout (``python -m ggo.data export --format folder --out DIR``).

The bundled GeneralBlockchain set comes out as a user's own data would look: images/ (the
original files, byte for byte), masks/<stem>.png (full-size 0/255 GGO masks, the crops placed),
lungs/<stem>.png, and patients.csv (image, patient, lung_sides). Reading it back with
``data=folder`` gives the same records, cache and splits as the native reader.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd

from ggo.data.atomic import atomic_directory
from ggo.data.folder import PATIENTS_CSV
from ggo.data.inside import OutsideFolderError
from ggo.data.records import LoadReport, Record, iter_records

FORMATS = ("folder",)
README = """A GGO dataset in ggo's folder layout (read it with: python -m ggo.train data=folder data.root=THIS_FOLDER).

images/        the X-rays (PNG, JPEG, TIFF; 8 or 16 bit; gray, RGB or RGBA)
masks/         one GGO mask per image, same file stem, same size; any non-zero pixel is GGO
               (an image without a mask is a GGO-free film)
lungs/         optional lung masks, matched the same way
patients.csv   optional: image, patient (follow-up films of one patient stay in one split);
               lung_sides (optional): left, right or left+right, when a lung mask covers one side only

Exported from {source} ({n} images, {patients} patients).
"""


def _write_mask(path: Path, mask: np.ndarray) -> None:
    if not cv2.imwrite(str(path), mask.astype(np.uint8) * 255):  # (H, W) uint8 0/255
        raise OSError(f"could not write {path}: check that the folder is writable and has space")


def _export_record(record: Record, out: Path, stems: dict[str, str]) -> dict[str, str]:
    """Write one record's image, mask and lungs under ``out``; its patients.csv row."""
    if record.name in ("", ".", "..") or Path(record.name).name != record.name or "\\" in record.name:
        raise OutsideFolderError(f"image {record.name!r}: export writes plain file names into {out / 'images'}, not paths")
    stem = Path(record.name).stem
    if stem in stems:
        raise ValueError(f"images {stems[stem]} and {record.name} share the stem {stem!r}: the folder layout matches masks by stem")
    stems[stem] = record.name
    if record.source is not None and record.source.is_file():
        shutil.copyfile(record.source, out / "images" / record.name)  # the file itself (the readers kept it inside its dataset)
    else:
        name = stem + ".png"
        stems[stem] = name
        if not cv2.imwrite(str(out / "images" / name), record.image):
            raise OSError(f"could not write {out / 'images' / name}")
    if not record.ggo_free:  # no mask: the folder layout's GGO-free film
        _write_mask(out / "masks" / f"{stem}.png", record.mask)
    if record.lungs is not None:
        _write_mask(out / "lungs" / f"{stem}.png", record.lungs)
    sides = "+".join(record.lung_sides) if record.lungs is not None else ""
    return {"image": stems[stem], "patient": record.patient_id, "lung_sides": sides}


def export_folder(
    root: str | Path, out: str | Path, *, layout: str | None = None, report: LoadReport | None = None
) -> dict[str, Any]:
    """Write the dataset at ``root`` (any layout :func:`~ggo.data.iter_records` reads) to ``out``
    in the folder layout; ``out`` must not exist or be empty. Atomic: an interrupted export leaves
    nothing at ``out``. Returns ``{"out", "images", "patients", "with_lungs", "skipped"}``."""
    out = Path(out).expanduser().resolve()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"--out {out} already exists and is not empty: choose a new folder or empty it")
    report = report if report is not None else LoadReport()
    rows: list[dict[str, str]] = []
    with atomic_directory(out) as tmp:
        for sub in ("images", "masks", "lungs"):
            (tmp / sub).mkdir()
        stems: dict[str, str] = {}
        for record in iter_records(root, report, layout):
            rows.append(_export_record(record, tmp, stems))
        if not rows:
            raise ValueError(f"nothing to export: no usable annotated image under {root}")
        table = pd.DataFrame(rows, columns=["image", "patient", "lung_sides"])
        table.to_csv(tmp / PATIENTS_CSV, index=False)
        n_patients = int(table["patient"].nunique())
        (tmp / "README.txt").write_text(README.format(source=root, n=len(rows), patients=n_patients))
    return {
        "out": str(out),
        "images": len(rows),
        "patients": n_patients,
        "with_lungs": int((table["lung_sides"] != "").sum()),
        "skipped": [f"{f}: {r}" for f, r in report.skipped],
    }

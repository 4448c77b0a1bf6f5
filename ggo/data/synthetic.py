"""A small generated dataset in the real dataset's on-disk layout, for tests and demos.

Each image is a cartoon chest film: a bright body, two dark lung fields, and one or two bright,
smooth ellipses inside the lungs playing the ground-glass opacities. The GGO mask is exactly the
ellipses, so a tiny U-Net learns it in seconds. Files, masks, ``structure.csv`` and
``metadata.csv`` follow the GeneralBlockchain / ieee8023 formats, so every loader path is exercised.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from ggo.data.records import GGO_CLASS

STRUCTURE_HEADER = [
    "#", "Taxonomy", "Class", "Template Name", "File Folder", "Filename", "Image", "Tag", "Mask",
    "Resolution", "Top", "Left", "Width", "Height", "Points", "Text Annotation", "Minimal Top",
    "Minimal Left", "Minimal Width", "Minimal Height", "Attributes",
]  # fmt: skip
METADATA_HEADER = [
    "patientid", "offset", "sex", "age", "finding", "survival", "intubated", "intubation_present",
    "went_icu", "in_icu", "needed_supplemental_O2", "extubated", "temperature", "pO2_saturation",
    "leukocyte_count", "neutrophil_count", "lymphocyte_count", "view", "modality", "date",
    "location", "folder", "filename", "doi", "url", "license", "clinical_notes", "other_notes",
]  # fmt: skip
CLASS_COLOURS_BGR = {  # any non-black colour works: the mask is where R, G or B > 0
    GGO_CLASS: (0, 128, 255),
    "Left Lung": (255, 64, 0),
    "Right Lung": (0, 200, 64),
    "Cardiomediastinum": (200, 0, 200),
}


def _ellipse(shape: tuple[int, int], cy: float, cx: float, ry: float, rx: float) -> np.ndarray:
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """(top, left, height, width) of the non-zero pixels, or None when empty."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    return int(rows[0]), int(cols[0]), int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1)


def _draw_film(h: int, w: int, rng: np.random.Generator, ggo_free: bool = False) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """A cartoon chest film (H, W) uint8 and its regions by class name: GGO blobs inside two lungs
    (none with ``ggo_free``: clear lungs, and no GGO region)."""
    # Radiological convention: the patient's right lung is on the image's left.
    lungs = {
        "Right Lung": (0.52 * h, 0.30 * w, 0.34 * h, 0.16 * w),
        "Left Lung": (0.52 * h, 0.70 * w, 0.34 * h, 0.16 * w),
    }
    lung_masks = {k: _ellipse((h, w), *v) for k, v in lungs.items()}
    ggo = np.zeros((h, w), dtype=bool)
    for _ in range(0 if ggo_free else 1 + int(rng.random() < 0.25)):
        cy, cx, ly, lx = lungs[("Right Lung", "Left Lung")[int(rng.integers(0, 2))]]
        ry = ly * rng.uniform(0.25, 0.45)
        rx = lx * rng.uniform(0.45, 0.8)
        oy = cy + rng.uniform(-0.4, 0.4) * (ly - ry)
        ox = cx + rng.uniform(-0.3, 0.3) * (lx - rx)
        ggo |= _ellipse((h, w), oy, ox, ry, rx)

    body = _ellipse((h, w), 0.55 * h, 0.5 * w, 0.5 * h, 0.48 * w)
    image = np.where(body, 120.0, 25.0)
    image[lung_masks["Right Lung"] | lung_masks["Left Lung"]] = 55.0
    image = cv2.GaussianBlur(image, (0, 0), 2.0)
    # Hazy but clearly brighter than everything around it, with a soft edge.
    blob = cv2.GaussianBlur(ggo.astype(np.float64), (0, 0), 1.0)
    image = image + 150.0 * blob + rng.normal(0.0, 4.0, (h, w))
    image8 = np.clip(np.rint(image), 0, 255).astype(np.uint8)
    regions = {GGO_CLASS: ggo, **lung_masks} if not ggo_free else dict(lung_masks)
    regions["Cardiomediastinum"] = _ellipse((h, w), 0.55 * h, 0.5 * w, 0.3 * h, 0.08 * w)
    return image8, regions


def _write_crops(
    root: Path, name: str, shape: tuple[int, int], regions: dict[str, np.ndarray], digest: str,
    structure: list[dict[str, object]],
) -> None:  # fmt: skip
    """Write each region's bounding-box crop as an RGBA PNG and its structure.csv row."""
    h, w = shape
    for template, region in regions.items():
        box = _bbox(region)
        if box is None:
            continue
        top, left, bh, bw = box
        crop = np.zeros((bh, bw, 4), dtype=np.uint8)
        crop[..., 3] = 255
        crop[region[top : top + bh, left : left + bw], :3] = CLASS_COLOURS_BGR[template]
        mask_rel = f"masks/{digest}_{len(structure):04d}.png"
        cv2.imwrite(str(root / mask_rel), crop)
        structure.append({
            "#": len(structure) + 1, "Taxonomy": f"Class:{template}", "Class": f"COVID-19 {template}",
            "Template Name": template, "File Folder": "", "Filename": name,
            "Image": f"images/{digest}.png", "Tag": f"tags/{digest}_{len(structure):04d}.png",
            "Mask": mask_rel, "Resolution": f"{w}x{h}", "Top": top, "Left": left, "Width": bw,
            "Height": bh, "Points": "", "Text Annotation": "undefined", "Minimal Top": top,
            "Minimal Left": left, "Minimal Width": bw, "Minimal Height": bh, "Attributes": "",
        })  # fmt: skip


def make_synthetic_dataset(
    root: str | Path,
    n_images: int = 24,
    n_patients: int = 16,
    image_size: int = 96,
    seed: int = 0,
    n_ggo_free: int = 0,
) -> Path:
    """Write a synthetic GGO dataset to ``root`` (created if needed) and return ``root``.

    ``n_images`` images of about ``image_size`` pixels per side (each side varies by -15% .. +20%),
    shared by ``n_patients`` patients (the first ``n_patients`` images get one patient each, the
    rest are follow-ups of random patients). PNG and JPEG files are mixed, image 2 has no Left
    Lung annotation (as happens in the real data), and ``metadata.csv`` lists two files that are
    not in ``images/``. ``n_ggo_free`` adds GGO-free films (clear lungs, no GGO row in
    structure.csv) named ``synthetic-free-NNN.png``: even ones are follow-ups of GGO patients, odd
    ones have patients of their own; the GGO films are the same with or without them. The same
    arguments always write the same files.
    """
    if n_images < 1 or n_patients < 1 or n_patients > n_images:
        raise ValueError(f"need 1 <= n_patients <= n_images, got n_images={n_images}, n_patients={n_patients}")
    if n_ggo_free < 0:
        raise ValueError(f"n_ggo_free must be >= 0, got {n_ggo_free}")
    if image_size < 16:
        raise ValueError(f"image_size must be at least 16 pixels, got {image_size}")
    rng = np.random.default_rng(seed)
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)

    patient_of = list(range(n_patients)) + [int(p) for p in rng.integers(0, n_patients, n_images - n_patients)]
    structure: list[dict[str, object]] = []
    metadata: list[dict[str, object]] = []
    visits: dict[int, int] = {}

    for i in range(n_images):
        h = int(round(image_size * rng.uniform(0.85, 1.2)))
        w = int(round(image_size * rng.uniform(0.85, 1.2)))
        name = f"synthetic-{i:03d}.{'jpg' if i % 3 == 2 else 'png'}"
        image8, regions = _draw_film(h, w, rng)
        params = [cv2.IMWRITE_JPEG_QUALITY, 95] if name.endswith(".jpg") else []
        cv2.imwrite(str(root / "images" / name), image8, params)
        if i == 2:
            del regions["Left Lung"]  # an annotator skipped a side, as in the real data
        digest = hashlib.sha1(f"{seed}-{i}".encode()).hexdigest()
        _write_crops(root, name, (h, w), regions, digest, structure)

        patient = patient_of[i]
        visit = visits.get(patient, 0)
        visits[patient] = visit + 1
        metadata.append(_metadata_row(str(patient + 1), name, visit, rng))

    free_rng = np.random.default_rng([seed, 1])  # its own stream: the GGO films stay as they were
    for i in range(n_ggo_free):
        h = w = image_size
        name = f"synthetic-free-{i:03d}.png"
        image8, regions = _draw_film(h, w, free_rng, ggo_free=True)
        cv2.imwrite(str(root / "images" / name), image8)
        _write_crops(root, name, (h, w), regions, hashlib.sha1(f"{seed}-free-{i}".encode()).hexdigest(), structure)
        patient = str(i // 2 % n_patients + 1) if i % 2 == 0 else f"free{i}"
        metadata.append(_metadata_row(patient, name, 9, free_rng))

    for extra in range(2):  # like the real metadata: rows for files that are not in images/
        metadata.append(_metadata_row(str(n_patients + 1 + extra), f"not-included-{extra}.jpg", 0, rng))

    pd.DataFrame(structure, columns=STRUCTURE_HEADER).to_csv(root / "structure.csv", index=False)
    pd.DataFrame(metadata, columns=METADATA_HEADER).to_csv(root / "metadata.csv", index=False)
    (root / "README.md").write_text(
        f"Synthetic GGO dataset (ggo.data.synthetic, seed={seed}, n_images={n_images}, "
        f"n_patients={n_patients}, image_size={image_size}). Not real patients.\n"
    )
    return root


def _metadata_row(patient: str, filename: str, visit: int, rng: np.random.Generator) -> dict[str, object]:
    return {
        "patientid": patient, "offset": 3 * visit, "sex": "MF"[int(rng.integers(0, 2))],
        "age": int(rng.integers(25, 85)), "finding": "COVID-19", "survival": "Y",
        "view": "AP" if rng.random() < 0.2 else "PA", "modality": "X-ray", "date": "2020",
        "location": "Synthetic", "folder": "images", "filename": filename, "license": "CC BY 4.0",
        "clinical_notes": "synthetic image", "other_notes": "",
    }  # fmt: skip


def make_synthetic_folder(
    root: str | Path, n_images: int, image_size: int = 1024, *, distinct: int = 16, seed: int = 0, link: bool = True
) -> Path:
    """Write a synthetic dataset in the folder layout (``data=folder``) to ``root``: ``n_images``
    square films of ``image_size`` pixels with their GGO and lung masks, two films per patient
    (patients.csv); every 8th film is GGO-free (no mask). For benchmarks at scale: only
    ``distinct`` films are drawn, and the others are hard links to them (``link``; copies
    otherwise), so a folder of 35,000 films takes the disk space of ``distinct``. Each name is
    still a file of its own to list, hash, decode and preprocess."""
    if n_images < 1 or distinct < 1:
        raise ValueError(f"need n_images >= 1 and distinct >= 1, got n_images={n_images}, distinct={distinct}")
    if image_size < 16:
        raise ValueError(f"image_size must be at least 16 pixels, got {image_size}")
    import os
    import shutil

    root = Path(root)
    for sub in ("images", "masks", "lungs"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    drawn: list[tuple[Path, Path | None, Path]] = []
    for i in range(min(distinct, n_images)):
        image8, regions = _draw_film(image_size, image_size, rng, ggo_free=i % 8 == 7)
        base = f"drawn-{i:03d}.png"
        cv2.imwrite(str(root / "images" / base), image8)
        mask = None
        if GGO_CLASS in regions:
            mask = root / "masks" / base
            cv2.imwrite(str(mask), regions[GGO_CLASS].astype(np.uint8) * 255)
        cv2.imwrite(str(root / "lungs" / base), (regions["Left Lung"] | regions["Right Lung"]).astype(np.uint8) * 255)
        drawn.append((root / "images" / base, mask, root / "lungs" / base))
    place = os.link if link else shutil.copyfile
    rows = []
    for i in range(n_images):
        image, mask, lungs = drawn[i % len(drawn)]
        name = f"film-{i:06d}.png"
        place(image, root / "images" / name)
        if mask is not None:
            place(mask, root / "masks" / name)
        place(lungs, root / "lungs" / name)
        rows.append({"image": name, "patient": f"p{i // 2:06d}"})
    for image, mask, lungs in drawn:  # only the linked names are films
        for path in (image, mask, lungs):
            if path is not None:
                path.unlink()
    pd.DataFrame(rows).to_csv(root / "patients.csv", index=False)
    return root

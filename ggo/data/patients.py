"""Patients of the GeneralBlockchain layout: image file -> patient id from its ieee8023 ``metadata.csv``.

Several films are follow-ups of one patient; every split is by patient, so a film whose patient is
lost would leak that patient across splits. :func:`read_patient_ids` reads the metadata through
torchxrayvision and falls back to the raw CSV for the rows it drops.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd


def _warn(message: str) -> None:
    from ggo.data.records import DataWarning  # it imports this module

    warnings.warn(message, DataWarning, stacklevel=3)


def _patient_key(value: object) -> str | None:
    """patientid as a clean string ('12', '12a'); None when missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return None
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        value = int(value)
    text = str(value).strip()
    return text or None


def read_patient_ids(root: Path) -> dict[str, str]:
    """filename -> patient id from metadata.csv, read through torchxrayvision's COVID19_Dataset.

    COVID19_Dataset drops rows whose ``finding`` is "todo" or "Unknown"; such rows still name a
    real patient, so they are looked up in the raw CSV (pandas) rather than dropped: losing them
    would make a follow-up image its own patient and leak that patient across splits.
    """
    import torchxrayvision as xrv  # lazy: it imports torch

    csv_path = root / "metadata.csv"
    state = np.random.get_state()  # COVID19_Dataset reseeds numpy's global RNG; don't leak that
    try:
        dataset = xrv.datasets.COVID19_Dataset(
            imgpath=str(root / "images"), csvpath=str(csv_path), views=["*"]
        )
    except (KeyError, AttributeError) as exc:
        raise ValueError(
            f"{csv_path} is not in the ieee8023 metadata format (patientid, view, finding, filename, ...): "
            f"torchxrayvision could not read it ({type(exc).__name__}: {exc})"
        ) from exc
    finally:
        np.random.set_state(state)
    tables = [dataset.csv, pd.read_csv(csv_path)]  # torchxrayvision first, the raw CSV for its dropped rows
    ids: dict[str, str] = {}
    for table in tables:
        if "patientid" not in table.columns or "filename" not in table.columns:
            raise ValueError(f"{csv_path} needs 'patientid' and 'filename' columns; found {list(table.columns)}")
        for filename, pid in zip(table["filename"], table["patientid"]):
            key = _patient_key(pid)
            if key is None or not isinstance(filename, str):
                continue
            if filename in ids and ids[filename] != key:
                _warn(f"{filename} is listed under patients {ids[filename]} and {key} in {csv_path}; using {ids[filename]}")
                continue
            ids.setdefault(filename, key)
    return ids

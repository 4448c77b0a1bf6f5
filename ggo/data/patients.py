"""Patients of the GeneralBlockchain layout: image file -> patient id from its ieee8023 ``metadata.csv``.

Several films are follow-ups of one patient; every split is by patient, so a film whose patient is
lost would leak that patient across splits. :func:`read_patient_ids` reads the metadata through
torchxrayvision and falls back to the raw CSV for the rows it drops.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from ggo.data.film import DataWarning


def _warn(message: str) -> None:
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
    csv_path = root / "metadata.csv"
    tables = [_torchxrayvision_table(root), pd.read_csv(csv_path)]  # torchxrayvision first, the raw CSV for its dropped rows
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


def _torchxrayvision_table(root: Path) -> pd.DataFrame:
    """The (filename, patientid) rows COVID19_Dataset keeps.

    torchxrayvision imports torchvision, whose native ops segfault when loaded into a process that
    already holds TensorFlow 2.21 (the other order is fine). So where TensorFlow is loaded and
    torchvision is not, the table is read in a child Python process (a few seconds, once per cache
    build) rather than paying torchvision's import in every ggo process up front.
    """
    if "tensorflow" in sys.modules and "torchvision" not in sys.modules:
        return _table_in_child(root)
    return _table_here(root)


def _table_here(root: Path) -> pd.DataFrame:
    import torchxrayvision as xrv  # lazy: it imports torch

    csv_path = root / "metadata.csv"
    state = np.random.get_state()  # COVID19_Dataset reseeds numpy's global RNG; don't leak that
    try:
        dataset = xrv.datasets.COVID19_Dataset(imgpath=str(root / "images"), csvpath=str(csv_path), views=["*"])
    except (KeyError, AttributeError) as exc:
        raise ValueError(
            f"{csv_path} is not in the ieee8023 metadata format (patientid, view, finding, filename, ...): "
            f"torchxrayvision could not read it ({type(exc).__name__}: {exc})"
        ) from exc
    finally:
        np.random.set_state(state)
    return dataset.csv


_CHILD = """
import json, sys
from pathlib import Path
from ggo.data.patients import _table_here
try:
    table = _table_here(Path(sys.argv[1]))
except ValueError as exc:
    print(json.dumps({"error": str(exc)}))
else:
    columns = [c for c in ("filename", "patientid") if c in table.columns]
    print(json.dumps({"columns": columns, "rows": json.loads(table[columns].to_json(orient="values"))}))
"""


def _table_in_child(root: Path) -> pd.DataFrame:
    package_root = str(Path(__file__).resolve().parents[2])  # the child imports this same ggo
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(root)], capture_output=True, text=True, env=env, check=False)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise RuntimeError(
            f"reading {root / 'metadata.csv'} through torchxrayvision in a child process failed "
            f"(exit {proc.returncode}): {proc.stderr.strip()[-2000:]}"
        )
    answer = json.loads(lines[-1])
    if "error" in answer:
        raise ValueError(answer["error"])
    return pd.DataFrame(answer["rows"], columns=answer["columns"])

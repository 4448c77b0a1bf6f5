"""Tables for people: a pandas table as GitHub markdown (sweep and CV summaries)."""

from __future__ import annotations

import math
from typing import Any


def to_markdown(table: Any) -> str:
    """A GitHub-markdown table (floats to 4 places) without extra dependencies."""
    if table is None or len(table) == 0:
        return "(no runs)"
    cols = [c for c in table.columns if c != "run_id"]

    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return "" if math.isnan(v) else f"{v:.4f}"
        return str(v).replace("|", "\\|").replace("\n", " ")[:120]

    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for _, row in table.iterrows():
        lines.append("| " + " | ".join(fmt(row[c]) for c in cols) + " |")
    return "\n".join(lines)

"""What a report page is made of: sections of pictures, tables and short notes (plain data).

:mod:`ggo.sweeps.report.sections` fills them from a sweep; :mod:`ggo.sweeps.report.html` writes
them out. A picture holds its encoded bytes, so the page carries every picture inline.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Picture:
    """An encoded picture: ``image/svg+xml`` (charts) or ``image/png`` (films)."""

    data: bytes
    mime: str
    alt: str
    caption: str = ""


@dataclass
class Cell:
    """A table cell: its text, an optional CSS class (``real``, ``noise``, ``failed``...) and a
    longer text shown on hover."""

    text: str
    css: str = ""
    title: str = ""


@dataclass
class Table:
    columns: list[str]
    rows: list[list[Cell]]
    css: str = ""


@dataclass
class Section:
    """One part of the page: a title, a one-line finding, then pictures, tables, notes, code."""

    id: str
    title: str
    lead: str = ""
    pictures: list[Picture] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    code: list[tuple[str, str]] = field(default_factory=list)  # (label, text)


@dataclass
class Page:
    title: str
    facts: list[tuple[str, str]]
    sections: list[Section]


def cell(value: Any, digits: int = 3, css: str = "", title: str = "") -> Cell:
    """A cell for ``value``: floats to ``digits`` places, NaN and None empty."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return Cell("", css, title)
    if isinstance(value, float):
        return Cell(f"{value:.{digits}f}", css, title)
    return Cell(str(value), css, title)


def interval(ci: tuple[float, float] | None, signed: bool = False) -> str:
    if ci is None:
        return ""
    fmt = "{:+.3f}" if signed else "{:.3f}"
    return f"[{fmt.format(ci[0])}, {fmt.format(ci[1])}]"


def minutes(value: float) -> str:
    if value is None or not math.isfinite(value):
        return ""
    return f"{value:.1f} min" if value >= 1 else f"{value * 60:.0f} s"

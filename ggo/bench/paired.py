"""Paired, interleaved timing windows and the verdict a target gets from their spread.

A shared machine's load changes from second to second, so timing ggo for a while and then the
reference for a while compares two different machines. Here the two alternate, window by window
(ggo, reference, ggo, reference, ...), and each pair gives one ratio: ggo's throughput over the
reference's in that pair, in wall time and in CPU time. A load change inside one pair still
moves its ratio, so the report gives the median ratio with its interquartile range (25th-75th
percentile, ``numpy.percentile``'s default linear interpolation, the same as
``statistics.quantiles(method="inclusive")``).

A target (``ratio >= threshold``) then *holds* only when the whole IQR clears it (p25 >=
threshold), *misses* when the whole IQR falls short (p75 < threshold), and is *inconclusive*
when the IQR straddles it: more or longer windows, or a quieter machine, would decide.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np

HOLDS, MISSES, INCONCLUSIVE = "holds", "misses", "inconclusive"

#: What a timed window returns: (wall seconds, CPU seconds of this process).
Window = Callable[[int], tuple[float, float]]


def time_interleaved(first: Window, second: Window | None, *, windows: int, steps: int) -> list[dict[str, float]]:
    """Run ``windows`` pairs of timed windows of ``steps`` steps each, alternating ``first`` and
    ``second`` (A B A B ...; ``second`` None: A A ...). Returns one record per pair with the
    wall and CPU seconds of both (``ggo_*`` for ``first``, ``ref_*`` for ``second``)."""
    if windows < 1 or steps < 1:
        raise ValueError(f"windows={windows}, steps={steps}: both must be >= 1")
    pairs = []
    for _ in range(windows):
        wall, cpu = first(steps)
        pair = {"ggo_wall_s": wall, "ggo_cpu_s": cpu}
        if second is not None:
            ref_wall, ref_cpu = second(steps)
            pair.update(ref_wall_s=ref_wall, ref_cpu_s=ref_cpu)
        pairs.append(pair)
    return pairs


def pair_ratios(pairs: Sequence[dict[str, float]], clock: str = "wall") -> list[float]:
    """Per pair, ggo's throughput over the reference's on ``clock`` (``wall`` or ``cpu``): the
    reference's seconds over ggo's, as both windows ran the same number of steps and images."""
    return [p[f"ref_{clock}_s"] / p[f"ggo_{clock}_s"] for p in pairs if "ref_wall_s" in p]


def spread(values: Sequence[float]) -> dict[str, float] | None:
    """``{"median", "p25", "p75", "n"}`` of ``values`` (None for no values)."""
    finite = [float(v) for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return None
    p25, median, p75 = np.percentile(finite, [25, 50, 75])
    return {"median": float(median), "p25": float(p25), "p75": float(p75), "n": len(finite)}


def verdict(stats: dict[str, float] | None, threshold: float, *, at_most: bool = False) -> str | None:
    """``holds`` / ``misses`` / ``inconclusive`` for ``value >= threshold`` (``at_most``: ``<=``)
    judged on the interquartile range of ``stats`` (see the module's docstring); None unmeasured."""
    if not stats:
        return None
    low, high = stats["p25"], stats["p75"]
    if at_most:
        return HOLDS if high <= threshold else MISSES if low > threshold else INCONCLUSIVE
    return HOLDS if low >= threshold else MISSES if high < threshold else INCONCLUSIVE


def combine(verdicts: Sequence[str | None]) -> str | None:
    """One verdict over several measurements of a target that must hold for each: ``misses`` if
    any misses, ``holds`` if all hold, else ``inconclusive``; None when nothing was measured."""
    measured = [v for v in verdicts if v is not None]
    if not measured:
        return None
    if MISSES in measured:
        return MISSES
    return HOLDS if all(v == HOLDS for v in measured) else INCONCLUSIVE


def calibrated_steps(step_seconds: Sequence[float], min_window_s: float) -> int:
    """Steps per window so that the fastest of the timed steps (wall seconds per step, one per
    side) fills at least ``min_window_s``: both sides of a pair then run at least that long."""
    fastest = min(s for s in step_seconds if s > 0)
    return max(1, math.ceil(min_window_s / fastest))


def median_shorter_window_s(pairs: Sequence[dict[str, float]]) -> float:
    """The median over pairs of the shorter window's wall seconds (how long a pair really ran)."""
    if not pairs:
        return 0.0
    return float(np.median([min(p["ggo_wall_s"], p.get("ref_wall_s", math.inf)) for p in pairs]))


__all__ = [
    "HOLDS",
    "INCONCLUSIVE",
    "MISSES",
    "calibrated_steps",
    "combine",
    "median_shorter_window_s",
    "pair_ratios",
    "spread",
    "time_interleaved",
    "verdict",
]

"""The report's charts: matplotlib figures, written as self-contained SVG (text drawn as paths).

The curves build on :func:`ggo.evaluation.viz.sweep_figure` and the overlays are
:func:`ggo.evaluation.viz.outcome_figure`'s; the rest are the charts only this page has. Colours
are the Okabe-Ito palette (:data:`ggo.evaluation.viz.OUTCOME_RGB` uses it too): told apart with
any colour vision.
"""

from __future__ import annotations

import io
import math
import textwrap
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ggo.sweeps.report.collect import Child
from ggo.sweeps.report.ranking import SEED_TEST_DICE, HeldOut, Ranking

REAL, NOISE, TOP, REFERENCE = "#D55E00", "#0072B2", "#000000", "#7f7f7f"
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def svg(fig: Any) -> bytes:
    """``fig`` as SVG bytes (no date, stable ids), and closed."""
    plt = _plt()
    buffer = io.BytesIO()
    with plt.rc_context({"svg.hashsalt": "ggo-report", "svg.fonttype": "path"}):
        fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    return buffer.getvalue()


def png(rgb: np.ndarray) -> bytes:
    """An RGB uint8 picture as PNG bytes."""
    import cv2

    ok, data = cv2.imencode(".png", np.ascontiguousarray(rgb[..., ::-1]))
    if not ok:
        raise ValueError("could not encode the picture as PNG")
    return data.tobytes()


def _wrap(label: str, width: int = 38) -> str:
    return "\n".join(textwrap.wrap(label, width)[:3]) or label


def forest(ranking: Ranking, title: str) -> Any:
    """Left: each entry's mean dice with its 95% interval. Right: its paired difference to the
    top with the interval, red where the difference is real, blue where it is noise."""
    plt = _plt()
    entries = ranking.entries
    n = len(entries)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 0.55 * n + 1.4), sharey=True, gridspec_kw={"width_ratios": [1, 1]})
    ys = np.arange(n)[::-1]
    for y, e in zip(ys, entries):
        colour = REFERENCE if e.reference else TOP
        if e.ci:
            left.plot(e.ci, [y, y], color=colour, lw=2)
        left.plot([e.mean_dice], [y], "o", color=colour, ms=7)
        if e.verdict == "top":
            right.plot([0], [y], "D", color=TOP, ms=7)
            right.annotate("top", (0, y), xytext=(8, 0), textcoords="offset points", va="center", fontsize=9)
        elif e.delta:
            colour = REAL if e.verdict == "real" else NOISE
            right.plot(e.delta[1:], [y, y], color=colour, lw=2)
            right.plot([e.delta[0]], [y], "o", color=colour, ms=7)
            right.annotate(e.verdict, (e.delta[2], y), xytext=(6, 0), textcoords="offset points", va="center", color=colour, fontsize=9)
    left.set_yticks(ys, [_wrap(e.label) for e in entries], fontsize=8)
    for tick, e in zip(left.get_yticklabels(), entries):
        if e.reference:
            tick.set_color(REFERENCE)
            tick.set_fontstyle("italic")
    left.set_xlabel(f"mean {ranking.split} dice, 95% interval (patients resampled)")
    right.axvline(0, color="#999999", lw=1, ls="--")
    right.set_xlabel("paired difference to the top, 95% interval")
    for ax in (left, right):
        ax.grid(axis="x", alpha=0.3)
        ax.set_ylim(-0.7, n - 0.3)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


def curves(children: Sequence[Child], objective: str) -> Any:
    """Every child's objective by epoch on one axis, each best epoch starred."""
    from ggo.evaluation.viz import sweep_figure

    drawn = [c for c in children if c.curve]
    fig = sweep_figure([(c.label, [v for _, v in c.curve]) for c in drawn], metric=objective)
    ax = fig.axes[0]
    for line, child in zip(ax.get_lines(), drawn):
        epochs = [e for e, _ in child.curve]
        line.set_xdata(epochs)  # a continued Hyperband trial starts past epoch 1
        at = dict(child.curve)
        if child.best_epoch in at:
            ax.plot([child.best_epoch], [at[child.best_epoch]], "*", ms=13, color=line.get_color(), mec="black", mew=0.6, zorder=5)
    from matplotlib.ticker import MaxNLocator

    ax.relim()
    ax.autoscale_view(scalex=True, scaley=False)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    values = [v for c in drawn for _, v in c.curve]
    low, high = min(values), max(values)
    pad = max(0.02, 0.1 * (high - low))  # zoom on the curves: the runs differ by hundredths
    ax.set_ylim(max(0.0, low - pad), min(1.0, high + pad))
    ax.set_title(f"{objective} by epoch (star: the best epoch, the checkpoint that was scored)", fontsize=10)
    return fig


def paired_patients(a_rows: pd.DataFrame, b_rows: pd.DataFrame, a: str, b: str, split: str) -> Any:
    """One line per patient from runner-up ``b``'s mean dice to top ``a``'s, on the films both
    scored; red where the top does better, blue where it does worse."""
    plt = _plt()
    both = a_rows[["image", "patient", "dice"]].merge(b_rows[["image", "dice"]], on="image", suffixes=("_a", "_b"))
    per = both.groupby("patient")[["dice_a", "dice_b"]].mean()
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    for _, row in per.iterrows():
        colour = REAL if row["dice_a"] > row["dice_b"] else (NOISE if row["dice_a"] < row["dice_b"] else REFERENCE)
        ax.plot([0, 1], [row["dice_b"], row["dice_a"]], "-o", color=colour, alpha=0.75, ms=5)
    better, worse = int((per["dice_a"] > per["dice_b"]).sum()), int((per["dice_a"] < per["dice_b"]).sum())
    ax.set_xticks([0, 1], [_wrap(f"runner-up: {b}", 30), _wrap(f"top: {a}", 30)], fontsize=8)
    ax.set_xlim(-0.3, 1.3)
    ax.set_ylabel(f"mean {split} dice of the patient's films")
    ax.set_title(f"{len(per)} patients: the top does better for {better}, worse for {worse}", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def fold_bars(folds: dict[str, dict[int, float]], metric: str, tests: dict[int, float] | None = None) -> Any:
    """Each configuration's ``metric`` per fold as bars (and, for one configuration, each fold
    model's test dice beside them), the mean over folds as a dashed line."""
    plt = _plt()
    all_folds = sorted({f for values in folds.values() for f in values})
    series = [(label, values) for label, values in folds.items()]
    if tests and len(folds) == 1:
        series.append(("test/dice of the fold model", tests))
    width = 0.8 / max(1, len(series))
    fig, ax = plt.subplots(figsize=(max(5.0, 1.2 * len(all_folds) + 2), 3.8))
    for i, (label, values) in enumerate(series):
        xs = [all_folds.index(f) + (i - (len(series) - 1) / 2) * width for f in values]
        colour = PALETTE[i % len(PALETTE)]
        ax.bar(xs, list(values.values()), width=width * 0.95, color=colour, label=_wrap(label, 60))
        ax.axhline(float(np.mean(list(values.values()))), color=colour, ls="--", lw=1)
    ax.set_xticks(range(len(all_folds)), [f"fold {f}" for f in all_folds])
    ax.set_ylabel(metric)
    ax.set_ylim(0, 1)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, loc="upper right")
    ax.set_title("per fold (dashed: the mean over folds)", fontsize=10)
    fig.tight_layout()
    return fig


def held_out(scores: Sequence[HeldOut]) -> Any:
    """The fold ensemble's test dice beside the lungs-as-GGO floor's (95% intervals), and the
    reference test dice to beat."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 0.6 * len(scores) + 1.6))
    ys = np.arange(len(scores))[::-1]
    for y, s in zip(ys, scores):
        colour = REFERENCE if "floor" in s.label else TOP
        if s.ci:
            ax.plot(s.ci, [y, y], color=colour, lw=2)
        ax.plot([s.dice], [y], "o", color=colour, ms=8)
        ax.annotate(f"{s.dice:.3f}", (s.dice, y), xytext=(0, 7), textcoords="offset points", ha="center", fontsize=8)
    ax.axvline(SEED_TEST_DICE, color=REAL, ls=":", lw=1.5)
    ax.annotate(f"pix2pix reference {SEED_TEST_DICE}", (SEED_TEST_DICE, len(scores) - 0.5), xytext=(4, 0),
                textcoords="offset points", color=REAL, fontsize=8, va="bottom")  # fmt: skip
    ax.set_yticks(ys, [_wrap(s.label) for s in scores], fontsize=8)
    ax.set_ylim(-0.7, len(scores) - 0.1)
    ax.set_xlim(0, 1)
    ax.set_xlabel("test dice, 95% interval (patients resampled)")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


def trials(rows: Sequence[dict[str, Any]], objective: str) -> Any:
    """A search's objective by trial: finished trials filled, pruned ones hollow, failed ones as
    crosses at the bottom, and the best so far as a step line."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4))
    xs = list(range(len(rows)))
    best, running = [], -math.inf
    for x, row in zip(xs, rows):
        value = row.get("value")
        if value is None:
            ax.plot([x], [0], "x", color=REAL, ms=9, mew=2)
        else:
            hollow = row.get("pruned")
            ax.plot([x], [value], "o", ms=8, color=NOISE, mfc="white" if hollow else NOISE, mew=1.5)
            running = max(running, value)
        best.append(running if math.isfinite(running) else np.nan)
    ax.step(xs, best, where="post", color=TOP, lw=1.2, label="best so far")
    ax.plot([], [], "o", color=NOISE, label="finished")
    ax.plot([], [], "o", color=NOISE, mfc="white", label="pruned (Hyperband did not continue it)")
    ax.plot([], [], "x", color=REAL, mew=2, label="failed")
    ax.set_xticks(xs, [str(r.get("trial_id")) for r in rows], fontsize=8)
    ax.set_xlabel("trial (in the order they were created)")
    ax.set_ylabel(objective)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def ggo_free(rows: pd.DataFrame, title: str) -> Any:
    """Each GGO-free film's predicted GGO area (fraction of the film) by split, the mean marked."""
    plt = _plt()
    splits = sorted(set(rows["split"]))
    fig, ax = plt.subplots(figsize=(6, 0.5 * len(splits) + 1.6))
    for y, split in enumerate(splits):
        values = rows.loc[rows["split"] == split, "pred_fraction"].astype(float)
        ax.plot(values, [y] * len(values), "o", color=NOISE, alpha=0.7)
        ax.plot([values.mean()], [y], "|", color=TOP, ms=22, mew=2)
        ax.annotate(f"mean {values.mean():.3f} ({len(values)} films)", (values.mean(), y), xytext=(0, 12),
                    textcoords="offset points", ha="center", fontsize=8)  # fmt: skip
    ax.set_yticks(range(len(splits)), splits)
    ax.set_ylim(-0.6, len(splits) - 0.2)
    ax.set_xlim(left=0)
    ax.set_xlabel("fraction of the film predicted GGO (0 is right: these films have none)")
    ax.set_title(title, fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig

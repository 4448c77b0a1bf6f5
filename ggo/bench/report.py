"""Targets, the terminal table, and the JSON and markdown files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ggo.config import defaults

#: Thresholds of the targets ggo holds itself to (issue 14).
DEFAULT_VS_REFERENCE = 1.0
FASTEST_VS_REFERENCE = 1.5
FASTEST_GOAL = 2.0
PIPELINE_HEADROOM = 10.0
LATER_JOB_OVERHEAD_S = 3.0
CV_ROW_VS_BASELINE = 1.5


def arms_lines(results: list[dict[str, Any]] | None) -> list[str]:
    from ggo.bench.arms import arms_lines as lines

    return lines(results or [])


def data_scale_table(scale: dict[str, Any], markdown: bool = False) -> str:
    from ggo.bench.datascale import table

    return table(scale, markdown=markdown)


def _ok_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in result.get("train", []) if r.get("images_per_s") and r.get("finite", False)]


def judged_ratio(result: dict[str, Any]) -> str:
    """The ratio targets are judged on: CPU time on a CPU (steady under other load), wall clock
    where a GPU trains (CPU time then counts the host side only)."""
    return "ratio" if result.get("machine", {}).get("gpus") else "cpu_ratio"


def _ratio_stats(row: dict[str, Any], key: str) -> dict[str, float] | None:
    if row.get(key) is None:
        return None
    low, high = row.get(f"{key}_iqr") or (row[key], row[key])
    return {"median": row[key], "p25": low, "p75": high}


def _ratio_measure(row: dict[str, Any], key: str, threshold: float) -> dict[str, Any]:
    from ggo.bench.paired import verdict

    stats = _ratio_stats(row, key)
    return {
        "resolution": row["resolution"], "gen": row["gen"], "mode": _mode(row),
        key: row[key], f"{key}_iqr": row.get(f"{key}_iqr"), "windows": row.get("windows"),
        "indicative": bool(row.get("indicative")), "verdict": verdict(stats, threshold),
    }  # fmt: skip


def _mode(row: dict[str, Any]) -> str:
    extra = f" [{' '.join(row['overrides'])}]" if row.get("overrides") else ""
    return f"{row['precision']}{' + XLA' if row.get('jit_compile') else ''}{extra}"


def _target(description: str, threshold: float, measured: list[dict[str, Any]], *, judged_on: str) -> dict[str, Any]:
    """A target judged on ``measured`` (each with its own ``verdict``): holds only where every
    measurement holds (:func:`ggo.bench.paired.combine`)."""
    from ggo.bench.paired import HOLDS, MISSES, combine

    overall = combine([m["verdict"] for m in measured])
    target = {
        "description": description, "threshold": threshold, "judged_on": judged_on, "measured": measured,
        "verdict": overall, "pass": {HOLDS: True, MISSES: False}.get(overall) if overall else None,
        "indicative": any(m.get("indicative") for m in measured),
    }  # fmt: skip
    if target["indicative"]:
        target["note"] = ("fewer or shorter windows than 10 of 3 s (quick mode or --windows/--window-s): "
                          "the verdict is indicative only")  # fmt: skip
    return target


def _single(value: float | None, threshold: float, *, at_most: bool = False) -> str | None:
    from ggo.bench.paired import verdict

    return verdict({"p25": value, "p75": value}, threshold, at_most=at_most) if value is not None else None


def _default_path(rows: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    """ggo's default path (float32, no XLA, the config's defaults) against the reference at the same settings."""
    return [
        _ratio_measure(r, key, DEFAULT_VS_REFERENCE) for r in rows
        if r["precision"] == "float32" and not r["jit_compile"] and r.get("default_settings", True)
        and r.get("reference_precision", "float32") == "float32" and not r.get("reference_jit_compile")
        and r.get(key) is not None
    ]  # fmt: skip


def _fastest(rows: list[dict[str, Any]], key: str, threshold: float) -> list[dict[str, Any]]:
    """Per (resolution, generator) with more than one mode: the mode with the best median ratio
    against the reference's float32 (no XLA), judged on its own pairs."""
    against_f32 = [
        r for r in rows
        if r.get(key) is not None and r.get("reference_precision", "float32") == "float32" and not r.get("reference_jit_compile")
    ]  # fmt: skip
    out = []
    for cell in sorted({(r["resolution"], r["gen"]) for r in against_f32}):
        mine = [r for r in against_f32 if (r["resolution"], r["gen"]) == cell]
        if len(mine) > 1:  # one mode measured (quick mode's 256 px row): nothing to choose from
            out.append(_ratio_measure(max(mine, key=lambda r: r[key]), key, threshold))
    return out


def _cv_row_measures(result: dict[str, Any]) -> list[dict[str, Any]]:
    from ggo.bench.paired import verdict

    vs = (result.get("cv_row") or {}).get("speedup_vs_baseline") or {}
    return [
        {"way": way, "speedup": s.get("median"), "values": s.get("values"),
         "verdict": verdict(s, CV_ROW_VS_BASELINE) if s.get("median") is not None else None}
        for way, s in vs.items() if s and way == "sequential"
    ]  # fmt: skip


def evaluate_targets(result: dict[str, Any]) -> dict[str, Any]:
    """Each target with the numbers it was judged on and its verdict: ``holds``, ``misses``,
    ``inconclusive`` (the spread of the paired ratios straddles the threshold) or None (not
    measured); ``pass`` is True / False / None for holds / misses / the rest."""
    rows = _ok_rows(result)
    key = judged_ratio(result)
    clock = "CPU-time" if key == "cpu_ratio" else "wall-clock"

    pipeline = []
    for res, ips in sorted((result.get("input_pipeline") or {}).items(), key=lambda kv: int(kv[0])):
        consumers = [r["images_per_s"] for r in rows if r["resolution"] == int(res)]
        if consumers:
            ratio = round(ips["images_per_s"] / max(consumers), 2)
            pipeline.append({
                "resolution": int(res), "input_pipeline_images_per_s": ips["images_per_s"],
                "train_step_images_per_s": max(consumers), "ratio": ratio, "verdict": _single(ratio, PIPELINE_HEADROOM),
            })  # fmt: skip

    multirun = result.get("multirun_overhead_s") or {}
    later = multirun.get("later")
    overhead = [{"later_job_overhead_s": later, "first_job_overhead_s": multirun.get("first"),
                 "verdict": _single(later, LATER_JOB_OVERHEAD_S, at_most=True)}] if multirun else []  # fmt: skip

    targets = {
        "default_path_vs_reference": _target(
            f"ggo's default path (float32, no XLA, default settings) is at least {DEFAULT_VS_REFERENCE}x the "
            f"reference step at the same settings (median paired {clock} ratio)",
            DEFAULT_VS_REFERENCE, _default_path(rows, key), judged_on=key,
        ),
        "fastest_mode_vs_reference_float32": _target(
            f"ggo's fastest correct mode (finite losses) is at least {FASTEST_VS_REFERENCE}x the reference's "
            f"float32 step without XLA (median paired {clock} ratio)",
            FASTEST_VS_REFERENCE, _fastest(rows, key, FASTEST_VS_REFERENCE), judged_on=key,
        ),
        "fastest_mode_goal_vs_reference_float32": _target(
            f"the goal beyond it: the fastest correct mode at {FASTEST_GOAL}x the reference's float32",
            FASTEST_GOAL, _fastest(rows, key, FASTEST_GOAL), judged_on=key,
        ),
        "input_pipeline_headroom": _target(
            f"the input pipeline delivers at least {PIPELINE_HEADROOM}x the images/s the fastest train step consumes",
            PIPELINE_HEADROOM, pipeline, judged_on="ratio",
        ),
        "multirun_later_job_overhead": _target(
            f"per-job overhead (run wall time - fit time) after the first job of a multirun is at most {LATER_JOB_OVERHEAD_S} s",
            LATER_JOB_OVERHEAD_S, overhead, judged_on="later_job_overhead_s",
        ),
        "cv_row_vs_baseline": _target(
            f"the 5-fold CV preset at 128 px (one job at a time) finishes at least {CV_ROW_VS_BASELINE}x sooner "
            "than the baseline checkout's plain command (--cv-row-baseline), wall clock",
            CV_ROW_VS_BASELINE, _cv_row_measures(result), judged_on="speedup",
        ),
    }
    if result.get("machine", {}).get("busy"):
        note = ("the machine was busy (load average above half its cores at start): wall-clock figures are "
                "noisy; cpu_ratio (CPU seconds per image, same process) is the steadier comparison")  # fmt: skip
        for name in ("default_path_vs_reference", "fastest_mode_vs_reference_float32"):
            targets[name]["note"] = "; ".join(filter(None, [targets[name].get("note"), note]))
    return targets


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


TABLE_COLUMNS = (
    ("res", "resolution"), ("gen", "gen"), ("precision", "precision"), ("XLA", "jit_compile"), ("set", "overrides"),
    ("ggo img/s", "images_per_s"), ("ref img/s", "reference_images_per_s"), ("ggo/ref (IQR)", "ratio"),
    ("ggo/ref CPU (IQR)", "cpu_ratio"), ("windows", "windows"), ("warm-up s", "warmup_s"),
)  # fmt: skip


def _cell(row: dict[str, Any], key: str) -> str:
    if key in ("ratio", "cpu_ratio"):
        iqr = row.get(f"{key}_iqr")
        return "-" if row.get(key) is None else f"{row[key]:.2f}" + (f" ({iqr[0]:.2f}-{iqr[1]:.2f})" if iqr else "")
    if key == "overrides":
        return " ".join(row.get("overrides") or []) or "-"
    if key == "windows":
        steps = row.get("steps_per_window")
        return "-" if row.get("images_per_s") is None else f"{row.get('windows')} x {steps} steps"
    return _fmt(row.get(key), 1)


def train_table(rows: list[dict[str, Any]], markdown: bool = False) -> str:
    """The throughput rows as an aligned text table (or a markdown one): ratios as median
    (p25-p75) of the paired windows."""
    header = [h for h, _ in TABLE_COLUMNS]
    body = []
    for r in rows:
        cells = [_cell(r, k) for _, k in TABLE_COLUMNS]
        if r.get("error"):
            cells[5] = "error"
        body.append(cells)
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(c) + " |" for c in body]
        return "\n".join(lines)
    widths = [max(len(x) for x in col) for col in zip(header, *body)]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(cells, widths)) for cells in [header, *body])


def summary_lines(result: dict[str, Any]) -> list[str]:
    """The non-table figures, one per line."""
    multirun = result.get("multirun_overhead_s") or {}
    pipe = result.get("input_pipeline") or {}
    inference = result.get("inference") or {}
    startup = result.get("startup") or {}
    memory = result.get("memory") or {}
    sweep = result.get("multirun") or {}
    return [
        "input pipeline (img/s, read from a cache on disk; in memory as arrays): "
        + (", ".join(f"{r} px {v['images_per_s']} ({v.get('in_memory_images_per_s', '-')})" for r, v in pipe.items()) or "-"),
        f"inference from files (img/s): {_fmt(result.get('inference_images_per_s'), 2)}"
        + (f" ({inference['n_files']} files of ~{inference['image_size']} px, model at {inference['resolution']} px)"
           if inference else ""),
        f"start-up to training (s): {_fmt(result.get('startup_s'), 2)}"
        + (f" (imports + config + data {startup.get('to_data_s')} s; peak RSS {startup.get('peak_rss_mb')} MB)"
           if startup else ""),
        f"multirun per-job overhead (s): first {_fmt(multirun.get('first'), 2)}, later {_fmt(multirun.get('later'), 2)}"
        + (f" (sweep {sweep.get('sweep_wall_s')} s, of which outside the jobs {sweep.get('outside_jobs_s')} s)"
           if sweep else ""),
        f"peak RSS of a training run (MB): {_fmt(result.get('peak_rss_mb'), 0)}"
        + (f" ({memory.get('config')})" if memory else ""),
        *cv_row_lines(result.get("cv_row")),
        *arms_lines(result.get("process_arms")),
    ]  # fmt: skip


def cv_row_lines(cv: dict[str, Any] | None) -> list[str]:
    """The CV row: each way's wall time and command, and the ratios between them."""
    if not cv:
        return ["CV row (5-fold preset at 128 px): -"]
    lines = [f"CV row `{cv['command']}` ({cv['epochs']} epochs, {cv['repeats']} run(s) per way):"]
    for way, wall in cv["wall_s"].items():
        jobs = cv["runs"][way][-1]["jobs"]
        fit = sum(j["fit_s"] for j in jobs)
        lines.append(f"  {way}: {wall:.0f} s wall ({cv['ways'][way]}; {len(jobs)} jobs, fit {fit:.0f} s of "
                     f"{sum(j['wall_s'] for j in jobs):.0f} s job time)")  # fmt: skip
    if cv.get("parallel_speedup"):
        lines.append(f"  parallel vs sequential: {cv['parallel_speedup']['median']:.2f}x (> 1: parallel finishes sooner)")
    for way, s in (cv.get("speedup_vs_baseline") or {}).items():
        if s:
            lines.append(f"  {way} vs baseline {cv['baseline']}: {s['median']:.2f}x (> 1: this checkout finishes sooner)")
    return lines


def _measure_text(m: dict[str, Any], key: str) -> str:
    if "mode" in m:  # a paired ratio
        iqr = m.get(f"{key}_iqr")
        spread = f" (IQR {iqr[0]:.2f}-{iqr[1]:.2f})" if iqr else ""
        return f"{m['resolution']} px {m['gen']} {m['mode']}: {m[key]:.2f}{spread} {m['verdict']}"
    return ", ".join(f"{k}={v}" for k, v in m.items())


def target_lines(targets: dict[str, Any]) -> list[str]:
    """One line per target: ``[HOLDS]``, ``[MISSES]``, ``[INCONCLUSIVE]`` or ``[n/a]``, what it
    asks and the numbers it was judged on."""
    out = []
    for name, t in targets.items():
        verdict = (t.get("verdict") or "n/a").upper() + (" (indicative)" if t.get("indicative") else "")
        numbers = "; ".join(_measure_text(m, t.get("judged_on", "")) for m in t["measured"]) or "not measured"
        out.append(f"[{verdict}] {name}: {t['description']} ({numbers})" + (f"; note: {t['note']}" if t.get("note") else ""))
    return out


def machine_lines(machine: dict[str, Any]) -> list[str]:
    return [
        f"device: {machine.get('device')}",
        f"CPU: {machine.get('cpu_model')} ({machine.get('cores_available')} cores available, flags "
        f"{' '.join(machine.get('cpu_flags', [])) or '-'}), memory {machine.get('memory_gb')} GB",
        (f"JAX {machine.get('jax')}" if machine.get("backend") == "jax" else f"TensorFlow {machine.get('tensorflow')}")
        + f", Keras {machine.get('keras')} on {machine.get('backend') or defaults('train')['backend']}, Python {machine.get('python')}",
        f"load average at start {machine.get('load_average_start')}, at end {machine.get('load_average_end')}"
        + (" (busy: other work shared the machine)" if machine.get("busy") else ""),
    ]


def to_markdown(result: dict[str, Any]) -> str:
    lines = ["# ggo benchmark", "", f"Run {result.get('started')} ({result.get('mode')} mode, "
             f"{_fmt(result.get('seconds'), 0)} s).", "", "## Machine", ""]  # fmt: skip
    lines += [f"- {x}" for x in machine_lines(result["machine"])]
    lines += ["", "## Training throughput", "", train_table(result.get("train", []), markdown=True), ""]
    lines += [
        "ggo: `GAN.fit` over a fixed batch, built from the composed run config; ref: the pix2pix tutorial's "
        "step over the same architectures and batch, in " + _reference_words(result) + ". Windows of ggo "
        "and ref alternate; img/s is the median window, ggo/ref the median of the paired windows' ratios "
        "with their interquartile range (p25-p75); warm-up s = tracing/XLA compile.",
        "",
        "## Other figures",
        "",
    ]
    lines += [f"- {x}" for x in summary_lines(result)]
    if result.get("data_scale"):
        lines += ["", "## Data at scale", "", data_scale_table(result["data_scale"], markdown=True)]
    lines += ["", "## Targets", ""]
    lines += [f"- {x}" for x in target_lines(result.get("targets", {}))]
    if result.get("errors"):
        lines += ["", "## Errors", ""] + [f"- {k}: {v}" for k, v in result["errors"].items()]
    return "\n".join(lines) + "\n"


def _reference_words(result: dict[str, Any]) -> str:
    same = (result.get("settings") or {}).get("reference", "").startswith("each row")
    return "each row's precision and XLA setting" if same else "float32 without XLA (every row's yardstick)"


def write_reports(result: dict[str, Any], out: str | Path) -> tuple[Path, Path]:
    """Write ``out`` (JSON) and ``bench.md`` beside it (same stem, ``.md``)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    md = out.with_suffix(".md")
    md.write_text(to_markdown(result))
    return out, md


__all__ = [
    "cv_row_lines",
    "evaluate_targets",
    "judged_ratio",
    "machine_lines",
    "summary_lines",
    "target_lines",
    "to_markdown",
    "train_table",
    "write_reports",
]

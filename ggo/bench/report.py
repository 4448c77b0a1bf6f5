"""Targets, the terminal table, and the JSON and markdown files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

#: Thresholds of the targets ggo holds itself to.
FASTEST_VS_REFERENCE = 1.5
PIPELINE_HEADROOM = 10.0
LATER_JOB_OVERHEAD_S = 3.0


def _ok_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in result.get("train", []) if r.get("images_per_s") and r.get("finite", False)]


def _target(description: str, threshold: float, measured: list[dict[str, Any]], key: str, *, at_most: bool = False):
    values = [m[key] for m in measured if m.get(key) is not None]
    passed = None if not values else all((v <= threshold) if at_most else (v >= threshold) for v in values)
    return {"description": description, "threshold": threshold, "measured": measured, "pass": passed}


def evaluate_targets(result: dict[str, Any]) -> dict[str, Any]:
    """Each target with the numbers it was judged on and ``pass`` (None: not measured)."""
    rows = _ok_rows(result)
    cells = sorted({(r["resolution"], r["gen"]) for r in rows})

    default_path = [
        {k: r.get(k) for k in ("resolution", "gen", "images_per_s", "reference_images_per_s", "ratio", "cpu_ratio")}
        for r in rows
        if r["precision"] == "float32" and not r["jit_compile"] and r.get("reference_images_per_s")
    ]

    fastest = []
    for res, gen in cells:
        mine = [r for r in rows if (r["resolution"], r["gen"]) == (res, gen)]
        if all(r["precision"] == "float32" and not r["jit_compile"] for r in mine):
            continue  # only the default mode measured here (quick mode): nothing to choose from
        ref32 = next(
            (r for r in mine if r["precision"] == "float32" and not r["jit_compile"] and r.get("reference_images_per_s")),
            None,
        )
        best = max(mine, key=lambda r: r["images_per_s"])
        cpu_ratio = None
        if ref32 and best.get("images_per_cpu_s") and ref32.get("reference_images_per_cpu_s"):
            cpu_ratio = round(best["images_per_cpu_s"] / ref32["reference_images_per_cpu_s"], 3)
        fastest.append({
            "resolution": res, "gen": gen, "fastest_mode": f"{best['precision']}{' + XLA' if best['jit_compile'] else ''}",
            "images_per_s": best["images_per_s"],
            "reference_float32_images_per_s": ref32["reference_images_per_s"] if ref32 else None,
            "ratio": round(best["images_per_s"] / ref32["reference_images_per_s"], 3) if ref32 else None,
            "cpu_ratio": cpu_ratio,
        })  # fmt: skip

    pipeline = []
    for res, ips in sorted((result.get("input_pipeline") or {}).items(), key=lambda kv: int(kv[0])):
        consumers = [r["images_per_s"] for r in rows if r["resolution"] == int(res)]
        if consumers:
            pipeline.append({
                "resolution": int(res), "input_pipeline_images_per_s": ips["images_per_s"],
                "train_step_images_per_s": max(consumers), "ratio": round(ips["images_per_s"] / max(consumers), 2),
            })  # fmt: skip

    multirun = result.get("multirun_overhead_s") or {}
    overhead = [{"later_job_overhead_s": multirun.get("later"), "first_job_overhead_s": multirun.get("first")}] if multirun else []

    targets = {
        "default_path_vs_reference": _target(
            "ggo's default path (float32, no XLA) is at least as fast as the reference step at equal settings",
            1.0, default_path, "ratio",
        ),
        "fastest_mode_vs_reference_float32": _target(
            f"ggo's fastest correct mode (finite losses) is at least {FASTEST_VS_REFERENCE}x the reference's "
            "float32 (no XLA) throughput",
            FASTEST_VS_REFERENCE, [f for f in fastest if f["ratio"] is not None], "ratio",
        ),
        "input_pipeline_headroom": _target(
            f"the input pipeline delivers at least {PIPELINE_HEADROOM}x the images/s the fastest train step consumes",
            PIPELINE_HEADROOM, pipeline, "ratio",
        ),
        "multirun_later_job_overhead": _target(
            f"per-job overhead (run wall time - fit time) after the first job of a multirun is at most {LATER_JOB_OVERHEAD_S} s",
            LATER_JOB_OVERHEAD_S, overhead, "later_job_overhead_s", at_most=True,
        ),
    }
    if result.get("machine", {}).get("busy"):
        note = ("the machine was busy (load average above half its cores at start): wall-clock figures are "
                "noisy; cpu_ratio (CPU seconds per image, same process) is the steadier comparison")  # fmt: skip
        for name in ("default_path_vs_reference", "fastest_mode_vs_reference_float32"):
            targets[name]["note"] = note
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
    ("res", "resolution"), ("gen", "gen"), ("precision", "precision"), ("XLA", "jit_compile"),
    ("ggo img/s", "images_per_s"), ("ref img/s", "reference_images_per_s"), ("ggo/ref", "ratio"),
    ("ggo/ref CPU", "cpu_ratio"), ("warm-up s", "warmup_s"),
)  # fmt: skip


def train_table(rows: list[dict[str, Any]], markdown: bool = False) -> str:
    """The throughput rows as an aligned text table (or a markdown one)."""
    header = [h for h, _ in TABLE_COLUMNS]
    body = []
    for r in rows:
        cells = [_fmt(r.get(k), 2 if k.endswith("ratio") else 1) for _, k in TABLE_COLUMNS]
        if r.get("error"):
            cells[4] = "error"
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
        "input pipeline (img/s): " + (", ".join(f"{r} px {v['images_per_s']}" for r, v in pipe.items()) or "-"),
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
    ]  # fmt: skip


def target_lines(targets: dict[str, Any]) -> list[str]:
    out = []
    for name, t in targets.items():
        verdict = {True: "PASS", False: "FAIL", None: "n/a "}[t["pass"]]
        numbers = "; ".join(
            ", ".join(f"{k}={v}" for k, v in m.items()) for m in t["measured"]
        ) or "not measured"
        out.append(f"[{verdict}] {name}: {t['description']} ({numbers})" + (f"; note: {t['note']}" if t.get("note") else ""))
    return out


def machine_lines(machine: dict[str, Any]) -> list[str]:
    return [
        f"device: {machine.get('device')}",
        f"CPU: {machine.get('cpu_model')} ({machine.get('cores_available')} cores available, flags "
        f"{' '.join(machine.get('cpu_flags', [])) or '-'}), memory {machine.get('memory_gb')} GB",
        (f"JAX {machine.get('jax')}" if machine.get("backend") == "jax" else f"TensorFlow {machine.get('tensorflow')}")
        + f", Keras {machine.get('keras')} on {machine.get('backend', 'tensorflow')}, Python {machine.get('python')}",
        f"load average at start {machine.get('load_average_start')}, at end {machine.get('load_average_end')}"
        + (" (busy: other work shared the machine)" if machine.get("busy") else ""),
    ]


def to_markdown(result: dict[str, Any]) -> str:
    lines = ["# ggo benchmark", "", f"Run {result.get('started')} ({result.get('mode')} mode, "
             f"{_fmt(result.get('seconds'), 0)} s).", "", "## Machine", ""]  # fmt: skip
    lines += [f"- {x}" for x in machine_lines(result["machine"])]
    lines += ["", "## Training throughput", "", train_table(result.get("train", []), markdown=True), ""]
    lines += [
        "ggo: `GAN.fit` over a fixed batch; ref: the pix2pix tutorial's step over the same architectures "
        "and batch. Median of the timed windows, after warm-up (warm-up s = tracing/XLA compile).",
        "",
        "## Other figures",
        "",
    ]
    lines += [f"- {x}" for x in summary_lines(result)]
    lines += ["", "## Targets", ""]
    lines += [f"- {x}" for x in target_lines(result.get("targets", {}))]
    if result.get("errors"):
        lines += ["", "## Errors", ""] + [f"- {k}: {v}" for k, v in result["errors"].items()]
    return "\n".join(lines) + "\n"


def write_reports(result: dict[str, Any], out: str | Path) -> tuple[Path, Path]:
    """Write ``out`` (JSON) and ``bench.md`` beside it (same stem, ``.md``)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    md = out.with_suffix(".md")
    md.write_text(to_markdown(result))
    return out, md


__all__ = [
    "evaluate_targets",
    "machine_lines",
    "summary_lines",
    "target_lines",
    "to_markdown",
    "train_table",
    "write_reports",
]

"""``python -m ggo.bench``: the result's schema, the overhead arithmetic and the targets' verdicts.

The slow test runs the real command at the smallest settings and checks the JSON's shape and
that every measured number is sane; no test asserts a timing.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ggo.bench import BenchOptions, train_cases
from ggo.bench.processes import job_overheads, parse_startup, python_module_cmd, run_timed
from ggo.bench.report import evaluate_targets, to_markdown, train_table

TOP_KEYS = (
    "machine", "train", "input_pipeline_images_per_s", "inference_images_per_s", "startup_s",
    "multirun_overhead_s", "peak_rss_mb", "targets",
)  # fmt: skip
ROW_KEYS = (
    "resolution", "gen", "disc", "base_filters", "batch_size", "precision", "jit_compile", "images_per_s",
    "reference_images_per_s",
)  # fmt: skip
MACHINE_KEYS = ("cpu_model", "logical_cores", "memory_gb", "tensorflow", "keras", "device", "load_average_start")
TARGETS = (
    "default_path_vs_reference", "fastest_mode_vs_reference_float32", "input_pipeline_headroom",
    "multirun_later_job_overhead",
)  # fmt: skip


def _positive(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def test_startup_is_first_epoch_end_less_one_steady_epoch():
    lines = [
        (0.5, "some import chatter"),
        (9.0, "[ggo] data: 12 train / 3 val / 5 test images at 64 px; precision float32"),
        (15.0, "epoch   1/2  train/g_loss 50.1  train/dice 0.1  val/dice 0.2  (4.0s)  *best"),
        (15.8, "epoch   2/2  train/g_loss 48.0  train/dice 0.1  val/dice 0.2  (0.7s)"),
    ]
    got = parse_startup(lines)
    assert got["startup_s"] == pytest.approx(14.3)
    assert got["to_data_s"] == 9.0
    assert got["to_first_epoch_start_s"] == pytest.approx(11.0)
    assert got["epoch_s"] == [4.0, 0.7]


def test_startup_without_an_epoch_line_is_an_error():
    with pytest.raises(ValueError, match="epoch"):
        parse_startup([(1.0, "Traceback ...")])


def test_job_overhead_is_run_wall_time_less_fit_time_first_job_apart():
    jobs = [
        {"start_ms": 0, "end_ms": 10_000, "train_s": 6.0},
        {"start_ms": 10_500, "end_ms": 16_500, "train_s": 5.0},
        {"start_ms": 17_000, "end_ms": 23_000, "train_s": 4.0},
    ]
    got = job_overheads(jobs)
    assert got["first"] == 4.0
    assert got["later"] == 1.5  # median of 1.0 and 2.0
    assert got["gap_between_jobs_s"] == [0.5, 0.5]


def test_peak_memory_is_the_childs_own_not_what_it_inherits_from_this_process(tmp_path: Path):
    ballast = np.ones(400 * 2**20 // 8)  # this process holds 400 MB more than the child ever will
    script = tmp_path / "alloc.py"
    script.write_text("import numpy as np\na = np.ones(64 * 2**20 // 8)\nprint('ready', flush=True)\n")
    got = run_timed(python_module_cmd("alloc"), cwd=tmp_path, timeout=120)
    assert got["returncode"] == 0 and not got["timed_out"]
    assert [line for _, line in got["lines"]][0] == "ready"
    assert 64 < got["peak_rss_mb"] < 300
    del ballast


def test_quick_grid_covers_every_target_with_few_rows():
    cases = train_cases(BenchOptions(quick=True))
    assert len(cases) <= 6
    assert {c.resolution for c in cases} == {128, 256}
    assert any(c.precision == "float32" and not c.jit_compile and c.reference for c in cases)
    assert any(c.jit_compile for c in cases)


def test_grid_options_replace_the_quick_grid_by_their_product():
    cases = train_cases(BenchOptions(quick=True, resolutions=[64], gens=["unet", "attention_unet"], precisions=["float32"]))
    assert {(c.gen, c.jit_compile) for c in cases} == {("unet", False), ("unet", True), ("attention_unet", False), ("attention_unet", True)}


def _row(res, gen, precision, jit, ips, ref=None, cpu=None, ref_cpu=None):
    return {
        "resolution": res, "gen": gen, "precision": precision, "jit_compile": jit, "images_per_s": ips,
        "reference_images_per_s": ref, "ratio": round(ips / ref, 3) if ref else None, "finite": True,
        "images_per_cpu_s": cpu, "reference_images_per_cpu_s": ref_cpu,
        "cpu_ratio": round(cpu / ref_cpu, 3) if cpu and ref_cpu else None,
    }  # fmt: skip


def test_targets_pass_and_fail_on_the_numbers_they_show():
    result = {
        "machine": {"busy": False},
        "train": [
            _row(128, "unet", "float32", False, 40.0, ref=44.0, cpu=20.0, ref_cpu=21.0),
            _row(128, "unet", "mixed_bfloat16", False, 70.0, ref=72.0),
            _row(128, "unet", "mixed_bfloat16", True, 30.0),
            _row(256, "unet", "float32", False, 5.0, ref=6.0),  # one mode only: not judged as "fastest"
        ],
        "input_pipeline": {"128": {"images_per_s": 600.0}},
        "multirun_overhead_s": {"first": 4.0, "later": 2.5},
    }
    targets = evaluate_targets(result)
    assert set(targets) == set(TARGETS)
    assert targets["default_path_vs_reference"]["pass"] is False  # 40 < 44
    fastest = targets["fastest_mode_vs_reference_float32"]
    assert len(fastest["measured"]) == 1
    assert fastest["measured"][0]["fastest_mode"] == "mixed_bfloat16"
    assert fastest["measured"][0]["ratio"] == pytest.approx(70 / 44, abs=1e-3)
    assert fastest["pass"] is True
    assert targets["input_pipeline_headroom"]["measured"][0]["ratio"] == pytest.approx(600 / 70, abs=0.01)
    assert targets["input_pipeline_headroom"]["pass"] is False
    assert targets["multirun_later_job_overhead"]["pass"] is True


def test_unmeasured_targets_are_neither_passed_nor_failed():
    targets = evaluate_targets({"machine": {}, "train": [], "input_pipeline": {}, "multirun_overhead_s": None})
    assert all(t["pass"] is None for t in targets.values())


def test_a_failed_row_shows_as_error_in_the_table():
    row = {"resolution": 64, "gen": "unet", "precision": "float32", "jit_compile": True, "images_per_s": None,
           "error": "InternalError: no XLA"}  # fmt: skip
    assert "error" in train_table([row])
    assert "| 64 | unet |" in train_table([row], markdown=True)


@pytest.mark.slow
def test_smallest_bench_run_writes_json_and_markdown_with_every_schema_key(tmp_path: Path):
    out = tmp_path / "results" / "bench.json"
    args = [
        "--resolutions", "64", "--gens", "unet", "--precisions", "float32,best", "--xla", "off",
        "--steps", "2", "--windows", "2", "--warmup-steps", "1", "--base-filters", "4", "--disc-base-filters", "4",
        "--batch-size", "2", "--inference-files", "2", "--inference-size", "128", "--memory-resolution", "64",
        "--skip-overhead", "--out", str(out), "--workdir", str(tmp_path),
    ]  # fmt: skip
    env = {**os.environ, "GGO_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run(
        [sys.executable, "-m", "ggo.bench", *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "ggo img/s" in proc.stdout  # the table was printed

    result = json.loads(out.read_text())
    assert set(TOP_KEYS) <= set(result)
    assert all(key in result["machine"] for key in MACHINE_KEYS)
    assert result["machine"]["logical_cores"] >= 1 and result["machine"]["memory_gb"] > 0

    rows = result["train"]
    assert {(r["resolution"], r["gen"], r["precision"], r["jit_compile"]) for r in rows} == {
        (64, "unet", "float32", False),
        (64, "unet", result["train"][1]["precision"], False),
    }
    assert rows[1]["precision"] in ("mixed_bfloat16", "mixed_float16")
    for row in rows:
        assert all(key in row for key in ROW_KEYS), row
        assert "error" not in row, row["error"]
        assert row["disc"] == "patchgan70" and row["base_filters"] == 4 and row["batch_size"] == 2
        assert _positive(row["images_per_s"]) and _positive(row["reference_images_per_s"])
        assert _positive(row["ratio"]) and row["finite"]

    assert _positive(result["input_pipeline_images_per_s"])
    assert _positive(result["inference_images_per_s"])
    assert _positive(result["peak_rss_mb"])
    assert result["startup_s"] is None and result["multirun_overhead_s"] is None  # skipped, and said so
    assert "overhead" in result["skipped"]
    assert not result["errors"]
    assert set(result["targets"]) == set(TARGETS)
    for target in result["targets"].values():
        assert {"description", "threshold", "measured", "pass"} <= set(target)
    assert result["targets"]["default_path_vs_reference"]["pass"] in (True, False)
    assert result["targets"]["multirun_later_job_overhead"]["pass"] is None

    markdown = (out.parent / "bench.md").read_text()
    assert markdown == to_markdown(result)
    assert "| 64 | unet | float32 | off |" in markdown

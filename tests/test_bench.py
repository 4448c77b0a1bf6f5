"""``python -m ggo.bench``: the result's schema, the paired-window arithmetic, the overhead
arithmetic, the CV row's commands and the targets' verdicts.

The slow test runs the real command at the smallest settings and checks the JSON's shape and
that every measured number is sane; no test asserts a timing.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ggo.bench import BenchConfigError, BenchOptions, override_grid, train_cases
from ggo.bench.cvrow import CvRowOptions, check_checkout, way_command
from ggo.bench.paired import calibrated_steps, combine, pair_ratios, spread, time_interleaved, verdict
from ggo.bench.processes import job_overheads, parse_startup, python_module_cmd, run_timed
from ggo.bench.report import evaluate_targets, target_lines, to_markdown, train_table
from ggo.bench.throughput import Timing

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
    "default_path_vs_reference", "fastest_mode_vs_reference_float32", "fastest_mode_goal_vs_reference_float32",
    "input_pipeline_headroom", "multirun_later_job_overhead", "cv_row_vs_baseline",
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


# ------------------------------------------------------------------ paired windows
def test_windows_alternate_ggo_then_reference_and_pair_in_that_order():
    order = []

    def window(name, wall, cpu):
        def run(steps):
            order.append((name, steps))
            return wall, cpu

        return run

    pairs = time_interleaved(window("ggo", 2.0, 1.5), window("ref", 3.0, 2.5), windows=3, steps=7)
    assert order == [("ggo", 7), ("ref", 7)] * 3
    assert pairs[0] == {"ggo_wall_s": 2.0, "ggo_cpu_s": 1.5, "ref_wall_s": 3.0, "ref_cpu_s": 2.5}
    assert len(pairs) == 3


def test_without_a_reference_only_ggo_windows_run():
    order = []
    pairs = time_interleaved(lambda n: order.append(n) or (1.0, 1.0), None, windows=2, steps=3)
    assert order == [3, 3] and pairs == [{"ggo_wall_s": 1.0, "ggo_cpu_s": 1.0}] * 2
    assert pair_ratios(pairs) == []


def test_pair_ratio_is_ggo_throughput_over_the_references_in_the_same_pair():
    pairs = [
        {"ggo_wall_s": 2.0, "ggo_cpu_s": 4.0, "ref_wall_s": 3.0, "ref_cpu_s": 4.0},  # ggo 1.5x faster by wall
        {"ggo_wall_s": 4.0, "ggo_cpu_s": 5.0, "ref_wall_s": 2.0, "ref_cpu_s": 4.0},  # a load spike hit ggo's window
    ]
    assert pair_ratios(pairs, "wall") == [1.5, 0.5]
    assert pair_ratios(pairs, "cpu") == [1.0, 0.8]


def test_median_and_interquartile_range_match_hand_computed_quartiles():
    # Linear interpolation between order statistics: p25 at rank 0.25 * (n - 1) = 2.25 -> 3.25.
    got = spread([10, 1, 9, 2, 8, 3, 7, 4, 6, 5])
    assert got == {"median": 5.5, "p25": 3.25, "p75": 7.75, "n": 10}
    assert spread([0.9, 1.1, float("nan")]) == pytest.approx({"median": 1.0, "p25": 0.95, "p75": 1.05, "n": 2})
    assert spread([]) is None


@pytest.mark.parametrize(
    ("p25", "p75", "expected"),
    [(1.02, 1.10, "holds"), (1.00, 1.10, "holds"), (0.90, 0.99, "misses"), (0.97, 1.03, "inconclusive"),
     (0.90, 1.00, "inconclusive")],
)  # fmt: skip
def test_a_target_holds_or_misses_only_when_the_whole_iqr_is_on_one_side(p25, p75, expected):
    assert verdict({"median": (p25 + p75) / 2, "p25": p25, "p75": p75}, 1.0) == expected


def test_an_upper_bound_target_holds_when_the_whole_iqr_is_below_it():
    assert verdict({"p25": 1.0, "p75": 2.5}, 3.0, at_most=True) == "holds"
    assert verdict({"p25": 3.5, "p75": 4.0}, 3.0, at_most=True) == "misses"
    assert verdict({"p25": 2.5, "p75": 3.5}, 3.0, at_most=True) == "inconclusive"
    assert verdict(None, 3.0) is None


def test_a_target_over_several_rows_misses_if_one_misses_and_holds_only_if_all_hold():
    assert combine(["holds", "holds"]) == "holds"
    assert combine(["holds", "inconclusive"]) == "inconclusive"
    assert combine(["inconclusive", "misses", "holds"]) == "misses"
    assert combine([None]) is None


def test_steps_per_window_make_the_faster_side_fill_the_window():
    assert calibrated_steps([0.4, 0.25], 3.0) == 12  # the reference's 0.25 s steps: 12 x 0.25 = 3 s
    assert calibrated_steps([5.0], 3.0) == 1


def test_verdicts_from_few_or_short_windows_are_indicative_only():
    long_pairs = [{"ggo_wall_s": 3.2, "ref_wall_s": 3.1}] * 10
    assert not Timing(windows=10).indicative(long_pairs)
    assert Timing(windows=5).indicative(long_pairs[:5])
    assert Timing(windows=10).indicative([{"ggo_wall_s": 1.5, "ref_wall_s": 2.0}] * 10)


# ------------------------------------------------------------------ the grid
def test_quick_grid_covers_every_target_with_few_rows():
    cases = train_cases(BenchOptions(quick=True))
    assert len(cases) <= 6
    assert {c.resolution for c in cases} == {128, 256}
    assert any(c.precision == "float32" and not c.jit_compile and c.reference for c in cases)
    assert any(c.jit_compile for c in cases)
    assert all(c.reference for c in cases)  # the float32 yardstick needs no XLA compile


def test_grid_options_replace_the_quick_grid_by_their_product():
    cases = train_cases(BenchOptions(quick=True, resolutions=[64], gens=["unet", "attention_unet"], precisions=["float32"]))
    assert {(c.gen, c.jit_compile) for c in cases} == {("unet", False), ("unet", True), ("attention_unet", False), ("attention_unet", True)}


def test_set_axes_multiply_the_grid_with_every_combination():
    assert override_grid(["train.d_steps=1,2", "loss=dice"]) == [("train.d_steps=1", "loss=dice"), ("train.d_steps=2", "loss=dice")]
    assert override_grid([]) == [()]
    cases = train_cases(BenchOptions(resolutions=[64], gens=["unet"], precisions=["float32"], xla=[False],
                                     set_axes=["train.d_steps=1,2"]))  # fmt: skip
    assert [c.overrides for c in cases] == [("train.d_steps=1",), ("train.d_steps=2",)]


@pytest.mark.parametrize("axis", ["train.d_steps", "=1", "train.d_steps=1,,2"])
def test_a_malformed_set_axis_is_refused_with_the_expected_form(axis):
    with pytest.raises(BenchConfigError, match="KEY=VALUE"):
        override_grid([axis])


# ------------------------------------------------------------------ the targets
def _row(res, gen, precision, jit, ips, cpu=None, cpu_iqr=None, ratio=None, **extra):
    return {
        "resolution": res, "gen": gen, "precision": precision, "jit_compile": jit, "images_per_s": ips,
        "ratio": ratio, "ratio_iqr": None, "cpu_ratio": cpu, "cpu_ratio_iqr": cpu_iqr, "finite": True,
        "reference_precision": "float32", "reference_jit_compile": False, "default_settings": True,
        "windows": 10, "indicative": False, **extra,
    }  # fmt: skip


def test_targets_hold_miss_or_stay_inconclusive_on_the_paired_cpu_ratios_they_show():
    result = {
        "machine": {"busy": False, "gpus": []},
        "train": [
            _row(128, "unet", "float32", False, 40.0, cpu=0.98, cpu_iqr=[0.95, 1.02]),  # straddles 1.0
            _row(128, "unet", "float32", False, 41.0, cpu=1.05, cpu_iqr=[1.03, 1.08],
                 overrides=["train.d_steps=2"], default_settings=False),  # not the default path
            _row(128, "unet", "mixed_bfloat16", False, 70.0, cpu=1.6, cpu_iqr=[1.55, 1.7]),
            _row(128, "unet", "mixed_bfloat16", True, 30.0, cpu=0.6, cpu_iqr=[0.5, 0.7]),
            _row(256, "unet", "float32", False, 5.0, cpu=1.1, cpu_iqr=[1.05, 1.2]),  # one mode only
        ],
        "input_pipeline": {"128": {"images_per_s": 600.0}},
        "multirun_overhead_s": {"first": 4.0, "later": 2.5},
    }
    targets = evaluate_targets(result)
    assert set(targets) == set(TARGETS)
    default = targets["default_path_vs_reference"]
    assert [(m["resolution"], m["cpu_ratio"], m["verdict"]) for m in default["measured"]] == [
        (128, 0.98, "inconclusive"), (256, 1.1, "holds")
    ]
    assert default["verdict"] == "inconclusive" and default["pass"] is None
    fastest = targets["fastest_mode_vs_reference_float32"]
    assert [m["mode"] for m in fastest["measured"]] == ["mixed_bfloat16"]  # the 256 px cell has one mode
    assert fastest["verdict"] == "holds" and fastest["pass"] is True
    assert targets["fastest_mode_goal_vs_reference_float32"]["verdict"] == "misses"
    assert targets["input_pipeline_headroom"]["measured"][0]["ratio"] == pytest.approx(600 / 70, abs=0.01)
    assert targets["input_pipeline_headroom"]["verdict"] == "misses"
    assert targets["multirun_later_job_overhead"]["verdict"] == "holds"
    assert targets["cv_row_vs_baseline"]["verdict"] is None
    lines = target_lines(targets)
    assert any(line.startswith("[INCONCLUSIVE] default_path_vs_reference") and "0.98 (IQR 0.95-1.02)" in line for line in lines)


def test_a_target_judged_on_quick_windows_says_it_is_indicative():
    rows = [_row(128, "unet", "float32", False, 40.0, cpu=1.2, cpu_iqr=[1.1, 1.3], windows=5, indicative=True)]
    target = evaluate_targets({"machine": {}, "train": rows})["default_path_vs_reference"]
    assert target["verdict"] == "holds" and target["indicative"] and "indicative" in target["note"]
    assert target_lines({"t": target})[0].startswith("[HOLDS (indicative)]")


def test_on_a_gpu_targets_are_judged_on_wall_clock():
    rows = [_row(128, "unet", "float32", False, 40.0, cpu=0.5, cpu_iqr=[0.4, 0.6], ratio=1.2, ratio_iqr=[1.1, 1.3])]
    target = evaluate_targets({"machine": {"gpus": ["H200"]}, "train": rows})["default_path_vs_reference"]
    assert target["judged_on"] == "ratio" and target["verdict"] == "holds"


def test_the_cv_row_target_compares_the_sequential_way_with_the_baseline():
    cv = {"speedup_vs_baseline": {"sequential": {"values": [1.6], "median": 1.6, "p25": 1.6, "p75": 1.6},
                                  "parallel": {"values": [1.9], "median": 1.9, "p25": 1.9, "p75": 1.9}}}  # fmt: skip
    target = evaluate_targets({"machine": {}, "train": [], "cv_row": cv})["cv_row_vs_baseline"]
    assert [m["way"] for m in target["measured"]] == ["sequential"] and target["verdict"] == "holds"


def test_unmeasured_targets_are_neither_passed_nor_failed():
    targets = evaluate_targets({"machine": {}, "train": [], "input_pipeline": {}, "multirun_overhead_s": None})
    assert all(t["pass"] is None and t["verdict"] is None for t in targets.values())


def test_a_failed_row_shows_as_error_in_the_table():
    row = {"resolution": 64, "gen": "unet", "precision": "float32", "jit_compile": True, "images_per_s": None,
           "error": "InternalError: no XLA"}  # fmt: skip
    assert "error" in train_table([row])
    assert "| 64 | unet |" in train_table([row], markdown=True)


def test_the_table_shows_each_ratio_with_its_interquartile_range():
    row = _row(128, "unet", "float32", False, 40.0, cpu=0.98, cpu_iqr=[0.95, 1.02], ratio=0.9, ratio_iqr=[0.8, 1.0],
               steps_per_window=12, overrides=["train.d_steps=2"])  # fmt: skip
    table = train_table([row], markdown=True)
    assert "| 0.90 (0.80-1.00) | 0.98 (0.95-1.02) | 10 x 12 steps |" in table
    assert "| train.d_steps=2 |" in table


# ------------------------------------------------------------------ the CV row
def test_cv_row_runs_the_5_fold_preset_one_job_at_a_time_and_as_parallel_single_thread_jobs(tmp_path: Path):
    opts = CvRowOptions(epochs=6, jobs=2, cores=2)
    seq, _, seq_uri = way_command("sequential", opts, tmp_path)
    par, env, _ = way_command("parallel", opts, tmp_path)
    shared = ["-m", "ggo.train", "-m", "+sweeps=cv", "preprocess=res128", "train.epochs=6", "train.patience=0"]
    assert seq[1:8] == shared and par[1:8] == shared
    assert "train.threads=2" in seq and not any("launcher" in a for a in seq)
    assert {"hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "train.threads=1"} <= set(par)
    assert seq_uri.startswith("sqlite:///" + str(tmp_path)) and f"tracking.uri={seq_uri}" in seq
    assert env.get("PYTHONPATH") == os.environ.get("PYTHONPATH")  # this checkout's


def test_cv_row_commands_compose_with_the_real_config_and_launcher():
    from ggo.config import compose

    opts = CvRowOptions(cores=2)
    for way in ("sequential", "parallel"):
        cmd, _, _ = way_command(way, opts, Path("/tmp/x"))
        overrides = [a for a in cmd[3:] if a != "-m" and not a.startswith("hydra.sweep.dir")]
        cfg = compose(overrides, with_hydra=True)
        assert cfg.hydra.sweeper.params["data.fold"] == "0,1,2,3,4"
        assert cfg.preprocess.resolution == 128 and cfg.train.epochs == 6 and cfg.train.patience == 0
        assert cfg.train.threads == (2 if way == "sequential" else 1)
        assert ("joblib" in cfg.hydra.launcher._target_) == (way == "parallel")


def test_cv_row_baseline_runs_the_plain_command_from_the_other_checkout(tmp_path: Path):
    other = tmp_path / "main"
    (other / "ggo").mkdir(parents=True)
    (other / "conf").mkdir()
    (other / "ggo" / "train.py").write_text("")
    (other / "conf" / "config.yaml").write_text("")
    cmd, env, _ = way_command("baseline", CvRowOptions(baseline=str(other)), tmp_path)
    assert env["PYTHONPATH"] == str(other)
    assert not any(a.startswith(("train.threads", "hydra/launcher")) for a in cmd)
    with pytest.raises(BenchConfigError, match="no ggo checkout"):
        check_checkout(str(tmp_path / "nowhere"))


@pytest.mark.slow
def test_smallest_bench_run_writes_json_and_markdown_with_every_schema_key(tmp_path: Path):
    out = tmp_path / "results" / "bench.json"
    args = [
        "--resolutions", "64", "--gens", "unet", "--precisions", "float32,mixed_bfloat16", "--xla", "off",
        "--window-s", "0.2", "--windows", "3", "--warmup-steps", "1", "--base-filters", "4", "--disc-base-filters", "4",
        "--batch-size", "2", "--inference-files", "2", "--inference-size", "128", "--memory-resolution", "64",
        "--skip-overhead", "--arms-rounds", "2", "--out", str(out), "--workdir", str(tmp_path),
    ]  # fmt: skip
    env = {**os.environ, "GGO_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run(
        [sys.executable, "-m", "ggo.bench", *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "ggo img/s" in proc.stdout  # the table was printed
    assert "process arms train.jit_compile" in proc.stdout

    result = json.loads(out.read_text())
    assert set(TOP_KEYS) <= set(result)
    assert all(key in result["machine"] for key in MACHINE_KEYS)
    assert result["machine"]["logical_cores"] >= 1 and result["machine"]["memory_gb"] > 0

    rows = result["train"]
    assert [(r["resolution"], r["gen"], r["precision"], r["jit_compile"]) for r in rows] == [
        (64, "unet", "float32", False),
        (64, "unet", "mixed_bfloat16", False),
    ]
    for row in rows:
        assert all(key in row for key in ROW_KEYS), row
        assert "error" not in row, row["error"]
        assert row["disc"] == "patchgan70" and row["base_filters"] == 4 and row["batch_size"] == 2
        assert _positive(row["images_per_s"]) and _positive(row["reference_images_per_s"])
        assert _positive(row["ratio"]) and row["finite"]
        assert row["reference_precision"] == "float32" and row["default_settings"] and row["indicative"]
        assert row["steps_per_window"] >= 1 and len(row["window_s"]) == len(row["reference_window_s"]) == 3
        assert len(row["pair_cpu_ratios"]) == 3
        low, high = row["cpu_ratio_iqr"]
        assert low <= row["cpu_ratio"] <= high
        assert min(min(row["window_s"]), min(row["reference_window_s"])) >= 0.1  # calibrated to --window-s 0.2

    assert _positive(result["input_pipeline_images_per_s"])
    assert _positive(result["inference_images_per_s"])
    assert _positive(result["peak_rss_mb"])
    assert result["startup_s"] is None and result["multirun_overhead_s"] is None  # skipped, and said so
    assert "overhead" in result["skipped"]
    assert not result["errors"]
    assert set(result["targets"]) == set(TARGETS)
    for target in result["targets"].values():
        assert {"description", "threshold", "measured", "verdict", "pass"} <= set(target)
    default = result["targets"]["default_path_vs_reference"]
    assert default["verdict"] in ("holds", "misses", "inconclusive") and default["indicative"]
    assert result["targets"]["multirun_later_job_overhead"]["verdict"] is None
    assert result["cv_row"] is None and "cv_row" in result["skipped"]
    (xla,) = result["process_arms"]  # XLA off and on, each arm alone in its own processes
    assert xla["setting"] == "train.jit_compile" and [a["value"] for a in xla["arms"]] == ["false", "true"]
    assert [a["effective"]["jit_compile"] for a in xla["arms"]] == [False, True]
    assert all(len(a["rounds_images_per_s"]) == 2 and _positive(a["images_per_s"]) for a in xla["arms"])
    assert xla["arms"][0]["ratio_vs_first"] == 1.0 and _positive(xla["arms"][1]["ratio_vs_first"])

    markdown = (out.parent / "bench.md").read_text()
    assert markdown == to_markdown(result)
    assert "| 64 | unet | float32 | off | - |" in markdown
    assert "interquartile range" in markdown and "indicative" in markdown


def test_process_arms_alternate_their_order_and_report_each_arms_own_rate() -> None:
    from ggo.bench.arms import ArmsCase, measure_arms

    calls = []

    def timed(config, **timing):  # each arm's process, as its JSON line reports it
        calls.append(config["arm"])
        rate = {"false": 10.0, "true": 11.5}[config["arm"]] + 0.1 * len(calls)  # the machine drifts
        return {"images_per_s": rate, "images_per_cpu_s": rate / 2, "jit_compile": config["arm"] == "true"}

    case = ArmsCase.parse("train.jit_compile=false,true")
    got = measure_arms(case, {v: {"arm": v} for v in case.values}, rounds=4, timing={}, log=lambda _: None, timed=timed)
    assert calls == ["false", "true", "true", "false"] * 2  # A B, B A: a drift falls on both arms
    off, on = got["arms"]
    assert off["rounds_images_per_s"] == [10.1, 10.4, 10.5, 10.8] and off["images_per_s"] == 10.45
    assert on["rounds_images_per_s"] == [11.7, 11.8, 12.1, 12.2] and on["effective"]["jit_compile"] is True
    assert on["ratio_vs_first"] == round(statistics.median([11.7 / 10.1, 11.8 / 10.4, 12.1 / 10.5, 12.2 / 10.8]), 3)
    assert off["ratio_vs_first"] == 1.0 and on["ratio_iqr"][0] <= on["ratio_vs_first"] <= on["ratio_iqr"][1]
    assert on["images_per_cpu_s"] == round(statistics.median([11.7, 11.8, 12.1, 12.2]) / 2, 2)
    assert on["cpu_ratio_vs_first"] == on["ratio_vs_first"]  # the CPU rates here are the wall rates halved


def test_process_arms_take_only_a_process_wide_setting_with_two_values() -> None:
    from ggo.bench.arms import ArmsCase

    assert ArmsCase.parse("train.threads=1,2").values == ("1", "2")
    for bad in ("train.d_steps=1,2", "train.jit_compile=true", "jit"):
        with pytest.raises(BenchConfigError, match="process-wide setting"):
            ArmsCase.parse(bad)


@pytest.mark.slow
def test_data_scale_prepares_and_trains_each_size_and_reports_what_a_film_costs(tmp_path: Path) -> None:
    from ggo.bench.datascale import DataScaleOptions, measure_data_scale, table

    scale = measure_data_scale(DataScaleOptions(films=(24, 72), image_size=128, resolution=64), tmp_path, log=lambda _: None)
    small, large = scale["rows"]
    for row in (small, large):
        assert row["prepare_s"] > 0 and row["cores_used"] > 0 and row["cache_mb"] > 0
        assert row["prepare_peak_rss_mb"] >= row["prepare_main_peak_rss_mb"] > 0  # all processes >= the main one
        assert row["startup_s"] > 0 and len(row["epoch_s"]) == 2 and row["train_peak_rss_mb"] > 0
    assert large["cache_mb"] > small["cache_mb"]  # 3x the films: a bigger cache on disk
    assert scale["per_film"]["cache_mb"] > 0 and "peak_rss_ratio_largest_to_smallest" in scale["per_film"]
    assert not list(tmp_path.glob("films-*")) and not list(tmp_path.glob("cache-*"))  # the generated data is gone
    assert "prepare s" in table(scale) and table(scale, markdown=True).startswith("| films |")

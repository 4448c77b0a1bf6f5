"""``python -m ggo.data``: help, prepare, show and fetch, run as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2

TINY = [
    "data=synthetic", "preprocess=res128", "preprocess.resolution=32", "data.n_images=8",
    "data.n_patients=6", "data.image_size=40", "data.folds=2",
]  # fmt: skip


def _run(args: list[str], env_extra: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **env_extra}
    return subprocess.run(
        [sys.executable, "-m", "ggo.data", *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=300
    )


def test_help_lists_the_actions(tmp_path: Path) -> None:
    result = _run(["--help"], {}, tmp_path)
    assert result.returncode == 0
    for word in ("fetch", "prepare", "show", "data=synthetic", "GGO_DATA"):
        assert word in result.stdout


def test_prepare_then_show_on_synthetic_data_write_summary_and_png(tmp_path: Path) -> None:
    env = {"GGO_CACHE": str(tmp_path / "cache")}
    prepared = _run(["prepare", *TINY], env, tmp_path)
    assert prepared.returncode == 0, prepared.stderr
    assert "8 images, 6 patients" in prepared.stdout and "cache ready" in prepared.stdout

    out = tmp_path / "grid.png"
    shown = _run(["show", *TINY, f"out={out}", "tile=64"], env, tmp_path)
    assert shown.returncode == 0, shown.stderr
    grid = cv2.imread(str(out))
    assert grid is not None and grid.shape[1] == 3 * 64  # 8 tiles: 3 columns
    red = (grid[..., 2] > 200) & (grid[..., 1] < 80) & (grid[..., 0] < 80)
    assert red.any()  # GGO contours were drawn


def test_bad_override_exits_with_a_message(tmp_path: Path) -> None:
    result = _run(["prepare", "data=nosuchdata"], {"GGO_CACHE": str(tmp_path)}, tmp_path)
    assert result.returncode == 2 and "nosuchdata" in result.stderr


def test_fetch_failure_exits_nonzero_naming_ggo_data(tmp_path: Path) -> None:
    env = {"GGO_ROOT": str(tmp_path), "GGO_DATA": str(tmp_path / "none"), "GIT_TERMINAL_PROMPT": "0"}
    result = _run(["fetch", f"url=file://{tmp_path}/no-such-repo"], env, tmp_path)
    assert result.returncode != 0
    assert "GGO_DATA" in result.stderr and "could not clone" in result.stderr
    assert not (tmp_path / "data" / "covid-19-chest-xray-segmentations-dataset").exists()


def test_prepare_without_data_says_how_to_get_it(tmp_path: Path) -> None:
    env = {"GGO_ROOT": str(tmp_path), "GGO_DATA": str(tmp_path / "missing"), "GGO_CACHE": str(tmp_path)}
    result = _run(["prepare"], env, tmp_path)
    assert result.returncode == 1
    assert "python -m ggo.data fetch" in result.stderr and "GGO_DATA" in result.stderr


def test_fetch_is_a_no_op_when_ggo_data_already_holds_the_dataset(tmp_path: Path) -> None:
    root = tmp_path / "copy"
    root.mkdir()
    (root / "structure.csv").write_text("Filename\n")
    env = {"GGO_ROOT": str(tmp_path), "GGO_DATA": str(root), "GIT_TERMINAL_PROMPT": "0"}
    result = _run(["fetch", f"url=file://{tmp_path}/no-such-repo"], env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "nothing to fetch" in result.stdout


def test_fetch_hands_git_the_url_as_a_url_never_as_an_option(tmp_path: Path) -> None:
    env = {"GGO_ROOT": str(tmp_path), "GGO_DATA": str(tmp_path / "none"), "GIT_TERMINAL_PROMPT": "0"}
    pwned = tmp_path / "pwned"
    result = _run(["fetch", f"url='--upload-pack=touch {pwned}'"], env, tmp_path)
    assert result.returncode == 1 and "could not clone --upload-pack=" in result.stderr
    assert "repository '--upload-pack=" in result.stderr, "git took it for a repository"
    assert not pwned.exists()


def test_prepare_workers_flag_builds_with_that_many_processes_and_the_same_cache(tmp_path: Path) -> None:
    from ggo.data.synthetic import make_synthetic_folder

    folder = make_synthetic_folder(tmp_path / "folder", 40, 64, distinct=40, link=False)
    common = ["prepare", "data=folder", f"data.root={folder}", "preprocess.resolution=32"]
    two = _run([*common, "--workers", "2"], {"GGO_CACHE": str(tmp_path / "two")}, tmp_path)
    assert two.returncode == 0, two.stderr
    assert "ggo cache 32px (2 processes)" in two.stderr  # the progress bar says how many read the films
    one = _run([*common, "--workers", "1"], {"GGO_CACHE": str(tmp_path / "one")}, tmp_path)
    assert one.returncode == 0, one.stderr
    assert "processes)" not in one.stderr
    for name in ("images.npy", "masks.npy", "lungs.npy", "manifest.csv"):
        (a,), (b,) = (list((tmp_path / d).glob(f"*/{name}")) for d in ("one", "two"))
        assert a.read_bytes() == b.read_bytes(), name
    bad = _run([*common, "--workers", "-1"], {"GGO_CACHE": str(tmp_path / "bad")}, tmp_path)
    assert bad.returncode == 2 and "--workers: must be a whole number >= 0" in bad.stderr

"""``python -m ggo.predict`` with the session sweep's champion: masks, overlays, CSV, bad inputs, scoring."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from ggo.ship.predict import MAX_PIXELS, collect_inputs, load_image
from helpers import assert_outcomes_painted
from sweep_fixture import PRECISION, TinySweep, champion, subprocess_env, tiny_sweep  # noqa: F401 - fixtures


def png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG that declares ``width`` x ``height`` pixels in its header and holds no pixel data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grayscale
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))
    return path


def xray_like(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A gray image with a bright blob, the kind of input the tiny model was trained on."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:height, :width]
    blob = np.exp(-(((yy - height * 0.4) / (height * 0.2)) ** 2 + ((xx - width * 0.6) / (width * 0.2)) ** 2))
    return np.clip(60 + 150 * blob + rng.normal(0, 8, (height, width)), 0, 255).astype(np.uint8)


def make_inputs(root: Path) -> tuple[dict[str, tuple[int, int]], dict[str, str]]:
    """Good images (path -> (H, W)) under root/scans and bad inputs (path -> expected error words) under root/bad."""
    scans, bad = root / "scans", root / "bad"
    (scans / "sub").mkdir(parents=True)
    bad.mkdir()
    good = {}
    for rel, image in {
        "xray.png": xray_like(120, 90),
        "colour.jpg": cv2.cvtColor(xray_like(64, 80, 1), cv2.COLOR_GRAY2BGR),
        "film16.tif": xray_like(70, 50, 2).astype(np.uint16) * 257,
        "rgba.webp": cv2.cvtColor(xray_like(48, 48, 3), cv2.COLOR_GRAY2BGRA),
        "sub/deep.BMP": xray_like(33, 47, 4),
        "sub/xray.png": xray_like(40, 60, 5),  # same stem as scans/xray.png
    }.items():
        assert cv2.imwrite(str(scans / rel), image), rel
        good[str(scans / rel)] = image.shape[:2]
    (scans / "readme.txt").write_text("not an image: ignored when walking a folder")
    real = os.environ.get("GGO_DATA")
    if real and (Path(real) / "images").is_dir():
        first = sorted((Path(real) / "images").glob("*.png"))[0]
        shutil.copy(first, scans / "real_xray.png")
        good[str(scans / "real_xray.png")] = cv2.imread(str(first), cv2.IMREAD_UNCHANGED).shape[:2]

    (bad / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not really a PNG")
    noisy = np.random.default_rng(6).integers(0, 256, (120, 90), dtype=np.uint8)  # many bytes: the cut is in the pixels
    for name in ("cut.jpg", "cut.png"):  # a third of the file: OpenCV alone decodes the JPEG, two thirds grey
        data = cv2.imencode(Path(name).suffix, noisy)[1].tobytes()
        (bad / name).write_bytes(data[: len(data) // 3])
    (bad / "empty.jpg").write_bytes(b"")
    (bad / "notes.png").write_text("a text file with an image suffix")
    assert cv2.imwrite(str(bad / "dot.png"), np.zeros((1, 1), np.uint8))
    png_header_only(bad / "huge.png", 12_000, 9_000)  # 108 megapixels
    errors = {
        str(bad / "corrupt.png"): "corrupt",
        str(bad / "cut.jpg"): "truncated or corrupt JPEG",
        str(bad / "cut.png"): "truncated or corrupt PNG",
        str(bad / "empty.jpg"): "empty",
        str(bad / "notes.png"): "not an image",
        str(bad / "dot.png"): "too small",
        str(bad / "huge.png"): "megapixel",
        str(root / "missing.png"): "no such file",
    }
    return good, errors


def run_predict(*args: str, cwd: Path, uri: str) -> subprocess.CompletedProcess:
    env = subprocess_env(CUDA_VISIBLE_DEVICES="-1", MLFLOW_TRACKING_URI=uri)  # a CPU-only machine
    return subprocess.run(
        [sys.executable, "-m", "ggo.predict", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def warning_lines(stderr: str) -> list[str]:
    """Python warnings ("...: UserWarning: ...") and logged ones ("WARNING mlflow.pyfunc: ...") in ``stderr``,
    e.g. MLflow's advice to add type hints. TensorFlow's C++ lines about CUDA on a CPU-only machine
    ("WARNING: All log messages before absl::InitializeLog()...") are neither and are not counted."""
    return [line for line in stderr.splitlines() if re.search(r"\w+Warning: |\bWARNING [\w.]+: ", line)]


def read_rows(csv_path: Path) -> dict[str, dict[str, str]]:
    with open(csv_path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0])[:8] == ["file", "ggo_present", "ggo_probability", "ggo_fraction", "height", "width", "status", "error"]
    return {row["file"]: row for row in rows}


def film_rows(picture: np.ndarray, gray: np.ndarray, known: np.ndarray) -> int:
    """The row where the film starts in an overlay with bands above and below: the one offset at
    which every pixel outside ``known`` (the masks) shows the X-ray ``gray`` untouched."""
    h = gray.shape[0]
    tops = [t for t in range(picture.shape[0] - h + 1) if (picture[t : t + h][~known] == gray[~known][:, None]).all()]
    assert len(tops) == 1, f"the film is found once in the overlay, at {tops}"
    return tops[0]


def assert_overlays_show_tp_fp_fn(root: Path, rows: dict[str, dict[str, str]], scores: dict) -> None:
    """Each film's overlay shows TP / FP / FN in their colours where its true and predicted masks
    say, and its row carries the film's dice (their mean is the scored dice)."""
    from ggo.data import to_grayscale_uint8
    from ggo.ship.predict import truth_from_dataset

    truth = truth_from_dataset(root)
    seen, dices = set(), []
    for file, row in rows.items():
        true, pred = truth[Path(file).stem], cv2.imread(row["mask"], cv2.IMREAD_GRAYSCALE) > 0
        gray = to_grayscale_uint8(cv2.imread(file, cv2.IMREAD_UNCHANGED))
        picture = cv2.cvtColor(cv2.imread(row["overlay"]), cv2.COLOR_BGR2RGB)
        assert picture.shape[1] == gray.shape[1] and picture.shape[0] > gray.shape[0], "title and key bands around the film"
        top = film_rows(picture, gray, true | pred)
        assert (picture[:top].sum(axis=-1) < 150).any(), "the title band has text"
        assert_outcomes_painted(picture[top : top + gray.shape[0]], true, pred, gray)
        seen |= {name for name, m in {"TP": true & pred, "FP": pred & ~true, "FN": true & ~pred}.items() if m.any()}
        want = 2 * (true & pred).sum() / (true.sum() + pred.sum()) if true.any() or pred.any() else 1.0
        assert float(row["dice"]) == pytest.approx(want, abs=1e-6)
        dices.append(float(row["dice"]))
    assert seen, "some film has GGO or a prediction to draw"
    assert np.mean(dices) == pytest.approx(scores["metrics"]["dice"], abs=1e-4), "the per-film dice average to the scored dice"


@pytest.mark.slow
def test_predict_writes_a_mask_overlay_and_row_per_image_and_records_bad_inputs(
    tiny_sweep: TinySweep, champion: str, tmp_path: Path
) -> None:
    good, errors = make_inputs(tmp_path)
    out = tmp_path / "out"
    proc = run_predict(
        str(tmp_path / "scans"), str(tmp_path / "bad"), str(tmp_path / "missing.png"),
        "--out", str(out), cwd=tmp_path, uri=tiny_sweep.uri,
    )
    assert proc.returncode == 1, "some inputs failed, so the exit status is not 0\n" + proc.stdout + proc.stderr[-3000:]
    rows = read_rows(out / "predictions.csv")
    assert set(rows) == set(good) | set(errors), "one row per input, and only image files from folders"

    stems = set()
    for file, (height, width) in good.items():
        row = rows[file]
        assert row["status"] == "ok" and row["error"] == "", row
        assert (int(row["height"]), int(row["width"])) == (height, width)
        mask = cv2.imread(row["mask"], cv2.IMREAD_UNCHANGED)
        assert mask.shape == (height, width), f"{file}: mask at the original size"
        assert set(np.unique(mask)) <= {0, 255}
        assert float(row["ggo_fraction"]) == pytest.approx((mask > 0).mean(), abs=1e-6)
        over = cv2.imread(row["overlay"], cv2.IMREAD_UNCHANGED)
        assert over.shape == (height, width, 3)
        stems.add(Path(row["mask"]).name)
    assert {"xray_mask.png", "xray-2_mask.png"} <= stems, "same stems from two folders do not overwrite each other"

    for file, words in errors.items():
        row = rows[file]
        assert row["status"] == "error" and words in row["error"] and Path(file).name in row["error"], row
        assert Path(file).name in proc.stderr
    assert f"{len(good) + len(errors)} input(s): {len(good)} ok, {len(errors)} failed" in proc.stdout


@pytest.mark.slow
def test_predict_exits_zero_when_every_input_succeeds_and_scores_against_the_dataset(
    tiny_sweep: TinySweep, champion: str, tmp_path: Path
) -> None:
    from ggo.data import make_synthetic_dataset

    root = make_synthetic_dataset(tmp_path / "ds", n_images=4, n_patients=4, image_size=80, seed=3)
    out = tmp_path / "out"
    proc = run_predict(str(root / "images"), "--score", str(root), "--out", str(out), cwd=tmp_path, uri=tiny_sweep.uri)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    rows = read_rows(out / "predictions.csv")
    assert len(rows) == 4 and all(r["status"] == "ok" for r in rows.values())
    scores = json.loads((out / "scores.json").read_text())
    assert scores["n_scored"] == 4 and scores["unmatched"] == []
    assert set(scores["metrics"]) == {"dice", "dice_pooled", "iou", "precision", "recall", "specificity"}
    assert all(0.0 <= v <= 1.0 for v in scores["metrics"].values())
    assert "scored 4 image(s)" in proc.stdout
    assert_overlays_show_tp_fp_fn(root, rows, scores)
    warned = warning_lines(proc.stderr)
    assert not warned, "the normal path of ggo.ship.predict prints no third-party warnings:\n" + "\n".join(warned)


@pytest.mark.slow
def test_figure_draws_films_spread_over_the_dice_ranking_with_tp_fp_fn(
    tiny_sweep: TinySweep, champion: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ggo.data import iter_records, make_synthetic_dataset, to_grayscale_uint8
    from ggo.ship.predict import load_segmenter, model_settings
    from ggo.evaluation.viz import OUTCOME_RGB, film_dice

    root = make_synthetic_dataset(tmp_path / "ds", n_images=5, n_patients=5, image_size=80, seed=4)
    out = tmp_path / "docs" / "figure.png"
    args = ["--model", champion, "--tracking-uri", tiny_sweep.uri, "--data", str(root), "--split", "all", "--n", "3", "--size", "80"]
    proc = subprocess.run([sys.executable, "-m", "ggo", "figure", *args, "--out", str(out)], cwd=tmp_path,
                          env=subprocess_env(CUDA_VISIBLE_DEVICES="-1"), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    shown = re.findall(r"^(\S+): dice ([0-9.]+)$", proc.stdout, re.M)
    assert len(shown) == 3 and "3 of 5 all film(s)" in proc.stdout

    # The films the test predicts itself: the figure holds the best, the median and the worst, in that order.
    segmenter = load_segmenter(champion, tiny_sweep.uri)
    threshold = model_settings(segmenter).threshold
    films = {}
    for record in iter_records(root):
        pred = segmenter.probabilities([load_image(record.source)])[0] > threshold
        films[record.name] = (record, pred, film_dice(record.mask, pred))
    ranked = sorted(films, key=lambda n: (-films[n][2], n))
    assert [name for name, _ in shown] == [ranked[0], ranked[2], ranked[4]]
    assert all(float(d) == pytest.approx(films[n][2], abs=1e-3) for n, d in shown)

    picture = cv2.cvtColor(cv2.imread(str(out)), cv2.COLOR_BGR2RGB)
    assert picture.shape[1] == 3 * 80 + 2 * 6, "three 80 px films side by side"
    for colour in OUTCOME_RGB.values():
        assert (picture == np.array(colour, np.uint8)).all(axis=-1).sum() > 20, f"the key shows {colour}"
    for k, (name, _) in enumerate(shown):  # each film fitted into its 80 px cell, masks by nearest neighbour
        record, pred, _ = films[name]
        gray = to_grayscale_uint8(load_image(record.source))
        f = 80 / max(gray.shape)
        w, h = round(gray.shape[1] * f), round(gray.shape[0] * f)
        gray = cv2.resize(gray, (w, h), interpolation=cv2.INTER_AREA)
        true, pred = (cv2.resize(m.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) > 0 for m in (record.mask, pred))
        cell = picture[:, k * 86 + (80 - w) // 2 : k * 86 + (80 - w) // 2 + w]
        top = film_rows(cell, gray, true | pred)
        assert_outcomes_painted(cell[top : top + h], true, pred, gray)

    # An output OpenCV cannot write, and a model that is not there: exit 2, saying which.
    from ggo.ship.figure import main as figure_main

    assert figure_main([*args, "--out", str(tmp_path / "figure.txt")]) == 2
    assert "give a .jpg or .png path" in capsys.readouterr().err
    assert figure_main([*args[:1], "runs:/0123456789abcdef0123456789abcdef/model", *args[2:], "--out", str(out)]) == 2
    assert "0123456789abcdef0123456789abcdef" in capsys.readouterr().err


@pytest.mark.slow
def test_training_and_logging_the_model_print_no_third_party_warnings(tiny_sweep: TinySweep) -> None:
    warned = warning_lines(tiny_sweep.stderr)
    assert not warned, "the tiny sweep (train, log the model, summarise) printed warnings:\n" + "\n".join(warned)


@pytest.mark.slow
def test_a_generator_trained_in_mixed_bfloat16_predicts_in_float32_on_cpu(tiny_sweep: TinySweep, tmp_path: Path) -> None:
    from ggo.ship.predict import load_segmenter, predict_files

    run = tiny_sweep.children["unet"]
    assert run.data.tags["ggo.precision"] == PRECISION == "mixed_bfloat16"
    segmenter = load_segmenter(f"runs:/{run.info.run_id}/model", tiny_sweep.uri)
    for generator in segmenter.generators:
        assert generator.dtype_policy.name == "float32"
        assert {w.dtype for w in generator.weights} == {"float32"}
    assert cv2.imwrite(str(tmp_path / "scan.png"), xray_like(100, 130))
    (result,) = predict_files(segmenter, [tmp_path / "scan.png"], tmp_path / "out", keep_probabilities=True)
    assert result.status == "ok", result.error
    assert result.probability.dtype == np.float32 and result.probability.shape == (100, 130)
    assert np.isfinite(result.probability).all()


def test_a_huge_image_is_refused_from_its_header_before_decoding(tmp_path: Path) -> None:
    # No pixel data at all: decoding would fail differently, so the size came from the header.
    path = png_header_only(tmp_path / "huge.png", 20_000, 20_000)
    assert 20_000 * 20_000 > MAX_PIXELS
    with pytest.raises(ValueError, match=r"huge\.png: 20000 x 20000 pixels .* over the 100 megapixel limit"):
        load_image(path)


def test_folders_are_walked_for_image_files_and_missing_inputs_are_reported(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "empty").mkdir()
    for name in ("a/1.png", "a/b/2.JPG", "a/b/3.tiff", "a/notes.txt", "a/.hidden.png"):
        (tmp_path / name).write_bytes(b"x")
    found = collect_inputs([tmp_path / "a", tmp_path / "a" / "1.png", tmp_path / "empty", tmp_path / "nope.png"])
    assert [(p.relative_to(tmp_path).as_posix(), problem is None) for p, problem in found] == [
        ("a/1.png", True), ("a/b/2.JPG", True), ("a/b/3.tiff", True), ("empty", False), ("nope.png", False),
    ]  # fmt: skip
    assert "no images" in found[3][1] and "no such file" in found[4][1]


def test_scores_use_true_masks_matched_by_stem_and_skip_other_sizes(tmp_path: Path) -> None:
    from ggo.ship.predict import Prediction, score, truth_from_folder

    truth = np.zeros((10, 10), np.uint8)
    truth[:, :5] = 255  # left half is GGO
    assert cv2.imwrite(str(tmp_path / "a_mask.png"), truth) and cv2.imwrite(str(tmp_path / "b.png"), truth)
    half = np.where(np.arange(10)[None, :] < 5, 0.9, 0.1).repeat(10, axis=0).astype(np.float32)
    results = [
        Prediction(file="scans/a.png", probability=half),  # perfect
        Prediction(file="scans/b.png", probability=1 - half),  # exactly wrong
        Prediction(file="scans/c.png", probability=half),  # no true mask
        Prediction(file="scans/x.png", status="error", error="unreadable"),
    ]
    scores = score(results, truth_from_folder(tmp_path))
    assert scores["n_scored"] == 2 and scores["unmatched"] == ["scans/c.png"]
    assert scores["metrics"]["dice"] == pytest.approx(0.5)  # mean of 1 and 0
    assert scores["metrics"]["recall"] == pytest.approx(0.5)


def test_predict_without_a_model_says_how_to_get_one(tmp_path: Path) -> None:
    assert cv2.imwrite(str(tmp_path / "scan.png"), xray_like(20, 20))
    store = tmp_path / "none" / "mlflow.db"
    proc = run_predict(str(tmp_path / "scan.png"), "--tracking-uri", f"sqlite:///{store}", cwd=tmp_path, uri="")
    assert proc.returncode == 2
    assert "models:/ggo-segmenter@champion" in proc.stderr and "python -m ggo.train" in proc.stderr
    assert not store.parent.exists()


def test_pooled_scores_weigh_each_image_as_the_models_grid_does_and_dice_is_per_image() -> None:
    from ggo.ship.predict import Prediction, score

    small_truth = np.zeros((10, 10), np.uint8)
    small_truth[:, :5] = 1
    big_truth = np.zeros((20, 20), np.uint8)
    big_truth[:10, :10] = 1
    truth = {"small": small_truth, "big": big_truth}
    results = [
        Prediction(file="small.png", probability=np.full((10, 10), 0.9, np.float32)),  # TP 50, FP 50
        Prediction(file="big.png", probability=big_truth.astype(np.float32)),  # TP 100, perfect
    ]
    raw = score(results, truth)
    assert raw["metrics"]["precision"] == pytest.approx(150 / 200)  # every original pixel counts once
    grid = score(results, truth, resolution=10, fit="pad")
    # On a 10 px grid the big film shrinks to 10 x 10: its TP count is 25, not 100.
    assert grid["metrics"]["precision"] == pytest.approx(75 / 125)
    assert grid["metrics"]["recall"] == pytest.approx(1.0)
    assert raw["metrics"]["dice"] == grid["metrics"]["dice"] == pytest.approx((2 * 50 / 150 + 1.0) / 2)
    # Padding a 10 x 5 film to the 10 px grid adds 50 true negatives.
    wide = score([Prediction(file="w.png", probability=np.zeros((5, 10), np.float32))], {"w": np.zeros((5, 10))},
                 resolution=10, fit="pad")  # fmt: skip
    assert wide["metrics"]["specificity"] == pytest.approx(1.0) and "10 px grid" in wide["pooled_on"]


def test_split_selects_the_protocols_patients_and_rejects_unknown_splits(tmp_path: Path) -> None:
    from ggo.data import split_patients
    from ggo.ship.predict import main, split_members

    patients = {f"img{i}.png": f"p{i // 2}" for i in range(20)}  # two images per patient
    test = split_members(patients, "test")
    assert test == {n for n, s in split_patients(patients).items() if s == "test"} and test
    assert {patients[n] for n in test}.isdisjoint({patients[n] for n in split_members(patients, "fold0")})
    with pytest.raises(ValueError, match="valid: fold0, fold1"):
        split_members(patients, "validation")
    with pytest.raises(SystemExit):
        main([str(tmp_path), "--split", "test"])  # --split needs --score

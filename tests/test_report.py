"""The sweep report (ggo/sweeps/report, ``python -m ggo.report``) in a real browser, offline.

Slow tests render the reports of real sweeps in Debian's Chromium (the ``browser`` fixture of
tests/conftest.py, which tests/test_ui.py drives too) with every request routed: anything but the
page itself and ``data:`` URIs fails the test. They read the session's tiny sweep (tests/sweep_fixture.py), a private copy of its store with a
failed child added, and a real two-fold cross-validation trained here. Screenshots go to
``test-artifacts/report/``. Fast tests pin the command line's errors, the warning that replaces
a failed report, and the reconstructed command.
"""

from __future__ import annotations

import re
import subprocess
import sys
import traceback
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Iterator

import pytest

from helpers import tiny_overrides
from sweep_fixture import TinySweep, champion, copy_store, subprocess_env, tiny_sweep  # noqa: F401 - fixtures

SHOTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "report"
INTERVAL = re.compile(r"^\[[+-]?\d\.\d{3}, [+-]?\d\.\d{3}\]$")


def report_cli(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ggo.report", *args], cwd=cwd, env=subprocess_env(**env), capture_output=True, text=True, timeout=600
    )  # fmt: skip


class Offline:
    """A report opened from disk with every request routed; ``requests`` lists what it asked for
    besides itself and ``data:`` URIs (it must stay empty)."""

    def __init__(self, browser: Any, path: Path, shot: str) -> None:
        self.page = browser.new_page(viewport={"width": 1280, "height": 900})
        self.url = path.resolve().as_uri()
        self.requests: list[str] = []
        self.page.route("**/*", self._route)
        self.page.on("request", lambda r: None if r.url.startswith("data:") or r.url == self.url else self.requests.append(r.url))
        self.page.goto(self.url)
        self.page.wait_for_load_state("load")
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SHOTS / shot), full_page=True)

    def _route(self, route: Any) -> None:
        if route.request.url == self.url or route.request.url.startswith("data:"):
            route.continue_()
        else:
            route.abort()

    def images(self) -> list[dict[str, Any]]:
        return self.page.evaluate(
            "() => [...document.images].map(i => ({alt: i.alt, src: i.getAttribute('src').slice(0, 30),"
            " width: i.naturalWidth, complete: i.complete}))"
        )

    def table(self, css: str) -> list[list[str]]:
        return self.page.evaluate(
            f"() => [...document.querySelectorAll('table.{css} tbody tr')].map(r => [...r.cells].map(c => c.textContent.trim()))"
        )

    def section_text(self, section: str) -> str:
        return self.page.locator(f"section#{section}").inner_text()

    def assert_self_contained(self, at_least: int) -> list[dict[str, Any]]:
        images = self.images()
        assert self.requests == [], f"the report loaded {self.requests}"
        assert len(images) >= at_least, images
        for image in images:
            assert image["src"].startswith(("data:image/svg+xml;base64,", "data:image/png;base64,")), image
            assert image["complete"] and image["width"] > 0, f"picture {image['alt']!r} did not decode"
        return images


@pytest.fixture()
def offline(browser: Any) -> Iterator[Any]:
    opened: list[Offline] = []

    def open_report(path: Path, shot: str) -> Offline:
        opened.append(Offline(browser, path, shot))
        return opened[-1]

    yield open_report
    for report in opened:
        report.page.close()


def summary_rows(sweep_uri: str, parent_run_id: str) -> dict[str, dict[str, str]]:
    """The parent's summary.csv (written by ggo.sweeps.summary, not by the report) by run name."""
    import csv
    import io

    import mlflow

    run = mlflow.MlflowClient(sweep_uri).get_run(parent_run_id)
    text = mlflow.artifacts.load_text(f"{run.info.artifact_uri}/summary.csv")
    return {row["run"]: row for row in csv.DictReader(io.StringIO(text))}


# --- a sweep --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_sweep_logs_its_report_and_prints_its_path_beside_the_ui_link(tiny_sweep: TinySweep) -> None:
    from ggo.tracking.ui import report_location

    lines = tiny_sweep.stdout.splitlines()
    link = next(i for i, line in enumerate(lines) if line.startswith("[ggo] then open http://"))
    assert lines[link + 1].startswith("[ggo] the sweep's report: "), lines[link:]
    path = Path(lines[link + 1].split(": ", 1)[1])
    assert path == Path(report_location(tiny_sweep.uri, tiny_sweep.parent_run_id))
    assert path.is_file() and path.read_text().startswith("<!DOCTYPE html>")
    ui = lines[link + 2]
    assert f"/runs/{tiny_sweep.parent_run_id}/artifacts/report.html?workflowType=machine_learning" in ui


@pytest.mark.slow
def test_the_report_of_a_sweep_shows_the_ranking_intervals_and_pictures_offline(
    tiny_sweep: TinySweep, offline: Any, tmp_path: Path
) -> None:
    out = tmp_path / "mailed" / "report.html"
    proc = report_cli([tiny_sweep.parent_run_id, "--tracking-uri", tiny_sweep.uri, "--out", str(out)], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = offline(out, "01-sweep.png")
    images = report.assert_self_contained(at_least=4)
    alts = {i["alt"] for i in images}
    assert {"forest plot of the ranking", "per-patient paired dice, top against runner-up",
            "best, median and worst films of the top run", "val/dice curves of every run"} <= alts  # fmt: skip

    # The ranking: best first, each with its interval, the runner-up's paired difference and
    # verdict, the same the sweep's summary.csv computed.
    summary = summary_rows(tiny_sweep.uri, tiny_sweep.parent_run_id)
    best, worst = tiny_sweep.best_child(), tiny_sweep.worst_child()
    ranking = report.table("ranking")
    assert [row[1] for row in ranking] == [best.info.run_name, worst.info.run_name]
    for row in ranking:
        assert INTERVAL.match(row[4]), row
        assert row[4] == summary[row[1]]["val/dice 95% CI"]
        assert float(row[2]) == pytest.approx(float(summary[row[1]]["val/dice"]), abs=5e-4)
    assert ranking[0][7] == "top"
    expected = summary[worst.info.run_name]["vs top (paired 95% CI)"]  # "noise: -0.014 [-0.025, +0.003]"
    verdict = "noise" if expected.startswith("noise") else "real"
    assert ranking[1][7] == verdict and f"{ranking[1][5]} {ranking[1][6]}" in expected
    # What differs, status and wall time of each run; the command that reproduces it.
    runs = report.section_text("runs")
    assert "What differs: gen.name" in runs and runs.count("FINISHED") == 2
    assert "python -m ggo.train -m gen=unet,attention_unet" in report.section_text("reproduce")


@pytest.mark.slow
def test_champion_reports_the_sweep_its_model_came_from(tiny_sweep: TinySweep, champion: str, tmp_path: Path) -> None:  # noqa: F811
    proc = report_cli(["champion", "--tracking-uri", tiny_sweep.uri, "--out", "champion.html"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"report of run {tiny_sweep.parent_run_id}" in proc.stdout
    assert "Sweep report: gen=unet,attention_unet" in (tmp_path / "champion.html").read_text()


@pytest.mark.slow
def test_a_failed_child_is_listed_with_its_error_and_the_rest_still_ranked(tiny_sweep: TinySweep, offline: Any, tmp_path: Path) -> None:
    from ggo import tracking
    from ggo.sweeps.report import render

    uri = copy_store(tiny_sweep, tmp_path / "store")
    failed = tracking.MlflowTracker(uri=uri, experiment="ggo", run_name="gen=unet gen.depth=12", parent_run_id=tiny_sweep.parent_run_id)
    failed.log_params({**tiny_sweep.children["unet"].data.params, "gen.depth": "12"})  # a job logs its params, then validates
    try:
        raise ValueError("gen.depth=12: 12 levels do not fit 64 px")
    except ValueError as exc:
        tracking.record_failure(failed, exc, traceback.format_exc(), "FAILED")
    out = tmp_path / "failed.html"
    out.write_text(render(uri, tiny_sweep.parent_run_id))
    report = offline(out, "02-failed-child.png")
    report.assert_self_contained(at_least=4)
    assert len(report.table("ranking")) == 2, "the failed run is not ranked"
    runs = {row[1]: row for row in report.table("runs")}
    assert runs["gen=unet gen.depth=12"][2] == "FAILED"
    assert "What differs: gen.depth, gen.name." in report.section_text("runs")
    errors = report.table("errors")
    assert errors == [["gen=unet gen.depth=12", "FAILED", "ValueError: gen.depth=12: 12 levels do not fit 64 px"]]
    assert "1 failed, 2 finished" in report.page.locator("dl.facts").inner_text()


# --- a cross-validation -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cv_sweep(tmp_path_factory: pytest.TempPathFactory, session_cache: Path) -> SimpleNamespace:
    """A real two-fold cross-validation (tiny, with GGO-free films) whose parent logged its report."""
    import mlflow

    root = tmp_path_factory.mktemp("cv-report")
    uri = f"sqlite:///{root / 'mlruns' / 'mlflow.db'}"
    args = [sys.executable, "-m", "ggo.train", "-m", "data.fold=0,1", "data.n_ggo_free=6", *tiny_overrides(root, uri)]
    proc = subprocess.run(args, cwd=root, env=subprocess_env(GGO_CACHE=str(session_cache)), capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    client = mlflow.MlflowClient(uri)
    exp = client.get_experiment_by_name("ggo")
    parent = next(r for r in client.search_runs([exp.experiment_id]) if r.data.tags.get("ggo.role") == "parent")
    return SimpleNamespace(root=root, uri=uri, parent=parent, stdout=proc.stdout)


@pytest.mark.slow
def test_the_report_of_a_cross_validation_parent_shows_folds_out_of_fold_ranking_and_the_floor(
    cv_sweep: SimpleNamespace, offline: Any
) -> None:
    import mlflow

    assert "[ggo] the sweep's report: " in cv_sweep.stdout
    logged = f"{cv_sweep.parent.info.artifact_uri}/report.html"
    path = Path(mlflow.artifacts.download_artifacts(logged, dst_path=str(cv_sweep.root / "dl")))
    report = offline(path, "03-cross-validation.png")
    alts = {i["alt"] for i in report.assert_self_contained(at_least=6)}
    assert {"per-fold bars", "test dice of the fold ensemble, the floor and the reference", "GGO-free area",
            "best, median and worst films of the top run"} <= alts  # fmt: skip
    assert report.page.locator("h1").inner_text().startswith("Cross-validation report")

    # Out of fold: the configuration, then the lungs-as-GGO floor on the same films, paired.
    ranking = report.table("ranking")
    assert [row[1] for row in ranking] == ["this configuration (2 folds)", "lungs as GGO (floor)"]
    assert float(ranking[0][2]) == pytest.approx(cv_sweep.parent.data.metrics["oof/dice"], abs=5e-4)
    assert INTERVAL.match(ranking[0][4]) and INTERVAL.match(ranking[1][4]) and INTERVAL.match(ranking[1][6])
    assert ranking[1][7] in ("real", "noise")
    # The held-out test: the fold ensemble's dice as the parent logged it, beside the floor's.
    cv = report.section_text("cv")
    assert f"{cv_sweep.parent.data.metrics['test/dice']:.3f}" in cv and "lungs as GGO (floor)" in cv
    assert "0.501" in cv
    assert "Fold ensemble minus the floor on the" in cv


# --- fast: errors, warnings, the command ----------------------------------------------------------


def test_the_command_refuses_a_run_it_cannot_report_and_says_what_to_pass(
    tracking_uri: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from ggo import tracking
    from ggo.sweeps.report.cli import main

    lone = tracking.create_run(tracking_uri, "ggo", run_name="one run", tags={})
    out = ["--tracking-uri", tracking_uri, "--out", str(tmp_path / "r.html")]
    assert main(["no-such-run", *out]) == 2
    assert "no MLflow run 'no-such-run'" in capsys.readouterr().err
    assert main([lone, *out]) == 2
    assert f"run {lone} (one run) has no child runs: pass the parent run id the sweep printed" in capsys.readouterr().err
    assert main(["champion", *out]) == 2
    assert "no 'ggo-segmenter@champion' in the registry" in capsys.readouterr().err
    assert not (tmp_path / "r.html").exists()


def test_a_report_that_cannot_be_written_only_warns(tracking_uri: str, capsys: pytest.CaptureFixture) -> None:
    from ggo import tracking
    from ggo.sweeps.summary import write_report

    lone = tracking.create_run(tracking_uri, "ggo", run_name="sweep nothing", tags={})
    write_report(tracking_uri, lone)  # no children: no report, and no exception
    out = capsys.readouterr().out
    assert "[ggo] warning: the sweep's report.html was not written" in out and f"python -m ggo.report {lone} --log" in out


def test_the_command_that_reproduces_a_sweep_keeps_values_with_spaces_whole() -> None:
    from ggo.sweeps.report.collect import sweep_command

    tags = {"ggo.overrides": "gen=unet,attention_unet +hydra.sweeper.params={gen.base_filters: [4, 8]} train.epochs=2"}
    command, exact = sweep_command(tags)
    assert not exact
    assert command == "python -m ggo.train -m gen=unet,attention_unet '+hydra.sweeper.params={gen.base_filters: [4, 8]}' train.epochs=2"

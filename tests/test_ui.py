"""The MLflow UI in a real browser over the session sweep: runs listed, val/dice charted, overlays
shown, every printed link in the Model training view, the sweep's report.html shown inline.

Drives Debian's ``/usr/bin/chromium`` (``apt-get install chromium``) headless with Playwright for
Python (``pip install playwright``; its browser download is never used). Without either, the test
is skipped with the reason, except in CI (``CI`` set), where it fails. Screenshots go to
``test-artifacts/ui/`` under the project root.

Only hash routes work in MLflow 3's UI; ``?workflowType=machine_learning`` on any page (a run's
too) opens the Model training view instead of the GenAI one.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

from sweep_fixture import (  # noqa: F401 - fixture
    TinySweep,
    free_port,
    stop_process_group,
    subprocess_env,
    tiny_sweep,
    wait_for_http,
)

pytestmark = pytest.mark.slow

SHOTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "ui"
WAIT_MS = 30_000


@pytest.fixture(scope="module")
def ui(tiny_sweep: TinySweep, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``mlflow server`` (the UI) over the sweep's store on a free 127.0.0.1 port; its base URL."""
    port = free_port()
    log = tmp_path_factory.mktemp("ui") / "server.log"
    with open(log, "w") as handle:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", tiny_sweep.uri,
             "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
            env=subprocess_env(), stdout=handle, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        wait_for_http(f"http://127.0.0.1:{port}/health", proc, timeout=120, log=log)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process_group(proc)


@pytest.fixture()
def page(browser: Any) -> Iterator[Any]:
    page = browser.new_page(viewport={"width": 1600, "height": 1000})
    page.set_default_timeout(WAIT_MS)
    try:
        yield page
    finally:
        page.close()


def shoot(page: Any, name: str) -> Path:
    """Close the assistant side panel if it is open, then save a screenshot."""
    close = page.get_by_role("button", name="Close", exact=True)
    if close.count() and close.first.is_visible():
        close.first.click()
        page.wait_for_timeout(500)
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / name
    page.screenshot(path=str(path))
    return path


def test_runs_page_lists_the_sweep_children_by_name(page: Any, ui: str, tiny_sweep: TinySweep) -> None:
    page.goto(f"{ui}/#/experiments/{tiny_sweep.experiment_id}/runs?workflowType=machine_learning")
    parent_row = page.locator("[role=row]", has_text="sweep ")
    parent_row.first.wait_for()
    if page.get_by_text("gen=unet", exact=True).count() == 0:
        parent_row.first.locator("button").first.click()  # expand the sweep's child runs
    for name in tiny_sweep.children:
        page.get_by_text(f"gen={name}", exact=True).first.wait_for()
    assert page.get_by_text("3 matching runs").count() == 1
    shoot(page, "01-runs.png")


def test_run_page_charts_val_dice(page: Any, ui: str, tiny_sweep: TinySweep) -> None:
    run = tiny_sweep.children["unet"]
    page.goto(f"{ui}/#/experiments/{tiny_sweep.experiment_id}/runs/{run.info.run_id}/model-metrics")
    page.get_by_placeholder("Search metric charts").fill("val/dice")
    legend = page.get_by_text("gen=unet (val/dice)", exact=True)
    legend.first.wait_for()
    chart = page.locator(".js-plotly-plot").first
    chart.wait_for()
    # Drawn: the plot has one line (two epochs + the best checkpoint's re-evaluation) with points.
    page.wait_for_function(
        "() => [...document.querySelectorAll('.js-plotly-plot .scatterlayer path.js-line')].some(p => p.getAttribute('d'))"
    )
    assert chart.bounding_box()["width"] > 100
    shoot(page, "02-val-dice-chart.png")


def test_run_artifacts_show_the_val_overlay_images(page: Any, ui: str, tiny_sweep: TinySweep) -> None:
    run = tiny_sweep.children["unet"]
    page.goto(f"{ui}/#/experiments/{tiny_sweep.experiment_id}/runs/{run.info.run_id}/artifacts")
    page.get_by_text("images", exact=True).first.click()
    overlays = page.get_by_text("val_overlays+step+").filter(has_text=".png")
    overlays.first.wait_for()
    assert overlays.count() >= 2, "one overlay grid per epoch"
    overlays.filter(has_text="step+2").first.click()  # the last epoch's grid
    # Clicking a long file name scrolls the tree sideways; scroll back so the names show.
    page.evaluate("() => document.querySelectorAll('*').forEach(e => { if (e.scrollLeft) e.scrollLeft = 0; })")
    # The preview is an <img> decoded by the browser: a real PNG with pixels, not a broken link.
    page.wait_for_function(
        "() => [...document.querySelectorAll('img[src^=\"blob:\"]')].some(i => i.complete && i.naturalWidth > 100)"
    )
    shoot(page, "03-val-overlays.png")


def test_the_printed_sweep_link_opens_its_runs_ranked_by_the_objective(page: Any, ui: str, tiny_sweep: TinySweep) -> None:
    # The link the sweep printed, on this test's server instead of the default port.
    printed = [line for line in tiny_sweep.stdout.splitlines() if "then open http://127.0.0.1:5000/#/" in line]
    assert printed, f"the sweep printed no UI link:\n{tiny_sweep.stdout[-2000:]}"
    link = printed[-1].split("then open ", 1)[1].strip()
    assert "workflowType=machine_learning" in link and "orderByKey=" in link
    page.goto(ui + link[len("http://127.0.0.1:5000"):])
    best, worst = tiny_sweep.best_child(), tiny_sweep.worst_child()
    page.get_by_text(best.info.run_name, exact=True).first.wait_for()
    # Only the sweep's children (the filter), the training view (not the GenAI overview) ...
    assert page.get_by_text(f"{len(tiny_sweep.children)} matching runs").count() == 1
    assert page.get_by_text("sweep ", exact=False).filter(has_text="gen=").count() == 0
    # ... ranked by val/dice, best first.
    page.get_by_text(worst.info.run_name, exact=True).first.wait_for()
    shoot(page, "04-sweep-link.png")
    top = page.get_by_text(best.info.run_name, exact=True).first.bounding_box()["y"]
    low = page.get_by_text(worst.info.run_name, exact=True).first.bounding_box()["y"]
    assert top < low, "the best run is listed first"


def test_a_printed_run_link_opens_the_run_in_the_model_training_view(page: Any, ui: str, tiny_sweep: TinySweep) -> None:
    from ggo.tracking.ui import ui_page

    run = tiny_sweep.children["unet"]
    link = ui_page(tiny_sweep.uri, run.info.run_id)
    page.goto(ui + link)
    page.get_by_text(run.info.run_id, exact=True).first.wait_for()
    # The Model training sidebar (Runs, Models, Model registry), not the GenAI one (Overview, Training runs, Prompts).
    sidebar = page.locator("nav").first
    sidebar.get_by_text("Model registry", exact=True).wait_for()
    assert sidebar.get_by_text("Training runs", exact=True).count() == 0
    shoot(page, "05-run-link.png")


def test_the_sweep_report_shows_inline_from_the_link_printed_beside_its_path(page: Any, ui: str, tiny_sweep: TinySweep) -> None:
    printed = [line for line in tiny_sweep.stdout.splitlines() if line.startswith("[ggo]   in the UI: http://127.0.0.1:5000/#/")]
    assert printed, f"the sweep printed no link to its report:\n{tiny_sweep.stdout[-2000:]}"
    page.goto(ui + printed[-1].split("in the UI: http://127.0.0.1:5000", 1)[1])
    report = page.frame_locator("iframe").first
    report.locator("h1").wait_for()
    assert report.locator("h1").inner_text() == "Sweep report: gen=unet,attention_unet"
    page.locator("nav").first.get_by_text("Model registry", exact=True).wait_for()
    assert report.locator("img").count() >= 4
    # The preview is a sandboxed blob: frame (not scriptable from the page): wait inside it.
    frame = next(f for f in page.frames if f.url.startswith("blob:"))
    frame.wait_for_function("() => [...document.images].every(i => i.complete && i.naturalWidth > 0)")
    shoot(page, "06-report-in-ui.png")

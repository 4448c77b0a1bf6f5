"""Shared fixtures: an isolated cache and MLflow store per test session, the real config composed."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# First, before any test module loads TensorFlow: some tests call torchxrayvision in this process, and
# torchvision's native ops segfault when loaded after TensorFlow (see ggo/data/patients.py).
import torchvision  # noqa: F401

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MPLBACKEND", "Agg")
# The test servers (`mlflow server` for the UI and scale-out tests) need no GenAI job runner: it
# starts a process pool of its own and costs CPU the tests share.
os.environ.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")

#: Fixtures of one shared store (tests/sweep_fixture.py): every test using them runs on one
#: pytest-xdist worker, so the session trains the tiny sweep once however many workers run.
SHARED_STORE_FIXTURES = {"tiny_sweep", "champion"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under ``-n N --dist loadgroup``, keep the tests of the shared tiny sweep on one worker."""
    for item in items:
        if SHARED_STORE_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.xdist_group("tiny_sweep"))

@pytest.fixture(autouse=True)
def _float32_between_tests() -> Iterator[None]:
    """Each test starts with Keras' float32 policy. A run in this process sets the global dtype
    policy (``train.precision=auto`` is ``mixed_bfloat16`` on a CPU with native bfloat16), and a
    later test's freshly built model would otherwise compute in bfloat16."""
    yield
    import sys

    if "keras" in sys.modules:
        sys.modules["keras"].mixed_precision.set_global_policy("float32")


@pytest.fixture(scope="session")
def session_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache dir for the whole session, so tests that prepare the same data share it."""
    return tmp_path_factory.mktemp("ggo-cache")


@pytest.fixture(autouse=True)
def _isolated_cache(session_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never write into the developer's data/cache from a test."""
    monkeypatch.setenv("GGO_CACHE", str(session_cache))


@pytest.fixture(scope="session")
def empty_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One empty SQLite MLflow store, created and migrated by MLflow once per test session."""
    from ggo import tracking

    path = tmp_path_factory.mktemp("empty-store") / "mlflow.db"
    with contextlib.chdir(path.parent):  # MLflow roots the Default experiment's artifacts in the cwd
        tracking.ensure_store(f"sqlite:///{path}")
    return path


@pytest.fixture()
def tracking_uri(tmp_path: Path, empty_store: Path) -> str:
    """A fresh SQLite MLflow store for one test: a copy of :func:`empty_store` (MLflow's schema
    migrations take ~3 s per new store). A test of creating a store names its own path instead."""
    path = tmp_path / "mlruns" / "mlflow.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(empty_store, path)
    return f"sqlite:///{path}"


CHROMIUM = Path("/usr/bin/chromium")
# Flags that work headless as root in a container (Playwright adds --headless and its own profile dir).
CHROMIUM_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--run-all-compositor-stages-before-draw",
]  # fmt: skip


def missing(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (required in CI)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Headless Debian chromium under Playwright (session-scoped so a missing one skips before any
    training). Here, not in a test module, so that every module shares one: Playwright's sync API
    runs once per thread."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("Playwright for Python is not installed: pip install playwright (never `playwright install`)")
    if not CHROMIUM.exists():
        missing(f"{CHROMIUM} not found: apt-get install -y chromium")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS)
        try:
            yield browser
        finally:
            browser.close()

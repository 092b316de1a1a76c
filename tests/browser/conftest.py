"""Real-browser tests: Debian's Chromium driven by Playwright, one browser per module.

The browser is the system's ``/usr/bin/chromium`` (``apt-get install chromium``); Playwright's
own browser download (``playwright install``) is never used. Without it these tests are
skipped locally and fail in CI (.ci/run installs it). Each test gets a fresh page whose
requests are recorded (``page_requests``) and whose full-page screenshot is saved under
``test-artifacts/screenshots/`` (git-ignored), passed or failed.

The config API comes from the e2e suite's session server (``project``); JupyterLab is
started here the way ``make lab`` starts it (the settings in ``jupyter-config/``), on a
copy of ``notebooks/`` in a temporary folder, so nothing it writes reaches the checkout.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, Page, Request, sync_playwright

from lib.api_server import free_port, wait_until_ready
from lib.settings import PROJECT_ROOT, get_settings
from tests.helpers import project_env
from tests.project import Project

__all__ = ["CHROMIUM", "JupyterLab", "Project", "RequestLog"]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",  # as root in a container
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = PROJECT_ROOT / "test-artifacts" / "screenshots"
LAB_CONFIG = PROJECT_ROOT / "jupyter-config"  # the Makefile's LAB_CONFIG (make lab)
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


@dataclass
class RequestLog:
    """What a page asked for: every request, and those the browser itself blocked (the
    page's Content-Security-Policy), which never reach the network."""

    urls: list[str] = field(default_factory=list)
    blocked: set[str] = field(default_factory=set)

    def record(self, page: Page) -> None:
        page.on("request", lambda req: self.urls.append(req.url))
        page.on("requestfailed", self._failed)

    def _failed(self, request: Request) -> None:
        if request.failure in ("csp", "net::ERR_BLOCKED_BY_CSP"):  # Chromium's reason
            self.blocked.add(request.url)

    def off_loopback(self) -> list[str]:
        """The requests that left (or would have left) this machine."""
        return [
            url
            for url in self.urls
            if urlsplit(url).scheme in ("http", "https", "ws", "wss")
            and urlsplit(url).hostname not in LOOPBACK
            and url not in self.blocked
        ]


@pytest.fixture(scope="session", autouse=True)
def chromium_installed() -> None:
    """Skip (locally) or fail (in CI) before any server starts when Chromium is missing."""
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: install it with `apt-get install -y chromium`"
        if get_settings().ci:
            pytest.fail(f"CI is set but {message} (.ci/run installs it)")
        pytest.skip(f"browser tests skipped: {message}")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """A headless Chromium per test module (the system's, never a downloaded one).

    Per module, not per session: Playwright's sync API keeps an asyncio event loop running
    in the main thread while it is started, and later tests that call ``asyncio.run`` (the
    API race tests) would then fail with "cannot be called from a running event loop".
    """
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page_requests() -> RequestLog:
    """Every request the test's page made, in order."""
    return RequestLog()


@pytest.fixture
def page_errors() -> list[str]:
    """The page's uncaught JavaScript exceptions and console errors, in order."""
    return []


@pytest.fixture
def page(
    browser: Browser,
    page_requests: RequestLog,
    page_errors: list[str],
    request: pytest.FixtureRequest,
) -> Iterator[Page]:
    """A new page in a fresh context; its full-page screenshot is saved after the test."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(20_000)
    new_page = context.new_page()
    page_requests.record(new_page)
    new_page.on("pageerror", lambda err: page_errors.append(f"uncaught: {err}"))
    new_page.on(
        "console", lambda msg: page_errors.append(msg.text) if msg.type == "error" else None
    )
    yield new_page
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^\w.-]+", "_", request.node.name)
    try:
        new_page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
    finally:
        context.close()


@dataclass(frozen=True)
class JupyterLab:
    """A running JupyterLab: its base URL, token, the folder it serves, its DATA_DIR."""

    url: str
    token: str
    root: Path
    data_dir: Path
    output_dir: Path

    def open_url(self, path: str) -> str:
        return f"{self.url}/{path.lstrip('/')}?token={self.token}"


@pytest.fixture(scope="module")
def jupyter_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterLab]:
    """``jupyter lab`` as ``make lab`` runs it (jupyter-config/ on the config path), on a copy
    of notebooks/ with DATA_DIR/MODEL_DIR/OUTPUT_DIR in a temporary folder, a free loopback
    port and a token. Jupyter's runtime files, settings and workspaces stay in that folder
    too. Stopped by pid at the end."""
    base = tmp_path_factory.mktemp("jupyterlab")
    root = base / "project"
    (root / "notebooks").mkdir(parents=True)
    for notebook in (PROJECT_ROOT / "notebooks").glob("*.ipynb"):  # not a running kernel's files
        shutil.copy2(notebook, root / "notebooks")
    port, token = free_port(), secrets.token_hex(16)
    folders = project_env(base / "files")  # DATA_DIR, MODEL_DIR, OUTPUT_DIR
    env = {
        **os.environ,
        **folders,
        "JUPYTER_CONFIG_PATH": str(LAB_CONFIG),
        "JUPYTER_RUNTIME_DIR": str(base / "runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(base / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(base / "workspaces"),
    }
    command = [
        str(Path(sys.executable).parent / "jupyter"),
        "lab",
        f"--ServerApp.root_dir={root}",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
    ]
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            return httpx.get(f"{url}/api/status", params={"token": token}).status_code == 200
        except httpx.HTTPError:
            return False

    log_path = base / "jupyterlab.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command, cwd=root, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log
        )
        try:
            state = wait_until_ready(process, ready, timeout=60)
            if state != "ready":
                pytest.fail(f"JupyterLab did not start ({state}):\n{log_path.read_text()[-3000:]}")
            yield JupyterLab(
                url, token, root, Path(folders["DATA_DIR"]), Path(folders["OUTPUT_DIR"])
            )
        finally:
            process.send_signal(signal.SIGTERM)  # a clean stop: its kernels are shut down
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

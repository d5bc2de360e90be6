"""The quickstart as users meet it: JupyterLab in headless Chromium runs every cell of
00_quickstart.ipynb; no output is an error and every figure's image decodes in the browser.

Papermill (test_notebooks.py) proves the code runs; only a browser shows that JupyterLab renders it.
Needs Debian's chromium and chromium-driver (`make browser`) and the `browser` extra; without them the
test skips, except in CI (CI=true), where a missing piece fails it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import nbformat
import papermill
import pytest

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = "00_quickstart.ipynb"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
JUPYTER_LAB = Path(sys.executable).parent / "jupyter-lab"
# Fewer documents than the tour's default, injected as `make demo -p limit` would: the same code paths in
# minutes on 2 CPU cores instead of tens. The README's screenshot (LSI_SCREENSHOT names its path) shows the
# tour as users run it, with its defaults.
SCREENSHOT = os.environ.get("LSI_SCREENSHOT")
PARAMETERS = {} if SCREENSHOT else {"limit": 4}
RUN_TIMEOUT_S = (60 if SCREENSHOT else 15) * 60

# The open notebook's panel, found by path: `window.jupyterapp` is exposed by --LabApp.expose_app_in_browser.
_PANEL_JS = """
const panel = [...(window.jupyterapp?.shell.widgets('main') ?? [])].find(
    (w) => w.context?.path === arguments[0] && w.sessionContext && w.content?.widgets);
"""
_STATE_JS = (
    _PANEL_JS
    + """
if (!panel || !panel.context.isReady) return null;
const code = panel.content.widgets.filter(
    (c) => c.model.type === 'code' && c.model.sharedModel.getSource().trim() !== '');
return {
    kernel: panel.sessionContext.kernelDisplayStatus,
    unexecuted: code.filter((c) => c.model.executionCount === null).length,
    run: window.lsiRun ?? null,
};
"""
)
# Clear any committed outputs (stale execution counts would pass for executed), then Run > Run All Cells;
# the command's promise settles when the last cell has run or one has failed.
_RUN_ALL_JS = (
    _PANEL_JS
    + """
window.lsiRun = {done: false};
window.jupyterapp.shell.activateById(panel.id);
window.jupyterapp.commands.execute('notebook:clear-all-cell-outputs')
    .then(() => window.jupyterapp.commands.execute('notebook:run-all-cells'))
    .then((ok) => { window.lsiRun = {done: true, ok: ok}; },
          (err) => { window.lsiRun = {done: true, error: String(err)}; });
"""
)
_SAVE_JS = """
const done = arguments[arguments.length - 1];
window.jupyterapp.commands.execute('docmanager:save').then(() => done(null), (err) => done(String(err)));
"""
_IMAGES_JS = """
return [...document.querySelectorAll('.jp-OutputArea-output img')].map(
    (img) => ({complete: img.complete, naturalWidth: img.naturalWidth}));
"""
# JupyterLab user settings: render every cell (the default windowing leaves off-screen cells out of the
# DOM, so their figures could not be checked) and ask no questions about news or updates.
_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
}


@dataclass(frozen=True)
class Lab:
    """A running JupyterLab server and the folder it serves."""

    url: str
    token: str
    root: Path


def _require(ok: bool, reason: str) -> None:
    """Skip on a developer machine without the browser tools; fail in CI, where they must be there."""
    if ok:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true, so this is a failure, not a skip)")
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait(
    what: str,
    timeout_s: float,
    probe: Callable[[], Any],
    ready: Callable[[Any], bool] = bool,
    interval_s: float = 1.0,
) -> Any:
    """Poll probe() until ready(its result) and return that result; a timeout fails with the last state."""
    deadline = time.monotonic() + timeout_s
    while not ready(result := probe()):
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {what}; last state: {result!r}")
        time.sleep(interval_s)
    return result


def _request(url: str, method: str = "GET") -> bool:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


def _server_log(root: Path) -> str:
    return (root.parent / "jupyterlab.log").read_text(errors="replace")[-4000:]


@pytest.fixture
def jupyter_lab(tmp_path: Path) -> Iterator[Lab]:
    """JupyterLab on localhost serving a parameterised copy of the quickstart: the kernel runs in its folder,
    so the notebook's results/ and figures/ land in tmp_path, and Jupyter's own state in tmp_path too."""
    root = tmp_path / "lab"
    root.mkdir()
    papermill.execute_notebook(
        str(ROOT / "notebooks" / NOTEBOOK), str(root / NOTEBOOK), parameters=PARAMETERS, prepare_only=True
    )
    jupyter = tmp_path / "jupyter"
    for name, settings in _SETTINGS.items():
        path = jupyter / "config" / "lab" / "user-settings" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(settings))
    env = os.environ | {
        "JUPYTER_CONFIG_DIR": str(jupyter / "config"),
        "JUPYTER_DATA_DIR": str(jupyter / "data"),
        "JUPYTER_RUNTIME_DIR": str(jupyter / "runtime"),
        "IPYTHONDIR": str(jupyter / "ipython"),
    }
    port, token = _free_port(), secrets.token_hex(24)
    command = [
        str(JUPYTER_LAB),
        "--no-browser",
        "--allow-root",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--ServerApp.root_dir={root}",
        f"--IdentityProvider.token={token}",
        "--LabApp.expose_app_in_browser=True",
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.handlers.announcements.NeverCheckForUpdate",
    ]
    url = f"http://127.0.0.1:{port}"
    with (tmp_path / "jupyterlab.log").open("wb") as log:
        server = subprocess.Popen(command, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:

        def up() -> bool:
            if server.poll() is not None:
                pytest.fail(f"jupyter lab exited with {server.returncode}:\n{_server_log(root)}")
            return _request(f"{url}/api/status?token={token}")

        _wait("the JupyterLab server", 120, up, interval_s=0.5)
        yield Lab(url, token, root)
    finally:
        # /api/shutdown also stops the kernels, which run in sessions of their own and would outlive a signal.
        _request(f"{url}/api/shutdown?token={token}", method="POST")
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@pytest.fixture
def chromium() -> Iterator[WebDriver]:
    """Headless Debian Chromium through its own chromedriver: Selenium downloads nothing."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
    try:
        yield driver
    finally:
        driver.quit()


@pytest.mark.slow
def test_quickstart_runs_in_jupyterlab(request: pytest.FixtureRequest) -> None:
    # Checked here, not in the fixtures, so that a missing piece in CI is a failure rather than an error.
    _require(
        CHROMIUM.exists() and CHROMEDRIVER.exists(), "chromium/chromedriver not installed: run `make browser`"
    )
    _require(
        JUPYTER_LAB.exists() and importlib.util.find_spec("selenium") is not None,
        'jupyterlab or selenium not installed: pip install -e ".[browser]"',
    )
    lab: Lab = request.getfixturevalue("jupyter_lab")
    driver: WebDriver = request.getfixturevalue("chromium")

    def state() -> dict[str, Any] | None:
        return driver.execute_script(_STATE_JS, NOTEBOOK)

    def idle(s: dict[str, Any] | None) -> bool:
        return s is not None and s["kernel"] == "idle"

    driver.get(f"{lab.url}/lab/tree/{NOTEBOOK}?token={lab.token}")
    _wait("the notebook's kernel to be idle", 180, state, idle)
    driver.execute_script(_RUN_ALL_JS, NOTEBOOK)
    finished = _wait(
        "Run All Cells to finish and the kernel to be idle",
        RUN_TIMEOUT_S,
        state,
        lambda s: idle(s) and s["run"]["done"],
        interval_s=2.0,
    )
    driver.set_script_timeout(60)
    assert driver.execute_async_script(_SAVE_JS) is None, "docmanager:save failed"

    saved = nbformat.read(lab.root / NOTEBOOK, as_version=4)
    code = [cell for cell in saved.cells if cell.cell_type == "code" and cell.source.strip()]
    outputs = [output for cell in code for output in cell.outputs]
    errors = [f"{o.ename}: {o.evalue}" for o in outputs if o.output_type == "error"]
    assert not errors, f"cells raised: {errors}"
    assert finished["run"] == {"done": True, "ok": True}, f"Run All Cells did not succeed: {finished}"
    assert finished["unexecuted"] == 0, f"not every cell ran: {finished}"
    assert all(cell.execution_count is not None for cell in code), "a code cell was not executed"
    assert any(key.startswith("image/") for o in outputs for key in o.get("data", {})), "no figure was drawn"

    images = _wait(
        "the output images to load",
        30,
        lambda: driver.execute_script(_IMAGES_JS),
        lambda found: bool(found) and all(image["complete"] for image in found),
    )
    assert all(image["naturalWidth"] > 0 for image in images), f"an image did not render: {images}"

    # The screenshot for the README: the first figure's cell, its code above the figure.
    driver.execute_script(
        "document.querySelector('.jp-OutputArea-output img').closest('.jp-Cell').scrollIntoView()"
    )
    screenshot = lab.root.parent / "jupyterlab-quickstart.png"
    assert driver.save_screenshot(str(screenshot)), "the screenshot failed"
    if SCREENSHOT:
        shutil.copy(screenshot, SCREENSHOT)

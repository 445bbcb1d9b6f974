"""End to end: ``medsr demo`` serves the app, headless Chromium uploads an image and runs Simulate.

Streamlit draws the page in the browser over a websocket after load, so the test waits for elements, not for
the page load. It skips only where Chromium (Debian's ``chromium`` package, ``make browser``) is missing or
Playwright cannot launch it.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from medsr.app import logic

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]
WAIT_MS = 180_000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_server(url: str, server: subprocess.Popen, log: Path, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"medsr demo exited with {server.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"medsr demo did not answer at {url} within {seconds} s:\n{log.read_text()}")


def stop(server: subprocess.Popen) -> None:
    """Stop ``medsr demo`` and the Streamlit server it started (its own process group)."""
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=10)


@pytest.fixture()
def browser():
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing (install Debian's chromium package: make browser)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright Python package is missing")
    with sync_api.sync_playwright() as playwright:
        try:
            chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        except Exception as exc:  # any launch failure means "no usable browser here", never a result
            pytest.skip(f"Playwright cannot launch {CHROMIUM}: {str(exc).splitlines()[0]}")
        try:
            yield chromium
        finally:
            chromium.close()


def test_demo_simulate_in_chromium(browser, tmp_path: Path) -> None:
    from medsr.models import build_generator, list_bundled_models, save_model

    if "swift-srresnet-xray-x4" not in {m["name"] for m in list_bundled_models()}:
        torch.manual_seed(0)  # no bundled weights yet: a tiny model from the models folder stands in
        tiny = build_generator("swift-srgan", scale=4, global_skip=True, num_channels=8, num_blocks=1)
        save_model(tiny, tmp_path / "models" / "tiny.safetensors")
    (tmp_path / "models").mkdir(exist_ok=True)
    pixels = np.asarray(Image.open(logic.sample_paths()[0]))
    top, left = (pixels.shape[0] - 256) // 2, (pixels.shape[1] - 256) // 2
    upload = tmp_path / "chest_crop.png"
    Image.fromarray(pixels[top:top + 256, left:left + 256]).save(upload)

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "demo.log"
    command = [sys.executable, "-m", "medsr", "demo", "--port", str(port), "--no-browser",
               "--models-dir", str(tmp_path / "models")]
    with log.open("w") as out:
        server = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for_server(url, server, log)
        assert f"open {url}" in log.read_text()
        page = browser.new_page(viewport={"width": 1400, "height": 3200})
        page.set_default_timeout(WAIT_MS)
        page.goto(url)
        page.get_by_text("Upload a file").click()
        page.locator("input[type=file]").set_input_files(str(upload))
        page.get_by_text("256 x 256 px").wait_for()
        page.get_by_text("Simulate", exact=True).click()
        page.get_by_text("Degradation", exact=True).wait_for()
        page.get_by_role("button", name="Run super-resolution").click()

        page.get_by_text("Model PSNR", exact=True).wait_for()
        values = page.locator('[data-testid="stMetricValue"]')
        values.first.wait_for()
        texts = values.all_inner_texts()
        assert len(texts) == 4, texts
        psnr_bicubic, psnr_model = (float(re.match(r"[\d.]+", t).group()) for t in texts[:2])
        assert 15 < psnr_bicubic < 60 and 0 < psnr_model < 80
        images = page.locator('[data-testid="stImage"] img')
        images.first.wait_for(state="visible")
        assert images.count() >= 5  # the overview and the four zoomed panels
        # the page says what was upscaled to what (Markdown shows "->" as an arrow)
        assert page.get_by_text(re.compile(r"64 x 64 \S{1,2} 256 x 256")).count() == 1
        page.wait_for_timeout(1000)  # let the images paint before the picture
        shot = tmp_path / "demo_simulate.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000
    finally:
        stop(server)
    assert server.poll() is not None

"""Screenshots of the web app's main views for the README: docs/img/app-*.png.

Starts ``medsr demo`` on a free port, drives headless Chromium (Debian's ``chromium``) at 1440 x 900 through
the preview, an Enhance run on a bundled sample (side by side, zoomed, a value read under the cursor; the wipe),
a Simulate run with its difference maps, and a CT DICOM in the lung window with a length and an ROI measured,
then stops the server.

    .venv/bin/python bench/app_screenshots.py [--out docs/img] [--chromium /usr/bin/chromium]
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import _bench

from medsr.net import free_port

ROOT = Path(__file__).resolve().parents[1]
CT = ROOT / "tests" / "data" / "ct_small.dcm"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
WAIT_MS = 300_000


def start_demo(port: int, log: Path) -> subprocess.Popen:
    """``medsr demo`` in its own session; returns once it answers its health check."""
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    with log.open("w") as out:
        server = subprocess.Popen([sys.executable, "-m", "medsr", "demo", "--port", str(port), "--no-browser"],
                                  stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"medsr demo exited:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2):
                return server
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"medsr demo did not start:\n{log.read_text()}")


def viewer_frame(page, index: int = 0):
    """The ``index``-th linked viewer on the page (an iframe publishing ``window.medsrViewer``), once drawn."""
    page.wait_for_timeout(300)
    deadline = time.monotonic() + WAIT_MS / 1000
    while time.monotonic() < deadline:
        frames = [f for f in page.frames if f != page.main_frame and "medsr_viewer" not in f.url and _is_viewer(f)]
        if len(frames) > index:
            frames[index].wait_for_selector("body[data-ready='1']", state="attached")
            return frames[index]
        page.wait_for_timeout(250)
    raise SystemExit("no viewer on the page")


def reader_frame(page, index: int = 0, panels: int = 1):
    """The ``index``-th reading viewer (the Cornerstone3D component) once its ``panels`` images are loaded."""
    deadline = time.monotonic() + WAIT_MS / 1000
    while time.monotonic() < deadline:
        frames = [h.content_frame() for h in page.locator('iframe[src*="medsr_viewer"]').element_handles()]
        ready = [f for f in frames if f is not None and _ready(f)]
        if len(ready) > index and ready[index].evaluate("window.medsrViewer.state().panels.length") >= panels:
            return ready[index]
        page.wait_for_timeout(250)
    raise SystemExit("no reading viewer on the page")


def _ready(frame) -> bool:
    try:
        return bool(frame.evaluate("!!(window.medsrViewer && window.medsrViewer.state().ready)"))
    except Exception:  # a frame that is navigating or detached
        return False


def point(frame, panel: int, x: float, y: float) -> tuple[float, float]:
    """Page coordinates of pixel (x, y) of a reading viewer's panel."""
    box = frame.frame_element().bounding_box()
    cx, cy = frame.evaluate(f"window.medsrViewer.clientPoint({panel}, {x}, {y})")
    return box["x"] + cx, box["y"] + cy


def drag(page, start: tuple[float, float], end: tuple[float, float]) -> None:
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move(*end, steps=8)
    page.mouse.up()
    page.wait_for_timeout(200)


def _is_viewer(frame) -> bool:
    try:
        return bool(frame.evaluate("!!window.medsrViewer"))
    except Exception:  # a frame that is navigating or detached
        return False


def zoom(page, frame, canvas_index: int, steps: int, dx: float = 0.5, dy: float = 0.5) -> None:
    """Mouse-wheel zoom at (dx, dy) of a canvas of the viewer, ``steps`` notches in."""
    box = frame.locator("canvas").nth(canvas_index).bounding_box()
    page.mouse.move(box["x"] + box["width"] * dx, box["y"] + box["height"] * dy)
    for _ in range(steps):
        page.mouse.wheel(0, -240)
        page.wait_for_timeout(60)


def main() -> None:
    parser = _bench.parser(__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    parser.add_argument("--chromium", type=Path, default=Path("/usr/bin/chromium"))
    args = _bench.parse(parser)
    from playwright.sync_api import sync_playwright

    args.out.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = Path("/tmp") / f"medsr-demo-{port}.log"
    server = start_demo(port, log)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(args.chromium), args=ARGS)
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            page.set_default_timeout(WAIT_MS)
            page.goto(f"http://127.0.0.1:{port}")
            page.get_by_role("button", name="Run super-resolution").wait_for()
            reader_frame(page)
            page.wait_for_timeout(800)
            shot(page, args.out / "app-preview.png")

            page.get_by_role("button", name="Run super-resolution").click()
            page.get_by_text("Compare (linked", exact=False).wait_for()
            frame = reader_frame(page, 1, panels=3)
            to_top(page, "Compare (linked: zoom, pan, window and slice move every panel)")
            frame.get_by_role("button", name="Zoom").click()
            x, y = point(frame, 2, 1100, 900)
            drag(page, (x, y), (x, y + 150))
            frame.get_by_role("button", name="Pan").click()
            drag(page, point(frame, 2, 1280, 1100), point(frame, 2, 1280, 1100))
            frame.get_by_role("button", name="W/L").click()
            page.mouse.move(*point(frame, 2, 1200, 1000))
            page.wait_for_timeout(500)
            shot(page, args.out / "app-compare.png")
            frame.get_by_role("button", name="Wipe").click()
            handle = frame.locator("#divider").bounding_box()  # page coordinates
            stage = frame.locator("#stage").bounding_box()
            hx, hy = handle["x"] + handle["width"] / 2, handle["y"] + 60
            drag(page, (hx, hy), (stage["x"] + stage["width"] * 0.4, hy))
            page.wait_for_timeout(300)
            shot(page, args.out / "app-wipe.png")

            to_top(page, "medsr: medical image super-resolution")
            page.get_by_text("Simulate", exact=True).click()
            page.get_by_text("Degradation", exact=True).wait_for()
            page.get_by_role("button", name="Run super-resolution").click()
            page.get_by_text("Model PSNR", exact=True).wait_for()
            diff = viewer_frame(page, 0)  # the difference maps (the reading viewers are not counted)
            to_top(page, "Result")
            zoom(page, diff, 1, 4, 0.5, 0.45)
            page.wait_for_timeout(500)
            shot(page, args.out / "app-scores.png")
            to_top(page, "Differences")
            page.wait_for_timeout(500)
            shot(page, args.out / "app-differences.png")

            to_top(page, "medsr: medical image super-resolution")
            page.get_by_text("Upload a file").click()
            page.locator("input[type=file]").set_input_files(str(CT))
            page.get_by_text("128 x 128 px").wait_for()
            frame = reader_frame(page)
            frame.locator("#presets").select_option("Lung (W 1500 / L -600)")
            frame.get_by_role("button", name="Length").click()
            drag(page, point(frame, 0, 30, 60), point(frame, 0, 90, 75))
            frame.get_by_role("button", name="ROI").click()
            drag(page, point(frame, 0, 50, 85), point(frame, 0, 75, 105))
            page.mouse.move(*point(frame, 0, 64, 40))
            page.wait_for_timeout(800)
            shot(page, args.out / "app-ct-window.png")
            browser.close()
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)


def to_top(page, text: str) -> None:
    """Scroll the page so that the heading ``text`` is at the top of the window."""
    page.get_by_text(text, exact=True).first.evaluate("e => e.scrollIntoView({block: 'start'})")
    page.wait_for_timeout(300)


def shot(page, path: Path) -> None:
    page.screenshot(path=str(path))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

"""End to end: ``medsr demo`` serves the app and headless Chromium (1440 x 900) uses it as a reader would:
Run above the fold, Simulate with scores, the linked viewer (wheel zoom, drag pan, the wipe divider), a DICOM
round trip, batch uploads of files and of a DICOM series folder with their zips, and stopping the server with
SIGTERM; no request may leave the machine.

One server serves the module's tests; the last test stops it. Streamlit draws the page in the browser over a
websocket after load, so the tests wait for elements, not for the page load. They skip only where Chromium
(Debian's ``chromium`` package, ``make browser``) is missing or Playwright cannot launch it.
"""

from __future__ import annotations

import io
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pydicom
import pytest
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


@pytest.fixture(scope="module")
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


DATA = Path(__file__).parents[1] / "data"
VIEWPORT = {"width": 1440, "height": 900}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory):
    """``medsr demo`` on a free port: ``(url, server process, log path)``."""
    folder = tmp_path_factory.mktemp("demo")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = folder / "demo.log"
    command = [sys.executable, "-m", "medsr", "demo", "--port", str(port), "--no-browser"]
    with log.open("w") as out:
        server = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for_server(url, server, log)
        yield url, server, log
    finally:
        stop(server)


@pytest.fixture()
def page(browser, demo):
    """A fresh session of the app at 1440 x 900; afterwards, no request may have left the machine (offline)."""
    page = browser.new_page(viewport=VIEWPORT, accept_downloads=True)
    page.set_default_timeout(WAIT_MS)
    external: list[str] = []
    local = (demo[0], "data:", "blob:", "about:", "ws://127.0.0.1", "http://127.0.0.1")
    page.on("request", lambda request: None if request.url.startswith(local) else external.append(request.url))
    page.goto(demo[0])
    page.get_by_role("button", name="Run super-resolution").wait_for()
    yield page
    page.close()
    assert not external, f"the page fetched from elsewhere (a CDN?): {external[:5]}"


def chest_crop(tmp_path: Path, size: int, name: str = "chest_crop.png") -> Path:
    pixels = np.asarray(Image.open(logic.sample_paths()[0]))
    top, left = (pixels.shape[0] - size) // 2, (pixels.shape[1] - size) // 2
    path = tmp_path / name
    Image.fromarray(pixels[top:top + size, left:left + size]).save(path)
    return path


def viewers(page, count: int) -> list:
    """The page's linked viewers (iframes publishing ``window.medsrViewer``), once ``count`` are drawn."""
    deadline = time.monotonic() + WAIT_MS / 1000
    while time.monotonic() < deadline:
        found = []
        for frame in page.frames[1:]:
            try:
                if frame.evaluate("!!(window.medsrViewer && document.body.dataset.ready)"):
                    found.append(frame)
            except Exception:  # a frame being replaced
                continue
        if len(found) >= count:
            return found
        page.wait_for_timeout(250)
    raise AssertionError(f"fewer than {count} viewers on the page")


def state(frame) -> dict:
    return frame.evaluate("window.medsrViewer.state()")


def upload(page, path: Path, shown: str) -> None:
    page.get_by_text("Upload a file").click()
    page.locator("input[type=file]").set_input_files(str(path))
    page.get_by_text(shown).wait_for()


def test_run_is_visible_without_scrolling_and_the_preview_comes_first(page) -> None:
    run = page.get_by_role("button", name="Run super-resolution")
    box = run.bounding_box()
    assert box["y"] + box["height"] <= VIEWPORT["height"], box
    [preview] = viewers(page, 1)
    assert state(preview)["rects"][0]["name"].startswith("Input (640 x 591)")
    assert page.get_by_text(re.compile(r"^Estimated run time: ")).count() == 1
    upload(page, DATA / "ct_small.dcm", "128 x 128 px")  # the tallest form: an upload, DICOM details, Simulate
    page.get_by_text("Simulate", exact=True).click()
    page.get_by_text("Degradation", exact=True).wait_for()
    box = run.bounding_box()
    assert box["y"] + box["height"] <= VIEWPORT["height"], box


def test_simulate_scores_and_linked_viewer(page, tmp_path: Path) -> None:
    upload(page, chest_crop(tmp_path, 256), "256 x 256 px")
    page.get_by_text("Simulate", exact=True).click()
    page.get_by_text("Degradation", exact=True).wait_for()
    page.get_by_role("button", name="Run super-resolution").click()
    page.get_by_text("Model PSNR", exact=True).wait_for()
    texts = page.locator('[data-testid="stMetricValue"]').all_inner_texts()
    assert len(texts) == 4, texts
    psnr_bicubic, psnr_model = (float(re.match(r"[\d.]+", t).group()) for t in texts[:2])
    assert 15 < psnr_bicubic < 60 and 0 < psnr_model < 80
    assert page.get_by_text(re.compile(r"64 x 64 \S{1,2} 256 x 256")).count() == 1
    _, compare, differences = viewers(page, 3)
    names = [r["name"] for r in state(compare)["rects"]]
    assert len(names) == 4 and names[3] == "Original (ground truth)"
    assert [r["name"] for r in state(differences)["rects"]] == ["|Bicubic - original|", "|Model - original|",
                                                                 "Model - bicubic"]


def test_wheel_zoom_drag_pan_and_wipe_move_every_panel_together(page, tmp_path: Path) -> None:
    upload(page, chest_crop(tmp_path, 96), "96 x 96 px")
    page.get_by_role("button", name="Run super-resolution").click()
    page.get_by_text("Compare (linked: zoom and pan move every panel)").wait_for()
    compare = viewers(page, 2)[1]
    page.get_by_text("Compare (linked: zoom and pan move every panel)").evaluate(
        "e => e.scrollIntoView({block: 'start'})")
    before = state(compare)
    assert before["mode"] == "side" and len(before["rects"]) == 3
    canvas = compare.locator("canvas").nth(2).bounding_box()  # the model's panel
    cx, cy = canvas["x"] + canvas["width"] * 0.3, canvas["y"] + canvas["height"] * 0.4
    page.mouse.move(cx, cy)
    for _ in range(3):
        page.mouse.wheel(0, -300)
        page.wait_for_timeout(80)
    zoomed = state(compare)
    assert zoomed["view"]["s"] > before["view"]["s"] * 2 and not zoomed["view"]["fit"]
    rects = [r["rect"] for r in zoomed["rects"]]
    assert all(np.allclose(r, rects[0]) for r in rects)  # one region of the patient in every panel
    assert rects[0][2] < before["rects"][0]["rect"][2] / 2  # ... and a smaller one than before
    page.mouse.move(cx, cy)
    page.mouse.down()
    page.mouse.move(cx + 80, cy + 40, steps=6)
    page.mouse.up()
    panned = state(compare)
    moved = np.subtract(panned["rects"][0]["rect"][:2], rects[0][:2])
    assert np.allclose(moved, [-80 / zoomed["view"]["s"], -40 / zoomed["view"]["s"]], atol=0.5)
    assert all(np.allclose(r["rect"], panned["rects"][0]["rect"]) for r in panned["rects"])

    compare.get_by_role("button", name="Wipe").click()
    wipe = compare.locator("canvas").nth(3).bounding_box()
    assert state(compare)["mode"] == "wipe" and state(compare)["divider"] == 0.5
    middle_y = wipe["y"] + wipe["height"] / 2
    page.mouse.move(wipe["x"] + wipe["width"] / 2, middle_y)
    page.mouse.down()
    page.mouse.move(wipe["x"] + wipe["width"] * 0.25, middle_y, steps=6)
    page.mouse.up()
    wiped = state(compare)
    assert wiped["divider"] == pytest.approx(0.25, abs=0.01)
    assert np.allclose(wiped["view"]["cx"], panned["view"]["cx"])  # dragging the divider does not pan
    compare.get_by_role("button", name="1:1 pixels").click()
    assert state(compare)["view"]["s"] == pytest.approx(1.0)  # one image pixel per screen pixel (DPR 1)


def test_a_ct_dicom_runs_ct_sparse_view_and_round_trips(page, tmp_path: Path) -> None:
    upload(page, DATA / "ct_small.dcm", "128 x 128 px")
    page.get_by_text(re.compile("ct-sparse-view: the DICOM header's Modality is CT")).wait_for()
    page.get_by_role("button", name="Run super-resolution").click()
    page.get_by_text(re.compile(r"^Model ct-sparse-view on cpu: .*128 x 128 \S{1,2} 128 x 128")).wait_for()
    button = page.get_by_role("button", name="Download derived DICOM")
    with page.expect_download() as info:
        button.click()
    path = tmp_path / "derived.dcm"
    info.value.save_as(path)
    derived, source = pydicom.dcmread(path), pydicom.dcmread(DATA / "ct_small.dcm")
    assert (derived.Rows, derived.Columns) == (128, 128) and "DERIVED" in list(derived.ImageType)
    assert derived.StudyInstanceUID == source.StudyInstanceUID
    assert derived.SeriesInstanceUID != source.SeriesInstanceUID
    hu = derived.pixel_array * float(derived.RescaleSlope) + float(derived.RescaleIntercept)
    src_hu = source.pixel_array * float(source.RescaleSlope) + float(source.RescaleIntercept)
    assert abs(hu.mean() - src_hu.mean()) < 0.05 * (src_hu.max() - src_hu.min())  # the same HU, streaks removed


def _run_batch(page, count: int) -> bytes:
    """Press Run batch, wait for every file's result, and return the downloaded zip's bytes."""
    page.get_by_role("button", name="Run batch").click()
    page.get_by_text(f"{count} of {count} file(s) upscaled").wait_for()
    with page.expect_download() as info:
        page.get_by_role("button", name=re.compile(r"^Download all results \(zip")).click()
    return Path(info.value.path()).read_bytes()


def test_batch_upload_gives_per_file_status_and_a_zip(page, tmp_path: Path) -> None:
    page.get_by_text("Batch", exact=True).click()
    files = [chest_crop(tmp_path, 32, "a.png"), chest_crop(tmp_path, 40, "b.png"), DATA / "ct_small.dcm"]
    page.locator("input[type=file]").set_input_files([str(f) for f in files])
    with zipfile.ZipFile(io.BytesIO(_run_batch(page, 3))) as archive:
        names = sorted(archive.namelist())
    assert names[:2] == ["a.png", "b.png"] and names[2].startswith("series") and names[2].endswith("ct_small.dcm")


def test_a_dicom_series_folder_becomes_one_derived_series(page, tmp_path: Path) -> None:
    folder = tmp_path / "series"
    folder.mkdir()
    for number in (1, 2):  # two instances of one series (same SeriesInstanceUID)
        ds = pydicom.dcmread(DATA / "ct_small.dcm")
        ds.InstanceNumber, ds.SOPInstanceUID = number, pydicom.uid.generate_uid()
        ds.save_as(folder / f"slice{number}.dcm")
    page.get_by_text("Batch", exact=True).click()
    page.get_by_text("A folder (e.g. a DICOM series)").click()
    page.locator("input[type=file][webkitdirectory]").set_input_files(str(folder))
    with zipfile.ZipFile(io.BytesIO(_run_batch(page, 2))) as archive:
        names = sorted(archive.namelist())
        derived = [pydicom.dcmread(io.BytesIO(archive.read(n))) for n in names]
    assert len(names) == 2 and len({n.rsplit("/", 1)[0] for n in names}) == 1  # one folder
    assert derived[0].SeriesInstanceUID == derived[1].SeriesInstanceUID  # one derived series
    assert sorted(int(d.InstanceNumber) for d in derived) == [1, 2]


def test_sigterm_stops_the_demo_and_its_server(demo) -> None:
    _, server, log = demo
    children = Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split()
    assert children, "medsr demo started no server"
    server.send_signal(signal.SIGTERM)  # medsr demo alone, as `kill PID` would
    assert server.wait(timeout=60) == 0, log.read_text()
    for child in children:
        assert not Path(f"/proc/{child}").exists(), f"server process {child} left behind"

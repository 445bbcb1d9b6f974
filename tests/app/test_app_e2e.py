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
import subprocess
import sys
import time
import urllib.request
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image

from dicom_checks import DCIODVFY, dciodvfy_errors, new_errors
from medsr.app import diffs, logic, stack_viewer
from medsr.net import free_port

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]
WAIT_MS = 180_000


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


class Traffic:
    """What the page asked of the server: HTTP requests, bytes received (HTTP bodies and headers, websocket
    frames) and websocket frames sent (a Streamlit rerun is one)."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        self.received = 0
        self.sent_frames = 0

    def finished(self, request) -> None:
        sizes = request.sizes()
        self.received += sizes["responseBodySize"] + sizes["responseHeadersSize"]

    def socket(self, ws) -> None:
        ws.on("framereceived", lambda payload: setattr(self, "received", self.received + len(payload)))
        ws.on("framesent", lambda payload: setattr(self, "sent_frames", self.sent_frames + 1))


@pytest.fixture()
def page(browser, demo):
    """A fresh session of the app at 1440 x 900; afterwards, no request may have left the machine (offline)."""
    page = browser.new_page(viewport=VIEWPORT, accept_downloads=True)
    page.set_default_timeout(WAIT_MS)
    external: list[str] = []
    local = (demo[0], "data:", "blob:", "about:", "ws://127.0.0.1", "http://127.0.0.1")
    page.on("request", lambda request: None if request.url.startswith(local) else external.append(request.url))
    traffic = Traffic()
    page.on("request", lambda request: traffic.requests.append(request.url))
    page.on("requestfinished", traffic.finished)
    page.on("websocket", traffic.socket)
    page.traffic = traffic
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
            if "medsr_viewer" in frame.url:  # a reading viewer (see readers), not the difference maps' viewer
                continue
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


READER = 'iframe[src*="medsr_viewer"]'


def readers(page, count: int, names: str | None = None) -> list:
    """The page's reading viewers (Cornerstone3D component frames), in page order, once ``count`` have loaded
    their images (and, with ``names``, the last one's first panel starts with it)."""
    if not stack_viewer.bundle_ready():
        pytest.skip(stack_viewer.MISSING)
    deadline = time.monotonic() + WAIT_MS / 1000
    while time.monotonic() < deadline:
        found = []
        for handle in page.locator(READER).element_handles():
            frame = handle.content_frame()
            try:
                if frame is not None and frame.evaluate("!!(window.medsrViewer && window.medsrViewer.state().ready)"):
                    found.append(frame)
            except Exception:  # a frame being replaced
                continue
        if len(found) >= count:
            # one read of the last viewer's state: between two reads Streamlit may render it again (a new
            # render resets it to {"ready": false} until its images load), so readiness and names come together
            try:
                last = {} if names is None else state(found[-1])
            except Exception:  # the frame being replaced
                last = {}
            if names is None or (last.get("ready") and last["panels"][0]["name"].startswith(names)):
                return found
        page.wait_for_timeout(250)
    raise AssertionError(f"fewer than {count} reading viewers on the page")


def page_point(page, frame, panel: int, x: int, y: int) -> tuple[float, float]:
    """Page coordinates of the centre of pixel (x, y) of a viewer panel."""
    box = frame.frame_element().bounding_box()
    cx, cy = frame.evaluate(f"window.medsrViewer.clientPoint({panel}, {x}, {y})")
    return box["x"] + cx, box["y"] + cy


def upload(page, path: Path, shown: str) -> None:
    page.get_by_text("Upload a file").click()
    page.locator("input[type=file]").set_input_files(str(path))
    page.get_by_text(shown).wait_for()


def test_run_is_visible_without_scrolling_and_the_preview_comes_first(page) -> None:
    run = page.get_by_role("button", name="Run super-resolution")
    box = run.bounding_box()
    assert box["y"] + box["height"] <= VIEWPORT["height"], box
    [preview] = readers(page, 1)
    assert state(preview)["panels"][0]["name"].startswith("Input (640 x 591)")
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
    _, compare = readers(page, 2)
    names = [p["name"] for p in state(compare)["panels"]]
    assert len(names) == 4 and names[3] == "Original (ground truth)"
    [differences] = viewers(page, 1)
    assert [r["name"] for r in state(differences)["rects"]] == ["|Bicubic - original|", "|Model - original|",
                                                                 "Model - bicubic", "Consistency with the input"]
    # the first three maps are computed in the browser from the values the reading viewer was sent: the same
    # indices as diffs.error_indices / signed_indices give from those values, fetched here again
    for index, panel in enumerate(differences.evaluate("CONFIG.panels")[:3]):
        spec = panel["difference"]
        a, b = sent_values(page, spec["a"]), sent_values(page, spec["b"])
        difference = (a - b) * spec["per"]
        expected = (diffs.signed_indices(difference.mean(axis=-1), spec["full"], spec["border"]) if spec["signed"]
                    else diffs.error_indices(np.abs(difference).mean(axis=-1), spec["full"], spec["border"]))
        got = np.array(differences.evaluate(f"window.medsrViewer.indices({index})"), dtype=np.uint8)
        got = got.reshape(expected.shape)
        assert np.abs(got.astype(int) - expected).max() <= 1 and (got == expected).mean() > 0.999, panel["name"]
        assert (expected == diffs.MASK_INDEX).any() and len(np.unique(expected)) > 10  # a border, and a real map


def sent_values(page, spec: dict) -> np.ndarray:
    """The values behind a media URL the viewers read, fetched and decoded in Python: ``(H, W, C)`` float64."""
    body = page.request.get(page.url.rstrip("/") + spec["url"]).body()
    dtype = {"u8": "u1", "u16": "<u2", "i16": "<i2", "f32": "<f4"}[spec["dtype"]]
    width, height = spec["size"]
    data = np.frombuffer(zlib.decompress(body), dtype).reshape(height, width, spec.get("components") or 1)
    if spec["delta"]:
        data = np.cumsum(data, axis=1, dtype=data.dtype)  # wraps in its own dtype, as the browser's running sum
    return data.astype(np.float64)


def test_zoom_pan_and_wipe_move_every_panel_together(page, tmp_path: Path) -> None:
    upload(page, chest_crop(tmp_path, 96), "96 x 96 px")
    page.get_by_role("button", name="Run super-resolution").click()
    compare = readers(page, 2, names="Input (96 x 96)")[1]
    compare.frame_element().scroll_into_view_if_needed()
    before = state(compare)
    assert before["mode"] == "side" and len(before["panels"]) == 3
    x, y = page_point(page, compare, 2, 200, 150)  # on the model's panel
    compare.get_by_role("button", name="Zoom").click()
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x, y + 120, steps=8)  # drag down: zoom in
    page.mouse.up()
    zoomed = state(compare)
    zooms = [p["zoom"] for p in zoomed["panels"]]
    assert zooms[2] > before["panels"][2]["zoom"] * 1.25  # zoomed in ...
    assert np.allclose(zooms, zooms[2])  # ... every panel alike, whatever its pixel size
    compare.get_by_role("button", name="Pan").click()
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 60, y + 30, steps=6)
    page.mouse.up()
    panned = state(compare)
    pans = [p["pan"] for p in panned["panels"]]
    assert not np.allclose(pans[2], zoomed["panels"][2]["pan"])
    assert all(np.allclose(pan, pans[2]) for pan in pans)  # the same region of the patient in every panel
    compare.get_by_role("button", name="Wipe").click()
    assert state(compare)["mode"] == "wipe" and state(compare)["divider"] == 0.5
    handle = compare.locator("#divider").bounding_box()  # in page coordinates
    stage = compare.locator("#stage").bounding_box()
    hx, hy = handle["x"] + handle["width"] / 2, handle["y"] + 40
    page.mouse.move(hx, hy)
    page.mouse.down()
    page.mouse.move(stage["x"] + stage["width"] * 0.25, hy, steps=6)
    page.mouse.up()
    assert state(compare)["divider"] == pytest.approx(0.25, abs=0.02)
    compare.locator("body").press("1")  # keys pick one panel
    assert state(compare)["mode"] == "single" and state(compare)["pick"] == 0


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


def hu_of(path: Path) -> np.ndarray:
    """Stored values x RescaleSlope + RescaleIntercept of a DICOM (every frame), by pydicom: the reference."""
    ds = pydicom.dcmread(path)
    return ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)


def multiframe_ct(tmp_path: Path, frames: int = 3, side: int | None = None) -> Path:
    """A CT of ``frames`` frames: ct_small's slice (its top-left ``side`` x ``side``), then +100 HU, +200 HU...,
    so each slice is known."""
    ds = pydicom.dcmread(DATA / "ct_small.dcm")
    stored = ds.pixel_array[:side, :side]
    stack = np.stack([stored + 100 * k for k in range(frames)]).astype(stored.dtype)
    ds.Rows, ds.Columns = stored.shape
    ds.NumberOfFrames, ds.PixelData = frames, stack.tobytes()
    path = tmp_path / "ct_frames.dcm"
    ds.save_as(path)
    return path


def test_value_readout_is_the_stored_value_times_slope_plus_intercept(page) -> None:
    upload(page, DATA / "ct_small.dcm", "128 x 128 px")
    [preview] = readers(page, 1, names="Input (128 x 128)")
    hu = hu_of(DATA / "ct_small.dcm")
    for x, y in ((40, 70), (100, 20), (3, 120)):
        page.mouse.move(*page_point(page, preview, 0, x, y))
        page.wait_for_timeout(100)
        readout = state(preview)["readout"]
        assert (readout["x"], readout["y"]) == (x, y) and readout["value"] == hu[y, x] and readout["unit"] == "HU"
        assert preview.locator("#value").inner_text().endswith(f"x {x} y {y}: {hu[y, x]:g} HU")


def test_window_drag_redraws_in_the_browser_without_asking_the_server(page) -> None:
    upload(page, DATA / "ct_small.dcm", "128 x 128 px")
    [preview] = readers(page, 1, names="Input (128 x 128)")
    before, picture = state(preview)["window"], preview.evaluate("window.medsrViewer.canvasSum(0)")
    requests, frames = len(page.traffic.requests), page.traffic.sent_frames
    x, y = page_point(page, preview, 0, 64, 64)
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 80, y + 40, steps=8)  # W/L is the left button's tool: right widens, down lowers
    page.mouse.up()
    page.wait_for_timeout(300)
    after = state(preview)["window"]
    assert after[0] > before[0] + 10 and preview.evaluate("window.medsrViewer.canvasSum(0)") != picture
    preview.locator("#presets").select_option("Lung (W 1500 / L -600)")
    assert state(preview)["window"] == pytest.approx([1500, -600])
    timings = [preview.evaluate(f"window.medsrViewer.timeWindow({400 + 10 * i}, 40)") for i in range(5)]
    assert len(page.traffic.requests) == requests and page.traffic.sent_frames == frames  # nothing asked
    assert sorted(timings)[2] < 100, timings  # the median window change draws in under 100 ms


def test_stack_scroll_shows_slice_k(page, tmp_path: Path) -> None:
    path = multiframe_ct(tmp_path)
    upload(page, path, "Frames:")
    [preview] = readers(page, 1, names="Input (128 x 128)")
    assert state(preview)["panels"][0]["frames"] == 3
    hu = hu_of(path)
    page.mouse.move(*page_point(page, preview, 0, 30, 50))
    for k in (1, 2):
        page.mouse.wheel(0, 120)  # one notch: the next slice
        page.wait_for_timeout(300)
        x, y = page_point(page, preview, 0, 30, 50)  # the page may have scrolled a little
        page.mouse.move(x + 1, y)
        page.mouse.move(x, y)
        viewer = state(preview)
        assert viewer["panels"][0]["slice"] == k, viewer
        readout = viewer["readout"]
        assert (readout["x"], readout["y"]) == (30, 50) and readout["value"] == hu[k, 50, 30]
        assert preview.locator("#slice").inner_text() == f"slice {k + 1} / 3"
    preview.locator("#slice").click()  # the viewer's frame takes the keys
    page.keyboard.press("ArrowUp")
    page.wait_for_timeout(300)
    assert state(preview)["panels"][0]["slice"] == 1


def test_every_frame_of_a_multi_frame_file_runs_and_scrolls_in_all_three_panels(page, tmp_path: Path) -> None:
    path = multiframe_ct(tmp_path, frames=4, side=64)
    upload(page, path, "Frames:")
    page.get_by_text("All 4 frames").wait_for()  # the default: every frame, with its estimate before the run
    page.get_by_text(re.compile(r"^Estimated run time: .*\(16,384 input pixels")).wait_for()
    page.get_by_role("button", name="Run super-resolution").click()
    compare = readers(page, 2, names="Input (4 frames of 64 x 64)")[1]
    assert [(p["name"], p["frames"]) for p in state(compare)["panels"]] == [
        ("Input (4 frames of 64 x 64)", 4), ("Bicubic (64 x 64)", 4), ("Model: ct-sparse-view", 4)]
    with page.expect_download() as info:
        page.get_by_role("button", name="Download derived DICOM (4 frames)").click()
    derived_path = tmp_path / "derived.dcm"
    info.value.save_as(derived_path)
    derived, source = pydicom.dcmread(derived_path), pydicom.dcmread(path)
    assert int(derived.NumberOfFrames) == 4 and (derived.Rows, derived.Columns) == (64, 64)
    assert "DERIVED" in list(derived.ImageType) and derived.SeriesInstanceUID != source.SeriesInstanceUID
    if DCIODVFY is not None:
        assert new_errors(dciodvfy_errors(path), dciodvfy_errors(derived_path)) == []
    hu, model_hu = hu_of(path), hu_of(derived_path)
    compare.frame_element().scroll_into_view_if_needed()
    x, y = 30, 50
    for k in (1, 2, 3):
        page.mouse.move(*page_point(page, compare, 2, x, y))  # on the model's panel
        page.mouse.wheel(0, 120)  # one notch: the next frame, in every panel
        page.wait_for_timeout(300)
        assert [p["slice"] for p in state(compare)["panels"]] == [k, k, k]
        assert compare.locator("#slicename").inner_text() == f"frame {k + 1} of 4"
        for panel, expected in ((0, hu[k, y, x]), (1, hu[k, y, x]), (2, model_hu[k, y, x])):  # x1: bicubic = input
            px, py = page_point(page, compare, panel, x, y)
            page.mouse.move(px + 1, py)
            page.mouse.move(px, py)
            readout = state(compare)["readout"]
            assert (readout["x"], readout["y"], readout["value"]) == (x, y, expected), (k, panel, readout)
    # the difference map (model - bicubic, computed in the browser) follows the slice the reading viewer shows
    page.get_by_text("Show the difference map").click()
    [differences] = viewers(page, 1)
    spec = differences.evaluate("CONFIG.panels")[0]["difference"]
    for k, notch in ((3, 0), (2, -120)):
        if notch:
            compare = readers(page, 2)[1]
            page.mouse.move(*page_point(page, compare, 2, x, y))
            page.mouse.wheel(0, notch)
        deadline = time.monotonic() + 30
        while differences.evaluate("window.medsrViewer.slice()") != k and time.monotonic() < deadline:
            page.wait_for_timeout(100)
        differences.evaluate(f"window.medsrViewer.setSlice({k})")  # waits for the map of slice k
        got = np.array(differences.evaluate("window.medsrViewer.indices(0)"), dtype=np.uint8).reshape(64, 64)
        expected = diffs.signed_indices((model_hu[k] - hu[k]) * spec["per"], spec["full"], 0)  # x1: bicubic = input
        assert differences.locator("#slice").inner_text() == f"slice {k + 1} / 4"
        assert np.abs(got.astype(int) - expected).max() <= 1 and (got == expected).mean() > 0.999, k
        first = diffs.signed_indices((model_hu[0] - hu[0]) * spec["per"], spec["full"], 0)
        assert (expected != first).mean() > 0.05  # slice k's map, which the first slice's would not pass for


def ct_series(tmp_path: Path, count: int = 3) -> list[Path]:
    """A CT series of ``count`` slices in reading order: slice k is ct_small + 100 k HU, 10 k mm up, named so
    that file-name order is not reading order."""
    folder = tmp_path / "ct_series"
    folder.mkdir()
    uid, paths = pydicom.uid.generate_uid(), []
    for k in range(count):
        ds = pydicom.dcmread(DATA / "ct_small.dcm")
        stored = ds.pixel_array
        ds.PixelData = (stored + 100 * k).astype(stored.dtype).tobytes()
        ds.SeriesInstanceUID, ds.SOPInstanceUID, ds.InstanceNumber = uid, pydicom.uid.generate_uid(), k + 1
        ds.ImageOrientationPatient, ds.ImagePositionPatient = [1, 0, 0, 0, 1, 0], [-50, -50, 10 * k]
        path = folder / f"{'cab'[k % 3]}{k}.dcm"
        ds.save_as(path)
        paths.append(path)
    return paths


def test_a_ct_series_scrolls_input_bicubic_and_model_together(page, tmp_path: Path) -> None:
    paths = ct_series(tmp_path)
    page.get_by_text("Series", exact=True).click()
    page.locator("input[type=file][multiple]").set_input_files([str(p) for p in reversed(paths)])
    page.get_by_text("by position along the slice normal").wait_for()
    page.get_by_text(re.compile("ct-sparse-view: the DICOM header's Modality is CT")).wait_for()
    page.get_by_role("button", name="Run super-resolution").click()
    compare = readers(page, 2, names="Input (3 slices of 128 x 128)")[1]
    assert [(p["name"].split(" (")[0], p["frames"]) for p in state(compare)["panels"]] == [
        ("Input", 3), ("Bicubic", 3), ("Model: ct-sparse-view", 3)]
    compare.frame_element().scroll_into_view_if_needed()
    for k in (1, 2):
        page.mouse.move(*page_point(page, compare, 2, 30, 50))  # on the model's panel
        page.mouse.wheel(0, 120)  # one notch: the next slice, in every panel
        page.wait_for_timeout(300)
        x, y = page_point(page, compare, 0, 30, 50)
        page.mouse.move(x + 1, y)
        page.mouse.move(x, y)  # the input's panel: its value under the cursor
        viewer = state(compare)
        assert [p["slice"] for p in viewer["panels"]] == [k, k, k], viewer["panels"]
        readout = viewer["readout"]
        assert (readout["x"], readout["y"]) == (30, 50) and readout["value"] == hu_of(paths[k])[50, 30]
        assert compare.locator("#slice").inner_text() == f"slice {k + 1} / 3"
        assert compare.locator("#slicename").inner_text().startswith(f"{paths[k].name} · #{k + 1} · ")
    with page.expect_download() as info:
        page.get_by_role("button", name="Download derived series (zip of 3 DICOM slices)").click()
    with zipfile.ZipFile(info.value.path()) as archive:
        derived = [pydicom.dcmread(io.BytesIO(archive.read(n))) for n in sorted(archive.namelist())]
    source = pydicom.dcmread(paths[0])
    assert len(derived) == 3 and len({d.SeriesInstanceUID for d in derived}) == 1
    assert derived[0].SeriesInstanceUID != source.SeriesInstanceUID
    assert derived[0].StudyInstanceUID == source.StudyInstanceUID
    assert [int(d.InstanceNumber) for d in derived] == [1, 2, 3]
    for d, path in zip(derived, paths, strict=True):
        values = d.pixel_array * float(d.RescaleSlope) + float(d.RescaleIntercept)
        assert values.shape == (128, 128) and abs(values.mean() - hu_of(path).mean()) < 50  # its own slice's HU


def test_a_1024_chest_result_page_weighs_under_6_mb(page, tmp_path: Path) -> None:
    upload(page, chest_crop(tmp_path, 256), "256 x 256 px")
    page.get_by_role("button", name="Run super-resolution").click()
    compare = readers(page, 2, names="Input (256 x 256)")[1]
    panels = state(compare)["panels"]
    assert panels[2]["canvas"][0] > 0 and panels[1]["name"] == "Bicubic (1024 x 1024)"
    page.get_by_text("Show the difference maps").wait_for()  # Enhance fetches them on request
    page.wait_for_timeout(2000)
    megabytes = page.traffic.received / 2**20
    assert megabytes < 6, f"{megabytes:.2f} MB"


def test_ultrasound_result_is_drawn_at_its_physical_aspect(page, tmp_path: Path) -> None:
    ds = pydicom.dcmread(DATA / "ct_small.dcm")
    ds.Modality, ds.PixelSpacing = "US", [0.2, 0.3]  # rows 0.2 mm apart, columns 0.3 mm
    path = tmp_path / "us_grey.dcm"
    ds.save_as(path)
    upload(page, path, "128 x 128 px")
    page.get_by_text(re.compile("ultrasound-lateral-x4: the DICOM header's Modality is US")).wait_for()
    page.get_by_role("button", name="Run super-resolution").click()
    compare = readers(page, 2, names="Input (128 x 128)")[1]
    viewer = state(compare)
    assert viewer["panels"][2]["name"] == "Model: ultrasound-lateral-x4"
    for panel in (0, 2):  # the 128 x 128 input and the 512 x 128 result: both 38.4 mm wide, 25.6 mm high
        _, _, width, height = compare.evaluate(f"window.medsrViewer.imageBox({panel})")
        assert width / height == pytest.approx(128 * 0.3 / (128 * 0.2), rel=0.02), (panel, width, height)


def test_two_models_results_stay_side_by_side_until_the_image_changes(page, tmp_path: Path) -> None:
    upload(page, chest_crop(tmp_path, 64), "64 x 64 px")
    page.get_by_role("button", name="Run super-resolution").click()
    readers(page, 2, names="Input (64 x 64)")
    page.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]').first.click()
    page.get_by_role("option", name="xray-x4-bicubic (bundled)").click()
    page.get_by_role("button", name="Run super-resolution").click()
    page.get_by_text(re.compile(r"^Also shown: xray-x4 on the same input")).wait_for()
    compare = readers(page, 2, names="Input (64 x 64)")[1]
    deadline = time.monotonic() + WAIT_MS / 1000
    while len(state(compare).get("panels", [])) < 4 and time.monotonic() < deadline:  # the frame rebuilds its panels
        page.wait_for_timeout(250)
    names = [p["name"] for p in state(compare)["panels"]]
    assert names[2:] == ["Model: xray-x4-bicubic", "Model: xray-x4"]


def test_sigterm_stops_the_demo_and_its_server(demo) -> None:
    _, server, log = demo
    children = Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split()
    assert children, "medsr demo started no server"
    server.send_signal(signal.SIGTERM)  # medsr demo alone, as `kill PID` would
    assert server.wait(timeout=60) == 0, log.read_text()
    for child in children:
        assert not Path(f"/proc/{child}").exists(), f"server process {child} left behind"

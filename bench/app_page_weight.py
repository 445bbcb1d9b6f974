"""What a reader's browser gets from the web app: page bytes of a 1024 x 1024 chest result (or of a CT series'
result) and the time of a window change, measured in headless Chromium (1440 x 900).

Starts ``medsr demo`` on a free port, opens the page (bundled sample preview), uploads a 256 x 256 crop of a
bundled chest X-ray, runs Enhance (xray-x4: a 1024 x 1024 result) and counts every byte the browser received
(HTTP bodies and headers, websocket frames), by kind. Then times window changes in the result viewer (three
panels redrawn) and counts the requests they made. ``--diffs`` also turns the difference maps on and counts them.

With ``--series FOLDER`` it uploads the DICOM slices in FOLDER in "Series" mode instead, runs them (the
automatic model: ct-sparse-view for CT), and also steps through every slice, counting the requests that makes.
With ``--multiframe FILE`` it uploads a multi-frame DICOM (a cine) in "Upload a file" and runs all its frames
(the automatic model), then steps through every frame the same way; with ``--diffs`` the difference map too.

    .venv/bin/python bench/app_page_weight.py [--chromium /usr/bin/chromium] [--repeats 20] [--diffs] \
        [--save docs/results/app_page_weight.txt]
    .venv/bin/python bench/app_page_weight.py --series ../shared/data/ct-slices/totalsegmentator-example \
        [--save docs/results/app_page_weight_series.txt]
    .venv/bin/python bench/app_page_weight.py --multiframe ../shared/data/dicom/us/examples_ybr_color.dcm \
        [--diffs] [--save docs/results/app_page_weight_multiframe.txt]
"""

from __future__ import annotations

import os
import re
import signal
import statistics
import tempfile
import time
from pathlib import Path

import _bench
import numpy as np
from app_screenshots import ARGS, WAIT_MS, free_port, start_demo
from PIL import Image

from medsr.app import logic


def kind(url: str) -> str:
    if "/component/" in url or "/app/static/" in url:
        return "viewer script and page (Cornerstone3D bundle)"
    if "/static/" in url:  # before /media/: Streamlit's fonts live under /static/media/
        return "Streamlit's own page (scripts, fonts)"
    if "/media/" in url:
        return "image values and difference maps (media endpoint)"
    return "other"


def main() -> None:
    parser = _bench.parser(__doc__)
    parser.add_argument("--chromium", type=Path, default=Path("/usr/bin/chromium"))
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--verbose", action="store_true", help="print every response")
    parser.add_argument("--diffs", action="store_true", help="also show the difference maps (chest page)")
    parser.add_argument("--series", type=Path, help="a folder of DICOM slices: measure the series page instead")
    parser.add_argument("--multiframe", type=Path, help="a multi-frame DICOM: measure its every-frame result page")
    args = _bench.parse(parser)
    from playwright.sync_api import sync_playwright

    pixels = np.asarray(Image.open(logic.sample_paths()[0]))
    top, left = (pixels.shape[0] - 256) // 2, (pixels.shape[1] - 256) // 2
    folder = Path(tempfile.mkdtemp(prefix="medsr-weight-"))
    crop = folder / "chest_256.png"
    Image.fromarray(pixels[top:top + 256, left:left + 256]).save(crop)
    port = free_port()
    server = start_demo(port, folder / "demo.log")
    by_kind: dict[str, int] = {}
    socket_bytes = [0]
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(args.chromium), args=ARGS)
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            page.set_default_timeout(WAIT_MS)

            def finished(request) -> None:
                sizes = request.sizes()
                if args.verbose:
                    print(f"    {sizes['responseBodySize'] / 1024:8.1f} kB  {request.url[:110]}")
                name = kind(request.url)
                by_kind[name] = by_kind.get(name, 0) + sizes["responseBodySize"] + sizes["responseHeadersSize"]

            page.on("requestfinished", finished)
            page.on("websocket", lambda ws: ws.on("framereceived",
                                                  lambda p: socket_bytes.__setitem__(0, socket_bytes[0] + len(p))))
            page.goto(f"http://127.0.0.1:{port}")
            page.get_by_role("button", name="Run super-resolution").wait_for()
            if args.series:
                slices = sorted(p for p in args.series.iterdir() if p.suffix.lower() == ".dcm")
                page.get_by_text("Series", exact=True).click()
                page.locator("input[type=file][multiple]").set_input_files([str(p) for p in slices])
                page.get_by_text("Slices:", exact=True).wait_for()
            elif args.multiframe:
                sample = page.get_by_text("Estimated run time").inner_text()  # the bundled sample's
                page.get_by_text("Upload a file").click()
                page.locator("input[type=file]").set_input_files(str(args.multiframe))
                page.get_by_text(re.compile(r"^All \d+ frames$")).wait_for()
                estimate = sample
                while estimate == sample:  # until the page has replaced the sample's estimate with this file's
                    page.wait_for_timeout(250)
                    estimate = page.get_by_text("Estimated run time").inner_text()
            else:
                page.get_by_text("Upload a file").click()
                page.locator("input[type=file]").set_input_files(str(crop))
                page.get_by_text("256 x 256 px").wait_for()
            page.get_by_role("button", name="Run super-resolution").click()
            page.get_by_text("Compare (linked").wait_for()
            frame = result_viewer(page)
            if args.diffs:
                page.get_by_text("Show the difference map").click()  # "maps" for one image
                page.get_by_text("Colour scale").wait_for()
            page.wait_for_timeout(3000)  # the difference maps' images, when shown
            total = sum(by_kind.values()) + socket_bytes[0]
            if args.multiframe:
                shape = frame.evaluate("window.medsrViewer.state().panels.map(p => p.name)")
                print(f"Multi-frame result page ({args.multiframe.name}, Upload a file, all frames, Enhance with "
                      f"the automatic model{', difference map shown' if args.diffs else ''}; panels {shape}): "
                      f"{total / 2**20:.2f} MB received in all")
                print(f"  before the run: {estimate}")
                ran = page.get_by_text(re.compile(r"^Model .* for \d+ frames")).inner_text()
                print(f"  the run: {ran}")
            elif args.series:
                shape = frame.evaluate("window.medsrViewer.state().panels.map(p => p.name)")
                print(f"CT series result page ({len(slices)} slices from {args.series.name}, Series mode, "
                      f"Enhance with the automatic model; panels {shape}): {total / 2**20:.2f} MB received in all")
            else:
                print(f"1024 x 1024 chest result page (preview of the bundled sample, upload, Enhance x4"
                      f"{', difference maps shown' if args.diffs else ''}): {total / 2**20:.2f} MB received in all")
            for name, size in sorted(by_kind.items(), key=lambda kv: -kv[1]):
                print(f"  {size / 2**20:6.2f} MB  {name}")
            print(f"  {socket_bytes[0] / 2**20:6.2f} MB  websocket frames (page layout, arguments)")
            requests: list[str] = []
            page.on("request", lambda r: requests.append(r.url))
            times = [frame.evaluate(f"window.medsrViewer.timeWindow({300 + 7 * i}, {40 + i})")
                     for i in range(args.repeats)]
            print(f"window change, 3 panels redrawn: median {statistics.median(times):.1f} ms, "
                  f"max {max(times):.1f} ms over {len(times)} changes; {len(requests)} requests to the server")
            if args.series or args.multiframe:
                count = frame.evaluate("window.medsrViewer.state().panels[0].frames")
                for k in list(range(count)) + list(range(count - 2, -1, -1)):
                    frame.evaluate(f"window.medsrViewer.setSlice({k})")
                    page.wait_for_timeout(50)
                slices_now = frame.evaluate("window.medsrViewer.state().panels.map(p => p.slice)")
                what = "frames" if args.multiframe else "slices"
                print(f"stepped through all {count} {what} and back (every panel at slice {slices_now}): "
                      f"{len(requests)} requests to the server in all")
            browser.close()
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=60)
    print(f"CPU: {_bench.cpu_name()} (shared with other tenants); Chromium headless, Cornerstone3D CPU rendering")


def result_viewer(page):
    """The result's reading viewer frame, once it has loaded its three panels."""
    deadline = time.monotonic() + WAIT_MS / 1000
    while time.monotonic() < deadline:
        handles = page.locator('iframe[src*="medsr_viewer"]').element_handles()
        frames = [h.content_frame() for h in handles]
        ready = [f for f in frames if f and f.evaluate("!!(window.medsrViewer && window.medsrViewer.state().ready)")]
        if len(ready) >= 2 and ready[-1].evaluate("window.medsrViewer.state().panels.length") == 3:
            return ready[-1]
        page.wait_for_timeout(250)
    raise SystemExit("the result viewer did not load")


if __name__ == "__main__":
    main()

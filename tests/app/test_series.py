"""Series mode of the web app: slices grouped and ordered as a reader scrolls them, every slice super-resolved,
and the derived series one valid series; the page says when slices were grouped by folder. Also what a
multi-frame result says it covers, and the difference maps' page (computed in the browser from sent values).

The slices are made from ``tests/data/ct_small.dcm``: slice k holds its values + 100 k HU, so each is known.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pydicom
import pytest
import torch
from pydicom.uid import generate_uid
from test_app import DATA, pick_tiny_model, start_app, upload, viewer_args

from dicom_checks import DCIODVFY, dciodvfy_errors, dicom_bytes, hu, new_errors
from medsr.app import series, stack_viewer
from medsr.io.series import slice_order

SERIES_UID = "1.2.826.0.1.3680043.8.498.1"


def ct_slice(k: int, *, z: float | None = None, number: int | None = None, uid: str | None = SERIES_UID,
             rows: int | None = None) -> bytes:
    """ct_small's slice + 100 k HU, at height ``z`` (mm), with InstanceNumber ``number`` and SeriesInstanceUID
    ``uid`` (None: without one), as bytes."""
    ds = pydicom.dcmread(DATA / "ct_small.dcm")
    stored = ds.pixel_array
    pixels = stored + 100 * k
    if rows is not None:
        pixels = pixels[:rows]
        ds.Rows = rows
    ds.PixelData = pixels.astype(stored.dtype).tobytes()
    ds.SOPInstanceUID = generate_uid()
    if uid is None:
        del ds.SeriesInstanceUID
    else:
        ds.SeriesInstanceUID = uid
    if number is None:
        ds.pop("InstanceNumber", None)
    else:
        ds.InstanceNumber = number
    if z is None:
        ds.pop("ImagePositionPatient", None)
    else:
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [-50.0, -50.0, z]
    return dicom_bytes(ds)


def test_slices_are_ordered_by_position_then_instance_number_then_name() -> None:
    def datasets(*headers: bytes) -> list:
        return [pydicom.dcmread(io.BytesIO(h), stop_before_pixels=True) for h in headers]

    # positions decide, in the direction the scanner numbered them (head first: z falls as the number rises)
    by_position = datasets(ct_slice(0, z=-10, number=3), ct_slice(1, z=10, number=1), ct_slice(2, z=0, number=2))
    assert slice_order(by_position, ["a", "b", "c"]) == ([1, 2, 0], "position")
    unnumbered = datasets(ct_slice(0, z=5), ct_slice(1, z=-5), ct_slice(2, z=0))
    assert slice_order(unnumbered, ["a", "b", "c"]) == ([1, 2, 0], "position")
    by_number = datasets(ct_slice(0, number=10), ct_slice(1, number=2), ct_slice(2, z=1.0, number=5))
    assert slice_order(by_number, ["a", "b", "c"]) == ([1, 2, 0], "instance number")  # one lacks a position
    assert slice_order(datasets(ct_slice(0), ct_slice(1)), ["b.dcm", "a.dcm"]) == ([1, 0], "file name")


def test_uploads_become_series_grouped_by_uid_else_by_folder() -> None:
    files = [("s/3.dcm", ct_slice(2, z=20, number=3)), ("s/1.dcm", ct_slice(0, z=0, number=1)),
             ("s/2.dcm", ct_slice(1, z=10, number=2)),
             ("x/a.dcm", ct_slice(0, uid=None, number=1)), ("x/b.dcm", ct_slice(1, uid=None, number=2)),
             ("y/a.dcm", ct_slice(0, uid=None, number=1)),
             ("s/short.dcm", ct_slice(3, z=30, number=4, rows=100)), ("notes.png", b"\x89PNG\r\n\x1a\n")]
    found = series.read_series(files)
    keys = {s.key: s for s in found.series}
    assert set(keys) == {SERIES_UID, "folder:x", "folder:y"}
    ordered = keys[SERIES_UID]
    assert [s.name for s in ordered.slices] == ["s/1.dcm", "s/2.dcm", "s/3.dcm"] and ordered.order == "position"
    np.testing.assert_array_equal(stack_viewer.panel_values(ordered.stack(), ordered.first)[2],
                                  hu(files[0][1]))  # slice 3 of the stack
    assert [s.name for s in keys["folder:x"].slices] == ["x/a.dcm", "x/b.dcm"] and keys["folder:x"].by_folder
    skipped = dict(found.skipped)
    assert set(skipped) == {"s/short.dcm", "notes.png"} and "128 x 100 px" in skipped["s/short.dcm"]
    [note] = found.notes
    assert note.startswith("3 slice(s) have no SeriesInstanceUID") and "(x, y)" in note


def test_every_slice_is_run_and_the_derived_series_is_one_valid_series(tiny_model: torch.nn.Module,
                                                                       tmp_path: Path) -> None:
    files = [(f"{k}.dcm", ct_slice(k, z=10.0 * k, number=k + 1)) for k in (2, 0, 1)]
    picked = series.read_series(files).series[0]
    outcome = series.run_series(picked, tiny_model, device="cpu")
    assert outcome.lr.shape == (3, 128, 128, 1) and outcome.sr.shape == (3, 512, 512, 1)
    assert series.too_large(picked, (4, 4)) is None and "million output pixels" in series.too_large(picked, (4, 4),
                                                                                                     limit=500_000)
    with zipfile.ZipFile(io.BytesIO(series.derived_series_zip(outcome))) as archive:
        names = archive.namelist()
        raw = [archive.read(n) for n in names]
    derived = [pydicom.dcmread(io.BytesIO(r)) for r in raw]
    assert len(names) == 3 and len({n.rsplit("/", 1)[0] for n in names}) == 1  # one folder
    assert {d.SeriesInstanceUID for d in derived} == {outcome.series_uid} and outcome.series_uid != SERIES_UID
    assert len({d.SOPInstanceUID for d in derived}) == 3
    assert [int(d.InstanceNumber) for d in derived] == [1, 2, 3]  # in reading order, numbers kept
    assert [float(d.ImagePositionPatient[2]) for d in derived] == [0.0, 10.0, 20.0]
    for k, d in enumerate(derived):
        assert (d.Rows, d.Columns) == (512, 512) and "DERIVED" in list(d.ImageType)
        values = d.pixel_array * float(d.RescaleSlope) + float(d.RescaleIntercept)
        assert abs(values.mean() - hu(files[[2, 0, 1].index(k)][1]).mean()) < 60  # slice k's HU, not another's
    if DCIODVFY is None:
        pytest.skip("dciodvfy not installed (apt-get install dicom3tools): the derived files were read back only")
    source, target = tmp_path / "source.dcm", tmp_path / "derived.dcm"
    source.write_bytes(files[1][1])  # slice 0, the first of the derived series
    target.write_bytes(raw[0])
    assert new_errors(dciodvfy_errors(source), dciodvfy_errors(target)) == []


def test_the_page_says_slices_without_a_series_uid_are_grouped_by_folder(models_dir: Path) -> None:
    at = start_app()
    at.radio(key="source").set_value("Series").run()
    uploader = at.file_uploader(key="series_upload")
    for k in (1, 0, 2):
        uploader.upload(f"slice{k}.dcm", ct_slice(k, uid=None, number=k + 1))
    uploader.run()
    assert not at.exception, at.exception
    assert any("3 slice(s) have no SeriesInstanceUID: they are grouped by folder (the upload)" in i.value
               for i in at.info)
    [preview] = viewer_args(at)
    [panel] = preview["panels"]
    assert panel["frames"] == 3 and panel["size"] == [128, 128] and preview["unit"] == "HU"
    assert [label.split(" · ")[:2] for label in preview["slice_labels"]] == [["slice0.dcm", "#1"],
                                                                            ["slice1.dcm", "#2"],
                                                                            ["slice2.dcm", "#3"]]
    assert any("ct-sparse-view" in i.value for i in at.sidebar.info)  # the CT model, by the slices' Modality


def test_a_multi_frame_result_says_it_covers_the_frame_that_was_run(models_dir: Path) -> None:
    ds = pydicom.dcmread(DATA / "ct_small.dcm")
    stored = ds.pixel_array
    ds.NumberOfFrames, ds.PixelData = 3, np.stack([stored + 100 * k for k in range(3)]).astype(stored.dtype).tobytes()
    buffer = io.BytesIO()
    ds.save_as(buffer)
    at = start_app()
    upload(at, "frames.dcm", buffer.getvalue())
    pick_tiny_model(at)
    at.radio(key="frames_scope").set_value("One frame").run()  # a long cine's choice; every frame by default
    at.slider(key="frame").set_value(2).run()
    at.button(key="run").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert "(frame 2 of 3: 128 x 128 -> 512 x 512" in at.success[0].value
    assert any("covers frame 2 of 3 only" in i.value for i in at.info)
    preview, result = viewer_args(at)
    assert preview["panels"][0]["frames"] == 3 and result["panels"][0]["frames"] == 1
    assert [p["name"] for p in result["panels"]] == ["Input (frame 2 of 3, 128 x 128)",
                                                     "Bicubic (frame 2 of 3, 512 x 512)", "Model: tiny (frame 2 of 3)"]
    labels = [b.label for b in at.get("download_button")]
    assert labels and all(label.startswith("Download frame 2 of 3: ") for label in labels), labels
    assert "Download frame 2 of 3: derived DICOM" in labels


def test_a_difference_panel_sends_the_value_urls_and_the_formula_not_pixels() -> None:
    from medsr.app import diffs
    from medsr.app.viewer import Difference, Panel, viewer_html

    a = {"url": "/media/a.bin", "dtype": "i16", "delta": True, "size": [64, 32], "components": 1, "frames": 1,
         "name": "Model", "bytes": 10}
    b = {**a, "url": "/media/b.bin", "name": "Bicubic"}
    panel = Panel("Model - bicubic", None, None, diffs.SIGNED_PALETTE, Difference(a, b, 1 / 4095, 0.02, True, 4))
    page = viewer_html([panel], height=400)
    config = json.loads(page.split("const CONFIG = ", 1)[1].split(";</script>", 1)[0])
    [sent] = config["panels"]
    assert sent["size"] == [64, 32] and '<canvas class="src" id="src0">' in page and "<img" not in page
    difference = sent["difference"]
    assert difference["a"] == {k: a[k] for k in ("url", "dtype", "delta", "size", "components", "frames")}
    assert difference["b"]["url"] == "/media/b.bin" and difference["signed"] and difference["border"] == 4
    assert difference["per"] == pytest.approx(1 / 4095)
    assert difference["palette"] == diffs.SIGNED_PALETTE.ravel().tolist()
    with pytest.raises(ValueError, match="differ in size"):
        viewer_html([Panel("x", None, None, diffs.SIGNED_PALETTE,
                           Difference(a, {**b, "size": [32, 32]}, 1.0, 0.02, True))], height=400)

"""The web app picks the model as ``medsr upscale`` does and refuses what it cannot mean: the automatic model by
Modality (and the warning when a named model is of another), images too small to mean anything, one size limit
in the help and the messages, crop labels, and DICOM slices without a SeriesInstanceUID grouped by folder.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pydicom
import pytest
import torch
from test_app import DATA, png_bytes, start_app, upload

from medsr.app import batch, logic
from medsr.errors import ImageReadError
from medsr.infer.modality import MODALITY_MODELS, mismatch, model_for_modality
from medsr.io import read_image
from medsr.io.image import DEFAULT_MAX_PIXELS
from medsr.models import DEFAULT_MODEL


def test_automatic_model_is_medsr_upscales_choice() -> None:
    for modality, expected in [("CT", "ct-sparse-view"), ("us", "ultrasound-lateral-x4"), ("CR", DEFAULT_MODEL),
                               ("DX", DEFAULT_MODEL), ("MR", DEFAULT_MODEL), (None, DEFAULT_MODEL)]:
        name, why = logic.automatic_model(modality)
        assert name == expected == model_for_modality(modality), modality
        assert name in why
    assert "Modality is CT" in logic.automatic_model("CT")[1]
    assert "no bundled model for modality MR" in logic.automatic_model("MR")[1]
    assert "the modality you gave" in logic.automatic_model("US", given=True)[1]
    assert mismatch("CT", {"name": "xray-x4"}) == ("CR", "DX")
    assert mismatch("CR", {"name": "xray-x4"}) == () and mismatch(None, {"name": "xray-x4"}) == ()
    assert mismatch("CT", {"name": "a user's checkpoint"}) == ()  # unknown training modality: no warning
    assert set(MODALITY_MODELS) == {"CT", "US", "CR", "DX"}


def test_a_ct_dicom_in_single_file_mode_runs_ct_sparse_view() -> None:
    at = start_app()
    upload(at, "ct_small.dcm", (DATA / "ct_small.dcm").read_bytes())
    assert at.selectbox(key="model").value == logic.AUTO_MODEL
    assert any("ct-sparse-view: the DICOM header's Modality is CT" in i.value for i in at.sidebar.info)
    at.button(key="run").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert "Model ct-sparse-view" in at.success[0].value and "128 x 128 -> 128 x 128" in at.success[0].value


def test_a_named_model_of_another_modality_is_warned() -> None:
    at = start_app()
    upload(at, "ct_small.dcm", (DATA / "ct_small.dcm").read_bytes())
    label = next(o for o in at.selectbox(key="model").options if o.startswith(f"{DEFAULT_MODEL} "))
    at.selectbox(key="model").set_value(label).run()
    assert any("modality is CT" in w.value and "trained for CR/DX" in w.value for w in at.sidebar.warning)


def test_a_png_takes_the_modality_the_reader_states(models_dir: Path) -> None:
    at = start_app()
    upload(at, "frame.png", png_bytes(np.full((40, 48), 128, np.uint8)))
    assert any(f"{DEFAULT_MODEL}: the image states no modality" in i.value for i in at.sidebar.info)
    at.selectbox(key="raster_modality").set_value("US").run()
    assert any("ultrasound-lateral-x4: the modality you gave is US" in i.value for i in at.sidebar.info)


def test_images_too_small_are_refused_and_runs_do_not_reach_the_shared_estimate(models_dir: Path) -> None:
    at = start_app()
    upload(at, "dot.png", png_bytes(np.zeros((1, 1), np.uint8)))
    assert any("dot.png: too small" in e.value and "at least 16 px" in e.value for e in at.error)
    assert not [b for b in at.button if b.key == "run"]
    assert logic.too_small(16, 16) is None and logic.too_small(15, 400) is not None


def png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` (8-bit grey) with one tiny IDAT: only the header matters."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0")) + chunk(b"IEND", b"")


def test_one_size_limit_in_the_help_and_in_every_message(tmp_path: Path) -> None:
    limit = f"{DEFAULT_MAX_PIXELS:,}"
    for side in (8000, 60000):  # under and over Pillow's own (decompression bomb) limit of 179 MP
        path = tmp_path / f"huge{side}.png"
        path.write_bytes(png_header(side, side))
        with pytest.raises(ImageReadError, match=f"image too large: {side * side:,} pixels, over the limit of {limit}"):
            read_image(path)
    assert limit in logic.size_limits_text() and "200 MB" in logic.size_limits_text()
    at = start_app()
    at.radio(key="source").set_value("Upload a file").run()
    assert logic.size_limits_text() in at.get("file_uploader")[0].proto.help


def test_labels_say_when_a_preview_is_a_crop() -> None:
    image = read_image(DATA / "ct_small.dcm")
    assert logic.input_label(image, (128, 128)) == "Input (128 x 128)"
    assert logic.input_label(image, (64, 100, 1)) == "Input (centre 100 x 64 crop of 128 x 128)"


def test_slices_without_a_series_uid_become_one_derived_series_per_folder(tiny_model: torch.nn.Module) -> None:
    files = []
    for folder, count in (("a", 2), ("b", 1)):
        for number in range(count):
            ds = pydicom.dcmread(DATA / "ct_small.dcm")
            del ds.SeriesInstanceUID
            ds.InstanceNumber, ds.SOPInstanceUID = number + 1, pydicom.uid.generate_uid()
            buffer = io.BytesIO()
            ds.save_as(buffer)
            files.append((f"{folder}/slice{number}.dcm", buffer.getvalue()))
    result = batch.run_batch(files, tiny_model)
    assert result.written == 3, [r.status for r in result.rows]
    with zipfile.ZipFile(io.BytesIO(result.zip_bytes)) as archive:
        uids = {n: pydicom.dcmread(io.BytesIO(archive.read(n))).SeriesInstanceUID for n in archive.namelist()}
    by_row = [uids[r.archived_as] for r in result.rows]
    assert by_row[0] == by_row[1] != by_row[2]  # folder a: one series; folder b: another
    assert result.notes and "3 DICOM file(s) have no SeriesInstanceUID" in result.notes[0]
    assert "a, b" in result.notes[0]

"""The CT detectability task on synthetic phantoms: HU discs, mm from PixelSpacing, the body mask, a whole run."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.ndimage import gaussian_filter

from medsr import detectability as det
from medsr import detectability_ct as ct
from medsr.cli import main
from medsr.errors import ConfigError
from medsr.protocol import Item, Protocol

HU_RANGE = (-1024.0, 3071.0)
SPAN = HU_RANGE[1] - HU_RANGE[0]


def to_unit(hu: np.ndarray) -> np.ndarray:
    """HU -> the [0, 1] working image of the CT model's mapping, ``(H, W, 1)`` float32."""
    return ((np.asarray(hu, dtype=np.float64) - HU_RANGE[0]) / SPAN)[..., None].astype(np.float32)


def to_hu(unit: np.ndarray) -> np.ndarray:
    return HU_RANGE[0] + np.asarray(unit, dtype=np.float64)[..., 0] * SPAN


def ct_settings(**changes) -> det.DetectabilitySettings:
    base = dict(sizes=(6.0,), contrasts=(3.0, 30.0), crop=None, spacing=32, bootstrap=100, size_unit="mm",
                contrast_unit="HU", reference=ct.REFERENCE, finest_spacing=1.0, pixel_spacing=1.0, body_hu=-500.0,
                realisations=4)
    return det.DetectabilitySettings(**{**base, **changes})


def phantom_hu(seed: int, size: int = 128) -> np.ndarray:
    """A body (disc of radius 0.42 size at 40 HU, smooth texture of 20 HU and white noise of 10 HU) holding a
    lung (-800 HU), in air (-1000 HU), and a table strip (100 HU) below it, apart from the body."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] - size / 2
    hu = np.full((size, size), -1000.0)
    body = np.hypot(y, x) < 0.42 * size
    texture = gaussian_filter(rng.normal(size=(size, size)), 2.0)
    texture = 20.0 * texture / texture.std() + 10.0 * rng.normal(size=(size, size))  # anatomy + quantum noise
    hu[body] = 40.0 + texture[body]
    hu[np.hypot(y + 0.2 * size, x + 0.2 * size) < 0.09 * size] = -800.0
    hu[size - 4:size - 2, 10:size - 10] = 100.0
    return hu


def test_mm_become_pixels_by_the_pixel_spacing():
    assert ct.mm_to_pixels(10.0, 0.5) == 20.0 and ct.mm_to_pixels(7.0, 0.7) == pytest.approx(10.0)
    assert ct.image_spacing((0.7, 0.7), "a.dcm") == (0.7, "header")
    assert ct.image_spacing(None, "a.png", 0.9, {"a.png": 0.62}) == (0.62, "table")
    assert ct.image_spacing(None, "b.png", 0.9, {"a.png": 0.62}) == (0.9, "default")
    with pytest.raises(ValueError, match="no PixelSpacing"):
        ct.image_spacing(None, "b.png")
    with pytest.raises(ValueError, match="not square"):
        ct.image_spacing((0.5, 0.7), "c.dcm")
    # a 10 mm disc at 0.5 mm per pixel is 20 px across: its area at half height is pi 10^2 pixels
    settings = ct_settings(sizes=(10.0,), contrasts=(100.0,), spacing=64, finest_spacing=0.5)
    hr = to_unit(np.zeros((64, 64)))
    out = det.insert_signals(hr, [det.Signal(32, 32, 0)], settings, spacing_mm=0.5, value_span=SPAN)
    added = to_hu(out) - to_hu(hr)
    assert np.count_nonzero(added > 50.0) == pytest.approx(np.pi * 10**2, rel=0.03)


def test_hu_disc_adds_its_contrast_inside_against_the_ring_around():
    rng = np.random.default_rng(1)
    background = 40.0 + gaussian_filter(rng.normal(size=(96, 96)), 1.0) * 20.0  # textured soft tissue
    hr = to_unit(background)
    for contrast, diameter, spacing in ((3.0, 7.0, 0.7), (14.0, 5.0, 0.6), (5.0, 10.0, 0.98)):
        settings = ct_settings(sizes=(diameter,), contrasts=(contrast,), spacing=64, finest_spacing=0.5)
        out = det.insert_signals(hr, [det.Signal(48, 47, 0)], settings, spacing_mm=spacing, value_span=SPAN)
        added = to_hu(out) - to_hu(hr)
        r = np.hypot(*(np.mgrid[0:96, 0:96] - np.array([48, 47])[:, None, None]))
        radius = ct.mm_to_pixels(diameter, spacing) / 2
        inside, ring = r < radius - settings.edge, (r > radius + settings.edge) & (r < radius + 6)
        assert added[inside].mean() - added[ring].mean() == pytest.approx(contrast, abs=1e-3)
        assert added[inside].min() == pytest.approx(contrast, abs=1e-3) and np.all(added[ring] == 0)
        # on the uniform mean of the present image, as a physicist would measure it
        present = to_hu(out)
        assert present[inside].mean() - background[inside].mean() == pytest.approx(contrast, abs=1e-3)
    with pytest.raises(ConfigError, match="HU span"):
        det.insert_signals(hr, [], settings, spacing_mm=0.7)


def test_signals_lie_only_inside_the_body_and_in_soft_tissue():
    hu = phantom_hu(0, 192)
    settings = ct_settings(sizes=(4.0, 8.0), contrasts=(10.0,), spacing=32)
    roi = settings.roi_for(8.0)
    mask = ct.signal_mask(hu, roi)
    body = ct.body_mask(hu)
    assert body[96, 96] and body[96 - 38, 96 - 38]  # the lung is inside the body (holes filled)
    assert not body[0, 0] and not body[189, 96]  # air and the table are not
    placed = []
    for r in range(5):
        rng = np.random.default_rng(r)
        placed += det.signal_positions(hu.shape, settings, rng, mask, tuple(rng.integers(0, 32, 2)) if r else (0, 0))
    assert len(placed) > 20
    half = roi // 2
    for s in placed:
        square = hu[s.y - half:s.y - half + roi, s.x - half:s.x - half + roi]
        assert body[s.y - half:s.y - half + roi, s.x - half:s.x - half + roi].all()
        assert square.shape == (roi, roi) and np.all((square >= -200) & (square <= 300))  # no lung, air or table
    # the mask is the brute-force answer, near the lung, the edge and the corner too
    for y, x in [(96, 96), (40, 96), (96, 30), (60, 60), (150, 150), (10, 10), (120, 120)]:
        within = min(y - half, x - half) >= 0 and max(y - half, x - half) + roi <= 192
        square = hu[y - half:y - half + roi, x - half:x - half + roi]
        inside = body[y - half:y - half + roi, x - half:x - half + roi].all()
        assert mask[y, x] == (within and inside and np.all((square >= -200) & (square <= 300))), (y, x)
    assert mask.any() and not mask.all()


def write_phantoms(folder: Path, count: int) -> list[Item]:
    """``count`` 128x128 16-bit PNGs of HU + 1024 (the ct-slices convention), no PixelSpacing."""
    folder.mkdir(parents=True, exist_ok=True)
    items = []
    for i in range(count):
        path = folder / f"slice{i}.png"
        Image.fromarray(np.clip(np.rint(phantom_hu(i) + 1024), 0, 65535).astype(np.uint16)).save(path)
        items.append(Item(path, path.name, "s"))
    return items


def test_ct_run_repeats_exactly_and_detects_higher_contrast_better(tmp_path):
    items = write_phantoms(tmp_path / "hr", 6)
    protocol = Protocol(scale=4, degradation="ct-sparse-view", value_range=HU_RANGE, raster_offset=1024.0)
    methods, variants, descriptions = det.build_methods([], [], protocol, leading=ct.leading_methods([0.02]))
    assert list(methods) == [ct.REFERENCE, ct.tv_name(0.02)]
    settings = ct_settings()
    result = det.run_detectability(items, protocol, methods, variants, settings, descriptions)
    assert not result.failures and result.band == {}  # scale 1: no band above an LR Nyquist
    rows = {(r["method"], r["observer"], r["contrast"]): r for r in result.rows}
    for method in (det.TRUTH, ct.REFERENCE, ct.tv_name(0.02)):
        for observer in ("cho", "npw"):
            assert rows[(method, observer, 30.0)]["auc"] > rows[(method, observer, 3.0)]["auc"]
    assert rows[(ct.REFERENCE, "cho", 30.0)]["auc"] > 0.8
    tv = rows[(ct.tv_name(0.02), "cho", 3.0)]
    assert tv["auc_vs_reference_low"] <= tv["auc_vs_reference"] <= tv["auc_vs_reference_high"]
    assert "auc_vs_bicubic" not in tv
    data = result.to_json()
    assert data["reference"] == ct.REFERENCE and data["protocol"]["value_range"] == list(HU_RANGE)
    assert all(e["pixel_spacing_from"] == "default" and e["signals"] > 0 for e in data["per_image"])
    assert sum(e["signals"] for e in data["per_image"]) == sum(rows[(det.TRUTH, "cho", c)]["signals"] for c in (3, 30))
    again = det.run_detectability(items, protocol, methods, variants, settings, descriptions)
    assert json.dumps(again.to_json(), default=str) == json.dumps(data, default=str)


def run_cli(capsys, *argv) -> tuple[int, list[str]]:
    capsys.readouterr()
    saved, sys.argv = sys.argv, ["medsr", *map(str, argv)]
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    finally:
        sys.argv = saved
    captured = capsys.readouterr()
    return code, [line for line in (captured.out + captured.err).splitlines() if line.strip()]


def test_config_errors_are_one_line(tmp_path, capsys):
    items = write_phantoms(tmp_path / "hr", 2)
    manifest = tmp_path / "m.csv"
    lines = ["path,patient_id,split,modality,width,height,channels,bit_depth,source"]
    lines += [f"hr/{it.path.name},p{i},test,OT,128,128,1,16,s" for i, it in enumerate(items)]
    manifest.write_text("\n".join(lines) + "\n")
    bad_table = tmp_path / "spacing.csv"
    bad_table.write_text("file,pixel_spacing\nslice0.png,fine\n")
    cases = [
        (["--modality", "MR"], "choose CT or CR"),
        (["--tv-weight", "0.1"], "belong to the CT task"),
        (["--modality", "CT", "--pixel-spacing", "-1"], "positive"),
        (["--modality", "CT", "--pixel-spacing", str(tmp_path / "none.csv")], "cannot read"),
        (["--modality", "CT", "--pixel-spacing", str(bad_table)], "line 2: pixel_spacing 'fine' is not a number"),
        (["--modality", "CT", "--tv-weight", "0"], "TV weight must be positive"),
        (["--modality", "CT", "--pixel-spacing", "1", "--sizes", "40"], "ROIs would overlap"),
    ]
    for extra, message in cases:
        code, out = run_cli(capsys, "detectability", "--manifest", manifest, "--bootstrap", "100", *extra)
        assert code == 2 and len(out) == 1 and message in out[0], (extra, out)
    with pytest.raises(ConfigError, match="unknown contrast unit"):
        det.DetectabilitySettings(contrast_unit="mAs")


def test_ct_card_section_names_the_fbp_reference_and_units():
    from dataclasses import replace

    from medsr.models import list_bundled_models
    from medsr.models.cards import render_markdown, small_findings_lines

    card = next(e["card"] for e in list_bundled_models() if e["name"] == "ct-sparse-view")
    findings = {"text": "Kept.", "reference": ct.REFERENCE, "size_unit": "mm", "contrast_unit": "HU",
                "protocol": "the test split", "auc": [
                    {"size": 5.0, "contrast": 7.0, "reference": [0.7, 0.65, 0.75], "model": [0.6, 0.55, 0.66],
                     "difference": [-0.1, -0.15, -0.05]}]}
    text = "\n".join(small_findings_lines(replace(card, small_findings=findings)))
    assert "| disc (mm) | contrast | sparse-view FBP | **ct-sparse-view** | model - sparse-view FBP |" in text
    assert "| 5 | 7 HU | 0.700 [0.65, 0.75] | 0.600 [0.55, 0.66] | **-0.100 [-0.150, -0.050]** |" in text
    assert "bicubic" not in text and "## Small findings" in render_markdown(replace(card, small_findings=findings))


def test_plot_draws_an_interval_that_does_not_hold_its_estimate(tmp_path):
    rows = [{"method": ct.REFERENCE, "observer": "cho", "size": 5.0, "contrast": c, "auc": 0.52, "auc_low": low,
             "auc_high": 0.69} for c, low in ((3.0, 0.53), (14.0, 0.50))]  # a skewed bootstrap: low above the AUC
    path = det.plot_rows(rows, tmp_path / "ct.png", sizes=(5.0,), contrasts=(3.0, 14.0), methods=[ct.REFERENCE],
                         size_unit="mm", contrast_unit="HU")
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_a_placement_without_room_does_not_end_the_others(tmp_path):
    hu = np.full((128, 128), -800.0)
    hu[20:62, 20:62] = 40.0  # room for a 32 px ROI centred in rows and columns 36..46 only: not on the unshifted grid
    items = []
    for name in ("a.png", "b.png"):  # two slices: the observers train on one and test on the other
        Image.fromarray(np.clip(np.rint(hu + 1024), 0, 65535).astype(np.uint16)).save(tmp_path / name)
        items.append(Item(tmp_path / name, name, "s"))
    protocol = Protocol(scale=4, degradation="ct-sparse-view", value_range=HU_RANGE, raster_offset=1024.0)
    methods, variants, descriptions = det.build_methods([], [], protocol, leading=ct.leading_methods())
    settings = ct_settings(realisations=16, contrasts=(30.0,), spacing=40)
    mask = ct.signal_mask(hu, settings.roi_for(6.0))
    assert not det.signal_positions(hu.shape, settings, np.random.default_rng(0), mask)  # the first finds none
    result = det.run_detectability(items, protocol, methods, variants, settings, descriptions)
    assert not result.failures and all(0 < count < 16 for count in result.signals)

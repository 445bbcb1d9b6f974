"""The interpolation baseline (`medsr baseline`, medsr.evaluate) against independent Pillow + scikit-image."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from typer.testing import CliRunner

from medsr import evaluate
from medsr.cli import app
from medsr.degrade.bicubic import bicubic
from medsr.io.find import expand_inputs
from medsr.io.image import MedicalImage
from medsr.protocol import Protocol
from medsr.scores import ScoreRow

DATA = Path(__file__).parent / "data"
PIL_FILTERS = {"bicubic": Image.Resampling.BICUBIC, "lanczos": Image.Resampling.LANCZOS,
               "nearest": Image.Resampling.NEAREST}
runner = CliRunner()


def xray_pngs() -> list[Path]:
    paths = sorted(DATA.glob("xray_*.png"))
    if not paths:
        pytest.skip("tests/data/xray_*.png fixtures are missing")
    return paths


def reference_scores(path: Path, scale: int, method: str, border: int) -> tuple[float, float]:
    """The protocol done independently: Pillow down/up on uint8, scikit-image metrics at peak 255."""
    hr = np.asarray(Image.open(path).convert("L"))
    h, w = hr.shape
    nh, nw = h - h % scale, w - w % scale
    top, left = (h - nh) // 2, (w - nw) // 2
    hr = hr[top:top + nh, left:left + nw]
    lr = Image.fromarray(hr).resize((nw // scale, nh // scale), Image.Resampling.BICUBIC)
    sr = np.asarray(lr.resize((nw, nh), PIL_FILTERS[method]))
    crop = (slice(border, nh - border), slice(border, nw - border))
    return (
        peak_signal_noise_ratio(hr[crop], sr[crop], data_range=255),
        structural_similarity(hr[crop], sr[crop], gaussian_weights=True, sigma=1.5,
                              use_sample_covariance=False, data_range=255),
    )


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_baseline_agrees_with_independent_computation(tmp_path: Path) -> None:
    """Done-when: `medsr baseline` on real chest X-rays within 0.02 dB PSNR and 0.001 SSIM of scikit-image."""
    paths = xray_pngs()
    out = tmp_path / "results.csv"
    result = runner.invoke(app, ["baseline", *map(str, paths), "--scale", "4", "--method", "bicubic",
                                 "--method", "lanczos", "--method", "nearest", "--out", str(out)])
    assert result.exit_code == 0, result.output
    rows = read_csv(out)
    assert len(rows) == 3 * len(paths)
    for row in rows:
        ref_psnr, ref_ssim = reference_scores(Path(row["image"]), 4, row["method"], border=4)
        assert float(row["psnr"]) == pytest.approx(ref_psnr, abs=0.02)
        assert float(row["ssim"]) == pytest.approx(ref_ssim, abs=0.001)
    # the table's means are the means of the per-image scores
    summary = {s.method: s for s in evaluate.summarize(ScoreRow.from_dict(r) for r in rows)}
    for method in ("bicubic", "lanczos", "nearest"):
        assert f"{summary[method].psnr:.2f}" in result.output
        assert f"{summary[method].ssim:.4f}" in result.output
    assert summary["nearest"].psnr < summary["bicubic"].psnr


def test_globs_and_missing_inputs_as_upscale_takes_them(tmp_path: Path) -> None:
    """One input expander for every command: a glob is expanded, an input that matches nothing is reported."""
    out = tmp_path / "rows.csv"
    result = runner.invoke(app, ["baseline", str(DATA / "xray_*.png"), str(tmp_path / "nope.png"), "-o", str(out)])
    assert result.exit_code == 1 and "nope.png: no such file or folder" in result.output
    assert [Path(row["image"]).name for row in read_csv(out)] == [p.name for p in xray_pngs()]
    result = runner.invoke(app, ["baseline", str(tmp_path / "*.png")])
    assert result.exit_code == 1 and "no files match this pattern" in result.output


def test_cli_table_and_csv(tmp_path: Path) -> None:
    paths = [*xray_pngs(), *sorted(DATA.glob("xray_*.jpg"))]
    out = tmp_path / "sub" / "scores.csv"
    result = runner.invoke(app, ["baseline", *map(str, paths), "-s", "2", "--border", "3", "-o", str(out)])
    assert result.exit_code == 0, result.output
    for header in ("method", "images", "PSNR", "SSIM"):
        assert header in result.output
    assert "bicubic" in result.output and str(len(paths)) in result.output
    with out.open(newline="") as handle:
        assert next(csv.reader(handle)) == ["image", "source", "method", "scale", "psnr", "ssim"]
    rows = read_csv(out)
    assert [row["image"] for row in rows] == [str(p) for p in paths]
    assert {row["method"] for row in rows} == {"bicubic"} and {row["scale"] for row in rows} == {"2"}
    png = rows[0]
    ref_psnr, _ = reference_scores(Path(png["image"]), 2, "bicubic", border=3)
    assert float(png["psnr"]) == pytest.approx(ref_psnr, abs=0.02)


def test_folder_with_corrupt_file_scores_the_rest(tmp_path: Path) -> None:
    good = xray_pngs()[:2]
    (tmp_path / "nested").mkdir()
    shutil.copy(good[0], tmp_path / good[0].name)
    shutil.copy(good[1], tmp_path / "nested" / good[1].name)
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not an image" * 10)
    (tmp_path / "notes.txt").write_text("not an image, not scanned")
    out = tmp_path / "scores.csv"
    result = runner.invoke(app, ["baseline", str(tmp_path), "--out", str(out)])
    assert result.exit_code == 1, result.output
    assert "broken.png" in result.output and "1 file(s) failed" in result.output
    assert "notes.txt" not in result.output
    rows = read_csv(out)
    assert sorted(Path(r["image"]).name for r in rows) == sorted(p.name for p in good)


def test_unknown_method_is_a_usage_error() -> None:
    result = runner.invoke(app, ["baseline", str(DATA), "--method", "magic"])
    assert result.exit_code == 2
    assert "magic" in result.output


def test_bicubic_degradation_equals_pillow() -> None:
    for path in xray_pngs():
        hr = np.asarray(Image.open(path).convert("L"))[:200, :240]
        expected = np.asarray(Image.fromarray(hr).resize((60, 50), Image.Resampling.BICUBIC))
        lr = bicubic(hr[..., None].astype(np.float32) / 255.0, 4, bit_depth=8)
        np.testing.assert_array_equal(np.rint(lr[..., 0] * 255).astype(np.uint8), expected)
    rgb = np.random.default_rng(0).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    expected = np.asarray(Image.fromarray(rgb, "RGB").resize((8, 6), Image.Resampling.BICUBIC))
    np.testing.assert_array_equal(np.rint(bicubic(rgb / 255.0, 4) * 255).astype(np.uint8), expected)


def test_expand_inputs_finds_images_and_keeps_named_files(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / ".hidden").mkdir()
    for name in ("a/x.PNG", "a/b/y.tif", "a/b/z.jpeg", "notes.txt", ".hidden/w.png", "a/.v.png"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "a" / "IM0001").write_bytes(b"\0" * 128 + b"DICM" + b"\0" * 16)
    (tmp_path / "a" / "README").write_bytes(b"plain text, no preamble")
    explicit = tmp_path / "notes.txt"
    found, failures = expand_inputs([tmp_path, explicit, tmp_path / "a" / "x.PNG"])
    rel = [item.path.relative_to(tmp_path).as_posix() for item in found]
    assert rel == ["a/IM0001", "a/b/y.tif", "a/b/z.jpeg", "a/x.PNG", "notes.txt"]
    assert [item.key for item in found] == rel and not failures  # named below the folder they were found in
    missing = tmp_path / "missing.png"
    assert expand_inputs([missing]) == ([], [(str(missing), "no such file or folder")])


def test_sixteen_bit_outputs_are_quantised_and_scored_on_their_scale() -> None:
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:64, 0:72]
    smooth = 30000 + 20000 * np.sin(xx / 5.0) * np.cos(yy / 7.0)
    stored = np.clip(smooth + rng.normal(0, 500, xx.shape), 0, 65535)
    stored = np.rint(stored).astype(np.uint16)
    image = MedicalImage(pixels=(stored / 65535.0).astype(np.float32)[..., None], format="png", bit_depth=16,
                         value_range=(0.0, 65535.0), path="sixteen.png")
    outputs: dict[str, np.ndarray] = {}
    protocol = Protocol(scale=4)
    pair = protocol.pair(image, "sixteen.png")
    rows = protocol.run(pair, protocol.baselines(["bicubic", "nearest"], pair), outputs.__setitem__)
    assert [r.method for r in rows] == ["bicubic", "nearest"]
    for row in rows:
        sr = outputs[row.method][..., 0].astype(np.float64) * 65535
        np.testing.assert_allclose(sr, np.rint(sr), atol=1e-2)  # whole 16-bit steps
        sr16 = np.rint(sr).astype(np.uint16)
        crop = (slice(4, -4), slice(4, -4))
        assert row.psnr == pytest.approx(
            peak_signal_noise_ratio(stored[crop], sr16[crop], data_range=65535), abs=1e-3)
        assert row.ssim == pytest.approx(structural_similarity(
            stored[crop], sr16[crop], gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
            data_range=65535), abs=1e-4)
        assert row.seconds >= 0 and row.scale == 4


def test_protocol_pair_crops_and_takes_first_frame(tmp_path: Path) -> None:
    frames = np.random.default_rng(2).integers(0, 256, (3, 50, 45, 3)).astype(np.float32) / 255
    image = MedicalImage(pixels=frames, format="dicom", bit_depth=8, value_range=(0.0, 255.0))
    pair = Protocol(scale=4).pair(image)
    assert pair.hr.shape == (48, 44, 3) and pair.lr.shape == (12, 11, 3)
    np.testing.assert_array_equal(pair.hr, frames[0, 1:49, 0:44])
    # 16x16 leaves 8x8 after the border crop: too small for SSIM, reported as a failure, not a crash
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(tmp_path / "tiny.png")
    failures: list[tuple[str, str]] = []
    rows = evaluate.score_baselines(expand_inputs([tmp_path])[0], Protocol(scale=4), ["bicubic"], failures)
    assert rows == [] and len(failures) == 1 and "11x11" in failures[0][1]


def test_write_csv_and_summarize(tmp_path: Path) -> None:
    rows = [
        ScoreRow(image="a.png", method="bicubic", scale=4, psnr=30.0, ssim=0.8, seconds=0.1),
        ScoreRow(image="b.png", method="bicubic", scale=4, psnr=20.0, ssim=0.6, seconds=0.3),
        ScoreRow(image="a.png", method="nearest", scale=4, psnr=25.0, ssim=0.7, seconds=0.2),
    ]
    path = evaluate.write_csv(rows, tmp_path / "deep" / "r.csv")
    back = read_csv(path)
    assert list(back[0]) == ["image", "source", "method", "scale", "psnr", "ssim"]
    assert [float(r["psnr"]) for r in back] == [30.0, 20.0, 25.0]
    summary = evaluate.summarize(rows)
    assert [s.method for s in summary] == ["bicubic", "nearest"]
    assert summary[0].images == 2
    assert summary[0].psnr == pytest.approx(25.0) and summary[0].seconds == pytest.approx(0.2)

"""`medsr evaluate` / medsr.evaluate.evaluate_model against independent Pillow + torch + scikit-image results.

The test model is a Swift-SRGAN generator with a global (bicubic) skip whose residual head starts at zero: its
output is torch's bicubic interpolation of the LR input, so its expected scores can be computed here without
medsr (Pillow bicubic downscale, ``torch.nn.functional.interpolate``, scikit-image metrics).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from typer.testing import CliRunner

from medsr import evaluate
from medsr.cli import app
from medsr.errors import ConfigError
from medsr.infer import InferenceSettings
from medsr.models import build_generator, save_model
from medsr.protocol import Protocol

DATA = Path(__file__).parent / "data"
PUBLISHED = Path(__file__).resolve().parents[2] / "shared" / "peers" / "published-swift-srgan-xray-4x.pth.tar"
runner = CliRunner()


def xray_pngs() -> list[Path]:
    paths = sorted(DATA.glob("xray_*.png"))
    if len(paths) < 3:
        pytest.skip("tests/data/xray_*.png fixtures are missing")
    return paths


def centre_crop(array: np.ndarray, height: int, width: int) -> np.ndarray:
    top, left = (array.shape[0] - height) // 2, (array.shape[1] - width) // 2
    return array[top:top + height, left:left + width]


def small_crops(folder: Path, size: tuple[int, int] = (90, 102)) -> list[Path]:
    """Small 8-bit crops of the chest X-ray fixtures (sizes not multiples of 4, to exercise the crop)."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for path in xray_pngs():
        pixels = centre_crop(np.asarray(Image.open(path).convert("L")), *size)
        target = folder / path.name
        Image.fromarray(pixels).save(target)
        out.append(target)
    return out


def zero_residual_model(in_channels: int = 1) -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_generator("swift-srgan", in_channels=in_channels, scale=4, global_skip=True,
                            num_channels=8, num_blocks=1)
    return model.eval()


def saved_model(tmp_path: Path, in_channels: int = 1) -> Path:
    return save_model(zero_residual_model(in_channels), tmp_path / "tiny.safetensors", {"note": "test"})


def expected(hr_full: np.ndarray, scale: int = 4, border: int = 4) -> dict[str, object]:
    """The protocol done independently for the zero-residual model and for Pillow bicubic, 8-bit."""
    h, w = hr_full.shape
    hr = centre_crop(hr_full, h - h % scale, w - w % scale)
    nh, nw = hr.shape
    lr = Image.fromarray(hr).resize((nw // scale, nh // scale), Image.Resampling.BICUBIC)
    lr_t = torch.from_numpy(np.asarray(lr, dtype=np.float32) / 255.0)[None, None]
    up = F.interpolate(lr_t, size=(nh, nw), mode="bicubic", align_corners=False).clamp(0, 1)
    model_sr = np.rint(up[0, 0].numpy() * 255).astype(np.uint8)
    bicubic_sr = np.asarray(lr.resize((nw, nh), Image.Resampling.BICUBIC))
    crop = (slice(border, nh - border), slice(border, nw - border))

    def scores(sr: np.ndarray) -> tuple[float, float]:
        return (peak_signal_noise_ratio(hr[crop], sr[crop], data_range=255),
                structural_similarity(hr[crop], sr[crop], gaussian_weights=True, sigma=1.5,
                                      use_sample_covariance=False, data_range=255))

    return {"hr": hr, "model_sr": model_sr, "model": scores(model_sr), "bicubic": scores(bicubic_sr)}


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_zero_residual_model_scores_as_torch_bicubic(tmp_path: Path) -> None:
    """Table, CSV, JSON and saved images of a run, each checked against the independent computation."""
    images = small_crops(tmp_path / "hr")[:2]
    model = saved_model(tmp_path)
    out, summary, saved = tmp_path / "r.csv", tmp_path / "s.json", tmp_path / "saved"
    result = runner.invoke(app, ["evaluate", *map(str, images), "--model", str(model), "--out", str(out),
                                 "--json", str(summary), "--save-images", str(saved), "--device", "cpu"])
    assert result.exit_code == 0, result.output

    with out.open(newline="") as handle:
        assert next(csv.reader(handle)) == ["image", "source", "method", "scale", "psnr", "ssim", "seconds"]
    rows = read_csv(out)
    assert [(Path(r["image"]).name, r["method"]) for r in rows] == [
        (p.name, m) for p in images for m in ("tiny.safetensors", "bicubic", "lanczos")]
    assert {r["scale"] for r in rows} == {"4"} and all(float(r["seconds"]) >= 0 for r in rows)
    for row in rows:
        ref = expected(np.asarray(Image.open(row["image"])))
        if row["method"] == "lanczos":
            continue
        want_psnr, want_ssim = ref["model" if row["method"] == "tiny.safetensors" else "bicubic"]
        assert float(row["psnr"]) == pytest.approx(want_psnr, abs=0.01)
        assert float(row["ssim"]) == pytest.approx(want_ssim, abs=1e-3)
    # torch bicubic (a = -0.75) and Pillow bicubic (a = -0.5) are different methods: the rows must differ
    model_rows = [r for r in rows if r["method"] == "tiny.safetensors"]
    bicubic_rows = [r for r in rows if r["method"] == "bicubic"]
    assert all(m["psnr"] != b["psnr"] for m, b in zip(model_rows, bicubic_rows, strict=True))

    data = json.loads(summary.read_text())
    assert data["images"] == 2 and data["scale"] == 4 and data["border"] == 4
    assert data["degradation"] == "bicubic" and data["failures"] == []
    assert data["model"]["path"] == str(model.absolute()) and data["model"]["arch"] == "swift-srgan"
    assert data["arguments"]["model"] == str(model) and data["arguments"]["baselines"] == "bicubic,lanczos"
    assert list(data["methods"]) == ["tiny.safetensors", "bicubic", "lanczos"]
    for method, means in data["methods"].items():
        mine = [r for r in rows if r["method"] == method]
        assert means["images"] == 2
        assert means["psnr"] == pytest.approx(np.mean([float(r["psnr"]) for r in mine]))
        assert means["ssim"] == pytest.approx(np.mean([float(r["ssim"]) for r in mine]))
        assert f"{means['psnr']:.2f}" in result.output and f"{means['ssim']:.4f}" in result.output
    for header in ("method", "images", "PSNR", "SSIM", "s / image"):
        assert header in result.output

    for image in images:
        ref = expected(np.asarray(Image.open(image)))
        for method in ("tiny.safetensors", "bicubic", "lanczos"):
            written = Image.open(saved / method / image.name)
            assert written.mode == "L" and written.size == (100, 88)
        model_out = np.asarray(Image.open(saved / "tiny.safetensors" / image.name)).astype(int)
        diff = np.abs(model_out - ref["model_sr"].astype(int))
        assert diff.max() <= 1 and np.mean(diff > 0) < 1e-3


def test_api_module_gray_into_rgb_model_with_max_size() -> None:
    """A 3-channel model on a grayscale image (replicate, then mean) and --max-size's centre crop."""
    path = xray_pngs()[0]
    result = evaluate.evaluate_model(zero_residual_model(in_channels=3), [path], Protocol(scale=None, max_size=96),
                                     InferenceSettings(device="cpu"), baselines=())
    assert result.failures == [] and result.scale == 4 and result.model_scale == (4, 4)
    assert [r.method for r in result.rows] == ["swift-srgan"]
    ref = expected(centre_crop(np.asarray(Image.open(path).convert("L")), 96, 96))
    assert result.rows[0].psnr == pytest.approx(ref["model"][0], abs=0.01)
    assert result.rows[0].ssim == pytest.approx(ref["model"][1], abs=1e-3)
    assert result.n_images == 1 and result.summary[0].images == 1


def test_manifest_split_selection(tmp_path: Path) -> None:
    images = small_crops(tmp_path / "data" / "hr")
    manifest = tmp_path / "data" / "m.csv"
    splits = ["test", "train", "test"]
    with manifest.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "patient_id", "split", "modality", "width", "height", "channels",
                         "bit_depth"])
        for i, (path, split) in enumerate(zip(images, splits, strict=True)):
            writer.writerow([f"hr/{path.name}", f"p{i}", split, "CR", 102, 90, 1, 8])
    out = tmp_path / "r.csv"
    model = saved_model(tmp_path)
    result = runner.invoke(app, ["evaluate", "--model", str(model), "--manifest", str(manifest),
                                 "--split", "test", "--baselines", "bicubic", "-o", str(out)])
    assert result.exit_code == 0, result.output
    rows = read_csv(out)
    chosen = [p for p, s in zip(images, splits, strict=True) if s == "test"]
    assert sorted({Path(r["image"]).resolve() for r in rows}) == sorted(p.resolve() for p in chosen)
    assert len(rows) == 2 * len(chosen)

    base = ["evaluate", "--model", str(model), "--manifest", str(manifest)]
    empty = runner.invoke(app, [*base, "--split", "val"])
    assert empty.exit_code == 2 and "no images" in empty.output
    both = runner.invoke(app, [*base, str(images[0])])
    assert both.exit_code == 2


def test_corrupt_file_is_named_and_the_rest_scored(tmp_path: Path) -> None:
    folder = tmp_path / "hr"
    good = small_crops(folder)[:1]
    for other in set(folder.iterdir()) - set(good):
        other.unlink()
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a PNG" * 8)
    out = tmp_path / "r.csv"
    model = saved_model(tmp_path)
    result = runner.invoke(app, ["evaluate", str(folder), "--model", str(model), "-o", str(out)])
    assert result.exit_code == 1, result.output
    assert "broken.png" in result.output and "1 file(s) failed" in result.output
    assert {Path(r["image"]).name for r in read_csv(out)} == {good[0].name}


def test_sixteen_bit_outputs_saved_at_sixteen_bits(tmp_path: Path) -> None:
    """A 16-bit PNG gives 16-bit PNG outputs whose scores are the CSV's (what is scored is what is kept)."""
    hr8 = centre_crop(np.asarray(Image.open(xray_pngs()[1]).convert("L")), 64, 64).astype(np.uint16)
    hr16 = hr8 * 257 + np.random.default_rng(0).integers(0, 200, hr8.shape).astype(np.uint16)
    source = tmp_path / "sixteen.png"
    Image.fromarray(hr16).save(source)
    out, saved = tmp_path / "r.csv", tmp_path / "saved"
    model = saved_model(tmp_path)
    result = runner.invoke(app, ["evaluate", str(source), "--model", str(model), "-o", str(out),
                                 "--save-images", str(saved), "--baselines", "nearest"])
    assert result.exit_code == 0, result.output
    for row in read_csv(out):
        sr = np.asarray(Image.open(saved / row["method"] / "sixteen.png"))
        assert sr.dtype == np.uint16 and sr.shape == (64, 64)
        crop = (slice(4, -4), slice(4, -4))
        assert float(row["psnr"]) == pytest.approx(
            peak_signal_noise_ratio(hr16[crop], sr[crop], data_range=65535), abs=1e-3)


def test_scale_and_baseline_errors(tmp_path: Path) -> None:
    images = small_crops(tmp_path / "hr")[:1]
    model = saved_model(tmp_path)
    wrong = runner.invoke(app, ["evaluate", str(images[0]), "--model", str(model), "--scale", "2"])
    assert isinstance(wrong.exception, ConfigError) and "x4x4" in str(wrong.exception)
    unknown = runner.invoke(app, ["evaluate", str(images[0]), "--model", str(model), "--baselines", "magic"])
    assert unknown.exit_code == 2 and "magic" in unknown.output
    with pytest.raises(ConfigError, match="pass --scale"):
        Protocol(scale=None, degradation="ct-sparse-view").for_model((1, 1))
    assert Protocol(scale=None, degradation="ultrasound").for_model((1, 4)).scale == 4


@pytest.mark.skipif(not PUBLISHED.is_file(), reason="../shared/peers checkpoint not available")
def test_published_swift_srgan_beats_bicubic(tmp_path: Path) -> None:
    """Done-when: the reference Swift-SRGAN checkpoint (3-channel, x4) beats bicubic on a chest X-ray."""
    fixture = DATA / "xray_b343e657.png"
    if not fixture.is_file():
        pytest.skip("tests/data/xray_b343e657.png is missing")
    out = tmp_path / "r.csv"
    result = runner.invoke(app, ["evaluate", "--model", str(PUBLISHED), str(fixture), "--max-size", "256",
                                 "-o", str(out)])
    assert result.exit_code == 0, result.output
    scores = {r["method"]: float(r["psnr"]) for r in read_csv(out)}
    assert set(scores) == {PUBLISHED.name, "bicubic", "lanczos"}
    assert scores[PUBLISHED.name] > scores["bicubic"] + 0.1
    assert scores[PUBLISHED.name] > scores["lanczos"]


def test_bf16_precision_is_scored_close_to_fp32_but_not_identical() -> None:
    """``precision="bf16"`` really runs the reduced-precision path, and its cost is small."""
    torch.manual_seed(1)
    model = build_generator("swift-srgan", in_channels=1, scale=4, num_channels=8, num_blocks=1).eval()
    path = xray_pngs()[0]
    fp32, bf16 = (evaluate.evaluate_model(model, [path], Protocol(scale=None, max_size=96),
                                          InferenceSettings(device="cpu", precision=precision), baselines=()).rows[0]
                  for precision in ("fp32", "bf16"))
    assert fp32.psnr != bf16.psnr
    assert abs(fp32.psnr - bf16.psnr) < 0.5

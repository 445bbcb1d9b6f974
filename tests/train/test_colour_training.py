"""The colour (endoscopy) path end to end: `medsr train --in-channels 3 --degradation endoscopy` with a
VGG19 content loss read from a local file, on small synthetic RGB frames the test writes."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from scipy.ndimage import gaussian_filter
from typer.testing import CliRunner

import medsr
from medsr.cli import app
from medsr.models import load_model

COLUMNS = ("path", "patient_id", "split", "modality", "width", "height", "channels", "bit_depth")


def _colour_frames(folder: Path, n_train: int = 4, n_val: int = 2, size: int = 48) -> Path:
    """Smooth RGB frames (a reddish mucosa-like field with darker folds) and a manifest naming them."""
    rng = np.random.default_rng(0)
    tint = np.array([0.85, 0.45, 0.35])  # each channel differs, so a grey-only model would score badly
    rows = []
    for i in range(n_train + n_val):
        shade = gaussian_filter(rng.random((size, size)), 3.0)
        shade = (shade - shade.min()) / (shade.max() - shade.min())
        detail = gaussian_filter(rng.random((size, size, 3)), (1.5, 1.5, 0))
        image = np.clip(0.25 + 0.6 * shade[..., None] * tint + 0.3 * (detail - 0.5), 0, 1)
        name = f"frame{i}.png"
        Image.fromarray(np.uint8(np.rint(image * 255)), "RGB").save(folder / name)
        rows.append([name, f"p{i}", "train" if i < n_train else "val", "ES", size, size, 3, 8])
    manifest = folder / "manifest.csv"
    with manifest.open("w", newline="") as handle:
        csv.writer(handle).writerows([COLUMNS, *rows])
    return manifest


def _vgg19_features(path: Path) -> Path:
    """A random VGG19 ``features`` state dict (~80 MB), standing in for torchvision's ImageNet file."""
    from torchvision.models import vgg19

    torch.manual_seed(0)
    torch.save(vgg19(weights=None).features.state_dict(), path)
    return path


def test_srgan_trains_on_colour_endoscopy_frames_with_a_local_vgg19_file(tmp_path):
    manifest = _colour_frames(tmp_path)
    weights = _vgg19_features(tmp_path / "vgg19_features.pth")
    out = tmp_path / "run"
    # settings without a flag go in the YAML file; the README's command line gives the rest
    (tmp_path / "colour.yaml").write_text("content_network: vgg19\ntensorboard: false\nsample_images: 1\n")
    result = CliRunner().invoke(app, [
        "train", "--config", str(tmp_path / "colour.yaml"), "--manifest", str(manifest), "--out", str(out),
        "--model", "srgan", "--in-channels", "3", "--degradation", "endoscopy", "--scale", "4",
        "--stage", "both", "--epochs", "1", "--gan-epochs", "1", "--content-weights", str(weights),
        "--patch-size", "32", "--patches-per-image", "1", "--batch-size", "2", "--num-workers", "0", "--threads", "1",
    ])
    assert result.exit_code == 0, result.output

    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert [r["stage"] for r in rows] == ["pretrain", "gan"]
    gan = rows[1]
    for key in ("loss_content", "loss_adversarial", "loss_d"):
        assert gan[key] != "" and np.isfinite(float(gan[key])), key
    assert float(gan["val_psnr"]) > 10 and float(gan["bicubic_psnr"]) > 10

    model = load_model(out / "checkpoints" / "best.safetensors")
    assert model.in_channels == 3 and tuple(model.scale) == (4, 4)
    config = model.meta["training"]["config"]
    assert config["content_network"] == "vgg19" and config["content_weights"] == str(weights)
    sr = medsr.upscale(tmp_path / "frame5.png", out / "checkpoints" / "best.safetensors")
    assert sr.pixels.shape == (48 * 4, 48 * 4, 3)

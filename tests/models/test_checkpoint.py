"""medsr's checkpoint format, the reference Swift-SRGAN format, and the errors for bad files."""

from __future__ import annotations

import json
import pathlib
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from medsr.errors import CheckpointError
from medsr.models import (
    adapt_channels,
    build_discriminator,
    build_generator,
    list_bundled_models,
    load_model,
    registry,
    save_model,
)

PEER = Path(__file__).resolve().parents[3] / "shared" / "peers" / "published-swift-srgan-xray-4x.pth.tar"
DATA = Path(__file__).parents[1] / "data"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _tiny(arch="swift-srgan", **kw):
    torch.manual_seed(0)
    g = build_generator(arch, num_blocks=2, num_channels=8, **kw)
    # make BatchNorm statistics non-trivial so a round trip that lost buffers would show
    g.train()
    with torch.no_grad():
        g(torch.rand(2, g.in_channels, 12, 12))
    return g.eval()


@pytest.mark.parametrize(
    "arch, kw",
    [
        ("swift-srgan", {"in_channels": 1, "scale": 2, "global_skip": True}),
        ("srresnet", {"in_channels": 3, "scale": (1, 4)}),
        ("srgan", {"in_channels": 1, "scale": 3}),
    ],
)
def test_round_trip_gives_identical_outputs_and_meta(tmp_path, arch, kw):
    g = _tiny(arch, **kw)
    meta = {"training": {"data": "chest-xray", "epochs": 2}, "metrics": {"val_psnr": np.float32(31.5)}}
    path = save_model(g, tmp_path / "m.safetensors", meta)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]  # no temp file left
    loaded = load_model(path)
    assert not loaded.training
    assert loaded.scale == g.scale and loaded.in_channels == g.in_channels
    x = torch.rand(1, g.in_channels, 10, 13)
    with torch.no_grad():
        assert torch.equal(loaded(x), g(x))
    assert loaded.meta["arch"] == arch
    assert loaded.meta["arch_args"]["num_blocks"] == 2
    assert loaded.meta["scale"] == list(g.scale)
    assert loaded.meta["training"] == meta["training"]
    assert loaded.meta["metrics"]["val_psnr"] == pytest.approx(31.5)
    assert "[0,1]" in loaded.meta["intensity"]
    # the header is plain safetensors metadata that other tools can read
    with safe_open(str(path), framework="pt") as f:
        assert json.loads(f.metadata()["medsr"])["arch"] == arch


def test_save_overwrites_atomically_and_keeps_the_suffix_free(tmp_path):
    g = _tiny()
    path = tmp_path / "netG_4x_epoch1"
    save_model(g, path, {"epoch": 1})
    save_model(g, path, {"epoch": 2})
    assert [p.name for p in tmp_path.iterdir()] == ["netG_4x_epoch1"]
    assert load_model(path).meta["epoch"] == 2


def test_discriminator_round_trip(tmp_path):
    d = build_discriminator("swift-srgan", in_channels=1, features=(8, 8, 16, 16))
    save_model(d, tmp_path / "d.safetensors", {})
    loaded = load_model(tmp_path / "d.safetensors")
    x = torch.rand(2, 1, 32, 32)
    d.eval()
    with torch.no_grad():
        assert torch.equal(loaded(x), d(x))
    assert loaded.meta["kind"] == "discriminator"


def _rewrite(path: Path, change) -> None:
    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata()
    tensors = load_file(str(path))
    change(tensors)
    save_file(tensors, str(path), metadata=metadata)


def test_wrong_key_raises_checkpoint_error(tmp_path):
    path = save_model(_tiny(), tmp_path / "m.safetensors", {})
    _rewrite(
        path, lambda t: t.__setitem__("residual.0.block1.bn.gamma", t.pop("residual.0.block1.bn.weight"))
    )
    with pytest.raises(CheckpointError, match=r"missing keys: residual\.0\.block1\.bn\.weight") as e:
        load_model(path)
    assert "unexpected keys: residual.0.block1.bn.gamma" in str(e.value)
    assert str(path) in str(e.value)


def test_wrong_shape_raises_checkpoint_error(tmp_path):
    path = save_model(_tiny(), tmp_path / "m.safetensors", {})
    _rewrite(path, lambda t: t.__setitem__("initial.act.weight", torch.zeros(3)))
    with pytest.raises(CheckpointError, match=r"wrong shapes: initial\.act\.weight \(3,\) != \(8,\)"):
        load_model(path)


def test_bad_files_raise_checkpoint_error(tmp_path):
    with pytest.raises(CheckpointError, match="no such file"):
        load_model(tmp_path / "absent.safetensors")
    text = tmp_path / "notes.pth"
    text.write_text("hello, I am not a checkpoint")
    with pytest.raises(CheckpointError, match="not a checkpoint"):
        load_model(text)
    plain = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(2)}, str(plain))
    with pytest.raises(CheckpointError, match="without a medsr header"):
        load_model(plain)
    truncated = tmp_path / "cut.safetensors"
    truncated.write_bytes(save_model(_tiny(), tmp_path / "ok.safetensors", {}).read_bytes()[:2000])
    with pytest.raises(CheckpointError):
        load_model(truncated)
    other = tmp_path / "other.pth"
    torch.save({"model": {"conv.weight": torch.zeros(1)}}, other)
    with pytest.raises(CheckpointError, match="unknown checkpoint layout"):
        load_model(other)


class _Touch:
    """A pickle that creates a file when unpickled without weights_only."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


def test_arbitrary_pickles_are_never_executed(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth.tar"
    torch.save({"model": _Touch(marker)}, path)
    with pytest.raises(CheckpointError, match="weights_only"):
        load_model(path)
    assert not marker.exists()


def _as_reference(g) -> dict[str, torch.Tensor]:
    """A medsr swift-srgan state dict in the reference layout: plus its unused PReLU weights."""
    sd = dict(g.state_dict())
    width = sd["initial.act.weight"].shape[0]
    for i in range(len(g.residual)):
        sd[f"residual.{i}.block2.act.weight"] = torch.full((width,), 0.25)
    sd["convblock.act.weight"] = torch.full((width,), 0.25)
    return sd


@pytest.mark.parametrize("in_channels, scale", [(1, 2), (3, 4), (1, 8), (3, 3)])
def test_reference_format_is_converted(tmp_path, in_channels, scale):
    g = _tiny(in_channels=in_channels, scale=scale)
    path = tmp_path / f"netG_{scale}x.pth.tar"
    torch.save({"model": _as_reference(g)}, path)
    loaded = load_model(path)
    assert loaded.in_channels == in_channels and loaded.scale == (scale, scale)
    assert loaded.meta["arch"] == "swift-srgan" and loaded.meta["source"]["format"] == "swift-srgan-reference"
    assert loaded.meta["arch_args"]["num_blocks"] == 2 and loaded.meta["arch_args"]["num_channels"] == 8
    x = torch.rand(1, in_channels, 7, 9)
    with torch.no_grad():
        assert torch.equal(loaded(x), g(x))


def test_reference_conversion_is_strict(tmp_path):
    sd = _as_reference(_tiny(in_channels=1, scale=2))
    missing = dict(sd)
    del missing["residual.1.block1.bn.running_var"]
    torch.save({"model": missing}, tmp_path / "missing.pth.tar")
    with pytest.raises(CheckpointError, match=r"missing keys: residual\.1\.block1\.bn\.running_var"):
        load_model(tmp_path / "missing.pth.tar")
    extra = dict(sd, **{"residual.0.block1.cnn.extra.weight": torch.zeros(1)})
    torch.save({"model": extra}, tmp_path / "extra.pth.tar")
    with pytest.raises(CheckpointError, match=r"unexpected keys: residual\.0\.block1\.cnn\.extra\.weight"):
        load_model(tmp_path / "extra.pth.tar")
    bad_up = dict(sd, **{"upsampler.0.conv.pointwise.weight": torch.zeros(20, 8, 1, 1)})
    torch.save({"model": bad_up}, tmp_path / "bad_up.pth.tar")
    with pytest.raises(CheckpointError, match="upsampler.0.conv.pointwise.weight"):
        load_model(tmp_path / "bad_up.pth.tar")


def test_training_state_file_loads_its_generator(tmp_path):
    g = _tiny(in_channels=1, scale=2, global_skip=True)
    path = tmp_path / "state.pt"
    torch.save({"medsr": registry.model_header(g, {"epoch": 3}), "model": g.state_dict(), "step": 7}, path)
    loaded = load_model(path)
    assert loaded.meta["epoch"] == 3 and loaded.global_skip
    x = torch.rand(1, 1, 6, 6)
    with torch.no_grad():
        assert torch.equal(loaded(x), g(x))


def test_bundled_models_are_found_by_name(tmp_path, monkeypatch):
    import dataclasses

    from medsr.models.cards import read_card, sha256_of, write_card

    real_card = read_card(registry._weights_dir() / "xray-x4.yaml")
    monkeypatch.setattr(registry, "_weights_dir", lambda: tmp_path)
    assert list_bundled_models() == []
    with pytest.raises(CheckpointError, match=r"bundled: none"):
        load_model("xray-x4")
    save_model(_tiny(), tmp_path / "xray-x4.safetensors", {"card": "demo"})
    card = dataclasses.replace(real_card, sha256=sha256_of(tmp_path / "xray-x4.safetensors"))
    write_card(card, tmp_path / "xray-x4.yaml")
    [entry] = list_bundled_models()
    assert entry["name"] == "xray-x4" and entry["card"] == card and entry["card"].path == tmp_path / "xray-x4.yaml"
    assert load_model("xray-x4").meta["card"] == "demo"


def test_bundled_listing_works_on_the_installed_package():
    assert isinstance(list_bundled_models(), list)


# --- the published peer checkpoint (skipped without ../shared) ----------------------------------------------


@pytest.fixture(scope="module")
def peer_model():
    if not PEER.exists():
        pytest.skip(f"{PEER} not available")
    return load_model(PEER)


def test_peer_checkpoint_loads_strictly(peer_model):
    assert peer_model.in_channels == 3 and peer_model.scale == (4, 4)
    assert not peer_model.global_skip and not peer_model.training
    ref = torch.load(PEER, map_location="cpu", weights_only=True)["model"]
    assert len(ref) == 283
    used = {
        k: v for k, v in ref.items() if not (k.endswith("block2.act.weight") or k == "convblock.act.weight")
    }
    assert len(used) == 266
    ours = peer_model.state_dict()
    assert set(ours) == set(used)
    assert all(torch.equal(ours[k], v) for k, v in used.items())


def test_peer_checkpoint_beats_bicubic_on_chest_xrays(peer_model):
    from PIL import Image
    from skimage.metrics import peak_signal_noise_ratio

    files = sorted(DATA.glob("xray_*.png"))[:2]
    if not files:
        pytest.skip("chest X-ray fixtures tests/data/xray_*.png not available")
    border, size = 4, 256
    for f in files:
        img = Image.open(f).convert("L")
        left, top = (img.width - size) // 2, (img.height - size) // 2
        hr = img.crop((left, top, left + size, top + size))
        lr = hr.resize((size // 4, size // 4), Image.BICUBIC)
        baseline = np.asarray(lr.resize((size, size), Image.BICUBIC))
        x = torch.from_numpy(np.asarray(lr, dtype=np.float32) / 255)[None, None]
        with torch.no_grad():
            sr = adapt_channels(peer_model, x)[0, 0].numpy()
        sr8 = np.round(np.clip(sr, 0, 1) * 255).astype(np.uint8)
        crop = (slice(border, -border), slice(border, -border))
        hr8 = np.asarray(hr)
        psnr_model = peak_signal_noise_ratio(hr8[crop], sr8[crop], data_range=255)
        psnr_bicubic = peak_signal_noise_ratio(hr8[crop], baseline[crop], data_range=255)
        assert psnr_model > psnr_bicubic, f"{f.name}: {psnr_model:.2f} dB <= bicubic {psnr_bicubic:.2f} dB"

"""BatchNorm folding, ONNX export and the ONNX Runtime backend."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from medsr.cli import app
from medsr.infer import InferenceSettings, export_onnx, fold_batchnorm, upscale_array
from medsr.models import build_generator, save_model

torch.set_num_threads(1)


def calibrated(arch: str, *, scale=4, in_channels: int = 1, global_skip: bool = False) -> nn.Module:
    """A generator whose BatchNorms hold statistics measured on data and random affine parameters.

    Folding must reproduce each BatchNorm's normalisation exactly, so the statistics must not be the trivial
    initial ones (mean 0, variance 1); measured statistics give unit-variance features as in a trained net.
    """
    torch.manual_seed(0)
    model = build_generator(arch, in_channels=in_channels, scale=scale, global_skip=global_skip)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = None
            m.reset_running_stats()
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.3, 0.3)
    if global_skip:
        last = [m for m in model.final_conv.modules() if isinstance(m, nn.Conv2d)][-1]
        nn.init.normal_(last.weight, std=0.02)
    model.train()
    with torch.no_grad():
        model(batch(2, in_channels, 48, 48, seed=99))
    model.eval()
    assert any(float(m.running_var.min()) < 0.5 for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    return model


def batch(n: int, c: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, c, h, w, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize(
    ("arch", "scale", "global_skip"), [("swift-srgan", 4, False), ("srresnet", 2, True), ("srgan", (1, 4), False)]
)
def test_fold_batchnorm_is_equivalent_and_removes_every_batchnorm(arch, scale, global_skip) -> None:
    model = calibrated(arch, scale=scale, global_skip=global_skip)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    folded = fold_batchnorm(model)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert folded.folded_batchnorms == sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert folded.scale == model.scale and folded.in_channels == model.in_channels
    x = batch(2, 1, 23, 19)
    with torch.no_grad():
        expected, got = model(x), folded(x)
    assert got.shape == expected.shape
    assert (got - expected).abs().max().item() < 1e-5
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # the original is untouched
    assert not model.training


class _DataDependent(nn.Module):
    """Control flow on tensor values cannot be traced by torch.fx."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.bn = nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4)
        self.scale, self.in_channels = (1, 1), 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn(self.conv(x))
        return y.mean(1, keepdim=True) if y.sum() > 0 else -y.mean(1, keepdim=True)


def test_fold_batchnorm_falls_back_to_an_unfolded_copy_when_untraceable() -> None:
    model = _DataDependent().eval()
    folded = fold_batchnorm(model)
    assert folded is not model
    x = batch(1, 1, 8, 8)
    with torch.no_grad():
        assert torch.allclose(folded(x), model(x))


def test_onnx_export_is_checked_dynamic_and_matches_pytorch(tmp_path) -> None:
    model = calibrated("swift-srgan", in_channels=3)
    path = export_onnx(model, tmp_path / "m.onnx", opset=17)
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    assert not any(node.op_type == "BatchNormalization" for node in proto.graph.node)
    assert {p.key: p.value for p in proto.metadata_props}["scale"] == "4,4"
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for n, h, w in [(1, 20, 24), (2, 33, 17)]:  # batch, height and width all change
        x = batch(n, 3, h, w, seed=h)
        (out,) = session.run(None, {"lr": x.numpy()})
        with torch.no_grad():
            expected = model(x).numpy()
        assert out.shape == (n, 3, h * 4, w * 4)
        assert np.abs(out - expected).max() < 1e-4
    assert not list(tmp_path.glob(".*"))  # no temporary file left behind


def test_onnxruntime_backend_matches_torch_backend_through_tiles() -> None:
    model = calibrated("srresnet", scale=(1, 2), global_skip=True)
    rng = np.random.default_rng(0)
    lr = rng.random((70, 90, 1), dtype=np.float32)
    torch_out = upscale_array(model, lr, InferenceSettings(tile=48, overlap=8, device="cpu", backend="torch"))
    onnx_out = upscale_array(model, lr, InferenceSettings(tile=48, overlap=8, device="cpu", backend="onnxruntime"))
    assert onnx_out.shape == torch_out.shape == (70, 180, 1)
    assert np.abs(onnx_out - torch_out).max() < 1e-4


def test_onnxruntime_backend_adapts_grayscale_to_a_colour_model() -> None:
    model = calibrated("swift-srgan", in_channels=3, scale=2)
    gray = np.random.default_rng(1).random((20, 20, 1), dtype=np.float32)
    out = upscale_array(model, gray, InferenceSettings(device="cpu", backend="onnxruntime"))
    with torch.no_grad():
        expected = model(torch.from_numpy(gray.transpose(2, 0, 1)[None].copy()).expand(-1, 3, -1, -1))
    np.testing.assert_allclose(out[..., 0], expected[0].mean(0).numpy(), atol=1e-4)


def test_export_command_writes_a_valid_onnx_file(tmp_path) -> None:
    checkpoint = save_model(calibrated("swift-srgan"), tmp_path / "tiny.safetensors", {"name": "tiny"})
    target = tmp_path / "out" / "tiny.onnx"
    result = CliRunner().invoke(app, ["export", str(checkpoint), "--onnx", str(target)])
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output
    proto = onnx.load(str(target))
    onnx.checker.check_model(proto)
    assert proto.opset_import[0].version == 17
    assert "medsr_meta" in {p.key for p in proto.metadata_props}

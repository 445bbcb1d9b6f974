"""The residual U-Net: starts at its input, sees 92-100 pixels (85-93 through the first pixel of each max-pooling
cell), any size in and out, declares its tile needs, exports to ONNX."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch import nn

from medsr.infer import export_onnx
from medsr.models import build_generator
from medsr.models.blocks import interpolate_input
from medsr.models.unet import unet_context

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("scale", [1, 2, (1, 4)])
def test_global_skip_starts_at_the_input_or_its_bicubic(scale) -> None:
    g = build_generator("unet", scale=scale).eval()
    x = torch.rand(2, 1, 19, 13)
    with torch.no_grad():
        y = g(x)
    sy, sx = (scale, scale) if isinstance(scale, int) else scale
    assert y.shape == (2, 1, 19 * sy, 13 * sx)
    assert torch.equal(y, interpolate_input(x, (sy, sx)).clamp(0, 1))


def test_receptive_field_is_85_to_93_pixels_and_output_keeps_any_size() -> None:
    torch.manual_seed(0)
    g = build_generator("unet", scale=1).train()
    for m in g.modules():  # positive weights: no ReLU switches a path off, so the gradient shows every input used
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
            nn.init.constant_(m.weight, 0.01)
    widths = set()
    for p in range(96, 104):  # one period of the 8-pixel pooling grid
        x = torch.zeros(1, 1, 200, 200, requires_grad=True)
        g(x)[0, 0, p, p].backward()
        rows, cols = np.nonzero(x.grad[0, 0].numpy())
        assert rows.max() - rows.min() == cols.max() - cols.min()
        widths.add(int(rows.max() - rows.min() + 1))
    assert widths == {85, 93}
    with torch.no_grad():
        for h, w in [(7, 9), (1, 1), (33, 64)]:  # not multiples of 8: padded inside, cropped back
            assert g.eval()(torch.rand(1, 1, h, w)).shape == (1, 1, h, w)


def test_training_output_is_not_clamped_and_eval_output_is() -> None:
    torch.manual_seed(1)
    g = build_generator("unet", scale=1, global_skip=False)
    x = torch.rand(1, 1, 16, 16)
    with torch.no_grad():
        nn.init.constant_(g.head.bias, 2.0)
        assert g.train()(x).min() > 1.0
        assert torch.equal(g.eval()(x), torch.ones_like(x))


def test_onnx_export_matches_pytorch_at_sizes_other_than_the_traced_one(tmp_path) -> None:
    torch.manual_seed(2)
    g = build_generator("unet", scale=1)
    nn.init.normal_(g.head.weight, std=0.1)  # a head that does something, so the U-Net part is compared
    g.eval()
    session = ort.InferenceSession(str(export_onnx(g, tmp_path / "u.onnx")), providers=["CPUExecutionProvider"])
    for n, h, w in [(1, 24, 20), (2, 37, 50)]:
        x = torch.rand(n, 1, h, w)
        (out,) = session.run(None, {"lr": x.numpy()})
        with torch.no_grad():
            expected = g(x).numpy()
        assert out.shape == (n, 1, h, w)
        assert np.abs(out - expected).max() < 1e-4
        assert np.abs(expected - x.numpy()).max() > 1e-3  # the network changed the input


@pytest.mark.parametrize("levels", [2, 3, 4])
def test_tile_context_is_the_reach_of_every_pooling_choice(levels, monkeypatch) -> None:
    # Max-pooling's gradient flows to one pixel of each 2x2 cell, but which one depends on the data; average
    # pooling reads all four, so its gradient shows every input a max-pooling network can depend on.
    monkeypatch.setattr(torch.nn.functional, "max_pool2d", torch.nn.functional.avg_pool2d)
    g = build_generator("unet", scale=1, num_channels=2, num_levels=levels).train()
    for m in g.modules():  # positive weights and biases: every ReLU passes, every path carries a gradient
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
            nn.init.constant_(m.weight, 0.01)
            nn.init.constant_(m.bias, 0.01)
    period, side = 2 ** (levels - 1), 8 * g.tile_context
    reach = []
    for p in range(side // 2, side // 2 + period):  # one period of the pooling grid
        x = torch.zeros(1, 1, side, side, requires_grad=True)
        g(x)[0, 0, p, p].backward()
        rows = np.nonzero(x.grad[0, 0].numpy().any(axis=1))[0]
        reach += [p - int(rows.min()), int(rows.max()) - p]
    assert max(reach) == g.tile_context == unet_context(levels)
    assert g.tile_multiple == period


@pytest.mark.parametrize(("scale", "multiple", "context"), [(1, 8, 51), (2, 4, 28), (3, 8, 19), ((1, 4), 8, 53)])
def test_tile_needs_follow_the_scale(scale, multiple, context) -> None:
    g = build_generator("unet", scale=scale, num_channels=2)
    assert (g.tile_multiple, g.tile_context) == (multiple, context)

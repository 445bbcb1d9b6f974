"""plainrep: shapes, the collapsed (inference) form, the bicubic start, pixel shuffle, checkpoints, ONNX, bf16."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from medsr.errors import ConfigError
from medsr.infer.export import inference_form, onnx_bytes
from medsr.infer.runtime import TorchPredictor
from medsr.models import build_generator, load_model, save_model
from medsr.models.plainrep import PlainRep, RepConv, pixel_shuffle

SCALES = [2, 3, 4, 8, (1, 4)]
SMALL = {"num_channels": 8, "num_convs": 4}


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _pair(scale) -> tuple[int, int]:
    return (scale, scale) if isinstance(scale, int) else tuple(scale)


def _model(in_channels: int = 1, scale=4, *, seed: int = 0, noise: float | None = 0.05, **kw) -> nn.Module:
    """A plainrep with the bicubic skip; ``noise`` perturbs every parameter (the zero last layer included)."""
    torch.manual_seed(seed)
    model = build_generator("plainrep", in_channels=in_channels, scale=scale, global_skip=True, **{**SMALL, **kw})
    if noise is not None:
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p) * noise)
    return model


def _input(n: int, c: int, h: int, w: int, *, seed: int = 1, dtype=torch.float32) -> torch.Tensor:
    return torch.rand(n, c, h, w, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _bicubic(x: torch.Tensor, scale) -> torch.Tensor:
    sy, sx = _pair(scale)
    h, w = x.shape[-2:]
    return F.interpolate(x, size=(h * sy, w * sx), mode="bicubic", align_corners=False).clamp(0.0, 1.0)


@pytest.mark.parametrize("in_channels", [1, 3])
@pytest.mark.parametrize("scale", SCALES)
def test_output_shapes(in_channels, scale):
    sy, sx = _pair(scale)
    model = _model(in_channels, scale)
    assert isinstance(model, PlainRep) and tuple(model.scale) == (sy, sx) and model.in_channels == in_channels
    x = _input(2, in_channels, 7, 5)
    with torch.no_grad():
        for net in (model.train(), model.eval(), model.collapse()):
            assert net(x).shape == (2, in_channels, 7 * sy, 5 * sx)


def test_default_size_builds_and_runs():
    model = build_generator("plainrep", in_channels=1, scale=4, global_skip=True).eval()
    assert len(model.convs) == 16 and model.convs[0].conv3.out_channels == 32
    with torch.no_grad():
        assert model(_input(1, 1, 6, 5)).shape == (1, 1, 24, 20)


@pytest.mark.parametrize("scale", [3, (1, 4)])
@pytest.mark.parametrize("in_channels", [1, 3])
def test_collapse_equals_training_form_in_float64(in_channels, scale):
    model = _model(in_channels, scale, noise=0.2).double().eval()
    x = _input(2, in_channels, 9, 8, dtype=torch.float64)
    # The float64 algebra check builds the collapsed layers in float64 (RepConv.collapse creates its conv in
    # the default dtype; see test_collapse_keeps_the_dtype).
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        plain = model.collapse()
    finally:
        torch.set_default_dtype(default)
    with torch.no_grad():
        want, got = model(x), plain(x)
    assert got.dtype == torch.float64
    assert not torch.equal(want, _bicubic(x, scale)), "the perturbation must make the network do something"
    assert (want - got).abs().max().item() < 1e-5
    assert not model.collapsed and model.training is False  # collapse() returns a new model


def test_collapse_keeps_the_dtype():
    model = _model(1, 2, noise=0.1).double().eval()
    plain = model.collapse()
    assert all(p.dtype == torch.float64 for p in plain.parameters())
    x = _input(1, 1, 6, 6, dtype=torch.float64)
    with torch.no_grad():
        assert (model(x) - plain(x)).abs().max().item() < 1e-10


@pytest.mark.parametrize("scale", [2, 4, (1, 4)])
def test_collapse_equals_training_form_in_float32(scale):
    model = _model(3, scale, noise=0.2, num_convs=6).eval()
    x = _input(2, 3, 10, 9)
    with torch.no_grad():
        want = model(x)
        for plain in (model.collapse(), inference_form(model)):
            assert (want - plain(x)).abs().max().item() < 1e-4


def test_collapsed_model_is_plain_3x3_convs():
    model = _model(1, 4, noise=0.1, num_convs=5)
    for plain in (model.collapse(), inference_form(model)):
        modules = list(plain.modules())
        convs = [m for m in modules if isinstance(m, nn.Conv2d)]
        assert len(convs) == 5
        assert all(type(c) is nn.Conv2d and c.kernel_size == (3, 3) and c.padding == (1, 1) for c in convs)
        assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in modules)
        assert not any(isinstance(m, RepConv) for m in modules)
        assert not plain.training
    assert plain.scale == (4, 4) and plain.in_channels == 1  # inference_form keeps the attributes
    # the original keeps its training form and its mode
    assert model.training and sum(isinstance(m, RepConv) for m in model.modules()) == 5
    collapsed = model.collapse()
    assert collapsed.collapse() is collapsed


def test_training_form_has_no_batchnorm():
    model = _model(3, 2, noise=None)
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    assert all(isinstance(c, RepConv) for c in model.convs)


@pytest.mark.parametrize("in_channels", [1, 3])
@pytest.mark.parametrize("scale", SCALES)
def test_fresh_model_starts_at_bicubic(in_channels, scale):
    model = _model(in_channels, scale, noise=None).eval()
    x = _input(2, in_channels, 8, 6, seed=in_channels)
    with torch.no_grad():
        out = model(x)
    expected = _bicubic(x, scale)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-7)
    assert out.min() >= 0 and out.max() <= 1


@pytest.mark.parametrize(("in_channels", "scale", "num_channels"), [(3, 4, 48), (1, (4, 8), 32), (1, 4, 16)])
def test_fresh_model_starts_at_bicubic_when_width_equals_head_width(in_channels, scale, num_channels):
    model = _model(in_channels, scale, noise=None, num_channels=num_channels).eval()
    x = _input(1, in_channels, 6, 6)
    with torch.no_grad():
        torch.testing.assert_close(model(x), _bicubic(x, scale), rtol=0, atol=1e-7)


def test_clamp_only_in_eval_mode():
    model = _model(1, 4, noise=None)
    x = torch.zeros(1, 1, 6, 6)
    x[..., ::2, ::2] = 1.0  # a checkerboard-like input: bicubic overshoots below 0 and above 1
    raw = F.interpolate(x, size=(24, 24), mode="bicubic", align_corners=False)
    assert raw.min() < 0 and raw.max() > 1
    with torch.no_grad():
        torch.testing.assert_close(model.train()(x), raw, rtol=0, atol=1e-7)
        torch.testing.assert_close(model.eval()(x), raw.clamp(0, 1), rtol=0, atol=1e-7)


def _unshuffle(y: torch.Tensor, sy: int, sx: int) -> torch.Tensor:
    """Independent inverse of a pixel shuffle: channel ``c*sy*sx + i*sx + j`` is ``y[:, c, i::sy, j::sx]``."""
    n, c = y.shape[:2]
    parts = [y[:, k, i::sy, j::sx] for k in range(c) for i in range(sy) for j in range(sx)]
    return torch.stack(parts, dim=1).reshape(n, c * sy * sx, y.shape[2] // sy, y.shape[3] // sx)


@pytest.mark.parametrize("s", [1, 2, 3, 4])
def test_pixel_shuffle_equal_factors_is_torchs(s):
    x = _input(2, 3 * s * s, 5, 4)
    torch.testing.assert_close(pixel_shuffle(x, (s, s)), F.pixel_shuffle(x, s), rtol=0, atol=0)


@pytest.mark.parametrize("factors", [(1, 2), (1, 4), (2, 1), (4, 1), (2, 3), (3, 1)])
def test_pixel_shuffle_unequal_factors_inverts_unshuffle(factors):
    sy, sx = factors
    c, h, w = 3, 5, 4
    y = _input(2, c, h * sy, w * sx, seed=7)
    x = _unshuffle(y, sy, sx)
    assert x.shape == (2, c * sy * sx, h, w)
    torch.testing.assert_close(pixel_shuffle(x, factors), y, rtol=0, atol=0)
    # and the other way round: shuffling a random (N, C*sy*sx, h, w) and unshuffling gives it back
    z = _input(2, c * sy * sx, h, w, seed=8)
    torch.testing.assert_close(_unshuffle(pixel_shuffle(z, factors), sy, sx), z, rtol=0, atol=0)


def test_unshuffle_helper_agrees_with_torch():
    y = _input(1, 2, 6, 6)
    torch.testing.assert_close(_unshuffle(y, 3, 3), F.pixel_unshuffle(y, 3), rtol=0, atol=0)


def test_checkpoint_round_trip(tmp_path):
    model = _model(1, (1, 4), noise=0.1).eval()
    path = save_model(model, tmp_path / "plainrep.safetensors")
    loaded = load_model(path)
    assert isinstance(loaded, PlainRep) and not loaded.training
    assert loaded.arch == "plainrep" and tuple(loaded.scale) == (1, 4) and loaded.global_skip
    assert loaded.meta["arch_args"]["num_channels"] == 8
    x = _input(2, 1, 7, 6)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)


def test_rejects_two_channels():
    with pytest.raises(ConfigError):
        build_generator("plainrep", in_channels=2)


@pytest.mark.parametrize(("in_channels", "scale"), [(1, 4), (3, (1, 4))])
def test_onnx_matches_torch_on_another_size(in_channels, scale):
    sy, sx = _pair(scale)
    model = _model(in_channels, scale, noise=0.05).eval()
    session = ort.InferenceSession(onnx_bytes(model), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["lr"] and [o.name for o in session.get_outputs()] == ["sr"]
    x = _input(1, in_channels, 31, 17, seed=5)  # the export example is 24x20
    (got,) = session.run(["sr"], {"lr": x.numpy()})
    with torch.no_grad():
        want = model(x).numpy()
    assert got.shape == want.shape == (1, in_channels, 31 * sy, 17 * sx)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)
    assert model.training is False and isinstance(model.convs[0], RepConv)  # the model itself is untouched


def test_bf16_predictor_is_close_to_fp32():
    # Hidden layers perturbed; the head's perturbation kept small, so the residual over bicubic is of the size
    # a trained model learns (a random 16-layer stack with identity branches has exploding activations).
    model = _model(1, 4, noise=0.05, num_channels=12, num_convs=6).eval()
    with torch.no_grad():
        for p in model.convs[-1].parameters():
            p.mul_(0.1)
    x = _input(2, 1, 12, 10, seed=3)
    with torch.no_grad():
        want = model(x).numpy()
    residual = np.abs(want - _bicubic(x, 4).numpy()).mean()
    assert 0.01 < residual < 0.2
    got = TorchPredictor(model, torch.device("cpu"), precision="bf16")(x.numpy())
    assert got.dtype == np.float32 and got.shape == want.shape
    assert np.abs(got - want).max() < 2e-2
    fp32 = TorchPredictor(model, torch.device("cpu"), precision="fp32")(x.numpy())
    np.testing.assert_allclose(fp32, want, rtol=0, atol=1e-5)


@pytest.mark.parametrize("in_channels, scale", [(1, 4), (3, 4), (1, (1, 4)), (1, 2)])
@pytest.mark.parametrize("collapsed_source", [False, True])
def test_grown_model_computes_the_source_function(in_channels, scale, collapsed_source):
    # 3 channels x4 needs 48 output channels at the last layer: equal to the grown width, which must not make
    # the source's output layer look like one with an identity branch
    source = _model(in_channels, scale, noise=0.1).eval()
    grown = build_generator("plainrep", in_channels=in_channels, scale=scale, num_channels=48, num_convs=7)
    grown.grow_from(source.collapse() if collapsed_source else source)
    x = _input(2, in_channels, 9, 11)
    with torch.no_grad():
        torch.testing.assert_close(grown.eval()(x), source(x), rtol=0, atol=1e-5)
        torch.testing.assert_close(grown.collapse()(x), source(x), rtol=0, atol=1e-5)


def test_grown_model_learns_with_its_new_channels_and_layers():
    source = _model(1, 4, noise=0.1)
    grown = build_generator("plainrep", in_channels=1, scale=4, num_channels=12, num_convs=6)
    grown.grow_from(source)
    loss = (grown.train()(_input(2, 1, 8, 8)) - _input(2, 1, 32, 32, seed=5)).abs().mean()
    loss.backward()
    # the new channels' weights into the output layer and the inserted layers' weights all get gradient
    assert grown.convs[-1].conv3.weight.grad[:, 8:].abs().sum() > 0
    assert grown.convs[4].conv3.weight.grad.abs().sum() > 0


def test_grow_refuses_to_shrink_or_change_scale():
    source = _model(1, 4)
    with pytest.raises(ValueError, match="cannot shrink"):
        build_generator("plainrep", in_channels=1, scale=4, num_channels=4, num_convs=4).grow_from(source)
    with pytest.raises(ValueError, match="scale"):
        build_generator("plainrep", in_channels=1, scale=2, num_channels=8, num_convs=4).grow_from(source)
    swift = build_generator("swift-srgan", in_channels=1, scale=4, num_channels=8, num_blocks=1)
    with pytest.raises(ValueError, match="only from a plainrep"):
        build_generator("plainrep", in_channels=1, scale=4, num_channels=8, num_convs=4).grow_from(swift)

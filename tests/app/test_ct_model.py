"""A CT model in the app runs on its fixed HU range (medsr.intensity), and what is shown is on the image's own."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from medsr.app import logic
from medsr.io import read_image
from medsr.models import build_generator

DATA = Path(__file__).parents[1] / "data"
HU_RANGE = (-1024.0, 3071.0)
SHIFT = 0.01  # the model adds this much of its [0, 1] range: 40.95 HU on (-1024, 3071)


def _shift_model() -> torch.nn.Module:
    """A scale-1 plainrep whose output is its input + SHIFT (zero weights, one bias), with a CT header."""
    model = build_generator("plainrep", in_channels=1, scale=(1, 1))
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.convs[-1].conv3.bias.fill_(SHIFT)
    model.meta = {"name": "shift", "value_range": list(HU_RANGE), "raster_offset": 1024.0, "modality": "CT"}
    return model.eval()


def _hu(image, pixels: np.ndarray) -> np.ndarray:
    low, high = image.value_range
    return low + pixels[..., 0].astype(np.float64) * (high - low)


def test_enhance_runs_a_ct_model_in_hu_and_shows_the_result_on_the_image_range():
    image = read_image(DATA / "ct_small.dcm")  # stored range -33792..31743 HU: 16 times the model's span
    outcome = logic.run_enhance(image, _shift_model())
    hu_in, hu_out = _hu(image, outcome.lr), _hu(image, outcome.sr)
    inside = (hu_in > -900) & (hu_in < _hu(image, outcome.lr).max() - 50)  # not clipped to the input's range
    np.testing.assert_allclose(hu_out[inside] - hu_in[inside], SHIFT * 4095, atol=1.0)


def test_simulate_scores_a_ct_model_on_its_hu_range_and_shows_hu_on_the_image_range():
    image = read_image(DATA / "ct_small.dcm")
    outcome = logic.run_simulate(image, _shift_model(), degradation="ct-sparse-view", scale=4)
    hu_hr, hu_sr, hu_lr = (_hu(image, a) for a in (outcome.hr, outcome.sr, outcome.lr))
    original = _hu(image, image.pixels)
    assert abs(hu_hr.min() - original.min()) < 1 and abs(hu_hr.max() - original.max()) < 1
    np.testing.assert_allclose(hu_sr - hu_lr, SHIFT * 4095, atol=1.0)
    # a constant 41 HU error on a 4095 HU peak, on top of the FBP's own: the model scores below the FBP
    assert outcome.scores["Model"]["psnr"] < outcome.scores["Bicubic"]["psnr"]

"""Every training config shipped in ``medsr/configs`` loads, builds its network and degrades an image into LR
that network maps back to the HR size: a typo in a config (a setting, a degradation parameter, a model argument)
fails here instead of minutes into a training run."""

from __future__ import annotations

from importlib.resources import files

import numpy as np
import pytest
import torch

from medsr.degrade import get_degradation, hr_multiple
from medsr.train.config import TrainConfig
from medsr.train.trainer import generator_for

CONFIGS = sorted(p.name for p in files("medsr.configs").iterdir() if p.name.endswith(".yaml"))


def test_the_configs_the_bundled_models_were_trained_with_are_all_found():
    assert {"xray-x4.yaml", "xray-x4-bicubic.yaml", "xray-x4-deep.yaml", "ct-sparse-view.yaml"} <= set(CONFIGS)


@pytest.mark.parametrize("name", CONFIGS)
def test_config_loads_builds_and_round_trips_shapes(name):
    config = TrainConfig.load(str(files("medsr.configs") / name), manifest="unused.csv")
    model = generator_for(config).eval()
    my, mx = hr_multiple(config.degradation, config.scale)
    h, w = my * max(1, 48 // my), mx * max(1, 48 // mx)
    rng = np.random.default_rng(0)
    hr = rng.random((h, w, config.in_channels), dtype=np.float32)
    lr = get_degradation(config.degradation)(hr, config.scale, rng=rng, **config.degradation_params)
    x = torch.from_numpy(np.ascontiguousarray(lr.transpose(2, 0, 1)))[None]
    with torch.no_grad():
        y = model(x)
    assert y.shape == (1, config.in_channels, h, w)
    assert torch.isfinite(y).all()

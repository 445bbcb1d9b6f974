"""Write a seeded, randomly initialised feature network (MobileNetV2 or VGG19) as a local state dict.

ImageNet weights cannot be downloaded on machines without internet; this file stands in for them so the
GAN stage can run, and anything trained with it must say so (a random network is not a perceptual metric).
Usage: python bench/make_random_content_weights.py mobilenet_v2 runs/mobilenet_v2_random.pt
"""

from __future__ import annotations

from pathlib import Path

import _bench
import torch
from torchvision import models


def main() -> None:
    parser = _bench.parser(__doc__)
    parser.add_argument("network", choices=("mobilenet_v2", "vgg19"))
    parser.add_argument("out", type=Path)
    args = _bench.parse(parser)
    name, out = args.network, args.out
    torch.manual_seed(0)
    network = {"mobilenet_v2": models.mobilenet_v2, "vgg19": models.vgg19}[name](weights=None)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(network.state_dict(), out)
    print(f"wrote randomly initialised {name} weights (seed 0) to {out}")


if __name__ == "__main__":
    main()

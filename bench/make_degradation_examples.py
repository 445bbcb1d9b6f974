"""Make the HR | LR example pairs of docs/degradations.md from the development data.

Usage: ``python bench/make_degradation_examples.py [--data ../shared/data] [--out docs/img]``

Each pair is one 8-bit PNG: the HR crop on the left, the LR on the right enlarged by pixel repetition
(nearest neighbour) to the HR size so that its pixels stay visible. CT images are shown in one display
window taken from the HR image (1st to 99th percentile) and applied to both halves.
"""

from __future__ import annotations

from pathlib import Path

import _bench
import numpy as np
from PIL import Image

from medsr.degrade import get_degradation
from medsr.io import read_image

GAP = 4  # white pixels between the two halves


def _first_frame(path: Path) -> tuple[np.ndarray, object]:
    image = read_image(path)
    return (image.pixels[0] if image.is_multiframe else image.pixels), image


def _crop(pixels: np.ndarray, top: int, left: int, size: int) -> np.ndarray:
    return pixels[top:top + size, left:left + size]


def _enlarge(lr: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    rows = np.arange(shape[0]) * lr.shape[0] // shape[0]
    cols = np.arange(shape[1]) * lr.shape[1] // shape[1]
    return lr[rows][:, cols]


def _save_pair(hr: np.ndarray, lr: np.ndarray, path: Path, window: tuple[float, float] = (0.0, 1.0)) -> None:
    low, high = window
    big = _enlarge(lr, hr.shape[:2])
    gap = np.full((hr.shape[0], GAP, hr.shape[2]), high, dtype=np.float32)
    pair = (np.concatenate([hr, gap, big], axis=1) - low) / (high - low)
    as_u8 = np.clip(np.rint(pair * 255.0), 0, 255).astype(np.uint8)
    mode = "RGB" if as_u8.shape[2] == 3 else "L"
    Image.fromarray(as_u8 if mode == "RGB" else as_u8[..., 0], mode).save(path, optimize=True)
    size = path.stat().st_size
    print(f"{path}: HR {hr.shape[1]}x{hr.shape[0]}, LR {lr.shape[1]}x{lr.shape[0]}, {size} bytes")


def main() -> None:
    parser = _bench.parser(__doc__)
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "docs" / "img")
    args = _bench.parse(parser)
    args.out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)

    xray, _ = _first_frame(args.data / "chest-xray" / "hannover-640" / "00870a9c.png")
    xray = _crop(xray, 200, 220, 192)
    _save_pair(xray, get_degradation("bicubic")(xray, 4), args.out / "bicubic.png")
    low_dose = get_degradation("bicubic-blur-noise")(
        xray, 4, rng=rng, blur_sigma=1.0, noise="poisson", photons=300
    )
    _save_pair(xray, low_dose, args.out / "bicubic-blur-noise.png")

    frame, _ = _first_frame(args.data / "ultrasound-lung" / "frames" / "Reg_Image_18122_crop_f0000.png")
    frame = _crop(frame, 8, 8, 192)[..., :1]  # a grayscale B-mode frame stored as RGB
    _save_pair(frame, get_degradation("ultrasound")(frame, 4), args.out / "ultrasound.png")

    ct_pixels, ct_image = _first_frame(args.data / "dicom" / "ct" / "CT_small.dcm")
    window = tuple(np.percentile(ct_pixels, [1, 99]))
    params = {"value_range": ct_image.value_range}
    fbp = get_degradation("ct-sparse-view")(ct_pixels, 4, bit_depth=ct_image.bit_depth, **params)
    _save_pair(ct_pixels, fbp, args.out / "ct-sparse-view.png", window)
    sinogram = get_degradation("ct-sinogram")
    full = sinogram(ct_pixels, 1, bit_depth=16, **params)
    sparse = sinogram(ct_pixels, 4, bit_depth=16, **params)
    _save_pair(full, sparse, args.out / "ct-sinogram.png", (0.0, float(full.max())))

    colour, _ = _first_frame(args.data / "dicom" / "us" / "US1_UNCR.dcm")  # stands in for an endoscopy frame
    colour = _crop(colour, 130, 80, 192)
    _save_pair(colour, get_degradation("endoscopy")(colour, 2, quality=40), args.out / "endoscopy.png")


if __name__ == "__main__":
    main()

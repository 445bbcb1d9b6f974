"""Issue 4's smoke run: a 2-epoch Swift-SRGAN run (pretrain 1 + GAN 1, small patches) on the Hannover chest X-rays.

Runs medsr's own commands once with global_skip and once with the paper-exact network, and prints the wall time
and the val PSNR/SSIM after each epoch beside bicubic. Usage: python bench/train_smoke.py --threads 2
"""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
import time
from pathlib import Path

import _bench

DATA = _bench.ROOT.parent / "shared" / "data" / "chest-xray"


def medsr(*args: str, log: Path | None = None) -> None:
    with open(log or "/dev/null", "w") as out:
        subprocess.run([sys.executable, "-m", "medsr", *args], check=True, stdout=out, stderr=subprocess.STDOUT)


def main() -> None:
    parser = _bench.parser(__doc__, threads=2)
    parser.add_argument("--out", type=Path, default=Path("runs/smoke"))
    args = _bench.parse(parser)
    args.out.mkdir(parents=True, exist_ok=True)
    manifest, content = args.out / "manifest.csv", args.out / "mobilenet_v2_random.pt"
    medsr("prepare", str(DATA / "hannover-640"), str(DATA / "hannover-2000"), "--patients",
          str(DATA / "hannover-640.metadata.csv"), "--patients", str(DATA / "hannover-2000.metadata.csv"),
          "--out", str(manifest))
    subprocess.run([sys.executable, str(_bench.ROOT / "bench" / "make_random_content_weights.py"), "mobilenet_v2",
                    str(content)], check=True, stdout=subprocess.DEVNULL)
    for skip in ("global-skip", "no-global-skip"):
        run = args.out / skip
        shutil.rmtree(run, ignore_errors=True)
        start = time.perf_counter()
        medsr("train", "--model", "swift-srgan", "--scale", "4", "--stage", "both", "--epochs", "1", "--gan-epochs",
              "1", f"--{skip}", "--patch-size", "48", "--patches-per-image", "4", "--batch-size", "16", "--lr", "3e-4",
              "--pixel-loss", "l1", "--content-weights", str(content), "--threads", str(args.threads),
              "--num-workers", "1", "--manifest", str(manifest), "--out", str(run), log=args.out / f"{skip}.log")
        print(f"== swift-srgan --{skip}: {time.perf_counter() - start:.0f} s wall for pretrain 1 + gan 1 epochs")
        with (run / "metrics.csv").open() as handle:
            for row in csv.DictReader(handle):
                print(f"  epoch {row['epoch']} {row['stage']:8s} val PSNR {float(row['val_psnr']):.3f} dB "
                      f"SSIM {float(row['val_ssim']):.4f} | bicubic {float(row['bicubic_psnr']):.3f} dB "
                      f"{float(row['bicubic_ssim']):.4f} | {row['seconds']} s")


if __name__ == "__main__":
    main()

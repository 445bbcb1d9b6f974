"""Install size of medsr: site-packages of a fresh virtual environment after PyTorch, the core, then [all].

Creates a throwaway venv (no system site-packages) in --venv, installs step by step from this checkout and prints
the size of site-packages after each step and its largest packages. Takes minutes (PyTorch is several GB).

    python bench/install_size.py --venv /tmp/medsr-size --save docs/results/speed/install_size.txt
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import _bench

STEPS = (("torch==2.14.1 torchvision==0.29.1", ["torch==2.14.1", "torchvision==0.29.1"]),
         (". (the core)", [str(_bench.ROOT)]),
         (".[all]", [f"{_bench.ROOT}[all]"]))


def megabytes(path: Path) -> int:
    return int(subprocess.run(["du", "-sm", str(path)], capture_output=True, text=True, check=True).stdout.split()[0])


def main() -> None:
    parser = _bench.parser(__doc__)
    parser.add_argument("--venv", type=Path, default=Path("/tmp/medsr-install-size"))
    args = _bench.parse(parser)
    shutil.rmtree(args.venv, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(args.venv)], check=True)
    pip = [str(args.venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    site = next((args.venv / "lib").glob("python3*/site-packages"))
    before = 0
    print(f"{'pip install':<40} {'site-packages MB':>16} {'added MB':>9}")
    for label, packages in STEPS:
        subprocess.run(pip + packages, check=True, env=env)  # nothing of this checkout's environment leaks in
        size = megabytes(site)
        print(f"{label:<40} {size:>16} {size - before:>9}", flush=True)
        before = size
    largest = sorted(((megabytes(p), p.name) for p in site.iterdir() if p.is_dir()), reverse=True)[:15]
    print("largest: " + ", ".join(f"{name} {size} MB" for size, name in largest))


if __name__ == "__main__":
    main()

"""The one helper every bench script shares: its argument parser, torch threads, and where its output goes.

``parser(__doc__)`` gives the script's description (its docstring's first paragraph) and two common options:
``--threads N`` (torch CPU threads, set by :func:`parse`) and ``--save FILE`` (what the script prints is also
written to FILE, atomically, when it ends: the copy kept under docs/results/). Scripts print their figures
with ``print``; nothing else is needed.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import io
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def cpu_name() -> str:
    """The CPU's model name as lscpu gives it, to print beside a speed figure ("?" where lscpu is missing)."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    except OSError:
        return "?"
    return next((line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name")), "?")


def parser(doc: str | None, *, threads: int | None = None) -> argparse.ArgumentParser:
    """An argument parser with the script's description, ``--threads`` and ``--save``."""
    described = argparse.ArgumentParser(description=(doc or "").split("\n\n")[0],
                                        formatter_class=argparse.RawDescriptionHelpFormatter)
    described.add_argument("--threads", type=int, default=threads, help="torch CPU threads (default: %(default)s).")
    described.add_argument("--save", type=Path, help="also write what is printed to this file (e.g. docs/results/).")
    return described


class _Tee(io.TextIOBase):
    def __init__(self, stream: io.TextIOBase) -> None:
        self.stream, self.copy = stream, io.StringIO()

    def write(self, text: str) -> int:
        self.copy.write(text)
        return self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()


def _save(tee: _Tee, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(tee.copy.getvalue())
    os.replace(tmp, path)


def parse(described: argparse.ArgumentParser, argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the arguments, set torch's threads, and start copying stdout to ``--save``."""
    args = described.parse_args(argv)
    if args.threads:
        with contextlib.suppress(ImportError):
            import torch

            torch.set_num_threads(args.threads)
    if args.save is not None:
        tee = _Tee(sys.stdout)
        sys.stdout = tee
        atexit.register(_save, tee, args.save)
    return args

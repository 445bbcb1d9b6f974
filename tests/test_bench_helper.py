"""bench/ shares one helper (bench/_bench.py) for arguments and output; --save keeps what a script prints."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"


def test_every_bench_script_uses_the_shared_helper() -> None:
    scripts = [p for p in BENCH.glob("*.py") if p.name != "_bench.py"]
    assert scripts and not list(BENCH.glob("*.sh")), "bench scripts are Python, sharing bench/_bench.py"
    for script in scripts:
        text = script.read_text()
        assert "import _bench" in text and "_bench.parse(" in text, f"{script.name} does not use bench/_bench.py"


def test_save_writes_what_the_script_printed(tmp_path: Path) -> None:
    saved = tmp_path / "out" / "figures.txt"
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import _bench; "
            "args = _bench.parse(_bench.parser('A figure.'), ['--save', sys.argv[2], '--threads', '1']); "
            "import torch; print('threads', torch.get_num_threads()); print('figure 42')")
    done = subprocess.run([sys.executable, "-c", code, str(BENCH), str(saved)], capture_output=True, text=True,
                          timeout=120, check=True)
    assert done.stdout == "threads 1\nfigure 42\n"
    assert saved.read_text() == done.stdout

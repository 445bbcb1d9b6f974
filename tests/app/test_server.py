"""``medsr demo``'s server supervision: Ctrl-C or SIGTERM stop the server it started, and nothing is left behind.

A stand-in server (a sleeping Python process, optionally one that ignores SIGTERM) runs under
:func:`medsr.app.server.serve` in a subprocess, which the test signals as a terminal or ``kill`` would.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from medsr.app.server import streamlit_command

SUPERVISOR = """
import os, sys
from medsr.app.server import serve
server = [sys.executable, "-c", sys.argv[1]]
sys.exit(serve(server, os.environ, grace=float(sys.argv[2])))
"""
SLEEPER = "import time; open({ready!r}, 'w').write('x'); time.sleep(120)"
STUBBORN = ("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); open({ready!r}, 'w').write('x'); "
            "time.sleep(120)")


def children_of(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(c) for c in path.read_text().split()] if path.exists() else []


def gone(pid: int) -> bool:
    """True when ``pid`` no longer exists (a zombie still counts as there)."""
    return not Path(f"/proc/{pid}").exists()


def start(tmp_path: Path, server: str, grace: float = 5.0) -> tuple[subprocess.Popen, int]:
    ready = tmp_path / "ready"
    supervisor = subprocess.Popen([sys.executable, "-c", SUPERVISOR, server.format(ready=str(ready)), str(grace)])
    deadline = time.monotonic() + 60
    while not ready.exists() or not children_of(supervisor.pid):
        assert time.monotonic() < deadline and supervisor.poll() is None, "the stand-in server did not start"
        time.sleep(0.05)
    return supervisor, children_of(supervisor.pid)[0]


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_stops_the_server_and_exits_cleanly(tmp_path: Path, sig: int) -> None:
    supervisor, child = start(tmp_path, SLEEPER)
    assert os.getpgid(child) == child  # its own process group: a terminal's Ctrl-C reaches only medsr demo
    supervisor.send_signal(sig)
    assert supervisor.wait(timeout=30) == 0
    assert gone(child)


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
def test_a_server_that_ignores_sigterm_is_killed_after_the_grace_period(tmp_path: Path) -> None:
    supervisor, child = start(tmp_path, STUBBORN, grace=1.0)
    started = time.monotonic()
    supervisor.send_signal(signal.SIGTERM)
    assert supervisor.wait(timeout=30) == 0
    assert gone(child) and time.monotonic() - started < 20


def test_streamlit_command_serves_the_app_headless() -> None:
    command = streamlit_command(Path("app.py"), "127.0.0.1", 8600)
    assert command[1:4] == ["-m", "streamlit", "run"] and "8600" in command and "--server.headless" in command

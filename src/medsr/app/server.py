"""Serving the web app for ``medsr demo``: start Streamlit, and stop it cleanly on Ctrl-C, SIGTERM or SIGHUP.

Streamlit runs in its own process group, so a terminal's Ctrl-C reaches only ``medsr demo``, which then stops
the whole group: Streamlit and anything it started. A server that does not stop within ``grace`` seconds is
killed, and every child is waited for, so nothing is left running or as a zombie.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import webbrowser
from collections.abc import Mapping, Sequence
from pathlib import Path

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def streamlit_command(app_file: Path, host: str, port: int) -> list[str]:
    """The ``streamlit run`` command line of ``medsr demo``."""
    return [
        sys.executable, "-m", "streamlit", "run", str(app_file),
        "--server.port", str(port), "--server.address", host, "--server.headless", "true",
        "--browser.gatherUsageStats", "false", "--server.maxUploadSize", "200",
        "--server.fileWatcherType", "none", "--global.developmentMode", "false",
        "--client.toolbarMode", "viewer", "--server.enableStaticServing", "true",
    ]


def _signal_group(server: subprocess.Popen, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(server.pid, sig)


def stop_server(server: subprocess.Popen, grace: float = 10.0) -> int:
    """SIGTERM the server's process group, SIGKILL it after ``grace`` seconds, and reap it; its exit code."""
    if server.poll() is None:
        _signal_group(server, signal.SIGTERM)
        try:
            return server.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            _signal_group(server, signal.SIGKILL)
    code = server.wait()
    _signal_group(server, signal.SIGKILL)  # anything the server left behind in its group
    return code


def serve(command: Sequence[str], env: Mapping[str, str], url: str | None = None, grace: float = 10.0) -> int:
    """Run the server ``command`` until it exits or ``medsr demo`` is asked to stop; its exit code.

    ``url``: open it in a browser after three seconds. Ctrl-C, SIGTERM and SIGHUP stop the server (see the
    module docstring) and count as a clean exit (code 0).
    """
    server = subprocess.Popen(list(command), env=dict(env), start_new_session=True)
    stopping = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stopping.set()
        _signal_group(server, signal.SIGTERM)

    previous = {sig: signal.signal(sig, on_signal) for sig in STOP_SIGNALS}
    opener = None
    if url:
        opener = threading.Timer(3.0, lambda: server.poll() is None and webbrowser.open(url))
        opener.daemon = True
        opener.start()
    try:
        while True:
            try:
                server.wait(timeout=0.5)
                break
            except subprocess.TimeoutExpired:
                if stopping.is_set():
                    break
        code = stop_server(server, grace)
    finally:
        if opener is not None:
            opener.cancel()
        if server.poll() is None:
            stop_server(server, grace)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0 if stopping.is_set() or code in (-signal.SIGTERM, -signal.SIGINT) else code

"""Small network helpers shared by the DICOM node, the web app's tests and benchmarks, and the Ray test cluster."""

from __future__ import annotations

import socket


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that is free now (the OS picks it: bind to port 0), for a server started next.

    Another process may take it before the server binds; callers that start several servers ask once each.
    """
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])

"""The shared free-port helper: the port it names can be bound by the next server."""

from __future__ import annotations

import socket

from medsr.net import free_port


def test_free_port_is_a_bindable_loopback_port() -> None:
    port = free_port()
    assert 1024 <= port <= 65535
    with socket.socket() as server:
        server.bind(("127.0.0.1", port))  # raises if the port were taken
        server.listen()
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass

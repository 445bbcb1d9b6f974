"""A real Orthanc and real medsr nodes on 127.0.0.1, started and stopped by the tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from medsr.serve import orthanc as local
from medsr.serve.config import parse_config
from medsr.serve.node import Node


@pytest.fixture(scope="module")
def orthanc() -> Iterator[local.LocalOrthanc]:
    reason = local.available()
    if reason:
        pytest.skip(reason)
    server = local.LocalOrthanc()
    yield server
    server.stop()


@pytest.fixture
def start_node(tmp_path: Path) -> Iterator[Callable[..., Node]]:
    """Start in-process nodes from config dicts; all are stopped at the end of the test."""
    nodes: list[Node] = []

    def start(config: dict) -> Node:
        node = Node(parse_config(config))
        node.start()
        nodes.append(node)
        return node

    yield start
    for node in nodes:
        if node.receiver is not None and not node._stop.is_set():
            node.stop()

"""What ``medsr serve`` does, as functions the CLI calls: check a configuration, report a node's state, run it."""

from __future__ import annotations

import logging

from medsr.errors import escape
from medsr.serve.config import NodeConfig
from medsr.serve.ledger import Ledger
from medsr.serve.spool import LEDGER_FILE


def check(config: NodeConfig) -> str:
    """Load every model the routes name (a typo fails here, not at the first study); one line saying what is set."""
    from medsr.models import load_model  # noqa: PLC0415

    names = sorted({route.model for route in config.routes if route.model})
    for name in names:
        load_model(name, "cpu")
    return (f"valid; node {config.ae_title} on {config.host}:{config.port}, {len(config.callers)} caller(s), "
            f"{len(config.destinations)} destination(s), {len(config.routes)} route(s), {len(names)} routed "
            "model(s) loaded")


def status(config: NodeConfig) -> list[str]:
    """The node's ledger in lines: counts by state, then failed instances and results waiting, with reasons."""
    ledger = Ledger(config.spool / LEDGER_FILE)
    try:
        counts = ledger.counts()
        states = ", ".join(f"{counts.get(k, 0)} {k}" for k in ("received", "done", "failed", "ignored"))
        lines = [f"instances: {states}; {counts['outbox']} result(s) waiting to be sent"]
        lines += [f"  {what}: {uid}: {escape(reason)}" for what, uid, reason in ledger.problems()]
    finally:
        ledger.close()
    return lines


def run(config: NodeConfig) -> None:
    """Serve until SIGTERM/SIGINT, logging to stderr (UIDs and counts only)."""
    from medsr.allocator import tune_allocator  # noqa: PLC0415
    from medsr.serve.node import Node  # noqa: PLC0415

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # pynetdicom's debug output would print datasets, and it logs every failed connection as an error: the node
    # says what failed itself (one warning per batch, the audit log per instance)
    logging.getLogger("pynetdicom").setLevel(logging.CRITICAL)
    tune_allocator()
    Node(config).run()

"""What the node tells its operators: a JSON-lines audit log, Prometheus metrics and ``GET /healthz``.

Nothing here names a patient: events carry UIDs, counts, AE titles, model names, seconds and reasons only.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class AuditLog:
    """Append-only JSON lines: ``{"time", "event", ...}``; events are received, rejected, processed, sent, failed."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def __call__(self, event: str, **fields: Any) -> None:
        record = {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "event": event, **fields}
        line = json.dumps(record, default=str, ensure_ascii=True)
        with self._lock, open(self.path, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")


class Metrics:
    """The node's Prometheus metrics, in a registry of its own (several nodes can live in one process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.received = Counter("medsr_instances_received", "Instances received and spooled", registry=r)
        self.rejected = Counter("medsr_instances_rejected", "Instances refused at C-STORE", ["reason"], registry=r)
        self.processed = Counter("medsr_instances_processed", "Instances processed (enhanced or passed)",
                                 ["action"], registry=r)
        self.failed = Counter("medsr_instances_failed", "Instances sent to the dead-letter folder", registry=r)
        self.sent = Counter("medsr_instances_sent", "Instances confirmed by a destination", ["destination"],
                            registry=r)
        self.send_errors = Counter("medsr_send_errors", "Failed send attempts (retried)", ["destination"],
                                   registry=r)
        self.queue_depth = Gauge("medsr_queue_depth", "Received instances waiting to be processed", registry=r)
        self.outbox_depth = Gauge("medsr_outbox_depth", "Results waiting to be sent", registry=r)
        self.series_seconds = Histogram("medsr_series_seconds", "Seconds to process one series", registry=r,
                                        buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800))

    def text(self) -> bytes:
        return generate_latest(self.registry)


class HealthServer:
    """``GET /healthz`` (JSON status) and ``GET /metrics`` (Prometheus text) on a local port, in a thread."""

    def __init__(self, host: str, port: int, metrics: Metrics, health: Callable[[], dict[str, Any]]) -> None:
        handler = _handler(metrics, health)
        self.server = ThreadingHTTPServer((host, port), handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, name="medsr-http", daemon=True)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _handler(metrics: Metrics, health: Callable[[], dict[str, Any]]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server interface
            if self.path.split("?")[0] == "/healthz":
                status = health()
                body, kind = json.dumps(status).encode(), "application/json"
                code = 200 if status.get("status") == "ok" else 503
            elif self.path.split("?")[0] == "/metrics":
                body, kind, code = metrics.text(), CONTENT_TYPE_LATEST, 200
            else:
                body, kind, code = b"not found: try /healthz or /metrics\n", "text/plain", 404
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet: scrapes are not news
            return

    return Handler

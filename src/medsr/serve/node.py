"""The DICOM node: receive (Storage SCP) -> spool -> process idle series -> send results, each step restartable.

Three loops share one ledger: the receiver records what arrived; the processor takes a series once it has been
idle for ``idle_seconds``, routes it (enhance with a model, pass through, ignore), writes the derived series with
``medsr upscale``'s own writer and queues it; the sender delivers queued instances to their destinations with
retry and back-off. ``kill -9`` at any point loses nothing: see :mod:`medsr.serve.ledger`.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import signal
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pydicom
from torch import nn

from medsr.errors import ConfigError, MedsrError, one_line
from medsr.infer.files import Source, upscale_files
from medsr.infer.modality import MODALITY_MODELS
from medsr.io.dicom import SeriesUIDMap
from medsr.models import DEFAULT_MODEL, load_model, model_name
from medsr.serve.config import NodeConfig, Route
from medsr.serve.ledger import Ledger, Outgoing
from medsr.serve.monitor import AuditLog, HealthServer, Metrics
from medsr.serve.senders import Sender, sender_for
from medsr.serve.spool import Spool

log = logging.getLogger("medsr.serve")

_ROUTING_TAGS = ["Modality", "BodyPartExamined", "SeriesDescription", "DerivationDescription"]
MEDSR_DERIVED = "medsr "
"""How medsr's derived instances begin their DerivationDescription: the node never enhances its own results."""


def series_attributes(path: Path, calling_ae: str) -> dict[str, str]:
    """What routing rules match on, read from one instance's header (no pixels)."""
    header = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=_ROUTING_TAGS)
    return {
        "modality": str(header.get("Modality", "") or "").strip().upper(),
        "body_part": str(header.get("BodyPartExamined", "") or "").strip(),
        "series_description": str(header.get("SeriesDescription", "") or "").strip(),
        "calling_ae": calling_ae,
        "derivation": str(header.get("DerivationDescription", "") or ""),
    }


def derived_uids(model: nn.Module) -> SeriesUIDMap:
    """Repeatable derived UIDs for a model's results: salted with its name and a digest of its weights, so they
    change when the weights do and never otherwise (a reprocess or resend is then the same instance)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return SeriesUIDMap(salt=f"{model_name(model)}:{digest.hexdigest()[:16]}")


class Node:
    """One running DICOM node; :meth:`start` it, :meth:`stop` it, or :meth:`run` it until a signal."""

    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.settings = config.inference.settings()
        self.spool = Spool(config.spool, config.limits.max_spool_bytes, config.limits.min_free_bytes)
        self.ledger = Ledger(self.spool.ledger_path)
        self.audit = AuditLog(config.audit_path)
        self.metrics = Metrics()
        self.senders: dict[str, Sender] = {name: sender_for(dest, config.ae_title)
                                           for name, dest in config.destinations.items()}
        self._models: dict[str, tuple[nn.Module, str | None]] = {}
        self._stop = threading.Event()
        self._process_event = threading.Event()
        self._send_event = threading.Event()
        self._threads: list[threading.Thread] = []
        self.receiver = None
        self.http: HealthServer | None = None
        self.port: int | None = None
        self.started = time.time()

    # life cycle

    def start(self) -> None:
        """Recover what a previous run left, then start receiving, processing, sending and the HTTP port."""
        from medsr.serve.receiver import Receiver  # noqa: PLC0415 - pynetdicom loads with the server

        if self.config.inference.threads:
            import torch  # noqa: PLC0415

            torch.set_num_threads(self.config.inference.threads)
        self.recover()
        self.receiver = Receiver(self)
        try:
            self.port = self.receiver.start()
            if self.config.http is not None:
                self.http = HealthServer(self.config.http.host, self.config.http.port, self.metrics, self.health)
                self.http.start()
        except OSError as exc:  # port taken, address not on this machine, no permission for a port below 1024
            self.receiver.stop()
            raise ConfigError(f"cannot listen: {exc.strerror or exc}") from None
        for target, name in ((self._process_loop, "medsr-process"), (self._send_loop, "medsr-send")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        self.audit("started", ae_title=self.config.ae_title, port=self.port)
        log.info("medsr node %s listening on %s:%s", self.config.ae_title, self.config.host, self.port)

    def stop(self) -> None:
        """Stop accepting, finish the step in progress, and close the ledger."""
        self._stop.set()
        self.wake()
        if self.receiver is not None:
            self.receiver.stop()
        for thread in self._threads:
            thread.join(timeout=600)
        if self.http is not None:
            self.http.stop()
        self.audit("stopped")
        self.ledger.close()

    def run(self) -> None:
        """Start, then serve until SIGTERM or SIGINT."""
        self.start()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self._stop.set())
        while not self._stop.wait(1.0):
            pass
        self.stop()

    def wake(self) -> None:
        """Tell the loops there is new work (they also poll)."""
        self._process_event.set()
        self._send_event.set()

    def health(self) -> dict[str, Any]:
        counts = self.ledger.counts()
        alive = all(t.is_alive() for t in self._threads) and not self._stop.is_set()
        return {"status": "ok" if alive else "stopping", "ae_title": self.config.ae_title, "port": self.port,
                "uptime_seconds": round(time.time() - self.started, 1), "queue_depth": counts.get("received", 0),
                "outbox_depth": counts.get("outbox", 0), "processed": counts.get("done", 0),
                "failed": counts.get("failed", 0)}

    def recover(self) -> None:
        """Make the ledger and the spool agree after a crash: record whole files it does not know, drop stale ones."""
        known = self.ledger.known()
        unsent = self.ledger.unsent_paths()
        added = 0
        for series_uid, sop_uid, path in self.spool.received_files():
            state = known.get(sop_uid)
            if state is None:  # written, not yet recorded (nor acknowledged): process it anyway
                self.ledger.record_received(sop_uid, series_uid, path, "")
                added += 1
            elif state != "received" and path not in unsent and not self.config.keep_files:
                self.spool.remove(path)
        if added:
            self.audit("recovered", count=added)

    # processing

    def _process_loop(self) -> None:
        while not self._stop.is_set():
            self._process_event.wait(0.5)
            self._process_event.clear()
            for series_uid in self.ledger.idle_series(self.config.idle_seconds):
                if self._stop.is_set():
                    break
                try:
                    self.process_series(series_uid)
                except Exception as exc:  # noqa: BLE001 - one bad series must not stop the node
                    log.exception("processing series %s failed", series_uid)
                    self.audit("failed", stage="process", series_uid=series_uid, reason=one_line(exc))
                    self._fail_all(series_uid, f"processing failed: {one_line(exc)}")
            self._update_gauges()

    def _update_gauges(self) -> None:
        counts = self.ledger.counts()
        self.metrics.queue_depth.set(counts.get("received", 0))
        self.metrics.outbox_depth.set(counts.get("outbox", 0))

    def model(self, name: str) -> tuple[nn.Module, str | None]:
        """A loaded model and the salt of its derived UIDs (see :func:`derived_uids`), loaded once."""
        if name not in self._models:
            net = load_model(name, self.settings.device)
            self._models[name] = (net, derived_uids(net).salt)
        return self._models[name]

    def process_series(self, series_uid: str) -> None:
        """Route one idle series and act on it; record the outcome in one transaction."""
        pending = self.ledger.pending(series_uid)
        if not pending:
            return
        started = time.perf_counter()
        present = [(sop, path, ae) for sop, path, ae in pending if path.is_file()]
        missing = [(sop, "file missing from the spool") for sop, path, _ in pending if not path.is_file()]
        if not present:
            self.ledger.finish((), (), failed=missing)
            return
        attributes = series_attributes(present[0][1], present[0][2])
        route = self.config.route_for(attributes)
        action = route.action if route is not None else "enhance"
        if attributes["derivation"].startswith(MEDSR_DERIVED):
            action = "ignore"  # our own result, routed back to us by the PACS: enhancing it again would loop
        destinations = self.config.destinations_for(route)
        fields = {"series_uid": series_uid, "count": len(present), "action": action,
                  "modality": attributes["modality"], "calling_ae": attributes["calling_ae"]}
        if action == "ignore":
            self.ledger.finish((), (), failed=missing, ignored=[sop for sop, _, _ in present])
            self._drop_sources(present)
            self.audit("processed", **fields)
            return
        if action == "pass":
            outgoing = [(sop, dest, path, series_uid) for sop, path, _ in present for dest in destinations]
            self.ledger.finish([sop for sop, _, _ in present], outgoing, failed=missing)
            self.metrics.processed.labels("pass").inc(len(present))
            self.audit("processed", destinations=destinations, **fields)
            self.wake()
            return
        name = self._model_name(route, attributes["modality"])
        done, outgoing, failed = self._enhance(series_uid, present, name, destinations)
        failed += missing
        self.ledger.finish(done, outgoing, failed=failed)
        for sop, reason in failed:
            source = next((path for s, path, _ in present if s == sop), None)
            if source is not None:
                self.spool.dead_letter(source, sop, reason)
            self.audit("failed", stage="process", series_uid=series_uid, sop_uid=sop, model=name, reason=reason)
        self.metrics.failed.inc(len(failed))
        self._drop_sources([item for item in present if item[0] in set(done)])
        seconds = time.perf_counter() - started
        self.metrics.processed.labels("enhance").inc(len(done))
        self.metrics.series_seconds.observe(seconds)
        self.audit("processed", model=name, seconds=round(seconds, 3), failed=len(failed), **fields | {
            "count": len(done)})
        log.info("series %s: %d instance(s) enhanced with %s in %.1f s", series_uid, len(done), name, seconds)
        self.wake()

    @staticmethod
    def _model_name(route: Route | None, modality: str) -> str:
        if route is not None and route.model:
            return route.model
        return MODALITY_MODELS.get(modality, DEFAULT_MODEL)

    def _enhance(
        self, series_uid: str, present: list[tuple[str, Path, str]], name: str, destinations: list[str]
    ) -> tuple[list[str], list[tuple[str, str, Path, str]], list[tuple[str, str]]]:
        try:
            net, salt = self.model(name)
        except MedsrError as exc:
            return [], [], [(sop, str(exc)) for sop, _, _ in present]
        by_path = {path: sop for sop, path, _ in present}
        sources = [Source(path, Path(path.name)) for _, path, _ in present]
        outdir = self.spool.derived_dir(series_uid)
        done, outgoing, failed = [], [], []
        for outcome in upscale_files(sources, outdir, net, fmt="dicom", settings=self.settings,
                                     series=SeriesUIDMap(salt=salt)):
            sop = by_path[outcome.source]
            if outcome.error is not None or outcome.target is None:
                failed.append((sop, outcome.error or "not written"))
                continue
            derived = str(pydicom.dcmread(outcome.target, stop_before_pixels=True).SOPInstanceUID)
            done.append(sop)
            outgoing += [(derived, dest, outcome.target, series_uid) for dest in destinations]
        return done, outgoing, failed

    def _drop_sources(self, items: list[tuple[str, Path, str]]) -> None:
        if self.config.keep_files:
            return
        unsent = self.ledger.unsent_paths()
        for _, path, _ in items:
            if path not in unsent:
                self.spool.remove(path)

    def _fail_all(self, series_uid: str, reason: str) -> None:
        pending = self.ledger.pending(series_uid)
        self.ledger.finish((), (), failed=[(sop, reason) for sop, _, _ in pending])
        for sop, path, _ in pending:
            self.spool.dead_letter(path, sop, reason)
        self.metrics.failed.inc(len(pending))

    # sending

    def _send_loop(self) -> None:
        while not self._stop.is_set():
            self._send_event.wait(0.5)
            self._send_event.clear()
            due = self.ledger.due()
            if not due:
                continue
            by_destination: dict[str, list[Outgoing]] = defaultdict(list)
            for item in due:
                by_destination[item.destination].append(item)
            for destination, items in by_destination.items():
                self._send(destination, items)
            self._update_gauges()

    def _send(self, destination: str, items: list[Outgoing]) -> None:
        sender = self.senders.get(destination)
        if sender is None:
            results = {item.path: f"destination {destination!r} is not configured" for item in items}
        else:
            try:
                results = sender.send([item.path for item in items])
            except Exception as exc:  # noqa: BLE001 - a destination's failure is retried, never fatal
                results = {item.path: f"send failed: {one_line(exc)}" for item in items}
        sent = [item for item in items if results.get(item.path, "not sent") is None]
        self.ledger.mark_sent(sent)
        for item in sent:
            self.metrics.sent.labels(destination).inc()
            self.audit("sent", destination=destination, series_uid=item.series_uid, sop_uid=item.sop_uid)
        unsent = [item for item in items if results.get(item.path, "not sent") is not None]
        if unsent:
            log.warning("%d result(s) not sent to %s: %s", len(unsent), destination,
                        results.get(unsent[0].path, "not sent"))
        for item in unsent:
            reason = results.get(item.path) or "not sent"
            delay = min(self.config.send_retry_seconds * 2**item.attempts, self.config.send_retry_max_seconds)
            self.ledger.mark_retry(item, reason, delay)
            self.metrics.send_errors.labels(destination).inc()
            self.audit("send_failed", destination=destination, series_uid=item.series_uid, sop_uid=item.sop_uid,
                       attempt=item.attempts + 1, retry_in_seconds=round(delay, 1), reason=reason)
        if sent and not self.config.keep_files:
            unsent = self.ledger.unsent_paths()
            for path in {item.path for item in sent} - unsent:
                with contextlib.suppress(OSError):
                    self.spool.remove(path)

"""Sending results on: DICOM C-STORE (pynetdicom) and DICOMweb STOW-RS (dicomweb-client).

Each sender takes a batch of files for one destination, sends them over one association (or one request) and
says, per SOP Instance UID, whether the destination confirmed it. Retrying and back-off are the node's job.
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import pydicom
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from medsr.errors import one_line
from medsr.serve.config import DicomDestination, StowDestination

_SUCCESS_OR_WARNING = {0x0000, 0xB000, 0xB006, 0xB007}


def read_all(files: Sequence[Path]) -> tuple[dict[Path, pydicom.Dataset], dict[Path, str | None]]:
    """The files' datasets, and the reason for each that cannot be read (it cannot be sent either)."""
    datasets: dict[Path, pydicom.Dataset] = {}
    failures: dict[Path, str | None] = {}
    for path in files:
        try:
            datasets[path] = pydicom.dcmread(path)
        except Exception as exc:  # noqa: BLE001 - pydicom raises many kinds; the ledger gets one line
            failures[path] = f"cannot read {path.name}: {one_line(exc) or type(exc).__name__}"
    return datasets, failures


class Sender(Protocol):
    def send(self, files: Sequence[Path]) -> dict[Path, str | None]:
        """Send ``files``; for each, None when the destination confirmed it, else the reason it did not."""


class DicomSender:
    """C-STORE SCU towards one destination, proposing each file's own transfer syntax and the uncompressed ones."""

    def __init__(self, destination: DicomDestination, node_ae_title: str) -> None:
        self.destination = destination
        self.ae_title = destination.calling_ae_title or node_ae_title

    def _tls(self) -> tuple[ssl.SSLContext, str] | None:
        if self.destination.tls_ca_certificates is None:
            return None
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(self.destination.tls_ca_certificates))
        return context, self.destination.host

    def send(self, files: Sequence[Path]) -> dict[Path, str | None]:
        from pynetdicom import AE  # noqa: PLC0415 - networking only where it is used

        datasets, results = read_all(files)
        if not datasets:
            return results
        ae = AE(ae_title=self.ae_title)
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = self.destination.timeout_seconds
        contexts: dict[str, list[str]] = {}
        for ds in datasets.values():
            syntaxes = contexts.setdefault(str(ds.SOPClassUID), [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
            own = str(ds.file_meta.TransferSyntaxUID)
            if own not in syntaxes:
                syntaxes.insert(0, own)
        for sop_class, syntaxes in list(contexts.items())[:128]:
            ae.add_requested_context(sop_class, syntaxes)
        kwargs = {"ae_title": self.destination.ae_title}
        tls = self._tls()
        if tls is not None:
            kwargs["tls_args"] = tls
        assoc = ae.associate(self.destination.host, self.destination.port, **kwargs)
        if not assoc.is_established:
            reason = "association rejected" if assoc.is_rejected else "no association (unreachable or aborted)"
            return results | {path: f"{self.destination.ae_title}@{self.destination.host}:"
                              f"{self.destination.port}: {reason}" for path in datasets}
        try:
            for path, ds in datasets.items():
                results[path] = self._store(assoc, ds)
        finally:
            if assoc.is_established:
                assoc.release()
        return results

    @staticmethod
    def _store(assoc, ds: pydicom.Dataset) -> str | None:  # noqa: ANN001 - pynetdicom's Association
        accepted = [c for c in assoc.accepted_contexts if c.abstract_syntax == ds.SOPClassUID]
        if not accepted:
            return f"destination does not accept SOP class {ds.SOPClassUID}"
        syntax = ds.file_meta.TransferSyntaxUID
        if all(c.transfer_syntax[0] != syntax for c in accepted) and syntax.is_compressed:
            ds.decompress()  # the destination takes only uncompressed data: send that, same pixels
        try:
            status = assoc.send_c_store(ds)
        except (ValueError, RuntimeError, AttributeError) as exc:
            return f"C-STORE failed: {exc}"
        if not status:
            return "no C-STORE response (timed out or aborted)"
        if status.Status not in _SUCCESS_OR_WARNING:
            return f"C-STORE status 0x{status.Status:04X}"
        return None


class StowSender:
    """STOW-RS towards one DICOMweb server, all files of a batch in one multipart request."""

    def __init__(self, destination: StowDestination) -> None:
        self.destination = destination

    def send(self, files: Sequence[Path]) -> dict[Path, str | None]:
        import requests  # noqa: PLC0415
        from dicomweb_client.api import DICOMwebClient  # noqa: PLC0415

        datasets, results = read_all(files)
        if not datasets:
            return results
        session = requests.Session()
        if self.destination.username:
            session.auth = (self.destination.username, self.destination.password or "")
        client = DICOMwebClient(self.destination.url, session=session)
        paths = list(datasets)
        for first in range(0, len(paths), self.PER_REQUEST):
            results |= self._store(client, {p: datasets[p] for p in paths[first:first + self.PER_REQUEST]})
        return results

    PER_REQUEST = 32
    """Instances per STOW-RS request: a multipart body is held in memory, so a large backlog goes in pieces."""

    def _store(self, client, datasets: dict[Path, pydicom.Dataset]) -> dict[Path, str | None]:  # noqa: ANN001
        try:
            response = client.store_instances(list(datasets.values()))
        except Exception as exc:  # noqa: BLE001 - HTTP errors, refused connections: retried later
            reason = f"STOW-RS to {self.destination.url} failed: {one_line(exc) or type(exc).__name__}"
            return {path: reason for path in datasets}
        failed = {str(item.ReferencedSOPInstanceUID): item.get("FailureReason", "")
                  for item in getattr(response, "FailedSOPSequence", [])}
        return {path: f"STOW-RS failure reason {failed[str(ds.SOPInstanceUID)]}"
                if str(ds.SOPInstanceUID) in failed else None for path, ds in datasets.items()}


def sender_for(destination: DicomDestination | StowDestination, node_ae_title: str) -> Sender:
    """The sender for a configured destination."""
    if isinstance(destination, StowDestination):
        return StowSender(destination)
    return DicomSender(destination, node_ae_title)

"""Receiving: the node's Storage SCP (pynetdicom) for the image SOP classes medsr reads.

An association from a calling AE title (and host) the configuration does not list is rejected before any data
moves. Each C-STORE is checked (size limits, readable dataset, UIDs, whole pixel data), written durably to the
spool and recorded in the ledger before success is answered; a full spool answers 0xA700 (out of resources),
an unreadable instance 0xC210 (cannot understand) or 0xA900 (does not match its SOP class).
"""

from __future__ import annotations

import logging
import ssl
import threading
from typing import TYPE_CHECKING, Any

from pydicom.uid import (
    JPEG2000,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)
from pydicom.uid import JPEGLossless as JPEGLosslessP14

from medsr.serve.spool import SpoolFull, safe_uid

if TYPE_CHECKING:
    from medsr.serve.node import Node

log = logging.getLogger("medsr.serve")

TRANSFER_SYNTAXES = [
    ExplicitVRLittleEndian, ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian,
    JPEGBaseline8Bit, JPEGExtended12Bit, JPEGLosslessP14, JPEGLosslessSV1, JPEGLSLossless, JPEGLSNearLossless,
    JPEG2000Lossless, JPEG2000, RLELossless,
]
"""What the node accepts: the uncompressed syntaxes and every compressed one pydicom + pylibjpeg decode."""

STORAGE_CLASSES = [
    "ComputedRadiographyImageStorage",
    "DigitalXRayImageStorageForPresentation",
    "DigitalXRayImageStorageForProcessing",
    "CTImageStorage",
    "EnhancedCTImageStorage",
    "UltrasoundImageStorage",
    "UltrasoundMultiFrameImageStorage",
    "MRImageStorage",
    "EnhancedMRImageStorage",
    "SecondaryCaptureImageStorage",
    "MultiFrameGrayscaleByteSecondaryCaptureImageStorage",
    "MultiFrameGrayscaleWordSecondaryCaptureImageStorage",
    "MultiFrameTrueColorSecondaryCaptureImageStorage",
]
"""The image SOP classes medsr reads (pynetdicom names)."""

OUT_OF_RESOURCES = 0xA700
DATASET_MISMATCH = 0xA900
CANNOT_UNDERSTAND = 0xC210
REJECT_PERMANENT, SOURCE_SERVICE_USER, CALLING_AE_NOT_RECOGNISED = 0x01, 0x01, 0x03


def _expected_pixel_bytes(ds: Any) -> int | None:
    """The byte count native (uncompressed) Pixel Data must have; None when it cannot be told."""
    try:
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        count = int(ds.Rows) * int(ds.Columns) * int(ds.get("SamplesPerPixel", 1)) * frames
        return count * int(ds.BitsAllocated) // 8 if int(ds.BitsAllocated) % 8 == 0 else None
    except (AttributeError, TypeError, ValueError):
        return None


def check_instance(ds: Any) -> tuple[int, str] | None:
    """Why an instance cannot be processed, as (status, reason); None when it looks whole."""
    for keyword in ("SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID"):
        try:
            safe_uid(str(ds.get(keyword, "") or ""))
        except ValueError:
            return DATASET_MISMATCH, f"missing or invalid {keyword}"
    if "PixelData" not in ds:
        return DATASET_MISMATCH, "no Pixel Data"
    if not ds.file_meta.TransferSyntaxUID.is_compressed:
        expected = _expected_pixel_bytes(ds)
        got = len(ds.PixelData)
        if expected is not None and got < expected:
            return DATASET_MISMATCH, f"Pixel Data is {got} bytes, {expected} expected (truncated)"
    return None


class Receiver:
    """The Storage SCP: owns the pynetdicom AE and its server thread."""

    def __init__(self, node: Node) -> None:
        from pynetdicom import AE, evt  # noqa: PLC0415 - networking only where it is used
        from pynetdicom import sop_class as classes  # noqa: PLC0415

        self.node = node
        config = node.config
        self.ae = AE(ae_title=config.ae_title)
        self.ae.maximum_associations = 16
        self.ae.network_timeout = self.ae.acse_timeout = 60
        self.ae.dimse_timeout = 120
        self.ae.add_supported_context(classes.Verification)
        for name in STORAGE_CLASSES:
            self.ae.add_supported_context(getattr(classes, name), TRANSFER_SYNTAXES)
        self._bytes: dict[int, int] = {}
        self._lock = threading.Lock()
        self.handlers = [
            (evt.EVT_REQUESTED, self._on_requested),
            (evt.EVT_C_STORE, self._on_store),
            (evt.EVT_C_ECHO, lambda event: 0x0000),
            (evt.EVT_CONN_CLOSE, self._on_close),
        ]
        self.server = None

    def start(self) -> int:
        """Start listening (non-blocking); returns the port (useful when the config asked for port 0)."""
        config = self.node.config
        context = None
        if config.tls is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(str(config.tls.certificate), str(config.tls.key))
            if config.tls.ca_certificates is not None:
                context.load_verify_locations(cafile=str(config.tls.ca_certificates))
                context.verify_mode = ssl.CERT_REQUIRED
        self.server = self.ae.start_server((config.host, config.port), block=False, evt_handlers=self.handlers,
                                           ssl_context=context)
        return int(self.server.server_address[1])

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()

    def _on_requested(self, event: Any) -> None:
        requestor = event.assoc.requestor
        ae_title = str(requestor.primitive.calling_ae_title).strip()  # .ae_title is set after negotiation
        if not self.node.config.allows(ae_title, requestor.address):
            self.node.audit("rejected", calling_ae=ae_title, address=requestor.address,
                            reason="calling AE title or host not allowed")
            self.node.metrics.rejected.labels("not allowed").inc()
            log.warning("rejected association from %s at %s: not an allowed caller", ae_title, requestor.address)
            event.assoc.acse.send_reject(REJECT_PERMANENT, SOURCE_SERVICE_USER, CALLING_AE_NOT_RECOGNISED)
            event.assoc.kill()  # as pynetdicom's own rejection does: the A-ASSOCIATE-RJ goes out before the close

    def _on_close(self, event: Any) -> None:
        with self._lock:
            self._bytes.pop(id(event.assoc), None)

    def _refuse(self, status: int, reason: str, calling_ae: str, **fields: Any) -> int:
        self.node.audit("failed", stage="receive", calling_ae=calling_ae, reason=reason, status=f"0x{status:04X}",
                        **fields)
        self.node.metrics.rejected.labels(reason.split(" (")[0][:40]).inc()
        log.warning("refused an instance from %s: %s", calling_ae, reason)
        return status

    def _on_store(self, event: Any) -> int:
        node = self.node
        limits = node.config.limits
        calling_ae = str(event.assoc.requestor.ae_title).strip()
        size = event.request.DataSet.getbuffer().nbytes
        if limits.max_instance_bytes is not None and size > limits.max_instance_bytes:
            return self._refuse(OUT_OF_RESOURCES, f"instance of {size} bytes over the limit "
                                f"({limits.max_instance_bytes})", calling_ae)
        with self._lock:
            total = self._bytes.get(id(event.assoc), 0) + size
            self._bytes[id(event.assoc)] = total
        if limits.max_association_bytes is not None and total > limits.max_association_bytes:
            return self._refuse(OUT_OF_RESOURCES, f"association over its limit of {limits.max_association_bytes} "
                                "bytes", calling_ae)
        try:
            ds = event.dataset
            ds.file_meta = event.file_meta
            problem = check_instance(ds)
        except Exception as exc:  # noqa: BLE001 - a peer's bytes can break the decoder in many ways
            return self._refuse(CANNOT_UNDERSTAND, f"cannot decode the dataset ({type(exc).__name__})", calling_ae)
        if problem is not None:
            return self._refuse(*problem, calling_ae, sop_uid=str(ds.get("SOPInstanceUID", "")))
        sop_uid, series_uid = str(ds.SOPInstanceUID), str(ds.SeriesInstanceUID)
        if node.ledger.state(sop_uid) not in (None, "received"):
            node.audit("duplicate", series_uid=series_uid, sop_uid=sop_uid, calling_ae=calling_ae)
            return 0x0000  # already processed: the sender did not hear our answer; nothing to do twice
        path = node.spool.incoming(series_uid, sop_uid)
        try:
            node.spool.write(path, event.encoded_dataset(include_meta=True))
        except SpoolFull as exc:
            return self._refuse(OUT_OF_RESOURCES, f"spool full ({exc})", calling_ae, sop_uid=sop_uid)
        except OSError as exc:
            return self._refuse(OUT_OF_RESOURCES, f"cannot spool ({exc.strerror or exc})", calling_ae,
                                sop_uid=sop_uid)
        node.ledger.record_received(sop_uid, series_uid, path, calling_ae)
        node.metrics.received.inc()
        node.audit("received", series_uid=series_uid, sop_uid=sop_uid, calling_ae=calling_ae, bytes=size)
        node.wake()
        return 0x0000

"""A throwaway local Orthanc (Debian's ``orthanc`` + ``orthanc-dicomweb``) for tests, benchmarks and trials.

It listens on loopback ports of its own (HTTP only from this machine; DICOM stores accepted only from
modalities it knows, checked by host), keeps its database in a temporary folder, and is stopped and removed
by :meth:`LocalOrthanc.stop`. Its REST API is what the tests use to send studies to the node and to look for
the results, as an integration engineer would.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from medsr.net import free_port

ORTHANC = "/usr/sbin/Orthanc"
DICOMWEB_PLUGIN = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so"


def available() -> str | None:
    """None when Orthanc can be started here, else why not (one line)."""
    if shutil.which(ORTHANC) is None and not Path(ORTHANC).exists():
        return "Orthanc is not installed (Debian packages orthanc and orthanc-dicomweb; `make test` installs them)"
    return None


class LocalOrthanc:
    """Start Orthanc with a temporary configuration; ``url`` is its REST root, ``dicom_port`` its DICOM port."""

    def __init__(self, ae_title: str = "ORTHANC", timeout: float = 60.0) -> None:
        import requests  # noqa: PLC0415

        self.ae_title = ae_title
        self.http_port, self.dicom_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.folder = Path(tempfile.mkdtemp(prefix="medsr-orthanc-"))
        config = {
            "Name": "medsr-test", "StorageDirectory": str(self.folder / "db"),
            "IndexDirectory": str(self.folder / "db"), "HttpPort": self.http_port, "DicomPort": self.dicom_port,
            "DicomAet": ae_title, "RemoteAccessAllowed": False, "AuthenticationEnabled": False,
            "DicomAlwaysAllowStore": False, "DicomAlwaysAllowEcho": False, "DicomCheckModalityHost": True,
            "DicomCheckCalledAet": False, "DicomModalitiesInDatabase": True, "OverwriteInstances": True,
            "StableAge": 2, "ConcurrentJobs": 2, "HttpThreadsCount": 8, "DicomScpTimeout": 30,
            "Plugins": [DICOMWEB_PLUGIN] if Path(DICOMWEB_PLUGIN).exists() else [],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "Host": f"127.0.0.1:{self.http_port}"},
        }
        (self.folder / "orthanc.json").write_text(json.dumps(config, indent=1))
        self._log = open(self.folder / "orthanc.log", "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen([ORTHANC, str(self.folder / "orthanc.json")], stdout=self._log,
                                        stderr=subprocess.STDOUT, cwd=self.folder)
        self.session = requests.Session()
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"Orthanc exited with {self.process.returncode}: {self.log_tail()}")
            with contextlib.suppress(Exception):
                if self.session.get(f"{self.url}/system", timeout=2).ok:
                    break
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"Orthanc did not answer within {timeout:.0f} s")
            time.sleep(0.2)

    def log_tail(self, lines: int = 20) -> str:
        path = self.folder / "orthanc.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._log.close()
        shutil.rmtree(self.folder, ignore_errors=True)

    # REST helpers

    def get(self, path: str, **kwargs: Any) -> Any:
        response = self.session.get(f"{self.url}{path}", timeout=60, **kwargs)
        response.raise_for_status()
        return response.json() if "json" in response.headers.get("Content-Type", "") else response.content

    def post(self, path: str, data: Any = None, **kwargs: Any) -> Any:
        body = data if isinstance(data, bytes) else json.dumps(data)
        response = self.session.post(f"{self.url}{path}", data=body, timeout=600, **kwargs)
        response.raise_for_status()
        return response.json() if "json" in response.headers.get("Content-Type", "") else response.content

    def add_modality(self, name: str, ae_title: str, port: int, host: str = "127.0.0.1") -> None:
        """Register a DICOM peer (e.g. the node) that Orthanc may send to and receive from."""
        body = {"AET": ae_title, "Host": host, "Port": port, "AllowEcho": True, "AllowStore": True}
        response = self.session.put(f"{self.url}/modalities/{name}", data=json.dumps(body), timeout=30)
        response.raise_for_status()

    def upload(self, path: str | Path) -> dict[str, Any]:
        """Store a DICOM file through the REST API; returns Orthanc's answer (ID, ParentSeries, ...)."""
        return self.post("/instances", Path(path).read_bytes())

    def store_to(self, modality: str, resources: list[str], timeout: float = 600) -> Any:
        """Have Orthanc C-STORE resources (instance/series/study IDs) to a registered modality, synchronously."""
        return self.post(f"/modalities/{modality}/store", {"Resources": resources, "Synchronous": True,
                                                           "Timeout": int(timeout)})

    def series_of_study(self, study_uid: str) -> list[dict[str, Any]]:
        """Every series of a study: Orthanc's expanded records (MainDicomTags, Instances IDs)."""
        return list(self.post("/tools/find", {"Level": "Series", "Query": {"StudyInstanceUID": study_uid},
                                              "Expand": True}))

    def instance_file(self, orthanc_id: str) -> bytes:
        return self.get(f"/instances/{orthanc_id}/file")

"""The node against a real PACS: Orthanc sends studies to medsr serve, the derived series come back into Orthanc."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pydicom
import pytest
import yaml
from serve_helpers import DATA, new_study, node_config, single_frame_us, wait_for

from medsr.infer.files import Source, upscale_files
from medsr.models import load_model

pytestmark = pytest.mark.slow


def derived_series(orthanc, study_uid: str) -> list[dict]:
    return [s for s in orthanc.series_of_study(study_uid) if "medsr" in s["MainDicomTags"].get("SeriesDescription", "")]


def derived_files(orthanc, study_uid: str, count: int, timeout: float = 180) -> list[pydicom.Dataset]:
    """Wait until the study holds ``count`` derived instances; return them, read back from Orthanc."""
    def ready():
        found = derived_series(orthanc, study_uid)
        return found if sum(len(s["Instances"]) for s in found) >= count else None

    found = wait_for(ready, timeout, f"{count} derived instance(s) of study {study_uid} in Orthanc")
    from io import BytesIO

    return [pydicom.dcmread(BytesIO(orthanc.instance_file(i))) for s in found for i in s["Instances"]]


def expected_output(path: Path, model: str, tmp: Path) -> pydicom.Dataset:
    """What `medsr upscale --model MODEL` writes for the same file."""
    outcome = next(upscale_files([Source(path, Path(path.name))], tmp, load_model(model, "cpu"), fmt="dicom"))
    assert outcome.error is None, outcome.error
    return pydicom.dcmread(outcome.target)


@pytest.fixture
def wired(orthanc, start_node, tmp_path):
    """A node whose destination is Orthanc, registered in Orthanc as modality 'medsr'."""
    config = node_config(tmp_path / "spool", destinations={
        "pacs": {"type": "dicom", "ae_title": orthanc.ae_title, "host": "127.0.0.1", "port": orthanc.dicom_port}})
    node = start_node(config)
    orthanc.add_modality("medsr", "MEDSR", node.port)
    return node


def test_cr_ct_and_us_from_orthanc_come_back_enhanced(orthanc, wired, tmp_path):
    cr = new_study(DATA / "cr_mono1_small.dcm", tmp_path / "cr")
    ct = new_study(DATA / "ct_small.dcm", tmp_path / "ct", count=3)
    us = [single_frame_us(tmp_path / "us" / "frame.dcm")]
    cases = [(cr, "xray-x4", (4, 4)), (ct, "ct-sparse-view", (1, 1)), (us, "ultrasound-lateral-x4", (1, 4))]
    for paths, _, _ in cases:
        ids = [orthanc.upload(p)["ID"] for p in paths]
        orthanc.store_to("medsr", ids)
    for paths, model, (sy, sx) in cases:
        sources = {str(pydicom.dcmread(p).SOPInstanceUID): p for p in paths}
        first = pydicom.dcmread(paths[0])
        results = derived_files(orthanc, first.StudyInstanceUID, len(paths))
        assert len(results) == len(paths)
        assert len({str(r.SeriesInstanceUID) for r in results}) == 1
        for result in results:
            source_uid = str(result.SourceImageSequence[0].ReferencedSOPInstanceUID)
            source = pydicom.dcmread(sources[source_uid])
            assert result.StudyInstanceUID == source.StudyInstanceUID
            assert result.SeriesInstanceUID != source.SeriesInstanceUID
            assert result.SOPInstanceUID != source.SOPInstanceUID
            assert result.ImageType[0] == "DERIVED"
            assert (result.Rows, result.Columns) == (source.Rows * sy, source.Columns * sx)
            if "PixelSpacing" in source:
                assert float(result.PixelSpacing[0]) == pytest.approx(float(source.PixelSpacing[0]) / sy)
                assert float(result.PixelSpacing[1]) == pytest.approx(float(source.PixelSpacing[1]) / sx)
            expected = expected_output(sources[source_uid], model, tmp_path / "expected")
            np.testing.assert_array_equal(result.pixel_array, expected.pixel_array)
    counts = wired.ledger.counts()
    assert counts["done"] == 5 and counts["outbox"] == 0


def test_stow_rs_destination(orthanc, start_node, tmp_path, monkeypatch):
    from pynetdicom import AE

    from medsr.serve.senders import StowSender

    monkeypatch.setattr(StowSender, "PER_REQUEST", 1)  # a backlog goes in several requests
    node = start_node(node_config(tmp_path / "spool", destinations={
        "web": {"type": "stow", "url": f"{orthanc.url}/dicom-web"}}))
    paths = new_study(DATA / "ct_small.dcm", tmp_path / "ct", count=2)
    ae = AE(ae_title="TESTSCU")
    ae.add_requested_context(pydicom.uid.CTImageStorage)
    assoc = ae.associate("127.0.0.1", node.port, ae_title="MEDSR")
    assert assoc.is_established
    assert [assoc.send_c_store(pydicom.dcmread(p)).Status for p in paths] == [0, 0]
    assoc.release()
    results = derived_files(orthanc, pydicom.dcmread(paths[0]).StudyInstanceUID, 2)
    by_source = {str(r.SourceImageSequence[0].ReferencedSOPInstanceUID): r for r in results}
    for path in paths:
        result = by_source[str(pydicom.dcmread(path).SOPInstanceUID)]
        np.testing.assert_array_equal(result.pixel_array,
                                      expected_output(path, "ct-sparse-view", tmp_path / "expected").pixel_array)


def test_one_shot_study_through_dicomweb(orthanc, tmp_path):
    from medsr.serve.dicomweb import enhance_study

    path = new_study(DATA / "cr_mono1_small.dcm", tmp_path / "cr")[0]
    orthanc.upload(path)
    study = str(pydicom.dcmread(path).StudyInstanceUID)
    url = f"{orthanc.url}/dicom-web/studies/{study}"
    first = enhance_study(url)
    assert (first.fetched, first.stored, first.failures) == (1, 1, [])
    again = enhance_study(url)  # the derived series is skipped; the source gives the same UIDs again
    assert (again.fetched, again.skipped, again.stored) == (2, 1, 1)
    found = derived_series(orthanc, study)
    assert len(found) == 1 and len(found[0]["Instances"]) == 1
    result = derived_files(orthanc, study, 1)[0]
    np.testing.assert_array_equal(result.pixel_array,
                                  expected_output(path, "xray-x4", tmp_path / "expected").pixel_array)


def test_four_senders_at_once_lose_nothing(orthanc, wired, tmp_path):
    from pynetdicom import AE

    studies = [new_study(DATA / "ct_small.dcm", tmp_path / f"s{i}", count=4) for i in range(4)]
    statuses: list[int] = []

    def send(paths):
        ae = AE(ae_title="TESTSCU")
        ae.add_requested_context(pydicom.uid.CTImageStorage)
        assoc = ae.associate("127.0.0.1", wired.port, ae_title="MEDSR")
        for p in paths:
            statuses.append(assoc.send_c_store(pydicom.dcmread(p)).Status)
        assoc.release()

    threads = [threading.Thread(target=send, args=(paths,)) for paths in studies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert statuses == [0] * 16
    for paths in studies:
        results = derived_files(orthanc, pydicom.dcmread(paths[0]).StudyInstanceUID, 4)
        assert sorted(str(r.SourceImageSequence[0].ReferencedSOPInstanceUID) for r in results) == sorted(
            str(pydicom.dcmread(p).SOPInstanceUID) for p in paths)


def test_kill_9_mid_series_then_restart_delivers_each_instance_once(orthanc, tmp_path):
    config = node_config(tmp_path / "spool", port=0, destinations={
        "pacs": {"type": "dicom", "ae_title": orthanc.ae_title, "host": "127.0.0.1", "port": orthanc.dicom_port}})
    from medsr.net import free_port

    config["port"] = free_port()
    config_file = tmp_path / "node.yaml"
    config_file.write_text(yaml.safe_dump(config))
    orthanc.add_modality("medsr-kill", "MEDSR", config["port"])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))

    def start():
        proc = subprocess.Popen([sys.executable, "-m", "medsr", "serve", "--config", str(config_file)], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        audit = tmp_path / "spool" / "audit.jsonl"
        wait_for(lambda: audit.exists() and audit.read_text().count('"started"') > start.count, 120,
                 "the node to start")
        start.count += 1
        return proc

    start.count = 0
    paths = new_study(DATA / "ct_small.dcm", tmp_path / "ct", count=8)
    study = str(pydicom.dcmread(paths[0]).StudyInstanceUID)
    node = start()
    ids = [orthanc.upload(p)["ID"] for p in paths]
    orthanc.store_to("medsr-kill", ids)  # returns once the node has acknowledged (spooled) all 8
    os.kill(node.pid, signal.SIGKILL)  # while it waits out the idle time or processes the series
    node.wait(30)
    node = start()
    try:
        results = derived_files(orthanc, study, 8)
    finally:
        node.send_signal(signal.SIGTERM)
        node.wait(60)
    found = derived_series(orthanc, study)
    assert len(found) == 1 and len(found[0]["Instances"]) == 8
    assert sorted(str(r.SourceImageSequence[0].ReferencedSOPInstanceUID) for r in results) == sorted(
        str(pydicom.dcmread(p).SOPInstanceUID) for p in paths)

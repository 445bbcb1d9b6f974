"""The DICOM node on its own: who may associate, what it refuses, routing, crash recovery, health and audit."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pydicom
import pytest
import yaml
from pynetdicom import AE
from pynetdicom.sop_class import Verification
from serve_helpers import DATA, new_study, node_config, wait_for

from medsr.serve.config import example_text, load_config, parse_config
from medsr.serve.ledger import Ledger
from medsr.serve.spool import Spool

CT = pydicom.uid.CTImageStorage


def associate(port: int, ae_title: str = "TESTSCU", **kwargs):
    ae = AE(ae_title=ae_title)
    ae.add_requested_context(CT)
    ae.add_requested_context(Verification)
    return ae.associate("127.0.0.1", port, ae_title="MEDSR", **kwargs)


def store(port: int, ds: pydicom.Dataset, ae_title: str = "TESTSCU") -> int:
    assoc = associate(port, ae_title)
    assert assoc.is_established
    status = assoc.send_c_store(ds).Status
    assoc.release()
    return status


# configuration


def test_example_configuration_validates(tmp_path):
    path = tmp_path / "node.yaml"
    path.write_text(example_text())
    config = load_config(path)
    assert config.ae_title == "MEDSR" and config.route_for({"modality": "CT", "series_description": "x scout"})


def test_every_mistake_is_one_line():
    with pytest.raises(Exception) as info:
        parse_config({"ae_title": "A" * 17, "port": 70000, "spool": "/tmp/x", "callers": [],
                      "routes": [{"action": "zap"}], "colour": 1}, "node.yaml")
    lines = str(info.value).splitlines()
    assert len(lines) == 5
    assert all(line.startswith("node.yaml: ") for line in lines)
    assert any("routes.0.action" in line for line in lines) and any("colour" in line for line in lines)


def test_unknown_destination_is_named():
    config = node_config("/tmp/spool", default_destinations=["nowhere"])
    with pytest.raises(Exception, match="unknown destination 'nowhere'"):
        parse_config(config)


def test_check_and_example_from_the_command_line(tmp_path):
    from typer.testing import CliRunner

    from medsr.cli import app

    example = CliRunner().invoke(app, ["serve", "--example"])
    assert example.exit_code == 0 and example.stdout == example_text()
    bad = tmp_path / "bad.yaml"
    bad.write_text("ae_title: MEDSR\nport: 11112\nspool: s\ncallers: [{ae_title: A}]\nroutes: [{model: 3, x: 1}]\n")
    result = subprocess.run([sys.executable, "-m", "medsr", "serve", "--config", str(bad), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert "routes.0.x" in result.stderr and "Traceback" not in result.stderr


def test_a_port_in_use_is_one_line(start_node, tmp_path):
    from medsr.errors import ConfigError

    first = start_node(node_config(tmp_path / "a"))
    with pytest.raises(ConfigError, match="cannot listen: Address already in use"):
        start_node(node_config(tmp_path / "b", port=first.port))


# security and limits


def test_unknown_calling_ae_and_host_are_rejected(start_node, tmp_path):
    node = start_node(node_config(tmp_path / "spool", callers=[
        {"ae_title": "TESTSCU"}, {"ae_title": "FARAWAY", "hosts": ["10.1.2.0/24"]}]))
    assert associate(node.port, "STRANGER").is_rejected
    assert associate(node.port, "FARAWAY").is_rejected  # right title, wrong host
    assoc = associate(node.port, "TESTSCU")
    assert assoc.is_established and assoc.send_c_echo().Status == 0
    assoc.release()
    events = [json.loads(line) for line in (tmp_path / "spool" / "audit.jsonl").read_text().splitlines()]
    assert [e["calling_ae"] for e in events if e["event"] == "rejected"] == ["STRANGER", "FARAWAY"]


def test_corrupt_instance_fails_and_the_next_goes_through(start_node, tmp_path):
    node = start_node(node_config(tmp_path / "spool", idle_seconds=60))
    good, other = new_study(DATA / "ct_small.dcm", tmp_path / "ct", count=2)
    broken = pydicom.dcmread(good)
    broken.PixelData = broken.PixelData[: len(broken.PixelData) // 2]
    assoc = associate(node.port)
    assert assoc.send_c_store(broken).Status == 0xA900
    assert assoc.send_c_store(pydicom.dcmread(other)).Status == 0x0000
    assoc.release()
    assert node.ledger.counts().get("received") == 1


def test_size_limits_and_full_spool_answer_out_of_resources(start_node, tmp_path):
    size = (DATA / "ct_small.dcm").stat().st_size
    small = start_node(node_config(tmp_path / "a", idle_seconds=60, limits={"max_instance_bytes": size // 2}))
    path = new_study(DATA / "ct_small.dcm", tmp_path / "ct")[0]
    assert store(small.port, pydicom.dcmread(path)) == 0xA700
    quota = start_node(node_config(tmp_path / "b", idle_seconds=60, limits={"max_spool_bytes": int(size * 1.5)}))
    first, second = new_study(DATA / "ct_small.dcm", tmp_path / "ct2", count=2)
    assert store(quota.port, pydicom.dcmread(first)) == 0x0000
    assert store(quota.port, pydicom.dcmread(second)) == 0xA700
    assert quota.ledger.counts().get("received") == 1


def test_audit_log_and_logs_carry_no_patient_identity(start_node, tmp_path, caplog):
    node = start_node(node_config(tmp_path / "spool", idle_seconds=0.2))
    path = new_study(DATA / "ct_small.dcm", tmp_path / "ct")[0]
    ds = pydicom.dcmread(path)
    ds.PatientName, ds.PatientID, ds.PatientBirthDate = "Doe^Jane", "PID-778899", "19700102"
    assert store(node.port, ds) == 0
    log = tmp_path / "spool" / "audit.jsonl"
    wait_for(lambda: '"processed"' in log.read_text(), 120, "the series to be processed")
    audit = log.read_text()
    events = [json.loads(line)["event"] for line in audit.splitlines()]
    assert {"started", "received", "processed"} <= set(events)
    for secret in ("Doe", "Jane", "PID-778899", "19700102"):
        assert secret not in audit and secret not in caplog.text


# routing


def test_routes_pass_ignore_and_never_reenhance_own_results(start_node, tmp_path):
    node = start_node(node_config(tmp_path / "spool", idle_seconds=0.2, keep_files=True, routes=[
        {"match": {"series_description": "*SCOUT*"}, "action": "ignore"},
        {"match": {"body_part": "head"}, "action": "pass"},
    ]))
    scout, head, plain = (pydicom.dcmread(new_study(DATA / "ct_small.dcm", tmp_path / n)[0])
                          for n in ("a", "b", "c"))
    scout.SeriesDescription, head.BodyPartExamined = "Topogram scout", "HEAD"
    for ds in (scout, head, plain):
        assert store(node.port, ds) == 0
    wait_for(lambda: sum(node.ledger.counts().get(k, 0) for k in ("done", "ignored")) == 3, 120, "routing")
    assert node.ledger.state(str(scout.SOPInstanceUID)) == "ignored"
    assert node.ledger.state(str(head.SOPInstanceUID)) == "done"
    derived = list((tmp_path / "spool" / "derived").rglob("*.dcm"))
    assert len(derived) == 1  # only the plain CT was enhanced; the head CT passed through unchanged
    result = pydicom.dcmread(derived[0])
    assert str(result.SourceImageSequence[0].ReferencedSOPInstanceUID) == str(plain.SOPInstanceUID)
    assert store(node.port, result) == 0  # our own result sent back to us is not enhanced again
    wait_for(lambda: node.ledger.state(str(result.SOPInstanceUID)) == "ignored", 60, "the result to be ignored")


# crash recovery


def test_restart_recovers_spooled_but_unrecorded_instances_and_unsent_results(start_node, tmp_path):
    spool = tmp_path / "spool"
    files = new_study(DATA / "ct_small.dcm", tmp_path / "ct", count=2)
    written = Spool(spool)
    for path in files:  # as if the node died after writing each file, before recording it
        ds = pydicom.dcmread(path)
        written.write(written.incoming(str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID)), path.read_bytes())
    series_folder = written.incoming(str(ds.SeriesInstanceUID), "1").parent
    (series_folder / ".medsr-0000dead.tmp.dcm").write_bytes(b"half")  # a write cut short by the crash
    Ledger(written.ledger_path).close()
    node = start_node(node_config(spool, idle_seconds=0.1, keep_files=True))
    wait_for(lambda: node.ledger.counts().get("done") == 2, 120, "recovered instances to be processed")
    assert not list((spool / "incoming").rglob(".medsr-*"))
    first_uids = sorted(p.name for p in (spool / "derived").rglob("*.dcm"))
    outputs = {p: pydicom.dcmread(p).SOPInstanceUID for p in (spool / "derived").rglob("*.dcm")}
    node.stop()
    # processed again from scratch (ledger lost), the derived instances keep their UIDs: a resend is harmless
    shutil.rmtree(spool / "derived")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{written.ledger_path}{suffix}").unlink(missing_ok=True)
    again = start_node(node_config(spool, idle_seconds=0.1, keep_files=True))
    wait_for(lambda: again.ledger.counts().get("done") == 2, 120, "reprocessing")
    assert sorted(p.name for p in (spool / "derived").rglob("*.dcm")) == first_uids
    assert sorted(pydicom.dcmread(p).SOPInstanceUID for p in (spool / "derived").rglob("*.dcm")) == sorted(
        outputs.values())


def test_unreachable_destination_is_retried_with_back_off(start_node, tmp_path):
    from medsr.net import free_port

    node = start_node(node_config(tmp_path / "spool", idle_seconds=0.1, destinations={
        "pacs": {"type": "dicom", "ae_title": "NOBODY", "host": "127.0.0.1", "port": free_port(),
                 "timeout_seconds": 2}}))
    path = new_study(DATA / "ct_small.dcm", tmp_path / "ct")[0]
    assert store(node.port, pydicom.dcmread(path)) == 0
    wait_for(lambda: (tmp_path / "spool" / "audit.jsonl").read_text().count('"send_failed"') >= 2, 60, "retries")
    tries = [json.loads(line) for line in (tmp_path / "spool" / "audit.jsonl").read_text().splitlines()
             if '"send_failed"' in line]
    assert tries[1]["retry_in_seconds"] > tries[0]["retry_in_seconds"]
    assert node.ledger.counts()["outbox"] == 1  # still queued, not lost
    config = tmp_path / "node.yaml"
    config.write_text(yaml.safe_dump(node_config(tmp_path / "spool")))
    from typer.testing import CliRunner

    from medsr.cli import app

    status = CliRunner().invoke(app, ["serve", "--config", str(config), "--status"])
    assert status.exit_code == 0
    assert "1 done" in status.stdout and "1 result(s) waiting to be sent" in status.stdout
    assert "unsent to pacs" in status.stdout and "NOBODY@127.0.0.1" in status.stdout


# health and metrics


def test_healthz_and_metrics(start_node, tmp_path):
    from medsr.net import free_port

    port = free_port()
    node = start_node(node_config(tmp_path / "spool", idle_seconds=60, http={"port": port}))
    path = new_study(DATA / "ct_small.dcm", tmp_path / "ct")[0]
    assert store(node.port, pydicom.dcmread(path)) == 0
    time.sleep(0.6)  # the gauges are refreshed by the processing loop every 0.5 s
    health = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10).read())
    assert health["status"] == "ok" and health["queue_depth"] == 1
    metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    assert "medsr_instances_received_total 1.0" in metrics
    assert "medsr_queue_depth 1.0" in metrics and "medsr_series_seconds_bucket" in metrics


# TLS


def test_tls_listener(start_node, tmp_path):
    import ssl

    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "node.crt", tmp_path / "node.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    node = start_node(node_config(tmp_path / "spool", idle_seconds=60,
                                  tls={"certificate": str(cert), "key": str(key)}))
    client = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(cert))
    assoc = associate(node.port, tls_args=(client, "127.0.0.1"))
    assert assoc.is_established
    path = new_study(DATA / "ct_small.dcm", tmp_path / "ct")[0]
    assert assoc.send_c_store(pydicom.dcmread(path)).Status == 0
    assoc.release()
    assert not associate(node.port).is_established  # plain TCP to a TLS port gets nowhere


# transfer syntaxes


@pytest.mark.parametrize("syntax", ["RLELossless", "JPEG2000Lossless", "DeflatedExplicitVRLittleEndian"])
def test_compressed_instances_are_received_and_enhanced_like_uncompressed(start_node, tmp_path, syntax):
    from medsr.infer.files import Source, upscale_files
    from medsr.models import load_model

    uid = getattr(pydicom.uid, syntax)
    node = start_node(node_config(tmp_path / "spool", idle_seconds=0.1, keep_files=True))
    path = new_study(DATA / "ct_small.dcm", tmp_path / "ct")[0]
    ds = pydicom.dcmread(path)
    if uid.is_compressed:
        ds.compress(uid)
    else:
        ds.file_meta.TransferSyntaxUID = uid
    ae = AE(ae_title="TESTSCU")
    ae.add_requested_context(CT, [uid])
    assoc = ae.associate("127.0.0.1", node.port, ae_title="MEDSR")
    assert assoc.is_established
    assert assoc.send_c_store(ds).Status == 0
    assoc.release()
    wait_for(lambda: node.ledger.counts().get("done") == 1, 120, "the compressed instance to be processed")
    result = pydicom.dcmread(next((tmp_path / "spool" / "derived").rglob("*.dcm")))
    expected = next(upscale_files([Source(path, Path("x.dcm"))], tmp_path / "expected",
                                  load_model("ct-sparse-view", "cpu"), fmt="dicom"))
    assert (result.pixel_array == pydicom.dcmread(expected.target).pixel_array).all()


def test_configuration_reference_names_every_setting():
    from medsr.serve import config

    text = (Path(__file__).parents[2] / "docs" / "serve.md").read_text()
    models = [config.NodeConfig, config.Limits, config.Inference, config.Tls, config.Http, config.Caller,
              config.Match, config.Route, config.DicomDestination, config.StowDestination]
    missing = [f"{m.__name__}.{name}" for m in models for name in m.model_fields if f"`{name}" not in text
               and f" {name}" not in text and f"{{{name}" not in text]
    assert not missing, f"docs/serve.md does not mention: {', '.join(missing)}"
